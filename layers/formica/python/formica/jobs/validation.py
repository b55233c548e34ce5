"""The rules a job definition must follow beyond its field types (the flow graph, methods, URLs).

Each rule reports a Problem with the line of the offending key and the task it sits in, and every
rule runs, so one upload lists everything to fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from formica.jobs.cron import CronError, EventBridgeCronError, eventbridge_expression, parse_cron
from formica.jobs.errors import Problem
from formica.jobs.limits import (
    FAN_OUT_ITEM_VAR_MAX_CHARS,
    FAN_OUT_MAX_PARALLEL,
    OUTPUT_NAME_MAX_CHARS,
    OUTPUT_NAME_PATTERN,
    artifact_path_problem,
    name_problem,
    shown,
)
from formica.jobs.models import (
    CONTAINER_METHODS,
    HTTP_METHODS,
    UNSUPPORTED_METHODS,
    VERDICT_KEYS,
    ExitCodeAction,
    JobDefinition,
    RetryBackoffPolicy,
    TaskDefinition,
    TaskMethod,
    is_action,
)
from formica.jobs.notify_rules import notify_problems, webhook_problems
from formica.jobs.trigger_rules import trigger_problems
from formica.jobs.yamlload import Path

UNSUPPORTED_METHOD_REASON: dict[TaskMethod, str] = {
    TaskMethod.PURGE_JOBS: "old jobs expire through the DynamoDB TTL, not a task",
}
"""Why each method Formica parses but does not run is refused (part of the rejection message)."""
assert set(UNSUPPORTED_METHOD_REASON) == set(UNSUPPORTED_METHODS)  # noqa: S101 - import-time consistency


def unsupported_method_message(method: TaskMethod) -> str:
    reason = UNSUPPORTED_METHOD_REASON[method]
    return f"method {method.value} is not supported: Formica does not run {method.value} tasks ({reason})"


class _ProblemFactory(Protocol):
    def __call__(self, message: str, *field: str | int) -> Problem: ...


@dataclass(frozen=True)
class Locator:
    """Finds the source line of a path in the parsed document (longest known prefix wins)."""

    positions: Mapping[Path, int]

    def line(self, *path: str | int) -> int | None:
        best: int | None = None
        prefix: tuple[str | int, ...] = ()
        for element in path:
            for candidate in (element, str(element)):
                trial = (*prefix, candidate)
                if trial in self.positions:
                    prefix = trial
                    best = self.positions[trial]
                    break
        return best if best is not None else self.positions.get(())

    def task_line(self, index: int, *field: str | int) -> int | None:
        return self.line("tasks", index, *field) if field else self.line("tasks", index, "task_type")


def check_definition(
    job: JobDefinition,
    positions: Mapping[Path, int],
    *,
    refused: frozenset[tuple[int | None, str]] = frozenset(),
) -> list[Problem]:
    """Every rule that the models alone do not enforce; an empty list means valid.

    Parameters
    ----------
    job
        The definition as the models built it.
    positions
        The source line of every key path (``yamlload.load_yaml``).
    refused
        (task index or None for the job, field) of fields the models refused, which the parser took
        out so that the other rules could run (``parsing``). The rules that would judge a value the
        user did not write are skipped: a task's method rules when one of their fields was taken
        out, and the flow's shape (one first task, every task reachable, a last task) when a route was.

    Returns
    -------
    list[Problem]
        Sorted by line, then task.
    """
    where = Locator(positions)
    problems = list(_job_rules(job, where))
    problems.extend(_task_rules(job, where, refused))
    shape = not any(field in _ROUTING_FIELDS for _, field in refused)
    if not any(p.field in ("task_type", "tasks") for p in problems):
        problems.extend(_graph_rules(job, where, shape=shape))
    return sorted(problems, key=lambda p: (p.line or 0, p.task_type or "", p.message))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean "X"?)`` for the closest candidate (difflib), or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    if not close and word.upper() != word:
        close = difflib.get_close_matches(word.upper(), list(candidates), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _job_rules(job: JobDefinition, where: Locator) -> Iterator[Problem]:
    if not job.job_type.strip():
        yield Problem("job_type is empty", where.line("job_type"), field="job_type")
    else:
        reason = name_problem("job_type", job.job_type)
        if reason:
            yield Problem(reason, where.line("job_type"), field="job_type")
    if not job.tasks:
        yield Problem("the job has no tasks: at least one is required", where.line("tasks"), field="tasks")
    for name in ("retry", "hard_reset_after_retries", "max_concurrency"):
        if getattr(job, name) < 0:
            yield Problem(f"{name} must not be negative", where.line(name), field=name)
    for message, field in backoff_problems(job.retry_backoff_policy):
        yield Problem(message, where.line(*field.split(".")), field=field)
    if job.cron_trigger:
        reason = cron_trigger_problem(job.cron_trigger)
        if reason:
            yield Problem(reason, where.line("cron_trigger"), field="cron_trigger")
    if job.public_plugin and len(job.job_type.split(".")) < 3:
        yield Problem(
            "a public plugin's job_type starts with an organisation bundle id, such as io.formicary.test-job",
            where.line("job_type"),
            field="job_type",
        )
    if job.sem_version or job.public_plugin:
        reason = sem_version_problem(job.sem_version or "")
        if reason:
            yield Problem(
                reason, where.line("sem_version") or where.line("public_plugin"), field="sem_version"
            )
    for message, path in [*notify_problems(job.notify), *webhook_problems(job.webhook)]:
        yield Problem(message, where.line(*path), field=".".join(path[:3]))
    for message, place in trigger_problems(job.triggers):
        yield Problem(message, where.line(*place), field=".".join(str(part) for part in place))
    yield from _worker_pool_rules(job, where)


def _worker_pool_rules(job: JobDefinition, where: Locator) -> Iterator[Problem]:
    """Each of ``worker_pools`` is a name that some task's tags use (a pool no task names is a typo)."""
    tags = {tag for task in job.tasks for tag in task.tags}
    for index, pool in enumerate(job.worker_pools):
        line = where.line("worker_pools", index)
        reason = name_problem("worker_pools entry", pool)
        if reason:
            yield Problem(reason, line, field="worker_pools")
        elif pool not in tags:
            yield Problem(
                f"worker_pools names {pool!r}, which no task's tags use{did_you_mean(pool, tags)}",
                line,
                field="worker_pools",
            )


