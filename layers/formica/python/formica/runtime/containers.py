"""Container attempts on ECS Fargate and EKS, from launch to the callback that resumes the walk.

The state machine's Launch state (``lambda:invoke.waitForTaskToken``) calls ``launch_container`` with
its task token. The run is recorded first (``store.container_runs``: the token, then the ECS task ARN
or the Kubernetes Job name), then the container is started, and Launch returns at once. The walk
resumes when exactly one of these settles the run (through ``WalkReporter``, which commits the
attempt and answers the token with the walk's next decision, D13):

- ``complete_container(event)``: the EventBridge "ECS Task State Change" (STOPPED) event; the MAIN
  container's exit code (``runners.ecs_events``).
- ``reconcile()`` (every few minutes): ECS runs whose event never came are settled from DescribeTasks;
  EKS Jobs (which send no events) are polled; containers past their deadline are stopped and settled
  as ERR_TASK_TIMED_OUT.
- ``cancel_container(run)`` / ``cancel_request_containers(request_id)``: StopTask or delete the Job and
  answer ERR_TASK_CANCELLED, so a waiting Launch reaches Advance (moto and AWS alike, see decision D3).
- A launch that fails (bad size, missing setting, ECS refusal) is answered at once with
  ERR_CONTAINER_START: Step Functions accepts a callback while the Lambda that got the token runs.

``finish`` on the run item is a conditional write, so however many of these race (a duplicate event,
the reconciler, a cancellation), one answer is sent. Before answering, the attempt's log (CloudWatch
Logs for ECS, the pod log for EKS) and the artifacts the sidecar uploaded are collected into a
``TaskOutcome`` and handed to a reporter:

- ``WalkReporter`` (deployed): through the walk's own ``complete_container_attempt``, exactly as a
  local container attempt reports: the log stored at ``logs/attempt-{step}.log``, log and artifacts
  recorded on the request, the result recorded for the step, the step committed, and SendTaskSuccess
  with the next decision to the token the request holds for that step (a retried Launch records a
  newer token there).
- ``DirectReporter`` (no request behind the run: tests, tools): the log stored under the same key and
  SendTaskSuccess ``{"exit_code", "error_code", "error_message"}`` to the token recorded on the run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from formica.jobs.models import TaskDefinition, TaskMethod
from formica.runners.base import EXIT_CODE_NONE, LOG_CAP_BYTES, ArtifactInfo, TaskContext, TaskOutcome
from formica.runners.container_script import artifacts_prefix
from formica.runners.ecs import EcsLaunchConfig, EcsRunner, EcsRunnerError, log_stream_name
from formica.runners.ecs_events import (
    ERR_CONTAINER_START,
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    STOP_REASON_CANCELLED,
    STOP_REASON_TIMED_OUT,
    ContainerCompletion,
    RunKey,
    completion_from_task,
    parse_task_state_change,
)
from formica.runners.eks import EksJobRunner, EksRunnerError, build_eks_runner, needs_deletion
from formica.settings import FormicaSettings, get_settings
from formica.store.blobs import BlobStore, BlobStoreError, S3BlobStore
from formica.store.container_runs import (
    ContainerRunItem,
    ContainerRunRepository,
    DynamoContainerRunRepository,
)
from formica.store.schema import log_key

logger = logging.getLogger(__name__)

ERR_CONTAINER_LOST = "ERR_CONTAINER_LOST"
RECONCILE_AFTER_SECONDS = 300
"""An ECS run without its STOPPED event this long after launch is checked with DescribeTasks."""
RECONCILE_BATCH = 500
_TOKEN_GONE_CODES = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken"})


class ContainerRuntimeError(RuntimeError):
    """The container runtime could not answer or reach what it needs."""


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    stopped: int = 0


def _output(exit_code: str, error_code: str | None, error_message: str | None) -> dict[str, str | None]:
    return {"exit_code": exit_code, "error_code": error_code, "error_message": error_message}


def send_task_success(sfn: Any, task_token: str, output: Mapping[str, str | None]) -> bool:
    """SendTaskSuccess; False when the token no longer waits (the Launch state ended meanwhile)."""
    try:
        sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in _TOKEN_GONE_CODES:
            logger.info("task token no longer waiting", extra={"code": code})
            return False
        raise ContainerRuntimeError(f"SendTaskSuccess failed: {exc}") from exc
    except BotoCoreError as exc:
        raise ContainerRuntimeError(f"SendTaskSuccess failed: {exc}") from exc
    return True


class Reporter(Protocol):
    """Hands a settled run's outcome to the walk; True when the waiting Launch state was answered."""

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool: ...


