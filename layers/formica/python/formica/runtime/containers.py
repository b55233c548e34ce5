"""Container attempts on ECS Fargate and EKS, from launch to the callback that resumes the walk.

The state machine's Launch state (``lambda:invoke.waitForTaskToken``) calls the Launch Lambda with
its task token, which hands ECS / EKS attempts to ``ContainerService.launch``. The run is recorded
first (``store.container_runs``: the token, then the ECS task ARN or the Kubernetes Job name), then
the container is started, and Launch returns at once. The walk resumes when exactly one of these
settles the run (through ``WalkReporter``, which commits the attempt and answers the token with the
walk's next decision, D13):

- ``ContainerService.complete(event)``: the EventBridge "ECS Task State Change" (STOPPED) event;
  the MAIN container's exit code (``runners.ecs_events``).
- ``ContainerService.reconcile()`` (every few minutes): ECS runs whose event never came are settled
  from DescribeTasks; EKS Jobs (which send no events) are polled; containers past their deadline are
  stopped and settled as ERR_TASK_TIMED_OUT.
- ``ContainerService.cancel(run)`` / ``cancel_runs(request_id)``: StopTask or delete the Job and
  answer ERR_TASK_CANCELLED, so a waiting Launch reaches Advance (moto and AWS alike, see decision D3).
- A launch that fails (bad size, missing setting, ECS refusal) is answered at once with
  ERR_CONTAINER_START: Step Functions accepts a callback while the Lambda that got the token runs.

``finish`` on the run item is a conditional write, so however many of these race (a duplicate event,
the reconciler, a cancellation), one answer is sent. Before answering, the attempt's log (CloudWatch
Logs for ECS, the pod log for EKS) and the artifacts the sidecar uploaded are collected into a
``TaskOutcome`` and handed to a reporter:

- ``WalkReporter`` (deployed): through the walk's own ``completion.complete_container_attempt``, exactly as a
  local container attempt reports: the log stored at ``logs/attempt-{step}.log``, log and artifacts
  recorded on the request, the result recorded for the step, the step committed, and SendTaskSuccess
  with the next decision to the token the request holds for that step (a retried Launch records a
  newer token there).
- ``DirectReporter`` (no request behind the run: tests, tools): the log stored under the same key and
  SendTaskSuccess ``{"exit_code", "error_code", "error_message"}`` to the token recorded on the run.

The process's service is built by ``formica.runtime.wiring`` (``default_container_service``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from formica.engine.usage import RequestUsage
from formica.engine.walk import AttemptResult
from formica.jobs.models import TaskDefinition, TaskMethod
from formica.runners.base import EXIT_CODE_NONE, LOG_CAP_BYTES, ArtifactInfo, TaskContext, TaskOutcome
from formica.runners.container_grants import GrantIssueError, GrantIssuer, issue_grants
from formica.runners.container_script import artifacts_prefix
from formica.runners.container_secrets import secret_env_file_keys
from formica.runners.ecs import EcsRunner, EcsRunnerError, log_stream_name
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
from formica.runners.eks import EksJobRunner, EksRunnerError, needs_deletion
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import ContainerRuntimeError, Runtime
from formica.runtime.walker import Walker
from formica.settings import FormicaSettings
from formica.store.blobs import BlobStore, BlobStoreError
from formica.store.configs import ConfigStoreError
from formica.store.container_logs import ContainerLogs, LogStoreError
from formica.store.container_runs import ContainerRunItem, ContainerRunRepository, ContainerRunStoreError
from formica.store.grants import GrantRepository
from formica.store.logs import TaskLogs, live_prefix
from formica.store.requests import JobRequestItem
from formica.store.schema import log_key
from formica.store.state_machine import StateMachine, StateMachineError, TaskTokenGoneError
from formica.store.usage import counted_for_request

__all__ = [
    "ERR_CONTAINER_LOST",
    "ContainerRuntimeError",
    "ContainerService",
    "DirectReporter",
    "ReconcileReport",
    "Reporter",
    "WalkReporter",
    "runtime_for",
    "send_task_success",
]

logger = logging.getLogger(__name__)

ERR_CONTAINER_LOST = "ERR_CONTAINER_LOST"
RECONCILE_AFTER_SECONDS = 300
"""An ECS run without its STOPPED event this long after launch is checked with DescribeTasks."""
RECONCILE_BATCH = 500


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    stopped: int = 0


def _output(exit_code: str, error_code: str | None, error_message: str | None) -> dict[str, str | None]:
    return {"exit_code": exit_code, "error_code": error_code, "error_message": error_message}


def send_task_success(state_machine: StateMachine, task_token: str, output: Mapping[str, str | None]) -> bool:
    """SendTaskSuccess; False when the token no longer waits (the Launch state ended meanwhile)."""
    try:
        state_machine.send_task_success(task_token, output)
    except TaskTokenGoneError as exc:
        logger.info("task token no longer waiting", extra={"error": str(exc)})
        return False
    except StateMachineError as exc:
        raise ContainerRuntimeError(f"SendTaskSuccess failed: {exc}") from exc
    return True


class Reporter(Protocol):
    """Hands a settled run's outcome to the walk; True when the waiting Launch state was answered."""

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool: ...


