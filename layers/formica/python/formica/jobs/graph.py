"""The task flow of a job as a Mermaid flowchart (``formica graph FILE``)."""

from __future__ import annotations

from formica.jobs.models import ERROR_CODE_PATTERN, ExitCodeAction, JobDefinition, TaskDefinition

_SELF_ACTIONS = {
    ExitCodeAction.EXECUTING.value: "poll",
    ExitCodeAction.RESTART_TASK.value: "restart task",
}


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _task_label(task: TaskDefinition) -> str:
    details = [task.method_name]
    if task.allow_failure:
        details.append("allow_failure")
    if task.always_run:
        details.append("always_run")
    suffix = ", ".join(d for d in details if d)
    return f"{task.task_type}<br/><small>{suffix}</small>" if suffix else task.task_type


def exit_code_destination(task: TaskDefinition, target: str) -> str:
    """Where the walk goes after an exit code mapped to ``target`` (``engine.routing``'s rules).

    An exit code mapped to COMPLETED completes the task and the walk follows on_completed; one
    mapped to FAILED or an ERR_* code fails it and the walk follows on_failed (after the task's
    retries). Without that route, or for any other target, the target itself.
    """
    completed = ExitCodeAction.COMPLETED.value
    failed = ExitCodeAction.FAILED.value
    if target == completed and task.on_completed and task.on_completed != completed:
        return task.on_completed
    failing = target == failed or ERROR_CODE_PATTERN.fullmatch(target) is not None
    if failing and task.on_failed and task.on_failed not in (failed, target):
        return task.on_failed
    return target


def to_mermaid(defn: JobDefinition) -> str:
    """A ``flowchart TD``: one node per task, edges labelled completed / failed / exit codes.

    Actions appear as end nodes (COMPLETED, FAILED, FATAL, RESTART_JOB, ERR_*); EXECUTING and
    RESTART_TASK loop back to their task. An exit code mapped to COMPLETED (FAILED, ERR_*) is drawn
    to where the walk goes next: on_completed (on_failed) when the task has one.
    """
    ids = {task.task_type: f"t{index}" for index, task in enumerate(defn.tasks)}
    lines = ["flowchart TD"]
    lines.extend(f"    {ids[task.task_type]}[{_label(_task_label(task))}]" for task in defn.tasks)
    action_ids: dict[str, str] = {}
    edges: list[str] = []

    def target_id(source: str, target: str) -> str:
        if target in ids:
            return ids[target]
        if target in _SELF_ACTIONS:
            return ids[source]
        if target not in action_ids:
            action_ids[target] = f"a{len(action_ids)}"
        return action_ids[target]

    for task in defn.tasks:
        source = ids[task.task_type]
        routes: list[tuple[str, str]] = []
        if task.on_completed:
            routes.append(("completed", task.on_completed))
        if task.on_failed:
            routes.append(("failed", task.on_failed))
        exits = sorted(task.on_exit_code.items(), key=lambda item: int(item[0]))
        for label, target in routes:
            text = label if target in ids else f"{label}: {_SELF_ACTIONS.get(target, target)}"
            edges.append(f"    {source} -->|{_label(text)}| {target_id(task.task_type, target)}")
        for code, target in exits:
            text = f"exit {code}" if target in ids else f"exit {code}: {_SELF_ACTIONS.get(target, target)}"
            destination = exit_code_destination(task, target)
            edges.append(f"    {source} -->|{_label(text)}| {target_id(task.task_type, destination)}")
    lines.extend(f"    {node}([{_label(action)}])" for action, node in action_ids.items())
    lines.extend(edges)
    if defn.tasks:
        lines.append(f"    style {ids[defn.root_task.task_type]} stroke-width:3px")
    return "\n".join(lines) + "\n"
