"""The walk's CloudWatch metrics, written as Embedded Metric Format (EMF) log lines.

Nothing here calls PutMetricData: each fact is printed as one EMF document on the function's
standard output, which Lambda sends to CloudWatch Logs, where CloudWatch extracts the metric
(namespace ``Formica``). Each fact is its own document (powertools' ``single_metric``) because
every metric in one EMF document shares its dimension sets, and these metrics are cut by different
dimensions (``job_type`` for jobs, ``method`` for attempts, ``channel`` for deliveries). The
handlers' ``@metrics.log_metrics`` flush (``handler_metrics``) adds each function's ``ColdStart``.
Container attempts are not timed here (their run time is the container's, in ECS's own metrics).

| metric | unit | dimensions | emitted when |
|---|---|---|---|
| JobsStarted | Count | job_type, service | admission starts a request (PENDING -> STARTED) |
| QueueWait | Seconds | job_type, service | the same start: from the request's creation to its start |
| JobsCompleted / JobsFailed / JobsCancelled | Count | job_type, service | a request ends so |
| TaskAttempts | Count | method, service | an HTTP or SHELL attempt ends (whatever its result) |
| TaskAttemptsFailed | Count | method, service | such an attempt ends without succeeding |
| TaskAttemptDuration | Milliseconds | method, service | such an attempt ends: its run time |
| OldestStartedAge | Seconds | service | each minute's sweep: the oldest STARTED request's age (0: none) |
| DeliveryAttemptsFailed | Count | channel, service | a webhook, email or Slack attempt fails |
| DeliveriesFailed | Count | channel, service | a delivery is given up (FAILED after its last attempt) |
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

    from formica.engine.walk import JobState

NAMESPACE = "Formica"
SERVICE = "formica"

JOBS_STARTED = "JobsStarted"
QUEUE_WAIT = "QueueWait"
# By final state (JobState's values: the API and handlers load this module without the engine).
JOBS_ENDED = {"COMPLETED": "JobsCompleted", "FAILED": "JobsFailed", "CANCELLED": "JobsCancelled"}
TASK_ATTEMPTS = "TaskAttempts"
TASK_ATTEMPTS_FAILED = "TaskAttemptsFailed"
TASK_ATTEMPT_DURATION = "TaskAttemptDuration"
OLDEST_STARTED_AGE = "OldestStartedAge"
DELIVERY_ATTEMPTS_FAILED = "DeliveryAttemptsFailed"
DELIVERIES_FAILED = "DeliveriesFailed"

__all__ = [
    "NAMESPACE",
    "attempt_ended",
    "delivery_failed",
    "handler_metrics",
    "job_ended",
    "job_started",
    "oldest_started",
]


def handler_metrics() -> Metrics:
    """The ``Metrics`` a handler flushes with ``@metrics.log_metrics(capture_cold_start_metric=True)``."""
    from aws_lambda_powertools import Metrics  # noqa: PLC0415 - only handlers build it, once each

    # An invocation that emitted only single metrics (or none) flushes an empty set: normal here,
    # not worth a warning on every invocation.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    return Metrics(namespace=NAMESPACE, service=SERVICE)


def _emit(name: str, unit: MetricUnit, value: float, dimension: str, dimension_value: str) -> None:
    with single_metric(
        name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name=dimension, value=dimension_value)


def job_started(job_type: str, *, created_at: str, started_at: str) -> None:
    """A request was admitted: one ``JobsStarted`` and its ``QueueWait`` (creation to start).

    Parameters
    ----------
    job_type
        The request's job type (the metric's dimension).
    created_at, started_at
        ISO-8601 timestamps of the request's creation and start, as stored.
    """
    _emit(JOBS_STARTED, MetricUnit.Count, 1, "job_type", job_type)
    waited = (datetime.fromisoformat(started_at) - datetime.fromisoformat(created_at)).total_seconds()
    _emit(QUEUE_WAIT, MetricUnit.Seconds, max(0.0, waited), "job_type", job_type)


def job_ended(job_type: str, state: JobState) -> None:
    """A request reached a final state: one ``JobsCompleted``, ``JobsFailed`` or ``JobsCancelled``.

    Parameters
    ----------
    job_type
        The request's job type (the metric's dimension).
    state
        The final state; any other state emits nothing.
    """
    name = JOBS_ENDED.get(str(state))
    if name is not None:
        _emit(name, MetricUnit.Count, 1, "job_type", job_type)


def attempt_ended(method: str, *, seconds: float, succeeded: bool) -> None:
    """A task attempt ended: ``TaskAttempts``, its ``TaskAttemptDuration``, ``TaskAttemptsFailed``.

    Parameters
    ----------
    method
        The task's method (``HTTP_GET``, ``SHELL``...), the metrics' dimension.
    seconds
        How long the attempt ran.
    succeeded
        Whether its outcome counts as success for its task (exit code routing aside).
    """
    _emit(TASK_ATTEMPTS, MetricUnit.Count, 1, "method", method)
    _emit(TASK_ATTEMPT_DURATION, MetricUnit.Milliseconds, max(0.0, seconds) * 1000, "method", method)
    if not succeeded:
        _emit(TASK_ATTEMPTS_FAILED, MetricUnit.Count, 1, "method", method)


def oldest_started(seconds: float) -> None:
    """The sweep's finding: ``OldestStartedAge``, how long the oldest STARTED request has been so.

    A request is STARTED from its admission until its first attempt is claimed: minutes in that
    state mean its execution never began and the sweep could not start it again (the
    ``OldestStarted`` alarm of cdk/constructs/monitoring.py). Only the ``service`` dimension:
    one series for the whole deployment, emitted 0 when nothing is STARTED so the graph is whole.

    Parameters
    ----------
    seconds
        The oldest STARTED request's age, from its admission (``started_at``).
    """
    with single_metric(
        name=OLDEST_STARTED_AGE,
        unit=MetricUnit.Seconds,
        value=max(0.0, seconds),
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE},
    ):
        pass


def delivery_failed(channel: str, *, given_up: bool) -> None:
    """A delivery attempt failed: ``DeliveryAttemptsFailed``, and ``DeliveriesFailed`` when it was
    the last one (the delivery is FAILED: the receiver never got it).

    Parameters
    ----------
    channel
        ``webhook``, ``email`` or ``slack`` (the metrics' dimension).
    given_up
        No attempt follows this one.
    """
    _emit(DELIVERY_ATTEMPTS_FAILED, MetricUnit.Count, 1, "channel", channel)
    if given_up:
        _emit(DELIVERIES_FAILED, MetricUnit.Count, 1, "channel", channel)