BACKOFF_FACTOR_MAX = 100.0
"""The largest ``retry_backoff_policy.factor``."""


def backoff_problems(policy: RetryBackoffPolicy | None) -> Iterator[tuple[str, str]]:
    """What is wrong with a ``retry_backoff_policy``: (message, dotted field) pairs."""
    if policy is None:
        return
    name = "retry_backoff_policy"
    if policy.min <= 0:
        yield f"{name}.min must be more than 0s", f"{name}.min"
    if policy.max is not None and policy.max < policy.min:
        yield (
            f"{name}.max ({policy.max:g}s) is shorter than its min ({policy.min:g}s)",
            f"{name}.max",
        )
    if not 1.0 <= policy.factor <= BACKOFF_FACTOR_MAX:
        yield (
            f"{name}.factor must be from 1 to {BACKOFF_FACTOR_MAX:g}, not {policy.factor:g}",
            f"{name}.factor",
        )


def cron_trigger_problem(text: str) -> str | None:
    """Why ``cron_trigger`` is refused (formicary's cron forms, and what EventBridge can run), or None.

    The rules live in ``formica.jobs.cron``; the message names the cron field.
    """
    try:
        expression = parse_cron(text)
        if expression.never_fires:
            return f"cron_trigger {text!r} never fires: no date from 1970 to 2099 matches it"
        eventbridge_expression(expression)
    except EventBridgeCronError as exc:
        return str(exc)
    except CronError as exc:
        return f"cron_trigger {text!r} is not a cron expression: {exc}"
    return None


_DEV_RC = re.compile(r"\d*-?(dev|rc)-?\d*")


def sem_version_problem(version: str) -> str | None:
    """formicary's plugin version rule: 1.2, 1.0.1, or a last part like 1-dev / rc2."""
    parts = version.split(".")
    if len(parts) < 2:
        return f"sem_version {version!r} must be a semantic version such as 1.2 or 1.0.1"
    if not all(part.isdigit() for part in parts[:-1]):
        return f"sem_version {version!r} must have numeric major/minor parts, such as 1.2 or 1.0.1"
    if not parts[-1].isdigit() and not _DEV_RC.fullmatch(parts[-1]):
        return f"sem_version {version!r} must end in a number or a dev/rc part, such as 1.0.1-dev"
    return None


