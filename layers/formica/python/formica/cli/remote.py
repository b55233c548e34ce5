"""The `formica` subcommands that talk to the API: definitions, submit, status, logs, artifacts,
cancel, restart, resume, approve, reject, approvals, tokens, configs. Human output by default,
``--json`` for scripts; errors print the API's message and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from formica.cli.client import ClientConfig, FormicaApiError, FormicaClient, FormicaClientError
from formica.cli.costs import format_cost
from formica.settings import SettingsError, get_settings

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
JOB_STATES = ("PENDING", "READY", "STARTED", "EXECUTING", "COMPLETED", "FAILED", "CANCELLED")
"""What ``formica requests --state`` takes: the API's job_state filter."""
MAX_PAGE = 100
# formica.store.tokens.TokenScope's values, spelled out here so that commands load no botocore.
TOKEN_SCOPES = ("read", "submit", "approve", "admin", "worker")
MAX_TREE_DEPTH = 5
"""How many levels of forked requests ``formica status`` follows below the request it shows."""
EXIT_OK = 0
EXIT_FAILED = 1

Command = Callable[[argparse.Namespace], int]


class CliUsageError(ValueError):
    """A flag's value cannot be used (e.g. --param without '=')."""


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=None, help="API base URL (default: $FORMICA_SERVER)")
    common.add_argument("--token", default=None, help="Bearer token (default: $FORMICA_TOKEN)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    return common


def register(subparsers: Any) -> None:
    """Add the API client subcommands to the ``formica`` parser's subparsers."""
    common = _common_options()

    definitions = subparsers.add_parser("definitions", help="upload, list and show job definitions")
    definitions_sub = definitions.add_subparsers(dest="definitions_command", required=True, metavar="COMMAND")
    upload = definitions_sub.add_parser(
        "upload", parents=[common], help="upload a YAML (or JSON) job definition"
    )
    upload.add_argument("file", type=Path)
    _bind(upload, cmd_definitions_upload)
    listing = definitions_sub.add_parser("list", parents=[common], help="list job definitions")
    listing.add_argument("--limit", type=int, default=None, help="one page of this many (default: all)")
    _bind(listing, cmd_definitions_list)
    for name, verb in (("disable", "refuse new requests of"), ("enable", "accept requests of")):
        toggle = definitions_sub.add_parser(name, parents=[common], help=f"{verb} a job type")
        toggle.add_argument("job_type")
        toggle.set_defaults(disable=name == "disable")
        _bind(toggle, cmd_definitions_toggle)
    versions = definitions_sub.add_parser(
        "versions", parents=[common], help="list a job type's stored versions, newest first"
    )
    versions.add_argument("job_type")
    _bind(versions, cmd_definitions_versions)
    show = definitions_sub.add_parser("show", parents=[common], help="show one job definition")
    show.add_argument("job_type")
    show.add_argument("--version", type=int, default=None)
    show.add_argument("--yaml", action="store_true", help="print the YAML as uploaded")
    _bind(show, cmd_definitions_show)

    submit = subparsers.add_parser("submit", parents=[common], help="submit a job request")
    submit.add_argument("job_type")
    submit.add_argument("--param", "-p", action="append", default=[], metavar="K=V", help="a job parameter")
    submit.add_argument("--job-version", type=int, default=None)
    submit.add_argument("--description", default=None)
    submit.add_argument("--idempotency-key", default=None)
    submit.add_argument("--wait", action="store_true", help="follow the job; exit 0 only when it COMPLETED")
    submit.add_argument("--interval", type=float, default=1.0, help="seconds between polls with --wait")
    submit.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    _bind(submit, cmd_submit)

    status = subparsers.add_parser(
        "status",
        parents=[common],
        help="show a job request, its tasks and the requests it forked",
        description="Show a job request and its tasks, then the requests its FORK_JOB tasks started, "
        f"indented, down to {MAX_TREE_DEPTH} levels (one API call per request shown). --json prints the "
        "request as the API answers it.",
    )
    status.add_argument("request_id")
    status.add_argument(
        "--graph", action="store_true", help="print the walk taken as a Mermaid flowchart instead"
    )
    _bind(status, cmd_status)

    requests = subparsers.add_parser("requests", parents=[common], help="list job requests, newest first")
    requests.add_argument("--job-type", default=None, help="only requests of this job type")
    requests.add_argument(
        "--state", default=None, type=str.upper, choices=JOB_STATES, help="only requests in this state"
    )
    requests.add_argument(
        "--parent",
        default=None,
        metavar="REQUEST_ID",
        help="only the requests this request forked, in creation order",
    )
    requests.add_argument(
        "--limit", type=_positive, default=20, help="show at most this many (default 20; pages are followed)"
    )
    _bind(requests, cmd_requests)

    trigger = subparsers.add_parser(
        "trigger",
        parents=[common],
        help="start a PENDING (scheduled) request now",
        description="Start a PENDING request now, e.g. one submitted with a future scheduled_at. The API "
        "triggers requests, not job types: `formica submit JOB_TYPE` starts a new run of a job type.",
    )
    trigger.add_argument("request_id")
    _bind(trigger, cmd_trigger)

    _serve_graph_from_the_api(subparsers)

    logs = subparsers.add_parser("logs", parents=[common], help="print a task's log")
    logs.add_argument("request_id")
    logs.add_argument("task_type")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="print the log as the task writes it, until it ends"
    )
    logs.add_argument(
        "--instance", type=int, metavar="N", help="a task fan-out's instance N (its item, from 0): its log"
    )
    _bind(logs, cmd_logs)

    artifacts = subparsers.add_parser(
        "artifacts", parents=[common], help="list (or download) a request's artifacts"
    )
    artifacts.add_argument("request_id")
    artifacts.add_argument(
        "--download", type=Path, default=None, metavar="DIR", help="download them into DIR"
    )
    _bind(artifacts, cmd_artifacts)

    cancel = subparsers.add_parser("cancel", parents=[common], help="cancel a job request")
    cancel.add_argument("request_id")
    _bind(cancel, cmd_cancel)

    for verb in ("approve", "reject"):
        voting = subparsers.add_parser(
            verb, parents=[common], help=f"{verb} the MANUAL task a job request waits at"
        )
        voting.add_argument("request_id")
        voting.add_argument("task_type")
        voting.add_argument("--comment", default="", help="why (recorded with the vote)")
        voting.set_defaults(approve=verb == "approve")
        _bind(voting, cmd_vote)

    approvals = subparsers.add_parser(
        "approvals", parents=[common], help="list the MANUAL tasks waiting for a verdict"
    )
    _bind(approvals, cmd_approvals)

    restart = subparsers.add_parser("restart", parents=[common], help="restart a finished job request")
    restart.add_argument("request_id")
    restart.add_argument(
        "--hard",
        action="store_true",
        help="rerun every task (default: rerun from the task that failed, skipping the tasks completed)",
    )
    _bind(restart, cmd_restart)

    resume = subparsers.add_parser("resume", parents=[common], help="resume a PAUSED job request")
    resume.add_argument("request_id")
    _bind(resume, cmd_resume)

    tokens = subparsers.add_parser("tokens", help="create, list and revoke API tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    create = tokens_sub.add_parser(
        "create",
        parents=[common],
        help="create a token (through the API; with --org, an organisation's first token, into DynamoDB)",
    )
    create.add_argument("--name", default="cli", help="the token's name, unique in its organisation")
    create.add_argument("--expires-in-days", type=int, default=None)
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        type=_scopes,
        default=None,
        metavar="SCOPES",
        help=f"what the token may do, repeatable or comma-separated: {', '.join(TOKEN_SCOPES)} "
        "(admin holds them all; default: read,submit through the API, admin with --org)",
    )
    create.add_argument(
        "--org",
        default=None,
        help="write a token of this organisation straight to DynamoDB with your AWS credentials "
        "(FORMICA_TABLE_NAME): how an organisation gets its first token",
    )
    create.add_argument(
        "--direct",
        action="store_true",
        help="the same as giving --org (kept for scripts); needs --org",
    )
    _bind(create, cmd_tokens_create)
    tokens_list = tokens_sub.add_parser("list", parents=[common], help="list the organisation's tokens")
    _bind(tokens_list, cmd_tokens_list)
    revoke = tokens_sub.add_parser("revoke", parents=[common], help="revoke a token by id")
    revoke.add_argument("token_id")
    _bind(revoke, cmd_tokens_revoke)

    _register_configs(subparsers, common)


