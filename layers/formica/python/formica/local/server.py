"""`formica dev`: the whole product in one process, on loopback, with no AWS account.

Started in this order, stopped in reverse:
1. moto's threaded server on a free loopback port (``MOTO_PORT`` set first: moto's Step Functions
   interpreter calls Lambda on that port), Step Functions execution switched on;
2. the table, the bucket and the state machine, from the definitions the CDK stack uses;
3. the Lambda dispatch shim, so moto's Lambda invocations run the real handlers in this process;
4. the first API token of the organisation;
5. the cron ticker (schedules in moto's EventBridge Scheduler, fired in-process; the PENDING sweep);
   the lifecycle events' bus and delivery queue, consumed in-process by the notify function;
6. the API front door on HOST:PORT (API Gateway events built from real HTTP requests).
Every AWS client of the process points at moto through ``FORMICA_AWS_ENDPOINT_URL``. Data lives in
moto's memory: it is gone when the process ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import formica
from formica.local.console import announce_finished_jobs, moto_interpreter_at_debug
from formica.local.front_door import FrontDoor
from formica.local.gateway import ApiGateway, Handler
from formica.local.lambda_dispatch import (
    dispatch_lambda_invocations,
    function_name,
    load_handler,
    load_handler_instances,
)
from formica.local.messaging import local_messaging
from formica.local.moto_locks import serialize_dynamodb
from formica.local.notify import local_notifications
from formica.local.processes import descendant_pids, terminate_descendants
from formica.local.statemachine import create_local_state_machine
from formica.local.ticker import local_scheduling
from formica.local.triggers import local_triggers
from formica.settings import get_settings, reset_settings
from formica.store.aws import get_client, reset_clients
from formica.store.schema import create_bucket, create_table
from formica.store.tokens import TokenRepository, TokenScope

logger = logging.getLogger(__name__)

LocalContainerMode = Literal["auto", "docker", "host"]

DEFAULT_ORG = "local"
DEFAULT_TABLE = "formica-local"
DEFAULT_BUCKET = "formica-local-artifacts"
DEFAULT_REGION = "us-east-1"
# Where `formica dev` takes its token from (kept off the command line); never passed to a child.
API_INSTANCES = 4
"""Copies of the API handler the front door serves from, like warm Lambda instances."""
DEV_TOKEN_ENV = "FORMICA_DEV_TOKEN"  # noqa: S105 (a variable name, not a secret)
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
# moto accepts any credentials; these keep boto3 from looking for real ones (or using them).
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "formica-local",
    "AWS_SECRET_ACCESS_KEY": "formica-local",
    "AWS_DEFAULT_REGION": DEFAULT_REGION,
    "AWS_REGION": DEFAULT_REGION,
}
# Variables that would send a client to a real account or a profile instead of moto.
_UNSET = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL")


class DevServerError(RuntimeError):
    """`formica dev` could not start (a port in use, a resource moto refused, ...)."""


@dataclass(frozen=True)
class DevOptions:
    """What `formica dev` is started with."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)
    org: str = DEFAULT_ORG
    container_runtime: LocalContainerMode = "auto"
    region: str = DEFAULT_REGION
    table_name: str = DEFAULT_TABLE
    bucket_name: str = DEFAULT_BUCKET
    # False: HTTP tasks may also call loopback (the demo's stub, local servers); True: AWS's rules.
    strict_egress: bool = False
    # Where notify.email messages are written as .eml files; None: an "outbox" folder in the
    # server's temporary work root (gone when it stops).
    email_outbox: Path | None = None
    # Where the line of each finished job goes (the console); None: nowhere.
    announce: Callable[[str], Any] | None = field(default=None, repr=False, compare=False)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def configure_moto(moto_url: str, config: dict[str, Any] | None = None) -> None:
    """POST moto's runtime configuration (there is no environment variable for it)."""
    body = json.dumps(config or MOTO_CONFIG).encode()
    request = urllib.request.Request(  # noqa: S310 (a loopback http URL built here)
        f"{moto_url}/moto-api/config", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback URL we built)
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DevServerError(f"could not configure moto at {moto_url}: {exc}") from exc


def _reset_moto(moto_url: str) -> None:
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", data=b"", method="POST")  # noqa: S310
    with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


@contextlib.contextmanager
def _environment(values: dict[str, str], unset: tuple[str, ...] = ()) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in (*values, *unset)}
    os.environ.update(values)
    for key in unset:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


def egress_environment(strict: bool) -> dict[str, str]:
    """``FORMICA_HTTP_ALLOWED_NETWORKS`` for `formica dev`: what the environment lists, plus loopback
    unless ``strict`` (then, with nothing listed, the variable is left unset: AWS's rules)."""
    listed = [part.strip() for part in os.environ.get("FORMICA_HTTP_ALLOWED_NETWORKS", "").split(",")]
    networks = [part for part in listed if part] + ([] if strict else list(LOOPBACK_NETWORKS))
    return {"FORMICA_HTTP_ALLOWED_NETWORKS": ",".join(networks)} if networks else {}