_ROUTING_FIELDS = frozenset({"on_completed", "on_failed", "on_exit_code"})
_METHOD_FIELDS = frozenset(
    {
        "method",
        "container",
        "url",
        "script",
        "fork_job_type",
        "await_forked_tasks",
        "fan_out",
        "approval_policy",
        "sub_workflow",
    }
)


def _task_rules(
    job: JobDefinition, where: Locator, refused: frozenset[tuple[int | None, str]]
) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for index, task in enumerate(job.tasks):
        name = task.task_type

        def problem(message: str, *field: str | int, _index: int = index, _name: str = name) -> Problem:
            dotted = ".".join(str(part) for part in field) if field else None
            return Problem(message, where.task_line(_index, *field), _name or None, dotted)

        reason = name_problem("task_type", name)
        if not name.strip():
            yield problem("task_type is empty", "task_type")
        elif reason:
            yield problem(reason, "task_type")
        elif name in seen:
            yield problem(f'task_type "{name}" is used by another task too (line {seen[name]})', "task_type")
        else:
            seen[name] = where.task_line(index) or 0
        if name and is_action(name):
            yield problem(f'task_type "{name}" is reserved: it names an exit-code action', "task_type")
        if not any((index, field) in refused for field in _METHOD_FIELDS):
            yield from _method_rules(task, problem)
        yield from _pooled_task_rules(job, task, problem)
        if task.retry < 0:
            yield problem("retry must not be negative", "retry")
        for message, field in backoff_problems(task.retry_backoff_policy):
            yield problem(message, *field.split("."))
        for message, hook_field in webhook_problems(task.webhook):
            yield problem(message, *hook_field)
        for position, path in enumerate(task.artifacts.paths if task.artifacts else []):
            reason = artifact_path_problem(path)
            if reason:
                line = where.task_line(index, "artifacts", "paths", position)
                yield Problem(reason, line, name or None, "artifacts.paths")


def _method_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    method = task.method
    if method in UNSUPPORTED_METHODS:
        yield problem(unsupported_method_message(method), "method")
        return
    if task.fan_out is not None:
        yield from _fan_out_rules(task, problem)
        return
    if method is None and task.container is None:
        yield problem(
            "task has neither a method nor a container: set method (SHELL, HTTP_GET, ...) or container.image",
            "task_type",
        )
    if method in CONTAINER_METHODS and task.container is None:
        yield problem(f"method {method} needs a container with an image", "method")
    if task.container is not None and not task.container.image.strip():
        yield problem("container has no image", "container", "image")
    if method in HTTP_METHODS and task.url is None and not task.script:
        yield problem(f"method {method} needs a URL: set url (or script, as formicary allows)", "method")
    if method is TaskMethod.FORK_JOB and not (task.fork_job_type or "").strip():
        yield problem("method FORK_JOB needs fork_job_type", "method")
    elif task.fork_job_type:
        reason = name_problem("fork_job_type", task.fork_job_type)
        if reason:
            yield problem(reason, "fork_job_type")
    if method is TaskMethod.AWAIT_FORKED_JOB and not task.await_forked_tasks:
        yield problem("method AWAIT_FORKED_JOB needs await_forked_tasks", "method")
    if method is TaskMethod.WEBSOCKET:
        yield from _worker_rules(task, problem)
    if method is TaskMethod.MESSAGING:
        yield from _messaging_rules(task, problem)
    yield from _sub_workflow_rules(task, problem)
    yield from _manual_rules(task, problem)


MAX_WORKER_TAGS = 4
"""The most tags a worker task names (a worker polls one queue per subset of its tags)."""


def _worker_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    """A WEBSOCKET task goes to the pool its tags name: 1 to MAX_WORKER_TAGS tags, each a name."""
    if not task.tags:
        yield problem(
            "method WEBSOCKET needs tags: the worker pool that runs it (formica worker --tags)", "tags"
        )
    yield from _worker_tag_rules(task, problem, "method WEBSOCKET takes")


