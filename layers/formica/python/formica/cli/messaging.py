"""``formica messaging reply``: answer MESSAGING tasks' requests, as formicary's message ants do.

A MESSAGING task sends formicary's task request (JSON with a ``correlation_id`` and the reply queue
as ``response_topic``) to its ``messaging_request_queue``; the walk waits for a reply carrying the
same correlation id. This command is the replier: it receives the next request(s) from the
organisation's request queue in SQS, sends a reply with the exit code, status, message and context
it was given to the request's reply queue, and deletes the request. With ``--endpoint-url`` it
reaches `formica dev`'s moto (the URL its banner prints); without it, the AWS account of the
default credentials, where only an operator-granted queue (``--exact``) is usually readable.

It talks to SQS, not to Formica's API: no token is needed, and none is sent.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

EXIT_OK = 0
EXIT_FAILED = 1
LONG_POLL_SECONDS = 20
"""SQS's longest receive wait."""
LOCAL_REGION = "us-east-1"
# moto accepts any credentials: these keep real ones from ever being sent to a local endpoint.
LOCAL_CREDENTIAL = "formica-local"


class ReplyUsageError(ValueError):
    """A flag's value cannot be used (a --context without '=', a bad exit code)."""


@dataclass(frozen=True)
class ReplySpec:
    """What every reply says."""

    exit_code: str = "0"
    status: str | None = None
    message: str | None = None
    context: dict[str, str] = field(default_factory=dict)

    @property
    def reply_status(self) -> str:
        """The status as written, else COMPLETED for exit code 0 and FAILED for any other."""
        return self.status or ("COMPLETED" if self.exit_code == "0" else "FAILED")


def register(subparsers: Any) -> None:
    """Add ``formica messaging`` to the ``formica`` parser's subparsers."""
    messaging = subparsers.add_parser("messaging", help="answer MESSAGING tasks' requests (a replier)")
    commands = messaging.add_subparsers(dest="messaging_command", required=True, metavar="COMMAND")
    reply = commands.add_parser(
        "reply",
        help="reply to the next task request(s) on a request queue",
        description="Receive MESSAGING task requests from the organisation's request queue and reply "
        "to each on the reply queue it names, with the given exit code, status and context.",
    )
    reply.add_argument(
        "--queue", required=True, help="the task's messaging_request_queue, as the job names it"
    )
    whose = reply.add_mutually_exclusive_group(required=True)
    whose.add_argument(
        "--org",
        help="the organisation the job runs in (formica dev's is in its banner): the queue is its own, "
        "formica-msg-<digest>-QUEUE",
    )
    whose.add_argument(
        "--exact",
        action="store_true",
        help="QUEUE is the SQS queue's own name (a queue the operator granted to the organisation)",
    )
    reply.add_argument(
        "--exit-code", default="0", help="the reply's exit_code, routed by on_exit_code (default: 0)"
    )
    reply.add_argument(
        "--status",
        choices=("COMPLETED", "FAILED"),
        default=None,
        help="the reply's status (default: COMPLETED for exit code 0, else FAILED)",
    )
    reply.add_argument("--message", default=None, help="the reply's exit_message")
    reply.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an entry of the reply's task_context (the task's outputs); repeatable",
    )
    reply.add_argument("--count", type=int, default=1, help="how many requests to answer (default: 1)")
    reply.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for each request (default: 60)"
    )
    reply.add_argument(
        "--endpoint-url",
        default=None,
        help="the SQS endpoint: formica dev's moto URL from its banner (default: AWS, or $AWS_ENDPOINT_URL)",
    )
    reply.add_argument("--region", default=None, help="the AWS region (default: boto3's; us-east-1 locally)")
    reply.set_defaults(handler=cmd_reply)