def _register_configs(subparsers: Any, common: argparse.ArgumentParser) -> None:
    configs = subparsers.add_parser(
        "configs",
        help="set, list and delete the configs and secrets jobs see",
        description="An organisation's configs (or, with --job, one job type's) become template "
        "variables and environment variables of its jobs; a job type's win over the organisation's. "
        "A secret is kept in the parameter store, never printed, and masked in task logs.",
    )
    configs_sub = configs.add_subparsers(dest="configs_command", required=True, metavar="COMMAND")
    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--job", default=None, metavar="JOB_TYPE", help="a job type's configs")
    scope.add_argument(
        "--org",
        default=None,
        help="the organisation (default: $FORMICA_ORG, else the one your token's listing shows)",
    )
    setting = configs_sub.add_parser(
        "set",
        parents=[common, scope],
        help="create or change a config",
        description="Create a config, or change the value of an existing one. Give VALUE as '-' to "
        "read it from standard input (e.g. `formica configs set DB_PASSWORD - --secret < file`), so "
        "that a secret is not left in your shell's history or the process list; one trailing "
        "newline is dropped. A secret's value is never printed.",
    )
    setting.add_argument("name", metavar="NAME")
    setting.add_argument("value", metavar="VALUE", help="the value, or '-' to read it from stdin")
    setting.add_argument(
        "--secret", action="store_true", help="keep it secret (at least 8 characters; masked in logs)"
    )
    _bind(setting, cmd_configs_set)
    listing = configs_sub.add_parser(
        "list", parents=[common, scope], help="list configs (secrets without their values)"
    )
    _bind(listing, cmd_configs_list)
    deleting = configs_sub.add_parser(
        "delete", parents=[common, scope], help="delete a config (a secret's stored value too)"
    )
    deleting.add_argument("name", metavar="NAME")
    _bind(deleting, cmd_configs_delete)