def _pooled_task_rules(
    job: JobDefinition, task: TaskDefinition, problem: _ProblemFactory
) -> Iterator[Problem]:
    """A task tagged with one of the job's ``worker_pools`` must be one a worker can run (SHELL), and
    its tags must name a pool a worker can poll."""
    pools = [tag for tag in task.tags if tag in set(job.worker_pools)]
    if not pools or task.method is TaskMethod.WEBSOCKET or (task.method is None and task.container is None):
        return  # a WEBSOCKET task has its own rules; a task without a method, its own problem
    if task.method is not TaskMethod.SHELL or task.fan_out is not None:
        kind = "a fan_out" if task.fan_out is not None else f"method {task.method_name}"
        yield problem(
            f"tags name the worker pool {pools[0]!r} (worker_pools), but {kind} does not run on "
            "workers: only SHELL and WEBSOCKET tasks do; remove the tag or the pool",
            "tags",
        )
        return
    yield from _worker_tag_rules(task, problem, "a SHELL task on a worker pool takes")


def _worker_tag_rules(task: TaskDefinition, problem: _ProblemFactory, what: str) -> Iterator[Problem]:
    if len(set(task.tags)) > MAX_WORKER_TAGS:
        yield problem(f"{what} at most {MAX_WORKER_TAGS} tags", "tags")
    for index, tag in enumerate(task.tags):
        reason = name_problem("tag", tag)
        if reason:
            yield problem(reason, "tags", index)


MAX_MESSAGING_QUEUE_NAME = 51
"""The longest queue name a MESSAGING task names: SQS's 80 characters less the organisation's prefix
(``formica-msg-`` and a 16-character digest, ``formica.store.messages.message_queue_name``)."""
_MESSAGING_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _messaging_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    """A MESSAGING task names both queues, each an SQS queue name (templates are checked when
    rendered: Launch fails the attempt naming the field)."""
    for name in ("messaging_request_queue", "messaging_reply_queue"):
        reason = messaging_queue_problem(name, getattr(task, name))
        if reason:
            yield problem(reason, name)


def messaging_queue_problem(field: str, value: str | None) -> str | None:
    """Why ``value`` cannot be the MESSAGING queue ``field``, or None (a template passes)."""
    if value is None or not value.strip():
        return f"method MESSAGING needs {field}: the SQS queue name"
    if "{{" in value:
        return None
    if len(value) > MAX_MESSAGING_QUEUE_NAME or not _MESSAGING_QUEUE_NAME.fullmatch(value):
        return (
            f"{field} {value!r} is not a queue name: 1-{MAX_MESSAGING_QUEUE_NAME} letters, digits, "
            "'-' or '_' (standard SQS queues; FIFO queues are not supported)"
        )
    return None


_MANUAL_RUNS_NOTHING = ("script", "before_script", "after_script", "url", "container", "fork_job_type")


def _manual_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    """A MANUAL task waits for a verdict and runs nothing; verdict keys and a policy need a task that
    waits for approvers (MANUAL, or routed to WAIT_FOR_APPROVAL); pause_time needs PAUSE_JOB."""
    if task.pause_time is not None and not task.pauses:
        yield problem("pause_time is for tasks whose routing names PAUSE_JOB", "pause_time")
    if task.method is not TaskMethod.MANUAL:
        if task.waits_for_approval:
            return
        for key in sorted(VERDICT_KEYS & set(task.on_exit_code)):
            yield problem(
                f"on_exit_code key {key} is an approval's verdict: only a MANUAL task, or one routed "
                "to WAIT_FOR_APPROVAL, has it",
                "on_exit_code",
                key,
            )
        if task.approval_policy is not None:
            yield problem(
                "approval_policy is for MANUAL tasks and tasks routed to WAIT_FOR_APPROVAL only",
                "approval_policy",
            )
        return
    for field_name in _MANUAL_RUNS_NOTHING:
        if getattr(task, field_name):
            yield problem(
                f"a MANUAL task waits for approvers and runs nothing: remove {field_name}", field_name
            )
    policy = task.approval_policy
    if policy is None:
        return
    if policy.sla_deadline is not None and policy.sla_deadline <= 0:
        yield problem("approval_policy.sla_deadline must be positive", "approval_policy", "sla_deadline")
    if policy.allowed_users and policy.min_approvals > len(set(policy.allowed_users)):
        yield problem(
            f"approval_policy.min_approvals is {policy.min_approvals} but allowed_users names only "
            f"{len(set(policy.allowed_users))}: the task could never be approved",
            "approval_policy",
            "min_approvals",
        )


