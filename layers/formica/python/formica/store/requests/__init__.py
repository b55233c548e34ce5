"""Job requests, their task executions and artifacts in DynamoDB.

- ``errors``      what the store raises
- ``items``       the stored items (request, task execution, artifact) and their (de)serialisation
- ``approvals``   a MANUAL task's approval and its votes
- ``outbox``      a walk step's commit and the records it writes after it
- ``repository``  ``RequestRepository``, the boto3 adapter on the single table

Every name callers use is re-exported here: import from ``formica.store.requests``.
"""

from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.store.requests.approvals import APPROVAL_PENDING, ApprovalItem, VoteItem
from formica.store.requests.errors import (
    RequestFinishedError,
    RequestNotFinishedError,
    RequestNotFoundError,
    RequestStoreError,
    StepConflictError,
)
from formica.store.requests.instances import InstanceEnd, InstanceItem, InstanceState
from formica.store.requests.items import (
    ArtifactItem,
    ChildItem,
    JobRequestItem,
    StepOutbox,
    StoredAttempt,
    TaskExecutionItem,
    iso,
    now_iso,
    walk_blob,
)
from formica.store.requests.outbox import StepCommit, task_item, write_outbox
from formica.store.requests.repository import RequestRepository

__all__ = [
    "APPROVAL_PENDING",
    "ApprovalItem",
    "ArtifactItem",
    "ChildItem",
    "InstanceEnd",
    "InstanceItem",
    "InstanceState",
    "JobRequestItem",
    "JobState",
    "RequestFinishedError",
    "RequestNotFinishedError",
    "RequestNotFoundError",
    "RequestRepository",
    "RequestStoreError",
    "StepCommit",
    "StepConflictError",
    "StepOutbox",
    "StoredAttempt",
    "TaskExecutionItem",
    "TaskState",
    "VoteItem",
    "iso",
    "now_iso",
    "task_item",
    "walk_blob",
    "write_outbox",
]
