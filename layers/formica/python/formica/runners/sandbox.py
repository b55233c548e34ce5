"""SHELL attempts in a sandbox: a function that holds no credentials to Formica's data.

The trusted shell-task function renders the task and hands the sandbox a ``SandboxRequest``: the
task, the attempt's context, and a capability for this attempt only (``formica.runners.grants``)
with the API's grants route. The sandbox (``functions/shell_sandbox``, whose role may write its own
logs and nothing else) exchanges the capability when it moves files: at the start for a presigned
GET per dependency artifact and one of the request's cancel marker, and again when it uploads, for
one presigned POST limited to the task's artifact prefix and a size, signed at that moment. It runs
the shell exactly as the shell runner does in-process and answers a ``TaskOutcome``.

While the script runs, its new whole lines go out as the in-process runner's do (``LiveLog``, at
most every ``log_flush_seconds``): each chunk is masked here with the job's secret values (which
the script's environment holds anyway), exchanged for a presigned PUT of exactly that chunk under
the attempt's live prefix (right ``live_log``), and PUT to S3. A chunk that cannot be sent stops
the streaming for the attempt: readers wait for the whole log rather than skip bytes.

After every attempt the sandbox leaves nothing behind for the next tenant that a warm execution
environment will serve: ``scrub_environment`` kills every process of its user but itself and its
ancestors (not only the script's process group) and empties every place it can write (the
working root and the rest of the temporary directory). That sweep runs only where the process is
alone with its user (a Lambda execution environment, ``FORMICA_SANDBOX_SCRUB=all``): run in-process
by ``formica dev`` or a test, the sandbox cleans up only what its own attempt made.

Nothing the sandbox answers is trusted further than it can be checked: the trusted side keeps only
artifact keys under the attempt's prefix (``trusted_artifacts``), and caps the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from formica.engine.masking import SecretMasker
from formica.engine.outputs import bounded
from formica.jobs.models import TaskDefinition
from formica.runners.artifacts import (
    ERR_ARTIFACTS_DOWNLOAD,
    ArtifactError,
    attach_artifacts,
    download_dependencies,
)
from formica.runners.base import LOG_CAP_BYTES, ArtifactInfo, TaskContext, TaskOutcome
from formica.runners.grants import AttemptGrant, LiveChunkUpload
from formica.runners.shell import fresh_workdir, run_shell
from formica.store.blobs import PresignedPost

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

SCRUB_SETTING = "FORMICA_SANDBOX_SCRUB"
"""``all`` where the sandbox is alone with its user (the deployed function sets it)."""
CANCEL_POLL_SECONDS = 2.0
LIVE_CHUNK_TIMEOUT_SECONDS = 5.0
"""A live chunk's exchange and PUT each give up after this: the script's output waits meanwhile."""
MAX_ANSWER_ARTIFACTS = 1000
MAX_ANSWER_WARNINGS = 20
ERR_SANDBOX = "ERR_SANDBOX"


class SandboxContext(BaseModel):
    """The attempt's context (``TaskContext`` without its callables)."""

    model_config = ConfigDict(extra="forbid")

    org: str
    request_id: str
    job_type: str
    task_type: str
    attempt: int
    timeout_seconds: float
    params: dict[str, Any] = Field(default_factory=dict)
    log_flush_seconds: float = Field(default=3.0, gt=0)
    artifact_dir: str = Field(default="", pattern=r"^(instance-\d{1,4}/)?$")
    """A task fan-out instance's own directory under the task's artifact prefix (its upload grant
    allows nothing else)."""


class SandboxRequest(BaseModel):
    """What the trusted shell-task function sends the sandbox for one attempt."""

    model_config = ConfigDict(extra="forbid")

    task: dict[str, Any]
    context: SandboxContext
    grants_url: str | None = None
    """The API's grants route, where ``capability`` is exchanged (None: no files move, no cancel)."""
    capability: str | None = None
    success_exit_codes: list[str] = Field(default_factory=lambda: ["0"])
    """Exit codes the task's routing calls a success (artifacts' ``when`` depends on it)."""
    live_log: bool = False
    """Stream the log while the script runs (the capability holds the ``live_log`` right)."""
    secrets: list[str] = Field(default_factory=list, repr=False)
    """The job's secret values, masked in the live chunks (the trusted side masks the whole log)."""


