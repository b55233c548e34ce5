"""The dashboard as a user drives it, in headless Chromium against `formica dev`.

Sign in, upload a definition and read its validation error at its line, submit the seed job and
watch a task go EXECUTING and its log arrive, download an artifact, cancel a running job; and a
tenant's script and HTML (in a description, params and a log) rendered as inert text.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from formica.cli.demo import jsonplaceholder_stub, local_yaml, seed_yaml

from tests.browser.conftest import sign_in
from tests.e2e.devserver import DevHandle, submit, upload, wait_for

PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>'

XSS_JOB = """\
job_type: xss-probe
description: '<img src=x onerror="window.__pwned=3"><script>window.__pwned=4</script>'
tasks:
- task_type: shout
  method: SHELL
  script:
    - echo '<img src=x onerror="window.__pwned=5"><script>window.__pwned=6</script>'
"""

ARTIFACT_JOB = """\
job_type: dashboard-artifact
tasks:
- task_type: make
  method: SHELL
  script:
    - echo "made by the dashboard test" > report.txt
  artifacts:
    paths:
      - report.txt
"""

SLOW_JOB = """\
job_type: dashboard-slow
tasks:
- task_type: wait
  method: SHELL
  timeout: 2m
  script:
    - sleep 60
"""

# Line 5 holds a field the language does not know.
INVALID_JOB = """\
job_type: broken-job
tasks:
- task_type: one
  method: SHELL
  scritp:
    - echo hi
"""


def _request_state(page: Any) -> str:
    return str(page.locator("dl.facts dd").nth(2).inner_text()).strip()


def test_sign_in_keeps_the_token_in_the_tab_and_refuses_a_wrong_one(page: Any, dev: DevHandle) -> None:
    # Given the page, served without a token under a strict Content Security Policy
    response = page.goto(dev.url + "/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # When a wrong token is tried
    page.get_by_label("API token").fill("fmc_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    # Then it says so and keeps nothing
    page.get_by_role("alert").filter(has_text="refused").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    # When the right one is given, the requests page opens and only the tab's session storage holds it
    page.get_by_label("API token").fill(dev.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Requests").wait_for()
    assert page.evaluate("sessionStorage.getItem('formica.token')") == dev.token
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    # And signing out forgets it
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_tenants_script_and_html_render_as_text(page: Any, dev: DevHandle, client: httpx.Client) -> None:
    # Given a job whose description and log hold script and HTML, and a request whose description
    # and params do too
    upload(client, XSS_JOB)
    response = client.post(
        "/api/jobs/requests",
        json={"job_type": "xss-probe", "description": PAYLOAD, "params": {PAYLOAD: PAYLOAD}},
    )
    assert response.status_code == 201, response.text
    request_id = response.json()["id"]
    wait_for(client, request_id)
    # When the request page and the definition pages render them
    sign_in(page, dev)
    page.goto(f"{dev.url}/#/requests/{request_id}")
    log = page.locator("pre.log[data-task='shout']")
    log.filter(has_text="window.__pwned=5").wait_for()
    page.get_by_text(PAYLOAD).first.wait_for()
    page.goto(f"{dev.url}/#/definitions")
    page.get_by_text("window.__pwned=3").first.wait_for()
    page.goto(f"{dev.url}/#/definitions/xss-probe")
    page.get_by_role("heading", name="YAML").wait_for()
    page.goto(f"{dev.url}/#/requests")
    page.get_by_role("cell", name=PAYLOAD).wait_for()
    # Then every payload is text: nothing ran, no element came from it
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main script, main b").count() == 0
    page.goto(f"{dev.url}/#/requests/{request_id}")
    page.locator("pre.log[data-task='shout']").filter(has_text="window.__pwned=5").wait_for()
    assert "<script>window.__pwned=6</script>" in page.locator("pre.log[data-task='shout']").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main script, main b").count() == 0


def test_an_invalid_upload_shows_the_error_at_its_line(page: Any, dev: DevHandle) -> None:
    sign_in(page, dev)
    page.get_by_role("link", name="Definitions").click()
    page.get_by_label("Definition (YAML or JSON)").fill(INVALID_JOB)
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("alert").filter(has_text="Not stored").wait_for()
    line = page.locator("ol.yaml li[data-line='5']")
    assert "has-error" in str(line.get_attribute("class"))
    assert "scritp" in line.locator(".line-error").inner_text()
    assert page.locator("ol.yaml li.has-error").count() >= 1
    # The fix is stored, and appears in the listing
    page.get_by_label("Definition (YAML or JSON)").fill(INVALID_JOB.replace("scritp", "script"))
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("Stored broken-job version 1").wait_for()
    page.get_by_role("link", name="broken-job", exact=True).wait_for()


def test_the_seed_job_polls_executing_and_its_log_arrives(
    page: Any, dev: DevHandle, client: httpx.Client
) -> None:
    yaml_text, _ = seed_yaml()
    with jsonplaceholder_stub() as stub:
        upload(client, local_yaml(yaml_text, stub))
        sign_in(page, dev)
        # When the seed job is submitted with the form
        page.get_by_label("Job type", exact=True).nth(1).select_option("sensor-job")
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(re.compile(r".*#/requests/[^/]+$"))
        # Then its first task is seen polling (EXECUTING) and its log lines arrive while it runs
        first = page.get_by_role("row").filter(has=page.get_by_role("cell", name="first", exact=True))
        first.get_by_text("EXECUTING").wait_for(timeout=30_000)
        page.locator("pre.log[data-task='first']").filter(has_text="blaaaaahtodos").wait_for(timeout=30_000)
        # And the request ends (how depends on `second`'s random exit code), the walk drawn on the graph:
        # `first` completed (SKIPPED when a RESTART_JOB re-walked past it)
        page.get_by_text("Finished.").wait_for(timeout=90_000)
        first_node = str(page.locator(".graph g[data-node='t0']").get_attribute("class"))
        assert re.search(r"\bs-(COMPLETED|SKIPPED)\b", first_node), first_node
        assert page.locator(".graph path.walked").count() >= 1


def test_an_artifact_downloads_from_the_request_page(page: Any, dev: DevHandle, client: httpx.Client) -> None:
    upload(client, ARTIFACT_JOB)
    request_id = submit(client, "dashboard-artifact")
    sign_in(page, dev)
    page.goto(f"{dev.url}/#/requests/{request_id}")
    button = page.get_by_role("button", name="Download report.txt")
    with page.context.expect_page() as opened:
        button.click()
    download = opened.value
    download.wait_for_load_state()
    assert "made by the dashboard test" in download.content()
    # The link is a presigned URL: no token in it
    assert dev.token not in download.url


def test_a_running_job_is_cancelled_from_its_page(page: Any, dev: DevHandle, client: httpx.Client) -> None:
    upload(client, SLOW_JOB)
    request_id = submit(client, "dashboard-slow")
    sign_in(page, dev)
    page.goto(f"{dev.url}/#/requests/{request_id}")
    page.get_by_role("cell", name="wait", exact=True).wait_for(timeout=30_000)
    started = time.monotonic()
    page.get_by_role("button", name="Cancel").click()
    page.locator("dl.facts .state-CANCELLED").wait_for(timeout=30_000)
    assert wait_for(client, request_id)["job_state"] == "CANCELLED"
    assert time.monotonic() - started < 30
    page.get_by_role("button", name="Restart").wait_for()
