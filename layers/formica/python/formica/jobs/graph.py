"""The task flow of a job as a Mermaid flowchart (``formica graph FILE``)."""

from __future__ import annotations

from formica.jobs.models import ExitCodeAction, JobDefinition, TaskDefinition

_SELF_ACTIONS = {
    ExitCodeAction.EXECUTING.value: "poll",
    ExitCodeAction.RESTART_TASK.value: "restart task",
}


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _task_label(task: TaskDefinition) -> str:
    details = [task.method.value if task.method else ("CONTAINER" if task.container else "")]
    if task.allow_failure:
        details.append("allow_failure")
    if task.always_run:
        details.append("always_run")
    suffix = ", ".join(d for d in details if d)
    return f"{task.task_type}<br/><small>{suffix}</small>" if suffix else task.task_type


def to_mermaid(defn: JobDefinition) -> str:
    """A ``flowchart TD``: one node per task, edges labelled completed / failed / exit codes.

    Actions appear as end nodes (COMPLETED, FAILED, FATAL, RESTART_JOB, ERR_*); EXECUTING and
    RESTART_TASK loop back to their task.
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
        for code, target in sorted(task.on_exit_code.items(), key=lambda item: int(item[0])):
            routes.append((f"exit {code}", target))
        for label, target in routes:
            text = label if target in ids else f"{label}: {_SELF_ACTIONS.get(target, target)}"
            edges.append(f"    {source} -->|{_label(text)}| {target_id(task.task_type, target)}")
    lines.extend(f"    {node}([{_label(action)}])" for action, node in action_ids.items())
    lines.extend(edges)
    if defn.tasks:
        lines.append(f"    style {ids[defn.root_task.task_type]} stroke-width:3px")
    return "\n".join(lines) + "\n"