class DirectReporter:
    """Stores the log under the S3 layout and answers the token recorded on the run."""

    def __init__(self, state_machine: StateMachine, blobs: BlobStore) -> None:
        self._state_machine = state_machine
        self._blobs = blobs

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool:
        if outcome.log:
            key = log_key(run.org, run.request_id, run.task_type, run.attempt)
            try:
                self._blobs.put_bytes(key, outcome.log.encode("utf-8"), "text/plain; charset=utf-8")
            except BlobStoreError as exc:
                logger.warning("container log not stored", extra={"key": key, "error": str(exc)})
        return send_task_success(
            self._state_machine,
            run.task_token,
            _output(outcome.exit_code, outcome.error_code, outcome.error_message),
        )


class WalkReporter:
    """Reports like a local container attempt does (``formica.runtime.launch``): log and artifacts
    recorded on the request, the result recorded for the step, the request's latest token answered."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool:
        runtime = self._runtime
        walker = Walker(runtime)
        request = runtime.requests.get(run.request_id)
        current = request.walk.current if request is not None else None
        stored_log_key: str | None = None
        if request is not None and request.step == run.step and current is not None:
            outcome = _masked(walker, request, outcome)
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


def _masked(walker: Walker, request: JobRequestItem, outcome: TaskOutcome) -> TaskOutcome:
    """The outcome with the job's secrets masked; its log and message withheld when the secrets
    cannot be read to mask them (the exit code still counts)."""
    try:
        walker.job_configs(request, with_secrets=True)
    except ConfigStoreError as exc:
        logger.warning(
            "configs not read to mask a log", extra={"request_id": request.request_id, "error": str(exc)}
        )
        withheld = "[log withheld: the job's secret configs could not be read to mask it]\n"
        return outcome.model_copy(update={"log": withheld, "error_message": None, "outputs": {}})
    return walker.mask_outcome(request, outcome)


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
        state_machine: StateMachine,
        reporter: Reporter,
        ecs: Callable[[], EcsRunner],
        eks: Callable[[], EksJobRunner],
        logs: ContainerLogs,
        blobs: BlobStore,
        grants: GrantRepository,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.runs = runs
        self._state_machine = state_machine
        self.reporter = reporter
        self._ecs_factory = ecs
        self._eks_factory = eks
        self._logs = logs
        self._blobs = blobs
        self._issuer = GrantIssuer(grants=grants, blobs=blobs, api_url=settings.api_url)
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
        Kubernetes API refuses, its helpers' grants cannot be issued) is settled at once as
        ERR_CONTAINER_START: Step Functions accepts the callback while this Lambda still runs, and
        Advance then routes the error like any other.
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
                send_task_success(self._state_machine, task_token, output)
                return existing
            # Step Functions gives a retried Launch a new token: answer that one from now on.
            self.runs.set_handle(request_id, step, task_token=task_token)
            run = existing.model_copy(update={"task_token": task_token})
            if run.ecs_task_arn or run.k8s_job_name:
                logger.info("container already launched", extra={"request_id": request_id, "step": step})
                return run
        key = RunKey(request_id, step)
        try:
            # The helper containers' capabilities, valid until the deadline plus a margin; the
            # containers themselves hold no credentials (runners.container_grants).
            grants = issue_grants(self._issuer, task, ctx, step, now=now)
            if run.runtime == "eks":
                runner = self.eks()
                name = runner.launch(task, ctx, key, grants=grants)
                namespace = runner.config.namespace
                self.runs.set_handle(request_id, step, k8s_job_name=name, k8s_namespace=namespace)
                return run.model_copy(update={"k8s_job_name": name, "k8s_namespace": namespace})
            arn = self.ecs().launch(task, ctx, key, grants=grants)
            self.runs.set_handle(request_id, step, ecs_task_arn=arn)
            return run.model_copy(update={"ecs_task_arn": arn})
        except (EcsRunnerError, EksRunnerError, GrantIssueError) as exc:
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
        return self.settle(
            run, completion.exit_code, completion.error_code, completion.error_message, usage=completion.usage
        )

    def settle(
        self,
        run: ContainerRunItem,
        exit_code: str,
        error_code: str | None,
        error_message: str | None,
        *,
        collect: bool = True,
        pod_name: str | None = None,
        usage: RequestUsage | None = None,
    ) -> bool:
        """Finish the run (conditionally), collect its log and artifacts, report. False if already settled.

        ``usage`` (a stopped ECS task's Fargate time) is counted for the request by the winner of the
        finish only, with the step its report commits."""
        finished = self.runs.finish(
            run.request_id, run.step, exit_code=exit_code, error_code=error_code, error_message=error_message
        )
        if finished is None:
            logger.info("run already settled", extra={"request_id": run.request_id, "step": run.step})
            return False
        finished = finished.model_copy(update={"ecs_task_arn": finished.ecs_task_arn or run.ecs_task_arn})
        self._forget_secret_files(finished)
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
        with counted_for_request(usage or RequestUsage()):
            return self.reporter(finished, outcome)

    # -- what an attempt left behind --

    def _forget_secret_files(self, run: ContainerRunItem) -> None:
        """Delete what holds the attempt's secrets: on ECS its ``.env`` files of the main container's
        secret variables and the ``logs`` helper's masking script (the ECS agent read them when the
        containers started), on EKS the run's Kubernetes Secret. Best effort: the request's files
        expire with it, and the Job owns the Secret."""
        if run.runtime == "eks" and run.k8s_job_name:
            try:
                self.eks().forget_secret(run.k8s_job_name)
            except EksRunnerError as exc:
                logger.warning(
                    "kubernetes secret not deleted", extra={"request_id": run.request_id, "error": str(exc)}
                )
        for key in secret_env_file_keys(run.org, run.request_id, run.task_type, run.step):
            try:
                self._blobs.delete_prefix(key)
            except BlobStoreError as exc:
                logger.warning(
                    "secret env file not deleted",
                    extra={"request_id": run.request_id, "key": key, "error": str(exc)},
                )

    def _streamed_log(self, run: ContainerRunItem) -> str:
        """What a cancelled attempt's logs helper streamed (masked chunks): its log, since a stopped
        container's whole log is not collected. Best effort: nothing when the chunks cannot be read."""
        logs = TaskLogs(self._blobs)
        prefix = live_prefix(run.org, run.request_id, run.task_type, run.attempt)
        data = bytearray()
        try:
            while True:
                read = logs.read_live(prefix, len(data))
                data += read.data
                if not read.more or not read.data:
                    break
        except BlobStoreError as exc:
            logger.warning("streamed log not read", extra={"request_id": run.request_id, "error": str(exc)})
        return bytes(data).decode("utf-8", errors="replace")

    def _log_text(self, run: ContainerRunItem, pod_name: str | None) -> str:
        """Best effort: a missing log never blocks the walk."""
        try:
            if run.runtime == "ecs" and run.ecs_task_arn:
                return self._ecs_log(run.ecs_task_arn)
            if run.runtime == "eks" and pod_name:
                runner = self.eks()
                return runner.api.pod_log(run.k8s_namespace or runner.config.namespace, pod_name, "main")
        except (LogStoreError, EksRunnerError, EcsRunnerError) as exc:
            logger.warning(
                "container log unavailable", extra={"request_id": run.request_id, "error": str(exc)}
            )
        return ""

    def _ecs_log(self, task_arn: str) -> str:
        group = self.settings.container_log_group
        if not group:
            return ""
        text = self._logs.read_stream(group, log_stream_name(task_arn), max_bytes=LOG_CAP_BYTES)
        encoded = text.encode()
        if len(encoded) <= LOG_CAP_BYTES:
            return text
        return (
            encoded[:LOG_CAP_BYTES].decode("utf-8", errors="ignore")
            + f"\n[log truncated at {LOG_CAP_BYTES} bytes]\n"
        )

    def _artifacts(self, run: ContainerRunItem) -> list[ArtifactInfo]:
        """What the sidecar uploaded for this attempt: objects under the task's artifacts prefix written
        since the run started (an earlier attempt's files are older), with the sha256 it stored."""
        prefix = artifacts_prefix(run.org, run.request_id, run.task_type)
        started = datetime.fromisoformat(run.created_at)
        try:
            blobs = self._blobs.list_blobs(prefix, modified_since=started - timedelta(seconds=1))
        except BlobStoreError as exc:
            logger.warning("artifacts not listed", extra={"request_id": run.request_id, "error": str(exc)})
            return []
        return [
            ArtifactInfo(
                name=blob.key[len(prefix) :],
                key=blob.key,
                size=blob.size,
                sha256=blob.sha256,
                content_type=blob.content_type,
            )
            for blob in blobs
        ]

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
                self.settle(
                    run,
                    completion.exit_code,
                    completion.error_code,
                    completion.error_message,
                    usage=completion.usage,
                )
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
        self._forget_secret_files(finished)
        failure: Exception | None = None
        try:
            if finished.runtime == "ecs" and finished.ecs_task_arn:
                self.ecs().stop(finished.ecs_task_arn, reason)
            elif finished.runtime == "eks" and finished.k8s_job_name:
                self.eks().delete(finished.k8s_job_name)
        except (EcsRunnerError, EksRunnerError) as exc:
            failure = exc  # the walk still gets its answer; the caller hears of the failed stop
        if answer:
            outcome = TaskOutcome(error_code=code, error_message=reason, log=self._streamed_log(finished))
            self.reporter(finished, outcome)
        if failure is not None:
            raise ContainerRuntimeError(
                f"could not stop the container of {run.request_id}/{run.step}: {failure}"
            )
        logger.info("container run cancelled", extra={"request_id": run.request_id, "step": run.step})
        return True

    def cancel_runs(
        self, request_id: str, reason: str = STOP_REASON_CANCELLED, *, answer: bool = True
    ) -> int:
        """Cancel every unfinished run of a request (the walk's cancel); how many were cancelled."""
        try:
            runs = [run for run in self.runs.list_for_request(request_id) if not run.is_finished]
        except ContainerRunStoreError as exc:
            raise ContainerRuntimeError(f"could not list the container runs of {request_id}: {exc}") from exc
        return sum(self.cancel(run, reason, answer=answer) for run in runs)

    def stop_overdue(self, request_id: str, step: int) -> bool:
        """Stop the container of ``step``, whose Launch state timed out (deadline + grace) without a
        report, now rather than at the next sweep (it bills while it runs). Its run is settled
        ERR_TASK_TIMED_OUT without answering the token (the state already gave up on it)."""
        try:
            run = self.runs.get(request_id, step)
        except ContainerRunStoreError as exc:
            raise ContainerRuntimeError(
                f"could not read the container run {request_id}/{step}: {exc}"
            ) from exc
        if run is None or run.is_finished:
            return False
        return self.cancel(run, STOP_REASON_TIMED_OUT, answer=False)
