"""The HTTP runner: one attempt of an HTTP_GET / HTTP_POST_FORM / HTTP_POST_JSON / HTTP_PUT_FORM /
HTTP_PUT_JSON / HTTP_DELETE task (formicary's six HTTP methods).

Semantics (formicary's, with the choices Formica made where formicary is silent):

- Each non-empty line of ``script`` is a URL, called in turn; with no script, ``url`` is called.
- The exit code is the HTTP status as a string ("200", "404"). 2xx continues to the next URL; the
  first other status stops the attempt and is its exit code.
- ``headers`` are sent as given; ``query`` is merged into each URL's own query string.
- Bodies carry the task's ``variables`` only (never the job's other variables, so no secret leaks):
  form-encoded for HTTP_POST_FORM / HTTP_PUT_FORM (values as strings: booleans ``true``/``false``,
  lists and maps as JSON), JSON for HTTP_POST_JSON / HTTP_PUT_JSON, and JSON for HTTP_DELETE when
  there are any variables (formicary sends a JSON body with DELETE too). GET has no body.
- The attempt shares one deadline, ``ctx.timeout_seconds`` from the start: every connect / read /
  write waits at most the time left, and the body is read in chunks with the deadline checked between
  them. A timeout gives error_code ERR_TASK_TIMED_OUT and no exit code.
- ``ctx.is_cancelled()`` is checked before each URL (ERR_TASK_CANCELLED); a request already under
  way is bounded by the deadline, not interrupted.
- A connection failure (refused, DNS, reset) gives error_code ERR_HTTP_CONNECTION and no exit code.
- Only http and https URLs are called (ERR_HTTP_INVALID_URL otherwise). Redirects are followed, at
  most ``MAX_REDIRECTS``.
- The egress guard (``runners.egress``): every connection, each redirect hop's included, goes to a
  public address or one in the allowed networks; anything else (loopback, private, link-local, the
  metadata endpoints, ...) fails the attempt with ERR_HTTP_FORBIDDEN_ADDRESS before connecting.
- The log is one header line per request (method, URL, status, milliseconds) followed by the response
  body, the whole capped at LOG_CAP_BYTES.
- outputs: ``status`` (last status), ``url`` (last URL called, after redirects) and ``body`` (the last
  response body, only when it is JSON and at most ``OUTPUT_BODY_BYTES``, so later tasks can template it).
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from typing import Any

import httpx

from formica.jobs.models import HTTP_METHODS, TaskDefinition, TaskMethod
from formica.runners.base import (
    EXIT_CODE_NONE,
    LOG_CAP_BYTES,
    LiveLog,
    TaskContext,
    TaskOutcome,
    variable_text,
)
from formica.runners.egress import (
    Connector,
    EgressPolicy,
    IPNetwork,
    Resolver,
    forbidden_cause,
    guarded_client,
)

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 10
OUTPUT_BODY_BYTES = 4 * 1024
ERR_TASK_TIMED_OUT = "ERR_TASK_TIMED_OUT"
ERR_TASK_CANCELLED = "ERR_TASK_CANCELLED"
ERR_HTTP_CONNECTION = "ERR_HTTP_CONNECTION"
ERR_HTTP_INVALID_URL = "ERR_HTTP_INVALID_URL"
ERR_HTTP_TOO_MANY_REDIRECTS = "ERR_HTTP_TOO_MANY_REDIRECTS"
ERR_HTTP_PROTOCOL = "ERR_HTTP_PROTOCOL"
ERR_HTTP_FORBIDDEN_ADDRESS = "ERR_HTTP_FORBIDDEN_ADDRESS"

_VERBS: dict[TaskMethod, str] = {
    TaskMethod.HTTP_GET: "GET",
    TaskMethod.HTTP_POST_FORM: "POST",
    TaskMethod.HTTP_POST_JSON: "POST",
    TaskMethod.HTTP_PUT_FORM: "PUT",
    TaskMethod.HTTP_PUT_JSON: "PUT",
    TaskMethod.HTTP_DELETE: "DELETE",
}


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + max(seconds, 0.0)

    def left(self) -> float:
        return self._end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


class _Log:
    """The task log: appends until LOG_CAP_BYTES, then notes the truncation once."""

    def __init__(self, live: LiveLog | None = None) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self.truncated = False
        self.live = live

    def room(self) -> int:
        return max(LOG_CAP_BYTES - self._size, 0)

    def add(self, data: bytes) -> None:
        if self.truncated:
            return
        if len(data) > self.room():
            data = data[: self.room()]
            self.truncated = True
        self._parts.append(data)
        self._size += len(data)
        if self.live is not None:
            self.live.add(data)

    def mark_truncated(self) -> None:
        self.truncated = True

    def line(self, text: str) -> None:
        self.add(text.encode() + b"\n")

    def text(self) -> str:
        body = b"".join(self._parts).decode("utf-8", errors="replace")
        if self.truncated:
            body += f"\n[log truncated at {LOG_CAP_BYTES} bytes]\n"
        return body


def task_urls(task: TaskDefinition) -> list[str]:
    """The URLs an HTTP task calls, in order: the non-empty lines of script, else ``url``."""
    urls = [line.strip() for entry in task.script for line in entry.splitlines() if line.strip()]
    if not urls and task.url and task.url.strip():
        urls = [task.url.strip()]
    return urls


def loggable_url(url: str) -> str:
    """The URL for an operator's log line: no user:password, no query or fragment (tokens often
    ride there: ``https://{{.GithubToken}}@github.com/...``, ``?api_key=...``). The task's own log,
    which only its organisation reads, keeps the URL as called."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid url>"
    shown = f"{parsed.scheme}://{parsed.host}" if parsed.scheme else ""
    if parsed.port is not None:
        shown += f":{parsed.port}"
    shown += parsed.path
    if parsed.query:
        shown += "?..."
    return shown