class DirectReporter:
    """Stores the log under the S3 layout and answers the token recorded on the run."""

    def __init__(self, sfn: Any, blobs: BlobStore) -> None:
        self._sfn = sfn
        self._blobs = blobs

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool:
        if outcome.log:
            key = log_key(run.org, run.request_id, run.task_type, run.attempt)
            try:
                self._blobs.put_bytes(key, outcome.log.encode("utf-8"), "text/plain; charset=utf-8")
            except BlobStoreError as exc:
                logger.warning("container log not stored", extra={"key": key, "error": str(exc)})
        return send_task_success(
            self._sfn, run.task_token, _output(outcome.exit_code, outcome.error_code, outcome.error_message)
        )


class WalkReporter:
    """Reports like a local container attempt does (``formica.runtime.launch``): log and artifacts
    recorded on the request, the result recorded for the step, the request's latest token answered."""

    def __init__(self, runtime: Any | None = None) -> None:
        self._runtime = runtime

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool:
        from formica.engine.walk import AttemptResult
        from formica.runtime.deps import get_runtime
        from formica.runtime.launch import complete_container_attempt
        from formica.runtime.walker import Walker

        runtime = self._runtime or get_runtime()
        walker = Walker(runtime)
        request = runtime.requests.get(run.request_id)
        current = request.walk.current if request is not None else None
        stored_log_key: str | None = None
        if request is not None and request.step == run.step and current is not None:
            try:
                artifacts, fields = walker.keep_outputs(request, run.step, run.task_type, outcome)
            except BlobStoreError as exc:
                # The result matters more than its log: report it without one.
                logger.warning(
                    "container log not stored", extra={"request_id": run.request_id, "error": str(exc)}
                )
            else:
                for artifact in artifacts:
                    runtime.requests.put_artifact(artifact)
                runtime.requests.update_task(
                    run.request_id,
                    current.seq,
                    {"log_key": fields["log_key"], "warnings": fields["warnings"]},
                )
                stored_log_key = fields["log_key"]
        result = AttemptResult(
            exit_code=outcome.exit_code, error_code=outcome.error_code, error_message=outcome.error_message
        )
        answered: bool = complete_container_attempt(
            runtime, run.request_id, run.step, result, log_key=stored_log_key
        )
        return answered


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def runtime_for(task: TaskDefinition, settings: FormicaSettings) -> Literal["ecs", "eks"]:
    """KUBERNETES tasks run on EKS when the stack has a cluster; every other container task on ECS."""
    if task.method == TaskMethod.KUBERNETES and settings.eks_cluster_name:
        return "eks"
    return "ecs"


