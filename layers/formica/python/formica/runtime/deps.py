"""What the runtime works with: the store's ports, the clock, and what the walk asks of its siblings.

``Runtime`` is built in one place (``formica.runtime.wiring.build_runtime``, from the settings);
tests build their own around moto or fakes and pass it explicitly. The walk (``walker``) sits below
admission (``scheduling``) and the container service (``containers``), which both drive it; what
the walk needs from them comes in through ``Runtime`` rather than by importing them:

- ``request_ended``: a request reached COMPLETED, FAILED or CANCELLED; admission releases its
  max_concurrency slot and starts the next waiting requests.
- ``containers``: the container service (ECS / EKS) that launches, stops and settles container runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from formica.jobs.models import TaskDefinition
from formica.runners.base import TaskContext
from formica.settings import FormicaSettings
from formica.store.blobs import BlobStore
from formica.store.configs import ConfigRepository, ConfigSecretStore
from formica.store.events import EventPublisher
from formica.store.functions import FunctionInvoker
from formica.store.grants import GrantRepository
from formica.store.requests import JobRequestItem, RequestRepository, iso
from formica.store.state_machine import StateMachine
from formica.store.stats import JobStatsRepository


class ContainerRuntimeError(RuntimeError):
    """The container runtime could not answer or reach what it needs."""


class DefinitionVersion(Protocol):
    """The parts of a stored definition version the walk reads."""

    @property
    def raw_yaml(self) -> str: ...

    @property
    def version(self) -> int: ...


class DefinitionHead(Protocol):
    """The parts of a job type's head a fork reads."""

    @property
    def disabled(self) -> bool: ...


class DefinitionSource(Protocol):
    """Port: where definition versions come from (``formica.store.definitions.DefinitionRepository``)."""

    def get_version(
        self, org: str, job_type: str, version: int | None = None
    ) -> DefinitionVersion | None: ...

    def get_head(self, org: str, job_type: str) -> DefinitionHead | None: ...

    def resolve_version(self, org: str, job_type: str, wanted: int | str | None) -> DefinitionVersion | None:
        """The version a fork asks for: None/"latest", a version number, or a sem_version."""


class ContainerControl(Protocol):
    """What the walk asks of the container service (``formica.runtime.containers.ContainerService``).

    Each raises ``ContainerRuntimeError`` when the container service cannot be reached.
    """

    def launch(
        self, request_id: str, step: int, task: TaskDefinition, ctx: TaskContext, task_token: str
    ) -> object:
        """Record the run of ``step`` and start its container; the run reports back by the token."""

    def stop_overdue(self, request_id: str, step: int) -> bool:
        """Stop the container of ``step`` (its Launch state timed out) without answering its token."""

    def cancel_runs(self, request_id: str) -> int:
        """Stop every unfinished container run of the request; how many were stopped."""


RequestEnded = Callable[["Runtime", JobRequestItem], None]
SlotTaker = Callable[["Runtime", JobRequestItem], bool]
"""Take a max_concurrency slot again for a request going on after a wait; False when none is free."""
"""Called once a request reached a final state (``formica.runtime.scheduling.request_finished``)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The runtime's collaborators, typed by their ports."""

    settings: FormicaSettings
    requests: RequestRepository
    definitions: DefinitionSource
    blobs: BlobStore
    state_machine: StateMachine
    request_ended: RequestEnded
    container_factory: Callable[[Runtime], ContainerControl]
    now: Callable[[], datetime] = _utc_now
    functions: FunctionInvoker | None = None
    """Other Lambda functions (the SHELL sandbox); None where SHELL attempts run in-process."""
    grants: GrantRepository | None = None
    """Where the SHELL sandbox's capabilities are minted; None where SHELL attempts run in-process."""
    take_slot: SlotTaker | None = None
    """A wait that timed out takes a slot again before it goes on (admission's ``take_slot_again``);
    None: it goes on without one."""
    repairs: tuple[Callable[[Runtime], int], ...] = ()
    """What the minute sweep also repairs, each returning how many things it fixed (the wiring adds
    the forked requests whose end their parent missed, lost answers and lost deliveries)."""
    configs: ConfigRepository | None = None
    """The organisations' and job types' configs (``formica.runtime.configs``); None: no configs."""
    config_secrets: ConfigSecretStore | None = None
    """Where secret configs' values are read; None: secret configs are left out."""
    events: EventPublisher | None = None
    """Where lifecycle events are published (``formica.runtime.events``); None: nowhere."""
    stats: JobStatsRepository | None = None
    """Where a request's end is counted in its organisation's statistics; None: not counted."""
    _raw_yaml: dict[tuple[str, str, int], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now_iso(self) -> str:
        """Now by the runtime's clock, as the table stores timestamps (refused if the clock is naive)."""
        return iso(self.now())

    @property
    def containers(self) -> ContainerControl:
        """The container service, asked for when needed (a task Lambda never builds one)."""
        return self.container_factory(self)

    def raw_yaml(self, org: str, job_type: str, version: int) -> str | None:
        """The definition text of a version; versions never change, so it is cached per process."""
        key = (org, job_type, version)
        with self._lock:
            cached = self._raw_yaml.get(key)
        if cached is not None:
            return cached
        item = self.definitions.get_version(org, job_type, version)
        if item is None:
            return None
        with self._lock:
            self._raw_yaml[key] = item.raw_yaml
        return item.raw_yaml
