"""Sample events under events/ (ECS task state changes, EKS Job and Pod objects), loaded for tests.

Each call returns a fresh copy, so a test may change its sample freely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(relative: str) -> dict[str, Any]:
    """``events/<relative>`` parsed (e.g. ``"ecs/task-stopped-exit-0.json"``)."""
    data: dict[str, Any] = json.loads((EVENTS / relative).read_text())
    return data


def ecs_event(name: str) -> dict[str, Any]:
    """An "ECS Task State Change" sample by file stem: ``ecs_event("task-stopped-exit-3")``."""
    return load_event(f"ecs/{name}.json")


def eks_object(name: str) -> dict[str, Any]:
    """A Kubernetes Job or Pod sample by file stem: ``eks_object("pod-succeeded")``."""
    return load_event(f"eks/{name}.json")


def with_run(event: dict[str, Any], *, task_arn: str, request_id: str, step: int) -> dict[str, Any]:
    """The sample re-pointed at another task and run (as if ECS had sent it for that task)."""
    from formica.runners.ecs_events import RUN_KEY_ENV, RunKey

    detail = event["detail"]
    detail["taskArn"] = task_arn
    event["resources"] = [task_arn]
    for container in detail.get("containers", []):
        container["taskArn"] = task_arn
    detail["startedBy"] = RunKey(request_id, step).started_by()
    for override in detail["overrides"]["containerOverrides"]:
        for variable in override.get("environment", []):
            if variable["name"] == RUN_KEY_ENV:
                variable["value"] = f"{request_id}/{step}"
    return event
