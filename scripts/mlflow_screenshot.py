"""A PNG of one MLflow run's page, taken with headless Chromium (the README's screenshot).

.venv/bin/python scripts/mlflow_screenshot.py http://127.0.0.1:5000 RUN_ID docs/mlflow-run.png
"""

import os
import sys

from mlflow import MlflowClient
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("DERMSPARK_CHROMIUM", "/usr/bin/chromium")


def main(server: str, run_id: str, output: str) -> None:
    run = MlflowClient(server).get_run(run_id)
    url = f"{server}/#/experiments/{run.info.experiment_id}/runs/{run_id}/model-metrics"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url, wait_until="networkidle")
        page.wait_for_timeout(5000)
        # MLflow 3 opens in its GenAI view, with an assistant panel: the training view, without it.
        page.get_by_text("Model training", exact=True).click()
        page.wait_for_timeout(3000)
        page.goto(url, wait_until="domcontentloaded")  # auto-refresh keeps the network busy
        page.wait_for_timeout(12000)
        if page.get_by_text("MLflow Assistant").count():
            page.mouse.click(1244, 36)  # the panel's close button, at this viewport's size
        page.wait_for_timeout(8000)  # the charts draw after their data arrives
        page.screenshot(path=output)
        browser.close()
    print(f"wrote {output} from {url}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
