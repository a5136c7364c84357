"""A PNG of the service's upload page after one image, taken with headless Chromium (the
screenshot in docs/serve.md): the service must be running.

    .venv/bin/python scripts/serve_screenshot.py http://127.0.0.1:8000 IMAGE docs/images/serve-page.png
"""

import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("DERMSPARK_CHROMIUM", "/usr/bin/chromium")


def main(service: str, image: str, output: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 900, "height": 1100})
        page.goto(service + "/")
        page.set_input_files("#file", image)
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.screenshot(path=output, full_page=True)
        browser.close()
    print(f"wrote {output}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