SUB_WORKFLOW_PARAMS_RESERVED = frozenset({"ForkedJob", "ParentJobID", "ParentJobType"})
"""Params every forked job receives from Formica: no input_params entry may name them."""
SUB_WORKFLOW_OUTPUTS_RESERVED = frozenset({"ForkedJobID", "JobState"})
"""Outputs a sub_workflow task publishes itself: no output_variables entry may take their names."""


def _sub_workflow_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    """sub_workflow sits on a FORK_JOB task; its names are template identifiers, each once;
    output_variables needs wait_for_completion (a fork that does not wait never sees the end)."""
    sub = task.sub_workflow
    if sub is None:
        return
    if task.method is not TaskMethod.FORK_JOB:
        yield problem("sub_workflow is for FORK_JOB tasks", "sub_workflow")
    seen: set[str] = set()
    for position, param in enumerate(sub.input_params):
        where: tuple[str | int, ...] = ("sub_workflow", "input_params", position, "name")
        if not _ITEM_VAR.fullmatch(param.name) or len(param.name) > OUTPUT_NAME_MAX_CHARS:
            yield problem(
                f"sub_workflow.input_params name {shown(param.name)} is not a template identifier: use "
                f"letters, digits and '_' ({OUTPUT_NAME_PATTERN}), at most {OUTPUT_NAME_MAX_CHARS} "
                "characters",
                *where,
            )
        elif param.name in SUB_WORKFLOW_PARAMS_RESERVED:
            yield problem(f"sub_workflow.input_params name {param.name} is set by Formica itself", *where)
        elif param.name in seen:
            yield problem(f"sub_workflow.input_params names {param.name} twice", *where)
        seen.add(param.name)
    if sub.output_variables and not sub.wait_for_completion:
        yield problem(
            "sub_workflow.output_variables needs wait_for_completion: true (the task must wait for the "
            "child's end to read its values)",
            "sub_workflow",
            "output_variables",
        )
    published: set[str] = set()
    for child_name, name in sub.output_variables.items():
        where = ("sub_workflow", "output_variables", child_name)
        if not _ITEM_VAR.fullmatch(child_name):
            yield problem(
                f"sub_workflow.output_variables key {shown(child_name)} is not a name of the child's "
                f"context: use letters, digits and '_' ({OUTPUT_NAME_PATTERN})",
                *where,
            )
        if not _ITEM_VAR.fullmatch(name) or len(name) > OUTPUT_NAME_MAX_CHARS:
            yield problem(
                f"sub_workflow.output_variables value {shown(name)} is not an output name: use letters, "
                f"digits and '_' ({OUTPUT_NAME_PATTERN}), at most {OUTPUT_NAME_MAX_CHARS} characters",
                *where,
            )
        elif name in SUB_WORKFLOW_OUTPUTS_RESERVED:
            yield problem(f"sub_workflow.output_variables value {name} is published by the task", *where)
        elif name in published:
            yield problem(f"sub_workflow.output_variables publishes {name} twice", *where)
        published.add(name)


_ITEM_VAR = re.compile(OUTPUT_NAME_PATTERN)
_FAN_OUT_RUNS_NOTHING = (
    "script",
    "before_script",
    "after_script",
    "url",
    "container",
    "await_forked_tasks",
    "sub_workflow",
)


def _fan_out_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    fan_out = task.fan_out
    assert fan_out is not None  # noqa: S101 - the caller's condition
    if fan_out.forks_jobs:
        yield from _job_fan_out_rules(task, problem)
    else:
        yield from _task_fan_out_rules(task, problem)
    yield from _fan_out_shared_rules(task, problem)


