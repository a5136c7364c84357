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
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                                                          "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url, wait_until="networkidle")
        page.wait_for_timeout(3000)  # the charts draw after the data arrives
        page.screenshot(path=output)
        browser.close()
    print(f"wrote {output} from {url}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
