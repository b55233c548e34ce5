"""The dashboard's screenshots in docs/images/: ``python -m tests.browser.screenshots``.

Starts `formica dev`, runs the seed job (against the loopback stub, as `make run` does) and a
job with an artifact, and captures each page in headless Chromium at a laptop's 1366x900.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from formica.cli.demo import jsonplaceholder_stub, local_yaml, seed_yaml
from playwright.sync_api import Page, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.e2e.devserver import REPO, start_dev, submit, upload, wait_for

IMAGES = REPO / "docs" / "images"
INVALID = "job_type: broken-job\ntasks:\n- task_type: one\n  method: SHELL\n  scritp:\n    - echo hi\n"


def _shot(page: Page, name: str, *, full_page: bool = False) -> None:
    time.sleep(1.0)  # let the live views settle
    page.screenshot(path=str(IMAGES / f"dashboard-{name}.png"), full_page=full_page)


def main() -> int:
    executable = chromium_path()
    if executable is None:
        print("no Chromium found: apt-get install -y chromium", file=sys.stderr)
        return 1
    IMAGES.mkdir(parents=True, exist_ok=True)
    yaml_text, _ = seed_yaml()
    with tempfile.TemporaryDirectory() as scratch, jsonplaceholder_stub() as stub:
        dev = start_dev(Path(scratch), extra_args=["--container-runtime", "host"])
        try:
            with dev.client() as client, sync_playwright() as playwright:
                upload(client, local_yaml(yaml_text, stub))
                request_id = submit(client, "sensor-job", {"Key": "Value"})
                wait_for(client, request_id, timeout=120)
                browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
                page.goto(dev.url + "/")
                _shot(page, "sign-in")
                page.get_by_label("API token").fill(dev.token)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Requests").wait_for()
                _shot(page, "requests")
                page.goto(f"{dev.url}/#/requests/{request_id}")
                page.get_by_text("Finished.").wait_for(timeout=30_000)
                _shot(page, "request", full_page=True)
                page.goto(f"{dev.url}/#/definitions")
                page.get_by_label("Definition (YAML or JSON)").fill(INVALID)
                page.get_by_role("button", name="Upload").click()
                page.get_by_role("alert").wait_for()
                _shot(page, "definitions-upload-error", full_page=True)
                page.goto(f"{dev.url}/#/definitions/sensor-job")
                page.get_by_role("heading", name="Graph").wait_for()
                _shot(page, "definition", full_page=True)
                page.goto(f"{dev.url}/#/tokens")
                page.get_by_role("heading", name="Tokens").wait_for()
                _shot(page, "tokens")
                browser.close()
        finally:
            dev.stop()
    for image in sorted(IMAGES.glob("dashboard-*.png")):
        print(image.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
