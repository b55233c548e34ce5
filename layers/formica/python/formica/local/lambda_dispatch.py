"""THE moto shim: Lambda invocations run Formica's handlers in-process.

moto's simple Lambda backend (``lambda: {use_docker: False}``) runs no code: its ``invoke`` echoes
the payload. Locally (tests, ``formica dev``) the state machine must reach the real handlers, so
while ``dispatch_lambda_invocations()`` is active, ``LambdaSimpleBackend.invoke`` is replaced: an
invocation of ``formica-<folder>`` (``_`` in the folder becomes ``-``; a full ARN or a qualifier is
accepted) imports ``functions/<folder>/app.py`` and calls its ``handler`` with the JSON payload and a
Lambda-like context. The JSON result is the response; an exception becomes what Lambda answers for
an unhandled error: header ``x-amz-function-error: Unhandled`` and ``{"errorType",
"errorMessage"}``, so the state machine's Retry and Catch see the error's class name.

This depends on moto's internals, so it is pinned to one moto minor version and tested by
tests/workflow/test_lambda_dispatch.py. It only works in moto's process (the in-process mock or
ThreadedMotoServer), which is where ``formica dev`` and the tests run it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SUPPORTED_MOTO = "5.2."
FUNCTION_PREFIX = "formica-"
LOCAL_ACCOUNT = "123456789012"
LOCAL_TIMEOUT_MS = 900_000

Handler = Callable[[Any, Any], Any]


class LambdaDispatchError(RuntimeError):
    """The shim cannot be installed here (another moto version) or the function is unknown."""


def check_moto_version() -> None:
    """Refuse to patch a moto whose internals this shim was not written against."""
    import moto  # noqa: PLC0415 - moto is a development dependency, not in the Lambda layer

    version = str(getattr(moto, "__version__", "unknown"))
    if not version.startswith(SUPPORTED_MOTO):
        raise LambdaDispatchError(
            f"formica.local.lambda_dispatch replaces moto {SUPPORTED_MOTO}x's LambdaSimpleBackend.invoke; "
            f"moto {version} is installed. Pin moto to {SUPPORTED_MOTO}x (pyproject) or update the shim "
            "and its test."
        )


def function_folder(function_name: str) -> str | None:
    """``formica-http-task`` (or its ARN, with or without a qualifier) -> ``http_task``; else None."""
    name = function_name
    if name.startswith("arn:"):
        parts = name.split(":")
        # arn:aws:lambda:region:account:function:name[:qualifier]
        name = parts[6] if len(parts) > 6 else parts[-1]
    elif ":" in name:
        name = name.split(":", 1)[0]
    if not name.startswith(FUNCTION_PREFIX):
        return None
    return name[len(FUNCTION_PREFIX) :].replace("-", "_")


def function_name(folder: str) -> str:
    """The local function name of a ``functions/<folder>``: ``formica-<folder with dashes>``."""
    return FUNCTION_PREFIX + folder.replace("_", "-")


def function_arn(folder: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{function_name(folder)}"


def load_handler(folder: str) -> Handler:
    """``functions/<folder>/app.py``'s ``handler`` (imported on first use, then cached by Python)."""
    try:
        module = importlib.import_module(f"functions.{folder}.app")
    except ModuleNotFoundError as exc:
        raise LambdaDispatchError(f"no Lambda function folder functions/{folder}") from exc
    handler: Handler = module.handler
    return handler


def load_handler_instances(folder: str, count: int) -> list[Handler]:
    """``count`` independent copies of a function's handler, as Lambda keeps warm instances: the
    first is the module ``load_handler`` imports, each other one the same file loaded again under
    its own module name (module-level objects, such as a powertools resolver holding the current
    event, are then not shared between them)."""
    first = load_handler(folder)
    source = importlib.import_module(f"functions.{folder}.app").__file__
    handlers = [first]
    for number in range(1, count):
        spec = importlib.util.spec_from_file_location(f"functions.{folder}.app_instance_{number}", source)
        if spec is None or spec.loader is None:  # pragma: no cover - the file was just imported
            raise LambdaDispatchError(f"cannot load another instance of functions/{folder}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        handlers.append(module.handler)
    return handlers


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that handlers and powertools read.

    One for every handler run locally: the functions the state machine invokes (through this shim)
    and the API and authorizer behind ``formica.local.gateway``.
    """

    function_name: str
    region: str = "us-east-1"
    timeout_seconds: float = LOCAL_TIMEOUT_MS / 1000
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout_seconds - (time.monotonic() - self._started)
        return max(0, int(left * 1000))


INVOKED_FUNCTION: ContextVar[str | None] = ContextVar("formica_invoked_function", default=None)
"""The functions/ folder whose handler runs in this context (tests tie AWS calls to a function's role)."""


def invoke_handler(folder: str, body: bytes | str | None, region: str = "us-east-1") -> tuple[bytes, bool]:
    """Run a handler with a JSON payload; returns (response bytes, True when the handler raised)."""
    handler = load_handler(folder)
    raw = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
    event = json.loads(raw) if raw.strip() else {}
    invoked = INVOKED_FUNCTION.set(folder)
    try:
        result = handler(event, LocalLambdaContext(function_name(folder), region))
    except Exception as exc:  # Lambda turns any exception into an error response
        logger.warning(
            "local lambda raised",
            extra={"function": function_name(folder), "error_type": type(exc).__name__},
        )
        error = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc)[-5:],
        }
        return json.dumps(error).encode("utf-8"), True
    finally:
        INVOKED_FUNCTION.reset(invoked)
    return json.dumps(result).encode("utf-8"), False


_install_lock = threading.Lock()
_installed: list[Any] = []


@contextmanager
def dispatch_lambda_invocations() -> Iterator[None]:
    """While active, moto's simple Lambda backend runs ``formica-*`` functions' handlers in-process.

    Invocations of other function names keep moto's behaviour (echo, or the results queue).
    """
    check_moto_version()
    from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: PLC0415 - moto: development only

    with _install_lock:
        original = LambdaSimpleBackend.invoke
        _installed.append(original)

    def invoke(  # noqa: PLR0917 - moto's signature
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        folder = function_folder(function_name)
        if folder is None:
            result: str | bytes | None = original(
                self, function_name, qualifier, body, headers, response_headers
            )
            return result
        if headers is not None and headers.get("X-Amz-Invocation-Type") == "Event":
            # Asynchronous invocations run in the background, as Lambda would run them.
            threading.Thread(
                target=invoke_handler,
                args=(folder, body, self.region_name),
                name=f"lambda-{folder}",
                daemon=True,
            ).start()
            return b""
        payload, failed = invoke_handler(folder, body, self.region_name)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _install_lock:
            LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]
            if _installed:
                _installed.pop()