def _scopes(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TOKEN_SCOPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scope {unknown[0] if unknown else text!r}: use {', '.join(TOKEN_SCOPES)}"
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _serve_graph_from_the_api(subparsers: Any) -> None:
    """Let ``formica graph`` (formica.cli.language: a file) also draw a job type from the server.

    An argument that names an existing file (or ``-``) is read as before; anything else is a job
    type, fetched with ``GET /api/jobs/definitions/{job_type}/graph``.
    """
    graph = subparsers.choices.get("graph")
    if graph is None:
        return
    from_file: Command = graph.get_default("handler")
    for action in graph._actions:  # argparse has no public way to reword a positional
        if action.dest == "file":
            action.metavar = "FILE|JOB_TYPE"
            action.help = "a YAML file ('-' reads stdin), or a job type defined on the server"
    graph.description = (
        "Print a job's task flow as a Mermaid flowchart: from a YAML file, or, for an argument that "
        "is not a file, from the job type's definition on the server."
    )
    graph.add_argument("--server", default=None, help="API base URL (default: $FORMICA_SERVER)")
    graph.add_argument("--token", default=None, help="Bearer token (default: $FORMICA_TOKEN)")
    graph.add_argument("--job-version", type=int, default=None, help="a stored version (server only)")

    def run(args: argparse.Namespace) -> int:
        if args.file == "-" or Path(args.file).exists():
            return from_file(args)
        return _guarded(cmd_graph_remote)(args)

    graph.set_defaults(handler=run, func=run)


def _bind(parser: argparse.ArgumentParser, command: Command) -> None:
    parser.set_defaults(func=_guarded(command), handler=_guarded(command))


def _guarded(command: Command) -> Command:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except FormicaApiError as exc:
            print(f"formica: {exc.message} ({exc.status} {exc.error})", file=sys.stderr)
            for detail in exc.details:
                print(f"  - {_detail_text(detail)}", file=sys.stderr)
            return EXIT_FAILED
        except (FormicaClientError, CliUsageError, OSError) as exc:
            print(f"formica: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print("formica: interrupted", file=sys.stderr)
            return 130

    return run


def _detail_text(detail: Any) -> str:
    if isinstance(detail, Mapping) and isinstance(detail.get("text"), str) and detail["text"]:
        return str(detail["text"])  # the API's own line: the format of `formica validate`
    if isinstance(detail, Mapping):
        where = detail.get("loc") or detail.get("field") or detail.get("path")
        message = detail.get("message") or detail.get("msg") or json.dumps(detail)
        line = detail.get("line")
        prefix = f"{where}: " if where else ""
        suffix = f" (line {line})" if line else ""
        return f"{prefix}{message}{suffix}"
    return str(detail)


def _client(args: argparse.Namespace) -> FormicaClient:
    return FormicaClient(ClientConfig.from_environment(args.server, args.token))


def _print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str), file=out or sys.stdout)


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["K=V", ...]`` to a dict; the value may contain '='."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliUsageError(f"--param {pair!r}: expected KEY=VALUE")
        params[key] = value
    return params


# definitions
def cmd_definitions_upload(args: argparse.Namespace) -> int:
    path: Path = args.file
    content_type = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
    data = path.read_bytes()
    with _client(args) as client:
        result = client.upload_definition(data, content_type=content_type)
    if args.json:
        _print_json(result)
    else:
        print(f"uploaded {result.get('job_type')} version {result.get('version')} (id {result.get('id')})")
        for task in result.get("tasks", []):
            print(f"  {task.get('task_type')}  {task.get('method', '')}")
    return EXIT_OK