def _job_fan_out_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    fan_out = task.fan_out
    assert fan_out is not None  # noqa: S101 - the caller's condition
    if task.method not in (None, TaskMethod.FORK_JOB):
        yield problem(
            f"a fan_out task forks jobs: its method is FORK_JOB or none, not {task.method} (without "
            "fan_out.fork_job_type, the task itself runs per item)",
            "method",
        )
    for field_name in _FAN_OUT_RUNS_NOTHING:
        if getattr(task, field_name):
            yield problem(
                f"a fan_out task forks jobs and runs nothing itself: remove {field_name}", field_name
            )
    for field_name in ("fork_job_type", "fork_job_version"):
        if getattr(task, field_name):
            yield problem(
                f"a fan_out task names its job in fan_out.{field_name}: remove the task's {field_name}",
                field_name,
            )
    fork_job_type = fan_out.fork_job_type or ""
    if not fork_job_type.strip():
        yield problem("fan_out needs fork_job_type", "fan_out", "fork_job_type")
    else:
        reason = name_problem("fan_out.fork_job_type", fork_job_type)
        if reason:
            yield problem(reason, "fan_out", "fork_job_type")


_TASK_FAN_OUT_METHODS = frozenset({TaskMethod.SHELL, *HTTP_METHODS})


def _task_fan_out_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    """A fan_out without fork_job_type runs the task itself per item: a SHELL or HTTP task only."""
    fan_out = task.fan_out
    assert fan_out is not None  # noqa: S101 - the caller's condition
    method = task.method
    if task.container is not None:
        yield problem(
            "a task fan-out (fan_out without fork_job_type) runs SHELL and HTTP tasks only: a container "
            "task cannot fan out (each instance would need a container of its own); remove container, "
            "or name a job to fork per item in fan_out.fork_job_type",
            "container",
        )
    elif method is None:
        yield problem(
            "a task fan-out (fan_out without fork_job_type) runs the task per item: set method SHELL "
            "or an HTTP method, or name a job to fork per item in fan_out.fork_job_type",
            "method",
        )
    elif method not in _TASK_FAN_OUT_METHODS:
        yield problem(
            f"a task fan-out (fan_out without fork_job_type) runs SHELL and HTTP tasks only, not {method}; "
            "to fan out another kind of work, fork a job per item with fan_out.fork_job_type",
            "method",
        )
    if method in HTTP_METHODS and task.url is None and not task.script:
        yield problem(f"method {method} needs a URL: set url (or script, as formicary allows)", "method")
    if fan_out.fork_job_version:
        yield problem(
            "fan_out.fork_job_version names the version of a job to fork: set fan_out.fork_job_type too, "
            "or remove it",
            "fan_out",
            "fork_job_version",
        )
    for field_name in ("fork_job_type", "fork_job_version", "await_forked_tasks", "sub_workflow"):
        if getattr(task, field_name):
            yield problem(f"a task fan-out runs the task itself per item: remove {field_name}", field_name)


def _fan_out_shared_rules(task: TaskDefinition, problem: _ProblemFactory) -> Iterator[Problem]:
    fan_out = task.fan_out
    assert fan_out is not None  # noqa: S101 - the caller's condition
    if not 1 <= fan_out.max_parallel <= FAN_OUT_MAX_PARALLEL:
        yield problem(
            f"fan_out.max_parallel {fan_out.max_parallel} is out of range: 1 to {FAN_OUT_MAX_PARALLEL}",
            "fan_out",
            "max_parallel",
        )
    item_var = fan_out.item_var
    if len(item_var) > FAN_OUT_ITEM_VAR_MAX_CHARS or not _ITEM_VAR.fullmatch(item_var):
        yield problem(
            f"fan_out.item_var {shown(item_var)} is not a template identifier: use letters, digits and "
            f"'_', starting with a letter or '_' ({OUTPUT_NAME_PATTERN}), at most "
            f"{FAN_OUT_ITEM_VAR_MAX_CHARS} characters",
            "fan_out",
            "item_var",
        )