class ContainerService:
    """Launch, complete, reconcile and cancel container runs. Every collaborator is injectable."""

    def __init__(
        self,
        *,
        settings: FormicaSettings,
        runs: ContainerRunRepository,
        sfn: Any,
        reporter: Reporter,
        ecs: Callable[[], EcsRunner],
        eks: Callable[[], EksJobRunner],
        logs: Callable[[], Any],
        s3: Callable[[], Any],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.runs = runs
        self._sfn = sfn
        self.reporter = reporter
        self._ecs_factory = ecs
        self._eks_factory = eks
        self._logs = logs
        self._s3 = s3
        self.clock = clock
        self._lock = threading.Lock()
        self._ecs: EcsRunner | None = None
        self._eks: EksJobRunner | None = None

    # -- collaborators, built on first use (a stack without EKS never builds an EKS client) --

    def ecs(self) -> EcsRunner:
        with self._lock:
            if self._ecs is None:
                self._ecs = self._ecs_factory()
            return self._ecs

    def eks(self) -> EksJobRunner:
        with self._lock:
            if self._eks is None:
                self._eks = self._eks_factory()
            return self._eks

    # -- launch --

    def launch(
        self, request_id: str, step: int, task: TaskDefinition, ctx: TaskContext, task_token: str
    ) -> ContainerRunItem:
        """Record the run and start its container; a replayed call for the same step starts nothing new.

        A container that cannot be started (no Fargate size fits, a setting is missing, ECS or the
        Kubernetes API refuses) is settled at once as ERR_CONTAINER_START: Step Functions accepts the
        callback while this Lambda still runs, and Advance then routes the error like any other.
        """
        now = self.clock()
        run = ContainerRunItem(
            request_id=request_id,
            step=step,
            runtime=runtime_for(task, self.settings),
            task_token=task_token,
            org=ctx.org,
            task_type=task.task_type,
            attempt=ctx.attempt,
            created_at=_iso(now),
            deadline_at=_iso(now + timedelta(seconds=ctx.timeout_seconds))
            if ctx.timeout_seconds > 0
            else None,
        )
        if not self.runs.create(run):
            existing = self.runs.get(request_id, step)
            if existing is None:  # pragma: no cover - create refused, so it exists
                raise ContainerRuntimeError(f"run {request_id}/{step} vanished")
            if existing.is_finished:
                # A Launch retried after the run ended: its new token gets the stored result.
                output = _output(
                    existing.exit_code or EXIT_CODE_NONE, existing.error_code, existing.error_message
                )
                send_task_success(self._sfn, task_token, output)
                return existing
            # Step Functions gives a retried Launch a new token: answer that one from now on.
            self.runs.set_handle(request_id, step, task_token=task_token)
            run = existing.model_copy(update={"task_token": task_token})
            if run.ecs_task_arn or run.k8s_job_name:
                logger.info("container already launched", extra={"request_id": request_id, "step": step})
                return run
        key = RunKey(request_id, step)
        try:
            if run.runtime == "eks":
                runner = self.eks()
                name = runner.launch(task, ctx, key)
                namespace = runner.config.namespace
                self.runs.set_handle(request_id, step, k8s_job_name=name, k8s_namespace=namespace)
                return run.model_copy(update={"k8s_job_name": name, "k8s_namespace": namespace})
            arn = self.ecs().launch(task, ctx, key)
            self.runs.set_handle(request_id, step, ecs_task_arn=arn)
            return run.model_copy(update={"ecs_task_arn": arn})
        except (EcsRunnerError, EksRunnerError) as exc:
            logger.warning(
                "container launch failed", extra={"request_id": request_id, "step": step, "error": str(exc)}
            )
            self.settle(run, EXIT_CODE_NONE, ERR_CONTAINER_START, str(exc), collect=False)
            return self.runs.get(request_id, step) or run

    # -- completion --

    def complete(self, event: Mapping[str, Any]) -> bool:
        """Settle the run of a STOPPED ECS task; True when this call answered the waiting state."""
        completion = parse_task_state_change(event)
        if completion is None:
            return False
        return self._complete(completion)

    def _complete(self, completion: ContainerCompletion) -> bool:
        if completion.run_key is None:
            logger.info("ecs task is not a formica run", extra={"task_arn": completion.task_arn})
            return False
        run = self.runs.get(completion.run_key.request_id, completion.run_key.step)
        if run is None:
            logger.warning("no run for stopped ecs task", extra={"task_arn": completion.task_arn})
            return False
        if run.ecs_task_arn and run.ecs_task_arn != completion.task_arn:
            logger.warning(
                "stopped ecs task is not the run's task",
                extra={"task_arn": completion.task_arn, "run_task_arn": run.ecs_task_arn},
            )
            return False
        if run.ecs_task_arn is None:
            run = run.model_copy(update={"ecs_task_arn": completion.task_arn})
        return self.settle(run, completion.exit_code, completion.error_code, completion.error_message)

    def settle(
        self,
        run: ContainerRunItem,
        exit_code: str,
        error_code: str | None,
        error_message: str | None,
        *,
        collect: bool = True,
        pod_name: str | None = None,
    ) -> bool:
        """Finish the run (conditionally), collect its log and artifacts, report. False if already settled."""
        finished = self.runs.finish(
            run.request_id, run.step, exit_code=exit_code, error_code=error_code, error_message=error_message
        )
        if finished is None:
            logger.info("run already settled", extra={"request_id": run.request_id, "step": run.step})
            return False
        finished = finished.model_copy(update={"ecs_task_arn": finished.ecs_task_arn or run.ecs_task_arn})
        outcome = TaskOutcome(exit_code=exit_code, error_code=error_code, error_message=error_message)
        if collect:
            outcome.log = self._log_text(finished, pod_name)
            outcome.artifacts = self._artifacts(finished)
        logger.info(
            "container run settled",
            extra={
                "request_id": run.request_id,
                "step": run.step,
                "exit_code": exit_code,
                "error_code": error_code,
            },
        )
        return self.reporter(finished, outcome)

    # -- what an attempt left behind --

    def _log_text(self, run: ContainerRunItem, pod_name: str | None) -> str:
        """Best effort: a missing log never blocks the walk."""
        try:
            if run.runtime == "ecs" and run.ecs_task_arn:
                return self._ecs_log(run.ecs_task_arn)
            if run.runtime == "eks" and pod_name:
                runner = self.eks()
                return runner.api.pod_log(run.k8s_namespace or runner.config.namespace, pod_name, "main")
        except (ClientError, BotoCoreError, EksRunnerError, EcsRunnerError) as exc:
            logger.warning(
                "container log unavailable", extra={"request_id": run.request_id, "error": str(exc)}
            )
        return ""

    def _ecs_log(self, task_arn: str) -> str:
        group = self.settings.container_log_group
        if not group:
            return ""
        client = self._logs()
        parts: list[str] = []
        size = 0
        arguments: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": log_stream_name(task_arn),
            "startFromHead": True,
        }
        try:
            while size < LOG_CAP_BYTES:
                page = client.get_log_events(**arguments)
                for event in page.get("events", []):
                    line = str(event.get("message", "")) + "\n"
                    parts.append(line)
                    size += len(line.encode())
                token = page.get("nextForwardToken")
                if not page.get("events") or token == arguments.get("nextToken"):
                    break
                arguments["nextToken"] = token
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return ""  # the container never wrote a line
            raise
        encoded = "".join(parts).encode()
        if len(encoded) <= LOG_CAP_BYTES:
            return encoded.decode()
        return (
            encoded[:LOG_CAP_BYTES].decode("utf-8", errors="ignore")
            + f"\n[log truncated at {LOG_CAP_BYTES} bytes]\n"
        )

    def _artifacts(self, run: ContainerRunItem) -> list[ArtifactInfo]:
        """What the sidecar uploaded for this attempt: objects under the task's artifacts prefix written
        since the run started (an earlier attempt's files are older), with the sha256 it stored."""
        prefix = artifacts_prefix(run.org, run.request_id, run.task_type)
        started = datetime.fromisoformat(run.created_at)
        found: list[ArtifactInfo] = []
        try:
            client = self._s3()
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.settings.bucket_name, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["LastModified"] < started - timedelta(seconds=1):
                        continue
                    head = client.head_object(Bucket=self.settings.bucket_name, Key=item["Key"])
                    found.append(
                        ArtifactInfo(
                            name=item["Key"][len(prefix) :],
                            key=item["Key"],
                            size=int(item["Size"]),
                            sha256=str((head.get("Metadata") or {}).get("sha256", "")),
                            content_type=str(head.get("ContentType") or "application/octet-stream"),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("artifacts not listed", extra={"request_id": run.request_id, "error": str(exc)})
        return found

    # -- reconciliation --

    def reconcile(self, *, stale_after_seconds: float = RECONCILE_AFTER_SECONDS) -> ReconcileReport:
        """Settle what events missed: stopped ECS tasks, finished or stuck EKS Jobs, overdue containers."""
        now = self.clock()
        checked = settled = stopped = 0
        due_ecs: list[ContainerRunItem] = []
        for run in self.runs.list_launched(limit=RECONCILE_BATCH):
            age = (now - datetime.fromisoformat(run.created_at)).total_seconds()
            overdue = run.deadline_at is not None and now >= datetime.fromisoformat(run.deadline_at)
            if run.runtime == "eks":
                checked += 1
                done, was_stopped = self._reconcile_eks(run, overdue)
                settled += done
                stopped += was_stopped
            elif run.runtime == "ecs" and run.ecs_task_arn is None:
                if age >= stale_after_seconds:
                    checked += 1
                    message = "the launch never recorded an ECS task"
                    settled += self.settle(run, EXIT_CODE_NONE, ERR_CONTAINER_START, message, collect=False)
            elif run.runtime == "ecs" and (age >= stale_after_seconds or overdue):
                due_ecs.append(run)
        if due_ecs:
            checked += len(due_ecs)
            described = self.ecs().describe([str(run.ecs_task_arn) for run in due_ecs])
            tasks = {str(task.get("taskArn")): task for task in described}
            for run in due_ecs:
                done, was_stopped = self._reconcile_ecs(run, tasks.get(str(run.ecs_task_arn)), now)
                settled += done
                stopped += was_stopped
        report = ReconcileReport(checked=checked, settled=settled, stopped=stopped)
        logger.info(
            "containers reconciled", extra={"checked": checked, "settled": settled, "stopped": stopped}
        )
        return report

    def _reconcile_ecs(
        self, run: ContainerRunItem, task: Mapping[str, Any] | None, now: datetime
    ) -> tuple[int, int]:
        if task is None:
            return int(
                self.settle(run, EXIT_CODE_NONE, ERR_CONTAINER_LOST, "ECS no longer knows the task")
            ), 0
        if task.get("lastStatus") == "STOPPED":
            completion = completion_from_task(task)
            return int(
                self.settle(run, completion.exit_code, completion.error_code, completion.error_message)
            ), 0
        if run.deadline_at is not None and now >= datetime.fromisoformat(run.deadline_at):
            self.ecs().stop(str(run.ecs_task_arn), STOP_REASON_TIMED_OUT)
            done = self.settle(
                run, EXIT_CODE_NONE, ERR_TASK_TIMED_OUT, "the container did not finish in time"
            )
            return int(done), 1
        return 0, 0

    def _reconcile_eks(self, run: ContainerRunItem, overdue: bool) -> tuple[int, int]:
        if not run.k8s_job_name:
            return 0, 0
        runner = self.eks()
        state = runner.poll(run.k8s_job_name)
        if state.finished:
            done = self.settle(
                run, state.exit_code, state.error_code, state.error_message, pod_name=state.pod_name
            )
            if needs_deletion(state):  # e.g. an image that cannot be pulled: the pod would linger
                runner.delete(run.k8s_job_name)
                return int(done), 1
            return int(done), 0
        if not overdue:
            return 0, 0
        if state.started:
            code, message = ERR_TASK_TIMED_OUT, "the container did not finish in time"
        else:
            code, message = ERR_CONTAINER_START, f"the pod never started ({state.pending_reason})"
        # Settle first: deleting the Job (Foreground) takes the pod and its log with it.
        done = self.settle(run, EXIT_CODE_NONE, code, message, pod_name=state.pod_name)
        runner.delete(run.k8s_job_name)
        return int(done), 1

    # -- cancellation --

    def cancel(
        self, run: ContainerRunItem, reason: str = STOP_REASON_CANCELLED, *, answer: bool = True
    ) -> bool:
        """Stop the run's container (StopTask / delete the Job) and settle it as ERR_TASK_CANCELLED (or
        ERR_TASK_TIMED_OUT when ``reason`` is STOP_REASON_TIMED_OUT). With ``answer`` the result goes to
        the reporter (and so to the waiting Launch); without, the caller answers the token itself (the
        walk's cancel sends ``Formica.Cancelled`` with SendTaskFailure). False when already settled.
        """
        if run.is_finished:
            return False
        code = ERR_TASK_TIMED_OUT if reason == STOP_REASON_TIMED_OUT else ERR_TASK_CANCELLED
        finished = self.runs.finish(
            run.request_id, run.step, exit_code=EXIT_CODE_NONE, error_code=code, error_message=reason
        )
        if finished is None:
            return False
        failure: Exception | None = None
        try:
            if finished.runtime == "ecs" and finished.ecs_task_arn:
                self.ecs().stop(finished.ecs_task_arn, reason)
            elif finished.runtime == "eks" and finished.k8s_job_name:
                self.eks().delete(finished.k8s_job_name)
        except (EcsRunnerError, EksRunnerError) as exc:
            failure = exc  # the walk still gets its answer; the caller hears of the failed stop
        if answer:
            self.reporter(finished, TaskOutcome(error_code=code, error_message=reason))
        if failure is not None:
            raise ContainerRuntimeError(
                f"could not stop the container of {run.request_id}/{run.step}: {failure}"
            )
        logger.info("container run cancelled", extra={"request_id": run.request_id, "step": run.step})
        return True

    def cancel_request(
        self, request_id: str, reason: str = STOP_REASON_CANCELLED, *, answer: bool = True
    ) -> int:
        """Cancel every unfinished run of a request; how many were cancelled."""
        runs = [run for run in self.runs.list_for_request(request_id) if not run.is_finished]
        return sum(self.cancel(run, reason, answer=answer) for run in runs)


# --- the process's service and the functions handlers call -----------------------------------


def build_container_service(
    settings: FormicaSettings | None = None, *, reporter: Reporter | None = None
) -> ContainerService:
    """A ContainerService wired to AWS (or moto) from settings; clients are built on first use.

    The reporter defaults to ``WalkReporter()`` (the deployed walk); pass ``DirectReporter`` when no
    job request stands behind the runs.
    """
    from formica.store.aws import get_client

    settings = settings or get_settings()
    blobs = S3BlobStore(settings.bucket_name)

    def ecs() -> EcsRunner:
        return EcsRunner(EcsLaunchConfig.from_settings(settings))

    def eks() -> EksJobRunner:
        if not settings.eks_cluster_name:
            raise EksRunnerError("no EKS cluster configured (FORMICA_EKS_CLUSTER_NAME)")
        return build_eks_runner(
            cluster_name=settings.eks_cluster_name,
            region=settings.region,
            namespace=settings.eks_namespace,
            bucket=settings.bucket_name,
            blobs=blobs,
        )

    sfn = get_client("stepfunctions")
    return ContainerService(
        settings=settings,
        runs=DynamoContainerRunRepository(settings.table_name),
        sfn=sfn,
        reporter=reporter or WalkReporter(),
        ecs=ecs,
        eks=eks,
        logs=lambda: get_client("logs"),
        s3=lambda: get_client("s3"),
    )


_installed: list[ContainerService] = []


@lru_cache(maxsize=1)
def _built_container_service() -> ContainerService:
    return build_container_service()


def default_container_service() -> ContainerService:
    """The service the module functions use: an installed one, else one built from the settings."""
    return _installed[-1] if _installed else _built_container_service()


def install_container_service(service: ContainerService | None) -> None:
    """Make ``service`` the process's (tests, the local server); None goes back to the settings'."""
    _installed.clear()
    if service is not None:
        _installed.append(service)


def reset_container_service() -> None:
    """Forget the cached and installed services (tests, and the local server when settings change)."""
    _installed.clear()
    _built_container_service.cache_clear()


def launch_container(
    request_id: str, step: int, task: TaskDefinition, ctx: TaskContext, task_token: str
) -> ContainerRunItem:
    """Start a container attempt for the Launch state; see ContainerService.launch."""
    return default_container_service().launch(request_id, step, task, ctx, task_token)


def complete_container(event: Mapping[str, Any]) -> bool:
    """Handle an "ECS Task State Change" event; see ContainerService.complete."""
    return default_container_service().complete(event)


def reconcile() -> ReconcileReport:
    """Settle runs whose events never came; see ContainerService.reconcile."""
    return default_container_service().reconcile()


def cancel_container(
    run: ContainerRunItem, reason: str = STOP_REASON_CANCELLED, *, answer: bool = True
) -> bool:
    """Stop one run's container and settle it; see ContainerService.cancel."""
    return default_container_service().cancel(run, reason, answer=answer)


def cancel_request_containers(
    request_id: str, reason: str = STOP_REASON_CANCELLED, *, answer: bool = True
) -> int:
    """Stop every unfinished container run of a request (the walk's cancel and its timeout handling
    call this); see ContainerService.cancel."""
    return default_container_service().cancel_request(request_id, reason, answer=answer)