def form_value(value: Any) -> str:
    """A variable as a form field."""
    return variable_text(value)


def _request_body(task: TaskDefinition, method: TaskMethod) -> dict[str, Any]:
    if method in (TaskMethod.HTTP_POST_FORM, TaskMethod.HTTP_PUT_FORM):
        return {"data": {key: form_value(value) for key, value in task.variables.items()}}
    if method in (TaskMethod.HTTP_POST_JSON, TaskMethod.HTTP_PUT_JSON):
        return {"content": json.dumps(task.variables, default=str).encode(), "json_header": True}
    if method is TaskMethod.HTTP_DELETE and task.variables:
        return {"content": json.dumps(task.variables, default=str).encode(), "json_header": True}
    return {}


def _invalid_url(url: str) -> str | None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"invalid URL {url!r}: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"refused URL {url!r}: only http and https URLs are called"
    if not parsed.host:
        return f"invalid URL {url!r}: no host"
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def http_client(
    egress: EgressPolicy | None = None, *, resolve: Resolver | None = None, connect: Connector | None = None
) -> httpx.Client:
    """A client for HTTP tasks: redirects followed, no proxies from the environment, and every
    connection through the egress guard (``egress``; default: AWS's rule, public addresses only).
    ``resolve`` and ``connect`` replace the system resolver and the TCP connect (tests)."""
    return guarded_client(
        egress or EgressPolicy(), max_redirects=MAX_REDIRECTS, resolve=resolve, connect=connect
    )


@lru_cache(maxsize=4)
def shared_client(allowed_networks: tuple[IPNetwork, ...] = ()) -> httpx.Client:
    """The process's client for these allowed networks (the setting ``http_allowed_networks``):
    connections are reused across attempts (a sensor polls the same host) and the TLS context is
    built once. Timeouts are set per request by ``run_http``."""
    return http_client(EgressPolicy(allowed_networks))


def run_http(
    task: TaskDefinition,
    ctx: TaskContext,
    *,
    client: httpx.Client | None = None,
    egress: EgressPolicy | None = None,
) -> TaskOutcome:
    """Run one attempt of an HTTP task (already rendered) and return its outcome.

    Parameters
    ----------
    task:
        The rendered task; its method must be one of the HTTP methods.
    ctx:
        The attempt's context (timeout, cancellation).
    client:
        An httpx client to use (``shared_client``, tests); by default one is made and closed here.
    egress:
        The egress rules of the client made here (default: public addresses only); a client passed
        in brings its own.

    Returns
    -------
    TaskOutcome
        exit_code is the status of the last request made; failures never raise.
    """
    if task.method is None or task.method not in HTTP_METHODS:
        raise ValueError(f"run_http cannot run method {task.method!r}")
    urls = task_urls(task)
    if not urls:
        return TaskOutcome(
            error_code=ERR_HTTP_INVALID_URL,
            error_message=f"task {task.task_type!r} names no URL (script lines or url)",
        )
    for url in urls:
        problem = _invalid_url(url)
        if problem:
            return TaskOutcome(error_code=ERR_HTTP_INVALID_URL, error_message=problem)

    own_client = client is None
    http = client or http_client(egress)
    try:
        return _run(task, task.method, ctx, http, urls)
    finally:
        if own_client:
            http.close()