def _graph_rules(job: JobDefinition, where: Locator, *, shape: bool) -> Iterator[Problem]:
    names = {task.task_type: index for index, task in enumerate(job.tasks)}
    targets_known = [*names, *ExitCodeAction.__members__]
    edges: dict[str, list[str]] = {}
    for index, task in enumerate(job.tasks):
        name = task.task_type
        targets: list[str] = []
        routes: list[tuple[str, tuple[str | int, ...]]] = []
        if task.on_completed is not None:
            routes.append((task.on_completed, ("on_completed",)))
        if task.on_failed is not None:
            routes.append((task.on_failed, ("on_failed",)))
        routes.extend((target, ("on_exit_code", code)) for code, target in task.on_exit_code.items())
        for target, field in routes:
            label = field[0] if len(field) == 1 else f"on_exit_code {field[1]}"
            line = _route_line(where, index, field)
            if not target.strip():
                yield Problem(f"{label} is empty: name a task or an action", line, name, str(field[0]))
            elif target in names:
                targets.append(target)
            elif not is_action(target):
                close = difflib.get_close_matches(target, targets_known, n=1)
                what = "action" if close and close[0] not in names else "task"
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                yield Problem(f'{label} names unknown {what} "{target}"{hint}', line, name, str(field[0]))
        edges[name] = targets
        for field_name in ("dependencies", "await_forked_tasks"):
            for position, dependency in enumerate(getattr(task, field_name)):
                if dependency not in names:
                    line = where.task_line(index, field_name, position)
                    hint = did_you_mean(dependency, names)
                    yield Problem(
                        f'{field_name} names unknown task "{dependency}"{hint}', line, name, field_name
                    )
                elif field_name == "await_forked_tasks":
                    forked = job.tasks[names[dependency]]
                    if forked.fan_out is not None:
                        line = where.task_line(index, field_name, position)
                        yield Problem(
                            f'await_forked_tasks names "{dependency}", a fan_out task: it waits for its '
                            "own children, so route to the task after it instead",
                            line,
                            name,
                            field_name,
                        )
                    elif forked.method is not TaskMethod.FORK_JOB:
                        line = where.task_line(index, field_name, position)
                        yield Problem(
                            f'await_forked_tasks names "{dependency}", which is not a FORK_JOB task',
                            line,
                            name,
                            field_name,
                        )
    if shape:
        yield from _shape_rules(job, where, edges)


def _route_line(where: Locator, index: int, field: tuple[str | int, ...]) -> int | None:
    if ("tasks", index, *field) in where.positions:
        return where.positions[("tasks", index, *field)]
    # on_completed / on_failed written as on_exit_code COMPLETED / FAILED: point at that key
    state = {"on_completed": "COMPLETED", "on_failed": "FAILED"}.get(str(field[0]))
    if state is not None:
        for spelling in (state, state.lower(), state.capitalize()):
            if ("tasks", index, "on_exit_code", spelling) in where.positions:
                return where.positions[("tasks", index, "on_exit_code", spelling)]
    return where.task_line(index, *field)


def _shape_rules(job: JobDefinition, where: Locator, edges: Mapping[str, list[str]]) -> Iterator[Problem]:
    if not job.tasks:
        return
    named_by_others = {target for source, targets in edges.items() for target in targets if target != source}
    roots = [(index, task) for index, task in enumerate(job.tasks) if task.task_type not in named_by_others]
    if not roots:
        yield Problem(
            "no first task: every task is named as the next task of another one (a cycle)",
            where.line("tasks"),
            field="tasks",
        )
        return
    root_index, root = roots[0]
    for index, task in roots[1:]:
        yield Problem(
            f'task is not reachable: no task routes to it and "{root.task_type}" is already the first task',
            where.task_line(index),
            task.task_type,
            "task_type",
        )
    reached = {root.task_type}
    frontier = [root.task_type]
    while frontier:
        for target in edges.get(frontier.pop(), []):
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    extra_roots = {task.task_type for _, task in roots[1:]}
    for index, task in enumerate(job.tasks):
        if task.task_type not in reached and task.task_type not in extra_roots:
            yield Problem(
                f'task is not reachable from the first task "{root.task_type}"',
                where.task_line(index),
                task.task_type,
                "task_type",
            )
    if not any(not edges.get(task.task_type) for task in job.tasks):
        yield Problem(
            "no last task: every task routes to another task, so the job never ends",
            where.task_line(root_index),
            root.task_type,
            "tasks",
        )