class GrantClient:
    """Exchanges the attempt's capability at the grants route (each call signs fresh URLs)."""

    def __init__(self, request: SandboxRequest, client: httpx.Client) -> None:
        self._url = request.grants_url
        self._capability = request.capability
        self._client = client

    def fetch(self) -> AttemptGrant | None:
        """The attempt's grant, signed now; None without a capability.

        Raises
        ------
        ArtifactError
            The grants route refused or could not be reached.
        """
        if not self._url or not self._capability:
            return None
        import httpx  # noqa: PLC0415 - loaded by run_sandboxed already; the trusted side never calls this

        try:
            response = self._client.post(self._url, json={"capability": self._capability})
        except httpx.HTTPError as exc:
            raise ArtifactError(f"the grants route could not be reached: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ArtifactError(
                f"the grants route refused the attempt's capability: HTTP {response.status_code}"
            )
        try:
            return AttemptGrant.model_validate_json(response.content)
        except ValueError as exc:
            raise ArtifactError("the grants route answered something that is not a grant") from exc

    def live_chunk(self, start: int, end: int) -> LiveChunkUpload:
        """A presigned PUT of the live log's bytes ``[start, end)``, counted against the capability.

        Raises
        ------
        ArtifactError
            The grants route refused the chunk or could not be reached.
        """
        import httpx  # noqa: PLC0415 - see fetch

        body = {"capability": self._capability, "live_chunk": {"start": start, "end": end}}
        try:
            response = self._client.post(str(self._url), json=body, timeout=LIVE_CHUNK_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            raise ArtifactError(f"the grants route could not be reached: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ArtifactError(f"the grants route refused a live chunk: HTTP {response.status_code}")
        try:
            chunk = AttemptGrant.model_validate_json(response.content).live_chunk
        except ValueError as exc:
            raise ArtifactError("the grants route answered something that is not a grant") from exc
        if chunk is None:
            raise ArtifactError("the grants route answered no live chunk")
        return chunk

    def upload_grant(self) -> PresignedPost | None:
        """A presigned POST for the attempt's artifacts, signed at this moment (None: none granted)."""
        grant = self.fetch()
        return grant.upload.post() if grant is not None and grant.upload is not None else None


def _cancel_probe(
    url: str | None, refresh: Callable[[], str | None], client: httpx.Client, unreachable: type[Exception]
) -> Callable[[], bool]:
    """``is_cancelled`` for the shell runner: the cancel marker, read at most every few seconds. A URL
    that stopped working (403: expired, or its signer's credentials did) is exchanged for a new one."""
    state: dict[str, Any] = {"at": 0.0, "cancelled": False, "url": url}

    def is_cancelled() -> bool:
        if state["url"] is None or state["cancelled"]:
            return bool(state["cancelled"])
        now = time.monotonic()
        if now - float(state["at"]) >= CANCEL_POLL_SECONDS:
            state["at"] = now
            # Unreachable is "not yet": the task's timeout still bounds the attempt.
            with contextlib.suppress(unreachable, ArtifactError):
                status = client.get(state["url"]).status_code
                state["cancelled"] = status == 200
                if status == 403:
                    state["url"] = refresh() or state["url"]
        return bool(state["cancelled"])

    return is_cancelled


def live_log_sink(
    grants: GrantClient, client: httpx.Client, secrets: Iterable[str]
) -> Callable[[bytes], None]:
    """``TaskContext.live_log`` in the sandbox: each chunk masked, exchanged for its PUT and sent.
    The offsets count the masked bytes, as the whole log the trusted side masks and stores does."""
    import httpx  # noqa: PLC0415 - see GrantClient.fetch

    masker = SecretMasker(secrets)
    written: list[int | None] = [0]

    def sink(data: bytes) -> None:
        start = written[0]
        if start is None:
            return
        masked = masker.mask(data.decode("utf-8", errors="replace")).encode("utf-8")
        try:
            upload = grants.live_chunk(start, start + len(masked))
            response = client.put(
                upload.url,
                content=masked,
                headers={"Content-Type": upload.content_type},
                timeout=LIVE_CHUNK_TIMEOUT_SECONDS,
            )
            if response.status_code >= 300:
                raise ArtifactError(f"the live chunk was refused: HTTP {response.status_code}")
        except (ArtifactError, httpx.HTTPError) as exc:
            # Never the URL or the capability: only what failed.
            error = str(exc) if isinstance(exc, ArtifactError) else type(exc).__name__
            logger.warning("live log chunk not sent", extra={"start": start, "error": error})
            written[0] = None
            return
        written[0] = start + len(masked)

    return sink


def _download_failed(exc: ArtifactError) -> TaskOutcome:
    return TaskOutcome(error_code=ERR_ARTIFACTS_DOWNLOAD, error_message=str(exc), log=f"[{exc}]\n")


def run_sandboxed(request: SandboxRequest, *, work_root: Path | None = None) -> TaskOutcome:
    """Run one SHELL attempt with only the grants in ``request``; never raises for task problems."""
    # Cold start: only the sandbox transfers files; the trusted functions import this module for
    # its models and would otherwise load httpx for nothing.
    import httpx  # noqa: PLC0415

    from formica.store.presigned_blobs import PresignedBlobStore  # noqa: PLC0415

    task = TaskDefinition.model_validate(request.task)
    client = httpx.Client(timeout=30.0, trust_env=False)
    grants = GrantClient(request, client)
    try:
        try:
            grant = grants.fetch()
        except ArtifactError as exc:
            return _download_failed(exc)
        downloads = {item.key: item.url for item in grant.downloads} if grant is not None else {}
        store = PresignedBlobStore(downloads, grants.upload_grant, client=client)

        def fresh_cancel_url() -> str | None:
            fresh = grants.fetch()
            return fresh.cancel_url if fresh is not None else None

        live = request.live_log and grant is not None
        ctx = TaskContext(
            **request.context.model_dump(),
            is_cancelled=_cancel_probe(
                grant.cancel_url if grant is not None else None, fresh_cancel_url, client, httpx.HTTPError
            ),
            live_log=live_log_sink(grants, client, request.secrets) if live else None,
        )
        workdir = fresh_workdir(ctx, work_root)
        try:
            try:
                download_dependencies(store, list(downloads), workdir)
            except ArtifactError as exc:
                return TaskOutcome(
                    error_code=ERR_ARTIFACTS_DOWNLOAD, error_message=str(exc), log=f"[{exc}]\n"
                )
            outcome = run_shell(task, ctx, workdir=workdir)
            succeeded = outcome.error_code is None and outcome.exit_code in request.success_exit_codes
            return attach_artifacts(outcome, task, ctx, workdir=workdir, store=store, succeeded=succeeded)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        client.close()


# -- what the trusted side keeps of an answer -------------------------------------------------------


def trusted_outcome(answer: dict[str, Any], *, artifact_prefix: str) -> TaskOutcome:
    """The sandbox's answer as an outcome, kept only as far as it can be checked.

    The tenant's script shares the sandbox with the code that answers (it could reach the Lambda
    runtime API and answer in its stead), so an artifact outside the attempt's prefix is dropped
    with a warning, and the log is capped again.
    """
    outcome = TaskOutcome.model_validate(answer)
    # Every field ends up in a DynamoDB item or a log: bounded here, whatever the answer claims.
    # The outputs file was checked inside the sandbox, by code the script could have replaced:
    # checked again here (names, count, sizes); only what passes is kept, each drop a warning.
    checked = bounded(outcome.outputs)
    outcome.outputs = checked.outputs
    outcome.error_message = (outcome.error_message or "")[:2000] or None
    outcome.warnings = [warning[:500] for warning in outcome.warnings[:MAX_ANSWER_WARNINGS]]
    outcome.warnings.extend(note[:500] for note in checked.notes[:MAX_ANSWER_WARNINGS])
    if len(outcome.artifacts) > MAX_ANSWER_ARTIFACTS:
        outcome.warnings.append(
            f"the sandbox reported {len(outcome.artifacts)} artifacts: kept the first {MAX_ANSWER_ARTIFACTS}"
        )
        outcome.artifacts = outcome.artifacts[:MAX_ANSWER_ARTIFACTS]
    kept: list[ArtifactInfo] = []
    for artifact in outcome.artifacts:
        if artifact.key.startswith(artifact_prefix) and ".." not in artifact.key.split("/"):
            kept.append(artifact)
        else:
            outcome.warnings.append(f"artifact {artifact.key!r} is outside this attempt's prefix: ignored")
    outcome.artifacts = kept
    encoded = outcome.log.encode("utf-8", errors="replace")
    if len(encoded) > LOG_CAP_BYTES + 1024:
        outcome.log = encoded[:LOG_CAP_BYTES].decode("utf-8", errors="ignore") + "\n[log truncated]\n"
    return outcome


# -- leaving nothing for the next tenant -------------------------------------------------------------


def _ancestors(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "0")
        pid = int(ppid)
    return seen


def leftover_pids(uid: int, *, me: int, proc: Path = Path("/proc")) -> list[int]:
    """Processes of ``uid`` other than ``me`` and its ancestors: what an attempt left running."""
    spared = _ancestors(me)
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in spared:
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                found.append(pid)
    return sorted(found)


def kill_pids(pids: Iterable[int]) -> int:
    """SIGKILL each (a process that already ended is fine); how many were signalled."""
    killed = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def empty_directory(path: Path) -> None:
    """Remove everything inside ``path`` (not ``path`` itself)."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


_scrub_lock = threading.Lock()


def scrub_environment(work_root: Path | None) -> int:
    """After an attempt, where the sandbox is alone with its user: kill every process it left and
    empty every place it can write. Returns how many processes were killed."""
    if os.environ.get(SCRUB_SETTING) != "all":
        return 0
    with _scrub_lock:
        killed = kill_pids(leftover_pids(os.getuid(), me=os.getpid()))
        for place in {Path(tempfile.gettempdir()), *([work_root] if work_root else [])}:
            empty_directory(place)
    if killed:
        logger.warning("processes left by the attempt killed", extra={"killed": killed})
    return killed


def handle(event: dict[str, Any], *, work_root: Path | None = None) -> dict[str, Any]:
    """The sandbox function's service: run the attempt, scrub, answer the outcome as JSON."""
    try:
        request = SandboxRequest.model_validate(event)
    except ValueError as exc:
        return TaskOutcome(
            error_code=ERR_SANDBOX, error_message=f"bad sandbox request: {exc}"[:2000]
        ).model_dump()
    try:
        outcome = run_sandboxed(request, work_root=work_root)
    finally:
        scrub_environment(work_root)
    return outcome.model_dump(mode="json")