def _run(
    task: TaskDefinition, method: TaskMethod, ctx: TaskContext, http: httpx.Client, urls: list[str]
) -> TaskOutcome:
    verb = _VERBS[method]
    deadline = _Deadline(ctx.timeout_seconds)
    log = _Log(LiveLog(ctx))
    outcome = TaskOutcome()
    body_args = _request_body(task, method)
    for url in urls:
        if ctx.is_cancelled():
            outcome.error_code = ERR_TASK_CANCELLED
            outcome.error_message = "the job was cancelled"
            outcome.exit_code = EXIT_CODE_NONE
            break
        left = deadline.left()
        if left <= 0:
            return _timed_out(outcome, log, method, url, ctx)
        started = time.monotonic()
        headers = dict(task.headers)
        if body_args.get("json_header") and not any(key.lower() == "content-type" for key in headers):
            headers["Content-Type"] = "application/json"
        try:
            # Merged by hand: httpx's params= would replace the URL's own query string.
            target = httpx.URL(url).copy_merge_params(task.query) if task.query else url
            request = http.build_request(
                verb,
                target,
                headers=headers,
                data=body_args.get("data"),
                content=body_args.get("content"),
                timeout=httpx.Timeout(left),
            )
            response = http.send(request, stream=True, follow_redirects=True)
            try:
                body, complete, more = _read_body(response, deadline, max(log.room(), OUTPUT_BODY_BYTES + 1))
            finally:
                response.close()
        except httpx.TimeoutException:
            return _timed_out(outcome, log, method, url, ctx)
        except httpx.TooManyRedirects as exc:
            return _failed(outcome, log, ERR_HTTP_TOO_MANY_REDIRECTS, f"{verb} {url}: {exc}")
        except httpx.UnsupportedProtocol as exc:
            return _failed(outcome, log, ERR_HTTP_INVALID_URL, f"{verb} {url}: {exc}")
        except (httpx.ConnectError, httpx.NetworkError) as exc:
            forbidden = forbidden_cause(exc)
            if forbidden is not None:
                return _failed(outcome, log, ERR_HTTP_FORBIDDEN_ADDRESS, f"{verb} {url}: {forbidden}")
            return _failed(outcome, log, ERR_HTTP_CONNECTION, f"could not connect for {verb} {url}: {exc}")
        except httpx.TransportError as exc:
            return _failed(outcome, log, ERR_HTTP_PROTOCOL, f"{verb} {url} failed: {exc}")
        if not complete:
            return _timed_out(outcome, log, method, url, ctx)

        elapsed_ms = int((time.monotonic() - started) * 1000)
        status = str(response.status_code)
        log.line(f"{method.value} {url} -> {status} ({elapsed_ms} ms)")
        log.add(body)
        if more:
            log.mark_truncated()
        elif body and not body.endswith(b"\n"):
            log.add(b"\n")
        if log.live is not None:
            log.live.flush()
        logger.info(
            "http request finished",
            extra={
                "task_type": task.task_type,
                "url": loggable_url(url),
                "status": status,
                "elapsed_ms": elapsed_ms,
            },
        )
        outcome.exit_code = status
        outcome.outputs = {"status": status, "url": str(response.url)}
        content_type = response.headers.get("content-type", "")
        if _is_json(content_type) and not more and len(body) <= OUTPUT_BODY_BYTES:
            outcome.outputs["body"] = body.decode("utf-8", errors="replace")
        if not response.is_success:
            break
    outcome.log = log.text()
    return outcome


def _read_body(response: httpx.Response, deadline: _Deadline, limit: int) -> tuple[bytes, bool, bool]:
    """Read at most ``limit`` bytes of the body: (bytes, finished before the deadline, more was left)."""
    parts: list[bytes] = []
    size = 0
    # No chunk size: a chunk as soon as it arrives, so the deadline is checked while a body trickles.
    for chunk in response.iter_bytes():
        if deadline.passed():
            return b"".join(parts), False, False
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            # Past the log's cap the rest of the body is of no use; stop reading it.
            return b"".join(parts)[:limit], True, True
    return b"".join(parts), True, False


def _timed_out(
    outcome: TaskOutcome, log: _Log, method: TaskMethod, url: str, ctx: TaskContext
) -> TaskOutcome:
    message = f"{method.value} {url} did not finish within the task timeout of {ctx.timeout_seconds:g}s"
    return _failed(outcome, log, ERR_TASK_TIMED_OUT, message)


def _failed(outcome: TaskOutcome, log: _Log, error_code: str, message: str) -> TaskOutcome:
    log.line(message)
    outcome.exit_code = EXIT_CODE_NONE
    outcome.error_code = error_code
    outcome.error_message = message
    outcome.log = log.text()
    return outcome