def parse_context(entries: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` entries as a dict.

    Raises
    ------
    ReplyUsageError
        An entry without ``=`` or with an empty key.
    """
    context: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ReplyUsageError(f"--context {entry!r}: write KEY=VALUE")
        context[key.strip()] = value
    return context


def reply_body(request: dict[str, Any], spec: ReplySpec) -> dict[str, Any]:
    """formicary's task response (``types.TaskResponse``) answering ``request``.

    Raises
    ------
    ValueError
        ``request`` is not a task request (no correlation id or reply queue).
    """
    correlation = request.get("correlation_id")
    if not isinstance(correlation, str) or not correlation or not request.get("response_topic"):
        raise ValueError("not a task request: it has no correlation_id or response_topic")
    body: dict[str, Any] = {
        "correlation_id": correlation,
        "job_request_id": request.get("job_request_id"),
        "task_execution_id": request.get("task_execution_id"),
        "task_type": request.get("task_type"),
        "status": spec.reply_status,
        "exit_code": spec.exit_code,
        "task_context": dict(spec.context),
    }
    if spec.message is not None:
        body["exit_message"] = spec.message
    return body


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sqs_client(endpoint_url: str | None, region: str | None) -> Any:
    # boto3 loads only for this command (the other commands never need it).
    import boto3  # noqa: PLC0415

    if endpoint_url and _is_loopback(endpoint_url):
        return boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region or LOCAL_REGION,
            aws_access_key_id=LOCAL_CREDENTIAL,
            aws_secret_access_key=LOCAL_CREDENTIAL,
        )
    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)


@dataclass
class Replier:
    """Answers requests from one request queue; ``org_prefix`` (when set) bounds the reply queues."""

    sqs: Any
    request_queue: str
    org_prefix: str | None
    spec: ReplySpec
    _urls: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        if name not in self._urls:
            self._urls[name] = str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        return self._urls[name]

    def receive(self, wait: float) -> dict[str, Any] | None:
        """The next message of the request queue within ``wait`` seconds, or None."""
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            try:
                url = self.url(self.request_queue)
            except self.sqs.exceptions.QueueDoesNotExist:
                url = None  # Formica creates it with the first request: wait for it
            messages: list[Any] = []
            if url is not None:
                messages = self.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=max(0, min(LONG_POLL_SECONDS, int(remaining))),
                ).get("Messages", [])
            if messages:
                return dict(messages[0])
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.3, max(remaining, 0.0)))

    def answer(self, message: dict[str, Any]) -> str:
        """Reply to one request and delete it; returns the line to print.

        Raises
        ------
        ValueError
            The message is not a task request, or names a reply queue outside the organisation's.
        """
        try:
            request = json.loads(message["Body"])
        except ValueError as exc:
            raise ValueError("not a task request: its body is not JSON") from exc
        if not isinstance(request, dict):
            raise ValueError("not a task request: its body is not a JSON object")
        body = reply_body(request, self.spec)
        reply_queue = str(request["response_topic"])
        if self.org_prefix is not None and not reply_queue.startswith(self.org_prefix):
            raise ValueError(
                f"the request names the reply queue {reply_queue}, not one of the organisation's"
            )
        self.sqs.send_message(QueueUrl=self.url(reply_queue), MessageBody=json.dumps(body))
        self.sqs.delete_message(QueueUrl=self.url(self.request_queue), ReceiptHandle=message["ReceiptHandle"])
        return (
            f"replied to {request.get('job_request_id')} {request.get('task_type')} "
            f"(retry {request.get('retry', 0)}): {body['status']}, exit code {body['exit_code']}, "
            f"on {reply_queue}"
        )


def cmd_reply(args: argparse.Namespace) -> int:
    """Answer ``--count`` requests; exit 1 when one does not come within ``--wait`` seconds."""
    try:
        spec = ReplySpec(
            exit_code=str(args.exit_code).strip(),
            status=args.status,
            message=args.message,
            context=parse_context(args.context),
        )
        if not spec.exit_code or not spec.exit_code.lstrip("-").isdigit():
            raise ReplyUsageError(f"--exit-code {args.exit_code!r}: write a whole number")
        if args.count < 1:
            raise ReplyUsageError("--count: answer at least one request")
    except ReplyUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    # The store's naming rule, loaded here: it brings botocore, which only this command needs.
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from formica.store.messages import message_queue_name, org_queue_prefix  # noqa: PLC0415

    queue = args.queue if args.exact else message_queue_name(args.org, args.queue, {})
    replier = Replier(
        sqs=_sqs_client(args.endpoint_url, args.region),
        request_queue=queue,
        org_prefix=None if args.exact else org_queue_prefix(args.org),
        spec=spec,
    )
    answered = 0
    try:
        while answered < args.count:
            message = replier.receive(args.wait)
            if message is None:
                print(
                    f"error: no task request on {queue} within {args.wait:g}s "
                    f"({answered} of {args.count} answered)",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            try:
                print(replier.answer(message), flush=True)
            except ValueError as exc:
                print(f"warning: skipped a message on {queue}: {exc}", file=sys.stderr)
                continue
            answered += 1
    except (ClientError, BotoCoreError) as exc:
        print(f"error: SQS refused ({queue}): {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