def functions_root() -> Path:
    """The folder that holds ``functions/`` (the repository), found from the installed library."""
    # layers/formica/python/formica/__init__.py -> the repository is four levels above the package.
    root = Path(formica.__file__).resolve().parents[4]
    if not (root / "functions").is_dir():
        raise DevServerError(f"cannot find the Lambda functions folder (looked for {root / 'functions'})")
    return root


def _make_functions_importable() -> None:
    # The dispatch shim imports ``functions.<folder>.app``; `formica dev` may run from any directory.
    root = str(functions_root())
    if root not in sys.path:
        sys.path.append(root)


def _reset_cached_configuration() -> None:
    reset_settings()
    reset_clients()


class DevServer:
    """The local product. Use as a context manager, or call ``start()`` and ``stop()``.

    It changes this process's environment (AWS endpoint, credentials, FORMICA_* settings) while it
    runs and restores it on stop, so one process hosts one DevServer at a time.
    """

    def __init__(self, options: DevOptions | None = None) -> None:
        self.options = options or DevOptions()
        self._stack = contextlib.ExitStack()
        self._front_door: FrontDoor | None = None
        self._moto_url: str | None = None
        self._token: str | None = None
        self._work_root: Path | None = None
        self._email_outbox: Path | None = None
        self._stopped = threading.Event()
        # Children this process had before the server started are not the server's to end.
        self._children_before: frozenset[int] = frozenset()

    @property
    def url(self) -> str:
        """The API's base URL (what the README's curl commands call $SERVER)."""
        if self._front_door is None:
            raise DevServerError("the server is not started")
        host = self.options.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 (display only)
        return f"http://{shown}:{self._front_door.port}"

    @property
    def moto_url(self) -> str:
        if self._moto_url is None:
            raise DevServerError("the server is not started")
        return self._moto_url

    @property
    def token(self) -> str:
        if self._token is None:
            raise DevServerError("the server is not started")
        return self._token

    @property
    def work_root(self) -> Path:
        if self._work_root is None:
            raise DevServerError("the server is not started")
        return self._work_root

    @property
    def email_outbox(self) -> Path:
        """The folder notify.email messages are written to, one ``.eml`` file each."""
        if self._email_outbox is None:
            raise DevServerError("the server is not started")
        return self._email_outbox

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start everything; on failure, undo what was started and raise DevServerError."""
        started = time.monotonic()
        self._children_before = frozenset(descendant_pids())
        try:
            self._start()
        except DevServerError:
            self.stop()
            raise
        except Exception as exc:
            self.stop()
            raise DevServerError(f"could not start: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.stop()
            raise
        logger.info(
            "formica dev ready", extra={"url": self.url, "seconds": round(time.monotonic() - started, 2)}
        )

    def _start(self) -> None:
        options = self.options
        self._bind_front_door()
        moto_port = free_port()
        self._moto_url = f"http://127.0.0.1:{moto_port}"
        self._work_root = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="formica-dev-")))
        self._email_outbox = (options.email_outbox or self._work_root / "outbox").resolve()
        self._email_outbox.mkdir(parents=True, exist_ok=True)
        self._stack.enter_context(
            _environment(
                {
                    # moto reads MOTO_PORT when it starts and when it calls itself (Step Functions -> Lambda).
                    "MOTO_PORT": str(moto_port),
                    **DUMMY_CREDENTIALS,
                    "AWS_DEFAULT_REGION": options.region,
                    "AWS_REGION": options.region,
                    "FORMICA_AWS_ENDPOINT_URL": self._moto_url,
                    "FORMICA_REGION": options.region,
                    "FORMICA_TABLE_NAME": options.table_name,
                    "FORMICA_BUCKET_NAME": options.bucket_name,
                    "FORMICA_CONTAINER_RUNTIME": "local",
                    "FORMICA_LOCAL_CONTAINER_MODE": options.container_runtime,
                    "FORMICA_WORK_ROOT": str(self._work_root),
                    # Where a sandboxed attempt exchanges its capability: this server's grants route.
                    "FORMICA_API_URL": self.url,
                    # notify.email: no mail leaves this host, each message is an .eml file here.
                    "FORMICA_EMAIL_OUTBOX": str(self._email_outbox),
                    # A task fan-out's instances: the local functions, run by the in-process dispatch.
                    "FORMICA_HTTP_TASK_FUNCTION": function_name("http_task"),
                    "FORMICA_SHELL_TASK_FUNCTION": function_name("shell_task"),
                    **egress_environment(options.strict_egress),
                    "POWERTOOLS_SERVICE_NAME": "formica",
                    "POWERTOOLS_METRICS_NAMESPACE": "formica",
                    "POWERTOOLS_TRACE_DISABLED": "true",
                    # Every handler logs JSON at INFO; the dev terminal shows warnings and errors only
                    # unless the user asks for more.
                    "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                },
                unset=(*_UNSET, "FORMICA_STATE_MACHINE_ARN", DEV_TOKEN_ENV),
            )
        )
        self._stack.callback(_reset_cached_configuration)
        _reset_cached_configuration()

        self._start_moto(moto_port)
        state_machine_arn = self._create_resources()
        os.environ["FORMICA_STATE_MACHINE_ARN"] = state_machine_arn
        _reset_cached_configuration()
        self._install_lambda_dispatch()
        self._token = self._create_token()
        self._start_scheduling()
        self._start_notifications()
        self._start_messaging()
        self._start_triggers()
        self._start_front_door()

    def _start_moto(self, moto_port: int) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - moto: development only

        # werkzeug logs every moto request at INFO; the front door's log is the one that matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        # moto's DynamoDB is not thread-safe (transactions roll back other threads' writes): serialize.
        self._stack.enter_context(serialize_dynamodb())
        moto.start()
        self._stack.callback(moto.stop)
        # moto's backends are process-global: forget this server's data when it stops, so a later
        # DevServer in the same process (tests) starts empty, as a new `formica dev` does.
        self._stack.callback(_reset_moto, self.moto_url)
        configure_moto(self.moto_url)

    def _create_resources(self) -> str:
        """Table, bucket and state machine from the CDK's definitions; returns the state machine ARN."""
        create_table(get_client("dynamodb"), self.options.table_name)
        create_bucket(get_client("s3"), self.options.bucket_name, self.options.region)
        arn: str = create_local_state_machine(get_client("stepfunctions"))
        return arn

    def _install_lambda_dispatch(self) -> None:
        _make_functions_importable()
        self._stack.enter_context(dispatch_lambda_invocations())
        # A failed job is no server error: one line per finished job, moto's dumps at debug.
        self._stack.enter_context(moto_interpreter_at_debug())
        if self.options.announce is not None:
            self._stack.enter_context(announce_finished_jobs(self.options.announce))

    def _start_scheduling(self) -> None:
        # Cron schedules kept in moto's EventBridge Scheduler and an in-process ticker that
        # fires them and sweeps PENDING requests (stopped before moto, restoring its settings).
        self._stack.enter_context(local_scheduling(self.options.region))

    def _start_messaging(self) -> None:
        # MESSAGING replies: the reply queues Launch subscribes, received in-process and handed to
        # the messaging_reply function's handler (stopped before moto).
        self._stack.enter_context(local_messaging())

    def _start_notifications(self) -> None:
        # Lifecycle events on moto's EventBridge bus, routed to the delivery queue, consumed by the
        # notify function's handler in-process (stopped before moto, restoring its settings).
        self._stack.enter_context(local_notifications())

    def _start_triggers(self) -> None:
        # S3 puts and trigger queues' messages on moto, handed to the trigger functions' handlers
        # in-process (stopped before moto, restoring its settings).
        self._stack.enter_context(local_triggers(self.options.org))

    def _create_token(self) -> str:
        repository = TokenRepository(get_settings().table_name)
        try:
            # The developer owns the organisation: the dev token holds every scope.
            _, secret = repository.create(
                self.options.org, "formica dev", scopes=[TokenScope.ADMIN], secret=self.options.token
            )
        except ValueError as exc:
            raise DevServerError(f"the token: {exc}") from exc
        return secret

    def _bind_front_door(self) -> None:
        # Bound first: a port in use is reported before moto and the resources start.
        try:
            self._front_door = FrontDoor(self.options.host, self.options.port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DevServerError(
                f"cannot listen on {self.options.host}:{self.options.port}: {reason}"
            ) from exc
        self._stack.callback(self._stop_front_door)

    def _start_front_door(self) -> None:
        # Like Lambda scaling out: a request never waits behind another's render (API_INSTANCES).
        api_handler, *api_instances = load_handler_instances("api", API_INSTANCES)
        authorizer_handler: Handler = load_handler("authorizer")
        gateway = ApiGateway(
            api_handler=api_handler,
            authorizer_handler=authorizer_handler,
            region=self.options.region,
            api_instances=api_instances,
        )
        if self._front_door is None:
            raise DevServerError("the front door is not bound")
        self._front_door.start(gateway)

    def _stop_front_door(self) -> None:
        if self._front_door is not None:
            self._front_door.stop()

    def stop(self) -> None:
        """Stop serving, end every child process (shell tasks too), stop moto, restore the environment."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with contextlib.suppress(Exception):
            self._stop_front_door()
        # Task processes first: a runner waiting on one returns, and nothing new starts after this.
        terminate_descendants(exclude=self._children_before)
        self._stack.close()
        self._front_door = None

    def wait_until_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)
