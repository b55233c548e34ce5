"""The dashboard in a real headless Chromium (Playwright for Python, driving Debian's chromium).

The browser is found, never downloaded: ``FORMICA_CHROMIUM`` or the first of ``CHROMIUM_PATHS``
that exists (``.ci/run`` installs Debian's ``chromium``). Without one, every test here skips saying
so. One ``formica dev`` serves all the tests of a session; each test gets a fresh browser context,
so nothing (session storage included) leaks from one test to the next.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.devserver import DevHandle, running_dev

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None."""
    configured = os.environ.get("FORMICA_CHROMIUM")
    candidates = [configured] if configured else [*CHROMIUM_PATHS, shutil.which("chromium") or ""]
    return next((path for path in candidates if path and Path(path).is_file()), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium found (looked at FORMICA_CHROMIUM and " + ", ".join(CHROMIUM_PATHS) + "): "
            "install Debian's chromium (apt-get install -y chromium) to run the dashboard's browser tests"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[DevHandle]:
    # The browser first: without one, no server is started for nothing.
    with running_dev(
        tmp_path_factory.mktemp("dashboard"), extra_args=["--container-runtime", "host"]
    ) as handle:
        yield handle


@pytest.fixture
def client(dev: DevHandle) -> Iterator[httpx.Client]:
    with dev.client() as api:
        yield api


@pytest.fixture
def page(browser: Any, dev: DevHandle) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        context.close()
    # A script error or a CSP violation ("Refused to ...") on any page is a failure; an API answering
    # 4xx (a refused token, an invalid upload) is part of the tests.
    unexpected = [error for error in errors if not error.startswith("Failed to load resource")]
    assert not unexpected, unexpected


def sign_in(page: Any, dev: DevHandle) -> None:
    """Open the dashboard and sign in with the dev server's token.

    The form is filled once it is rendered and holds the token before it is sent; a refusal shown
    by the page fails at once with its text.
    """
    page.goto(dev.url + "/")
    field = page.get_by_label("API token")
    field.wait_for()
    field.fill(dev.token)
    if field.input_value() != dev.token:  # the form was rendered again under the fill
        field.fill(dev.token)
    page.get_by_role("button", name="Sign in").click()
    requests = page.get_by_role("heading", name="Requests")
    refused = page.get_by_role("alert").filter(has_text="token")
    requests.or_(refused).first.wait_for(timeout=60_000)
    assert requests.is_visible(), f"sign-in refused: {refused.inner_text()} at {page.url}"
