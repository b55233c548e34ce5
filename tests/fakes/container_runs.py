"""An in-memory ``ContainerRunRepository`` for tests of the modules that use one (never shipped in
the layer). tests/integration/store/test_container_runs.py holds it to the DynamoDB adapter's rules."""

from __future__ import annotations

import threading

from formica.store.container_runs import (
    ContainerRunItem,
    ContainerRunRepository,
    ContainerRunStatus,
    handle_fields,
    now_iso,
)


class InMemoryContainerRunRepository(ContainerRunRepository):
    """Fake for tests of other modules, with the same conditional semantics. Thread-safe."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, int], ContainerRunItem] = {}
        self._lock = threading.Lock()

    def create(self, run: ContainerRunItem) -> bool:
        with self._lock:
            key = (run.request_id, run.step)
            if key in self.runs:
                return False
            self.runs[key] = run.model_copy()
            return True

    def get(self, request_id: str, step: int) -> ContainerRunItem | None:
        with self._lock:
            run = self.runs.get((request_id, step))
            return run.model_copy() if run else None

    def set_handle(
        self,
        request_id: str,
        step: int,
        *,
        task_token: str | None = None,
        ecs_task_arn: str | None = None,
        k8s_job_name: str | None = None,
        k8s_namespace: str | None = None,
    ) -> bool:
        present = handle_fields(
            task_token=task_token,
            ecs_task_arn=ecs_task_arn,
            k8s_job_name=k8s_job_name,
            k8s_namespace=k8s_namespace,
        )
        with self._lock:
            run = self.runs.get((request_id, step))
            if run is None or run.is_finished:
                return False
            self.runs[(request_id, step)] = run.model_copy(update=present)
            return True

    def finish(
        self,
        request_id: str,
        step: int,
        *,
        exit_code: str,
        error_code: str | None,
        error_message: str | None,
    ) -> ContainerRunItem | None:
        with self._lock:
            run = self.runs.get((request_id, step))
            if run is None or run.is_finished:
                return None
            finished = run.model_copy(
                update={
                    "status": ContainerRunStatus.FINISHED,
                    "finished_at": now_iso(),
                    "exit_code": exit_code,
                    "error_code": error_code,
                    "error_message": error_message,
                }
            )
            self.runs[(request_id, step)] = finished
            return finished.model_copy()

    def list_launched(self, *, created_before: str | None = None, limit: int = 100) -> list[ContainerRunItem]:
        with self._lock:
            launched = sorted(
                (run for run in self.runs.values() if not run.is_finished),
                key=lambda run: run.gsi2sk(),
            )
        if created_before is not None:
            launched = [run for run in launched if run.gsi2sk() < created_before]
        return [run.model_copy() for run in launched[:limit]]

    def list_for_request(self, request_id: str) -> list[ContainerRunItem]:
        with self._lock:
            return sorted(
                (run.model_copy() for (rid, _), run in self.runs.items() if rid == request_id),
                key=lambda run: run.step,
            )