def cmd_definitions_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.limit is not None:
            records = list(client.list_definitions(limit=args.limit).get("records", []))
        else:
            records = list(client.iter_definitions())
    if args.json:
        _print_json(records)
        return EXIT_OK
    if not records:
        print("no job definitions")
        return EXIT_OK
    rows = [
        [
            str(r.get("job_type")),
            str(r.get("latest_version", r.get("version", ""))),
            "disabled" if r.get("disabled") else "enabled",
            str(r.get("cron_trigger") or "-"),
            str(r.get("updated_at") or r.get("created_at", "")),
        ]
        for r in records
    ]
    print(_table(["JOB TYPE", "VERSION", "STATE", "CRON", "UPDATED"], rows))
    return EXIT_OK


def cmd_definitions_toggle(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.set_definition_disabled(args.job_type, args.disable)
    if args.json:
        _print_json(result)
    else:
        state = "disabled" if result.get("disabled") else "enabled"
        print(f"{result.get('job_type', args.job_type)}: {state}")
    return EXIT_OK


def cmd_definitions_versions(args: argparse.Namespace) -> int:
    with _client(args) as client:
        records = _every_page(lambda token: client.list_definition_versions(args.job_type, next_token=token))
    if args.json:
        _print_json(records)
        return EXIT_OK
    rows = [
        [
            str(r.get("version")),
            str(r.get("created_at", "")),
            str(r.get("sha256", ""))[:12],
            "latest" if r.get("latest") else "",
        ]
        for r in records
    ]
    print(_table(["VERSION", "CREATED", "SHA256", ""], rows))
    return EXIT_OK


def cmd_graph_remote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        sys.stdout.write(client.get_definition_graph(args.file, version=args.job_version))
    return EXIT_OK


def cmd_definitions_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.yaml:
            print(client.get_definition_yaml(args.job_type), end="")
            return EXIT_OK
        result = client.get_definition(args.job_type, version=args.version)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{result.get('job_type')} version {result.get('version')} (id {result.get('id')})")
    for key in ("created_at", "disabled", "max_concurrency", "cron_trigger"):
        if result.get(key) not in (None, ""):
            print(f"  {key}: {result.get(key)}")
    rows = [
        [str(t.get("task_type")), str(t.get("method", "")), _next_text(t)] for t in result.get("tasks", [])
    ]
    if rows:
        print(_table(["TASK", "METHOD", "NEXT"], rows))
    return EXIT_OK


def _next_text(task: Mapping[str, Any]) -> str:
    nxt = task.get("next") or task.get("next_tasks") or task.get("on_exit") or {}
    if isinstance(nxt, Mapping):
        return ", ".join(f"{k}->{v}" for k, v in nxt.items())
    if isinstance(nxt, list):
        return ", ".join(str(item) for item in nxt)
    return str(nxt)


# requests
def cmd_submit(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    with _client(args) as client:
        submitted = client.submit(
            args.job_type,
            params,
            job_version=args.job_version,
            description=args.description,
            idempotency_key=args.idempotency_key,
        )
        request_id = str(submitted.get("id"))
        if not args.wait:
            if args.json:
                _print_json(submitted)
            else:
                print(f"submitted {args.job_type}: request {request_id} ({submitted.get('job_state')})")
            return EXIT_OK
        if not args.json:
            print(
                f"submitted {args.job_type}: request {request_id} ({submitted.get('job_state')})", flush=True
            )
        final = wait_for_request(
            client,
            request_id,
            interval=args.interval,
            timeout=args.timeout,
            out=None if args.json else sys.stdout,
        )
    if args.json:
        _print_json(final)
    state = str(final.get("job_state"))
    return EXIT_OK if state == "COMPLETED" else EXIT_FAILED


class ProgressPrinter:
    """Prints one line whenever the job's or a task's (state, attempt, exit code) changes.

    Every attempt of a task gets its line with its exit code; an attempt that began and ended
    between two polls gets a line with its code from the task's ``exit_codes``. A job
    restart (RESTART_JOB, or the job's automatic retry) gets its own line before the tasks it runs.
    """

    def __init__(self, out: TextIO | None, *, clock: Callable[[], datetime] | None = None) -> None:
        self._out = out
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._attempts: dict[str, int] = {}
        self._job_retry = 0
        self._job_state: str | None = None
        self._clock = clock or (lambda: datetime.now(UTC))

    def _restarts(self, job_retry: int) -> list[str]:
        lines = [
            f"job restarted: retry {n} (job attempt {n + 1})"
            for n in range(self._job_retry + 1, job_retry + 1)
        ]
        self._job_retry = max(self._job_retry, job_retry)
        return lines

    def update(self, request: Mapping[str, Any]) -> list[str]:
        lines: list[str] = []
        now = self._clock()
        for index, task in enumerate(request.get("tasks") or []):
            lines.extend(self._restarts(int(task.get("job_retry") or 0)))
            key = f"{index}:{task.get('task_type')}"
            snapshot = (
                task.get("task_state"),
                task.get("attempts"),
                task.get("exit_code"),
                task.get("error_code"),
            )
            if self._seen.get(key) == snapshot:
                continue
            self._seen[key] = snapshot
            attempts = int(task.get("attempts") or 0)
            lines.extend(
                missed_attempt_line(task, missed, attempts)
                for missed in range(self._attempts.get(key, 0) + 1, attempts)
            )
            self._attempts[key] = max(attempts, self._attempts.get(key, 0))
            lines.append(task_line(task, now))
        lines.extend(self._restarts(int(request.get("retried") or 0)))
        state = str(request.get("job_state"))
        if state != self._job_state:
            self._job_state = state
            if state in FINAL_STATES:
                lines.append(job_line(request, now))
        if self._out is not None:
            for line in lines:
                print(line, file=self._out, flush=True)
        return lines


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def elapsed_text(started: Any, ended: Any, now: datetime) -> str:
    start = _parse_time(started)
    if start is None:
        return "-"
    end = _parse_time(ended) or now
    return f"{max(0.0, (end - start).total_seconds()):.1f}s"


def missed_attempt_line(task: Mapping[str, Any], attempt: int, attempts: int) -> str:
    """An attempt that began and ended between two polls, with its exit code from ``exit_codes``
    (the API keeps the last 20 of a task execution, oldest first)."""
    codes = [str(code) for code in task.get("exit_codes") or []]
    index = len(codes) - (attempts - attempt) - 1
    code = codes[index] if 0 <= index < len(codes) else "not kept"
    return f"  {task.get('task_type')!s:<16}  attempt {attempt} ended between two polls: exit {code}"


def task_line(task: Mapping[str, Any], now: datetime) -> str:
    exit_code = task.get("exit_code")
    parts = [
        f"  {task.get('task_type')!s:<16}",
        f"{task.get('task_state')!s:<10}",
        f"attempt {task.get('attempts') or 1}",
        f"exit {exit_code if exit_code not in (None, '') else '-'}",
        elapsed_text(task.get("started_at"), task.get("ended_at"), now),
    ]
    if task.get("error_code"):
        parts.append(f"{task.get('error_code')}: {task.get('error_message') or ''}".rstrip(": "))
    return "  ".join(parts)


def job_line(request: Mapping[str, Any], now: datetime) -> str:
    started = request.get("started_at") or request.get("created_at")
    line = (
        f"request {request.get('id')} {request.get('job_state')} after "
        f"{elapsed_text(started, request.get('ended_at'), now)}"
    )
    if request.get("error_code"):
        line += f" ({request.get('error_code')}: {request.get('error_message') or ''})".replace(": )", ")")
    return line


def wait_for_request(
    client: FormicaClient,
    request_id: str,
    *,
    interval: float = 1.0,
    timeout: float | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Poll the request until it reaches a final state, printing progress to ``out``."""
    printer = ProgressPrinter(out)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        request = client.get_request(request_id)
        printer.update(request)
        if str(request.get("job_state")) in FINAL_STATES:
            return request
        if deadline is not None and time.monotonic() >= deadline:
            raise FormicaClientError(
                f"request {request_id} is still {request.get('job_state')} after {timeout:g}s"
            )
        time.sleep(interval)


def cmd_requests(args: argparse.Namespace) -> int:
    records: list[dict[str, Any]] = []
    with _client(args) as client:
        token: str | None = None
        while len(records) < args.limit:
            page = client.list_requests(
                job_type=args.job_type,
                job_state=args.state,
                parent_id=args.parent,
                limit=min(args.limit - len(records), MAX_PAGE),
                next_token=token,
            )
            records.extend(page.get("records", []))
            token = page.get("next_token")
            if not token:
                break
    records = records[: args.limit]
    if args.json:
        _print_json(records)
        return EXIT_OK
    if not records:
        print("no job requests")
        return EXIT_OK
    moment = datetime.now(UTC)
    rows = [
        [
            str(r.get("id")),
            str(r.get("job_type")),
            str(r.get("job_state")),
            str(r.get("created_at", "")),
            elapsed_text(r.get("started_at"), r.get("ended_at"), moment),
            str(r.get("error_code") or ""),
        ]
        for r in records
    ]
    print(_table(["ID", "JOB TYPE", "STATE", "CREATED", "ELAPSED", "ERROR"], rows))
    if token:
        print(f"(more: raise --limit above {args.limit})")
    return EXIT_OK


def _every_page(fetch: Callable[[str | None], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record of a paged listing: ``fetch(next_token)`` until no next_token comes back."""
    records: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = fetch(token)
        records.extend(page.get("records", []))
        token = page.get("next_token")
        if not token:
            return records


def _request_action(
    args: argparse.Namespace, act: Callable[[FormicaClient], dict[str, Any]], default_state: str
) -> int:
    """A POST on one request (trigger, cancel, restart): its answer as JSON, or its new state."""
    with _client(args) as client:
        result = act(client)
    if args.json:
        _print_json(result)
    else:
        print(f"request {result.get('id', args.request_id)}: {result.get('job_state', default_state)}")
    return EXIT_OK


def cmd_trigger(args: argparse.Namespace) -> int:
    return _request_action(args, lambda client: client.trigger(args.request_id), "triggered")


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.graph:
            graph = client.get_request_graph(args.request_id)
            if args.json:
                _print_json(graph)
            else:
                sys.stdout.write(str(graph.get("mermaid", "")))
            return EXIT_OK
        request = client.get_request(args.request_id)
        if args.json:
            _print_json(request)
            return EXIT_OK
        print(format_request(request))
        if request.get("cost"):
            print(format_cost(request["cost"]))
        if request.get("children"):
            print("forked:")
            for line in fork_tree(client, request):
                print(line)
    return EXIT_OK


def fork_tree(client: FormicaClient, request: Mapping[str, Any], depth: int = 1) -> Iterator[str]:
    """Lines of the requests ``request`` forked, indented two spaces per level, each read with one
    GET (its state now) and followed down to ``MAX_TREE_DEPTH`` levels below the first request.

    A child that cannot be read (its fork failed before creating it) shows as its parent recorded
    it, with the API's reason.
    """
    indent = "  " * depth
    for recorded in request.get("children") or []:
        child_id = str(recorded.get("id"))
        try:
            child: Mapping[str, Any] = client.get_request(child_id)
        except FormicaApiError as exc:
            yield f"{indent}{_tree_line(recorded)}  ({exc.message})"
            continue
        grandchildren = child.get("children") or []
        if grandchildren and depth >= MAX_TREE_DEPTH:
            hidden = f"forked {len(grandchildren)}, not shown: {MAX_TREE_DEPTH} levels at most"
            yield f"{indent}{_tree_line(child)}  ({hidden})"
            continue
        yield f"{indent}{_tree_line(child)}"
        yield from fork_tree(client, child, depth + 1)


def _tree_line(request: Mapping[str, Any]) -> str:
    parts = [str(request.get("id")), str(request.get("job_type")), str(request.get("job_state"))]
    if request.get("error_code"):
        parts.append(str(request["error_code"]))
    return "  ".join(parts)


def format_request(request: Mapping[str, Any], now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    lines = [
        f"request {request.get('id')}  {request.get('job_type')} v{request.get('job_version')}  "
        f"{request.get('job_state')}  retried {request.get('retried') or 0}",
        f"  created {request.get('created_at')}  "
        f"elapsed {elapsed_text(request.get('started_at'), request.get('ended_at'), moment)}",
    ]
    if request.get("parent_id"):
        lines.append(f"  forked by {request.get('parent_id')}")
    if request.get("params"):
        lines.append(f"  params {json.dumps(request.get('params'), sort_keys=True)}")
    if request.get("error_code") or request.get("error_message"):
        lines.append(
            f"  error {request.get('error_code') or ''} {request.get('error_message') or ''}".rstrip()
        )
    rows = [
        [
            str(t.get("task_type")),
            str(t.get("method", "")),
            str(t.get("task_state")),
            str(t.get("attempts") or ""),
            str(t.get("exit_code") if t.get("exit_code") not in (None, "") else "-"),
            str(t.get("job_retry") or 0),
            elapsed_text(t.get("started_at"), t.get("ended_at"), moment),
            str(t.get("error_code") or ""),
        ]
        for t in request.get("tasks") or []
    ]
    if rows:
        headers = ["TASK", "METHOD", "STATE", "ATTEMPTS", "EXIT", "JOB RETRY", "ELAPSED", "ERROR"]
        lines.append(_table(headers, rows))
    return "\n".join(lines)


def cmd_logs(args: argparse.Namespace) -> int:
    instance = getattr(args, "instance", None)
    if getattr(args, "follow", False):
        return _follow_logs(args, instance)
    with _client(args) as client:
        text = client.logs(args.request_id, args.task_type, instance=instance)
    if args.json:
        _print_json({"request_id": args.request_id, "task_type": args.task_type, "log": text})
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return EXIT_OK


def _follow_logs(args: argparse.Namespace, instance: int | None) -> int:
    """``formica logs -f``: long-polls the logs route (each answer waits up to 20 s for more) and
    prints each piece as it comes, until the task (or its fan-out ``instance``) has ended and all of
    its log is printed."""
    since = 0
    with _client(args) as client:
        while True:
            piece = client.follow_logs(args.request_id, args.task_type, since, instance=instance)
            text = str(piece.get("text", ""))
            if args.json:
                _print_json(piece)
            elif text:
                sys.stdout.write(text)
                sys.stdout.flush()
            since = int(piece.get("next_since", since))
            if piece.get("finished"):
                return EXIT_OK


def cmd_artifacts(args: argparse.Namespace) -> int:
    with _client(args) as client:
        records = client.list_artifacts(args.request_id)
        written: list[Path] = []
        if args.download is not None:
            written = [client.download_artifact(args.request_id, record, args.download) for record in records]
    if args.json:
        payload: Any = (
            records
            if args.download is None
            else [{**record, "path": str(path)} for record, path in zip(records, written, strict=True)]
        )
        _print_json(payload)
        return EXIT_OK
    if not records:
        print("no artifacts")
        return EXIT_OK
    rows = [
        [
            str(r.get("task_type")),
            str(r.get("name")),
            str(r.get("size")),
            str(r.get("sha256", ""))[:12],
            str(r.get("id")),
        ]
        for r in records
    ]
    print(_table(["TASK", "NAME", "SIZE", "SHA256", "ID"], rows))
    for path in written:
        print(f"downloaded {path}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    return _request_action(args, lambda client: client.cancel(args.request_id), "cancel requested")


def cmd_vote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.vote(args.request_id, args.task_type, approve=args.approve, comment=args.comment)
    if args.json:
        _print_json(result)
    else:
        print(
            f"request {args.request_id} task {args.task_type}: {result.get('state')} "
            f"({_approvals_of(result)} of {result.get('approvals_needed')} approvals)"
        )
    return EXIT_OK


def _approvals_of(approval: dict[str, Any]) -> int:
    return sum(1 for vote in approval.get("votes", []) if vote.get("approve"))


def cmd_approvals(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pending = client.pending_approvals()
    if args.json:
        _print_json(pending)
        return EXIT_OK
    if not pending:
        print("no approvals pending")
        return EXIT_OK
    rows = [
        [
            str(item.get("request_id", "")),
            str(item.get("job_type", "")),
            str(item.get("task_type", "")),
            f"{_approvals_of(item)}/{item.get('approvals_needed')}",
            ",".join(item.get("allowed_users", [])) or "any",
            str(item.get("deadline") or "-"),
        ]
        for item in pending
    ]
    print(_table(["REQUEST", "JOB TYPE", "TASK", "APPROVALS", "ALLOWED", "DEADLINE"], rows))
    return EXIT_OK


def cmd_restart(args: argparse.Namespace) -> int:
    return _request_action(args, lambda client: client.restart(args.request_id, hard=args.hard), "restarted")


def cmd_resume(args: argparse.Namespace) -> int:
    return _request_action(args, lambda client: client.resume(args.request_id), "resumed")


# tokens
def cmd_tokens_create(args: argparse.Namespace) -> int:
    # --org means the operator's path (`formica tokens create --org NAME` writes to
    # DynamoDB): an API token can only create tokens of its own organisation anyway.
    scopes = [name for group in args.scopes or [] for name in group] or None
    if args.direct or args.org:
        result = create_token_direct(args.org, args.name, expires_in_days=args.expires_in_days, scopes=scopes)
    else:
        with _client(args) as client:
            result = client.create_token(args.name, expires_in_days=args.expires_in_days, scopes=scopes)
    if args.json:
        _print_json(result)
    else:
        print(
            f"token {result.get('id')} ({result.get('name')}) for organisation {result.get('org', '-')},"
            f" scopes {','.join(result.get('scopes') or ['-'])}"
        )
        print(f"  {result.get('token')}")
        print("  shown once: store it now (e.g. export FORMICA_TOKEN=...)")
    return EXIT_OK


def create_token_direct(
    org: str | None, name: str, *, expires_in_days: int | None = None, scopes: list[str] | None = None
) -> dict[str, Any]:
    """An organisation's first token, written straight to DynamoDB with the operator's AWS credentials.

    Its scopes are ``admin`` unless ``scopes`` names others: the operator is trusted, and an
    organisation's first token must be able to make the others.
    """
    if not org:
        raise CliUsageError("--direct needs --org NAME")
    # Lazy: only --org needs the store, and botocore would slow every other command's start.
    from formica.store.tokens import (  # noqa: PLC0415 - botocore only for --direct
        TokenRepository,
        TokenScope,
        TokenStoreError,
    )

    try:
        settings = get_settings()
        item, secret = TokenRepository(settings.table_name).create(
            org, name, scopes=scopes or [TokenScope.ADMIN], expires_in_days=expires_in_days
        )
    except SettingsError as exc:
        raise CliUsageError(f"{exc} (the stack's table name, e.g. from its outputs)") from exc
    except (TokenStoreError, ValueError) as exc:
        raise FormicaClientError(str(exc)) from exc
    return {
        "id": item.token_id,
        "name": item.name,
        "org": item.org,
        "scopes": list(item.scopes),
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "token": secret,
    }


def cmd_tokens_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        records = _every_page(lambda token: client.list_tokens(next_token=token))
    if args.json:
        _print_json(records)
        return EXIT_OK
    rows = [
        [
            str(r.get("id")),
            str(r.get("name")),
            str(r.get("created_at", "")),
            str(r.get("expires_at") or "-"),
            "revoked" if r.get("revoked_at") else "active",
        ]
        for r in records
    ]
    print(_table(["ID", "NAME", "CREATED", "EXPIRES", "STATE"], rows) if rows else "no tokens")
    return EXIT_OK


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.revoke_token(args.token_id)
    if args.json:
        _print_json(result)
    else:
        print(f"revoked token {args.token_id}")
    return EXIT_OK


# configs
CONFIG_VALUE_SHOWN = 60
"""``formica configs list`` shows at most this many characters of a plain value (``--json``: all)."""


def _config_scope(args: argparse.Namespace, client: FormicaClient) -> tuple[dict[str, str], str]:
    """The client's scope arguments for ``--job`` / ``--org``, and how output names the scope."""
    if args.job:
        if args.org:
            raise CliUsageError("--org and --job: a job type's configs are your token's organisation's")
        return {"job_type": args.job}, f"job type {args.job}"
    org = args.org or os.environ.get("FORMICA_ORG") or _token_org(client)
    return {"org": org}, f"organisation {org}"


def _token_org(client: FormicaClient) -> str:
    """The calling token's organisation, as the token listing shows it (an admin token's)."""
    hint = "name the organisation with --org ORG or FORMICA_ORG"
    try:
        records = client.list_tokens(limit=1).get("records", [])
    except FormicaApiError as exc:
        if exc.status in (401, 403):
            raise CliUsageError(f"cannot tell your token's organisation ({exc.message}): {hint}") from exc
        raise
    if not records or not records[0].get("org"):
        raise CliUsageError(f"cannot tell your token's organisation: {hint}")
    return str(records[0]["org"])


def _config_value(text: str) -> str:
    """VALUE as given, or standard input for ``-`` less one trailing newline (``echo`` adds one)."""
    if text != "-":
        return text
    value = sys.stdin.read()
    for ending in ("\r\n", "\n"):
        if value.endswith(ending):
            return value[: -len(ending)]
    return value


def cmd_configs_set(args: argparse.Namespace) -> int:
    value = _config_value(args.value)
    with _client(args) as client:
        scope, where = _config_scope(args, client)
        try:
            result = client.create_config(args.name, value, secret=args.secret, **scope)
            action = "created"
        except FormicaApiError as exc:
            if exc.status != 409:
                raise
            # Leaving out --secret when rotating a secret would otherwise store it as plain text.
            if client.get_config(args.name, **scope).get("secret") and not args.secret:
                raise CliUsageError(
                    f"config {args.name} of {where} is a secret: give --secret to change its value "
                    "(to make it a plain config, delete it first)"
                ) from exc
            result = client.update_config(args.name, value, secret=args.secret, **scope)
            action = "changed"
    if args.json:
        _print_json(result)
    else:
        kind = "secret" if result.get("secret") else "plain"
        print(f"{action} config {result.get('name', args.name)} ({kind}) of {where}")
    return EXIT_OK


def cmd_configs_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        scope, where = _config_scope(args, client)
        records = client.list_configs(**scope)
    if args.json:
        _print_json(records)
        return EXIT_OK
    if not records:
        print(f"no configs of {where}")
        return EXIT_OK
    rows = [
        [
            str(r.get("name")),
            "secret" if r.get("secret") else "plain",
            "****" if r.get("secret") else _shown_value(str(r.get("value") or "")),
            str(r.get("updated_at") or ""),
        ]
        for r in records
    ]
    print(_table(["NAME", "KIND", "VALUE", "UPDATED"], rows))
    return EXIT_OK


def _shown_value(value: str) -> str:
    shown = value.replace("\n", "\\n")
    return shown if len(shown) <= CONFIG_VALUE_SHOWN else shown[: CONFIG_VALUE_SHOWN - 3] + "..."


def cmd_configs_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        scope, where = _config_scope(args, client)
        result = client.delete_config(args.name, **scope)
    if args.json:
        _print_json(result)
    else:
        print(f"deleted config {result.get('name', args.name)} of {where}")
    return EXIT_OK


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(headers[i]), *(len(row[i]) for row in rows)) if rows else len(headers[i])
        for i in range(len(headers))
    ]
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)
    return "\n".join(lines)
