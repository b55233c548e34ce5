"""Job definitions in DynamoDB: every version kept, raw YAML verbatim, one head per job type.

Items (docs/architecture.md, the table contract):

- head     ``pk=ORG#{org}#JOB#{job_type}``, ``sk=HEAD``, ``gsi1pk=ORG#{org}#JOBS``, ``gsi1sk={job_type}``
- version  ``pk=ORG#{org}#JOB#{job_type}``, ``sk=V#{version:010d}``

A new version is written in one transaction with the head: the version item only if its key is
free, the head only if its ``latest_version`` is still the one read. Two uploads racing for the
same version number therefore never share it: the loser re-reads the head and takes the next one
(or, when the winner uploaded the very same text, answers with the winner's version).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from formica.jobs.models import LATEST_VERSION, JobDefinition
from formica.store.dynamo import MAX_LIST_LIMIT, DynamoTable, is_conditional_failure
from formica.store.pagination import InvalidCursorError, Page, decode_cursor, encode_cursor
from formica.store.schema import DEFINITION_HEAD_SK as HEAD_SK
from formica.store.schema import definition_pk, definitions_gsi1pk
from formica.store.schema import definition_version_sk as version_sk

__all__ = [
    "HEAD_SK",
    "DefinitionConflictError",
    "DefinitionHeadItem",
    "DefinitionNotFoundError",
    "DefinitionRepository",
    "DefinitionStoreError",
    "DefinitionTooLargeToStoreError",
    "DefinitionVersionItem",
    "DefinitionVersionSummary",
    "definition_pk",
    "definitions_gsi1pk",
    "version_sk",
    "yaml_sha256",
]

_PUT_ATTEMPTS = 8
ITEM_MAX_BYTES = 400 * 1024
"""DynamoDB's item limit; a version item is checked against it before the write (not the 500 of a
ValidationException after it)."""


class DefinitionStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing definitions."""


class DefinitionNotFoundError(DefinitionStoreError):
    """No definition of this job type exists in the organisation."""

    def __init__(self, org: str, job_type: str) -> None:
        super().__init__(f"job type {job_type!r} is not defined")
        self.org = org
        self.job_type = job_type


class DefinitionTooLargeToStoreError(DefinitionStoreError):
    """The version item (text, parsed definition and keys) would pass DynamoDB's item limit."""


class DefinitionConflictError(DefinitionStoreError):
    """Concurrent uploads kept winning the race for the next version number."""


def yaml_sha256(raw_yaml: str) -> str:
    """The hex sha256 of the uploaded text: what "unchanged" means for an upload."""
    return hashlib.sha256(raw_yaml.encode("utf-8")).hexdigest()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class DefinitionVersionItem(BaseModel):
    """One stored version of a job type: the raw text as uploaded and the parsed definition."""

    org: str
    job_type: str
    version: int
    definition_id: str
    raw_yaml: str
    sha256: str
    definition_json: str
    created_at: str
    sem_version: str | None = None
    """The definition's own ``sem_version`` when it has one: what a ``fork_job_version`` text matches."""

    @property
    def definition(self) -> JobDefinition:
        """The parsed definition of this version (validated at upload, trusted here)."""
        return JobDefinition.model_validate_json(self.definition_json)

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": definition_pk(self.org, self.job_type)},
            "sk": {"S": version_sk(self.version)},
            "kind": {"S": "DEFINITION_VERSION"},
            "org": {"S": self.org},
            "job_type": {"S": self.job_type},
            "version": {"N": str(self.version)},
            "definition_id": {"S": self.definition_id},
            "raw_yaml": {"S": self.raw_yaml},
            "sha256": {"S": self.sha256},
            "definition_json": {"S": self.definition_json},
            "created_at": {"S": self.created_at},
        }
        if self.sem_version:
            item["sem_version"] = {"S": self.sem_version}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> DefinitionVersionItem:
        return cls(
            org=item["org"]["S"],
            job_type=item["job_type"]["S"],
            version=int(item["version"]["N"]),
            definition_id=item["definition_id"]["S"],
            raw_yaml=item["raw_yaml"]["S"],
            sha256=item["sha256"]["S"],
            definition_json=item["definition_json"]["S"],
            created_at=item["created_at"]["S"],
            sem_version=item["sem_version"]["S"] if "sem_version" in item else None,
        )


class DefinitionVersionSummary(BaseModel):
    """A stored version without its text: what a listing of versions shows."""

    version: int
    definition_id: str
    sha256: str
    created_at: str


class DefinitionHeadItem(BaseModel):
    """The job type's head: its latest version and the settings that apply to every version."""

    org: str
    job_type: str
    latest_version: int
    latest_sha256: str
    latest_definition_id: str
    disabled: bool = False
    # Taken from the latest upload's max_concurrency; PUT .../concurrency overrides it until the next.
    max_concurrency: int = 0
    cron_trigger: str | None = None
    description: str | None = None
    created_at: str
    updated_at: str

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": definition_pk(self.org, self.job_type)},
            "sk": {"S": HEAD_SK},
            "gsi1pk": {"S": definitions_gsi1pk(self.org)},
            "gsi1sk": {"S": self.job_type},
            "kind": {"S": "DEFINITION_HEAD"},
            "org": {"S": self.org},
            "job_type": {"S": self.job_type},
            "latest_version": {"N": str(self.latest_version)},
            "latest_sha256": {"S": self.latest_sha256},
            "latest_definition_id": {"S": self.latest_definition_id},
            "disabled": {"BOOL": self.disabled},
            "max_concurrency": {"N": str(self.max_concurrency)},
            "created_at": {"S": self.created_at},
            "updated_at": {"S": self.updated_at},
        }
        if self.cron_trigger is not None:
            item["cron_trigger"] = {"S": self.cron_trigger}
        if self.description is not None:
            item["description"] = {"S": self.description}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> DefinitionHeadItem:
        return cls(
            org=item["org"]["S"],
            job_type=item["job_type"]["S"],
            latest_version=int(item["latest_version"]["N"]),
            latest_sha256=item["latest_sha256"]["S"],
            latest_definition_id=item["latest_definition_id"]["S"],
            disabled=bool(item.get("disabled", {}).get("BOOL", False)),
            max_concurrency=int(item.get("max_concurrency", {}).get("N", "0")),
            cron_trigger=item["cron_trigger"]["S"] if "cron_trigger" in item else None,
            description=item["description"]["S"] if "description" in item else None,
            created_at=item["created_at"]["S"],
            updated_at=item["updated_at"]["S"],
        )


def _check_item_size(org: str, job_type: str, raw_yaml: str, definition_json: str) -> None:
    # Attribute names and the fixed attributes take well under 1 KB.
    size = len(raw_yaml.encode("utf-8")) + len(definition_json.encode("utf-8"))
    size += 2 * len(definition_pk(org, job_type).encode("utf-8")) + 1024
    if size > ITEM_MAX_BYTES:
        raise DefinitionTooLargeToStoreError(
            f"the definition and its parsed form take {size} bytes together; "
            f"a stored version holds at most {ITEM_MAX_BYTES} (DynamoDB's item limit, 400 KB)"
        )


class DefinitionRepository(DynamoTable):
    """Adapter: definitions in the single table. ``client`` defaults to the process's DynamoDB client."""

    # -- writes ---------------------------------------------------------------------------------

    def put_version(
        self, org: str, raw_yaml: str, definition: JobDefinition
    ) -> tuple[DefinitionVersionItem, bool, bool]:
        """Store an upload; returns (version item, created_job_type, changed).

        The same raw text (by sha256) as the latest version returns that version unchanged.
        """
        sha = yaml_sha256(raw_yaml)
        job_type = definition.job_type
        definition_json = definition.model_dump_json(by_alias=True, exclude_defaults=True)
        _check_item_size(org, job_type, raw_yaml, definition_json)
        for _ in range(_PUT_ATTEMPTS):
            head = self.get_head(org, job_type)
            if head is not None and head.latest_sha256 == sha:
                latest = self.get_version(org, job_type, head.latest_version)
                if latest is not None:
                    return latest, False, False
            now = _now_iso()
            version = DefinitionVersionItem(
                org=org,
                job_type=job_type,
                version=1 if head is None else head.latest_version + 1,
                definition_id=uuid.uuid4().hex,
                raw_yaml=raw_yaml,
                sha256=sha,
                definition_json=definition_json,
                created_at=now,
                sem_version=(definition.sem_version or "").strip() or None,
            )
            new_head = DefinitionHeadItem(
                org=org,
                job_type=job_type,
                latest_version=version.version,
                latest_sha256=sha,
                latest_definition_id=version.definition_id,
                disabled=False if head is None else head.disabled,
                max_concurrency=definition.max_concurrency,
                cron_trigger=definition.cron_trigger,
                description=definition.description,
                created_at=now if head is None else head.created_at,
                updated_at=now,
            )
            if self._commit(version, new_head, previous=head):
                return version, head is None, True
        raise DefinitionConflictError(
            f"could not store a new version of {job_type!r}: too many concurrent uploads"
        )

    def _commit(
        self, version: DefinitionVersionItem, head: DefinitionHeadItem, *, previous: DefinitionHeadItem | None
    ) -> bool:
        head_put: dict[str, Any] = {"TableName": self._table, "Item": head.to_item()}
        if previous is None:
            head_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            # The head as read, not only its version: a disable/enable or PUT concurrency that lands
            # between the read and this write changes updated_at, so the upload retries on the new
            # head instead of overwriting a fresh `disabled` with the value it read.
            head_put["ConditionExpression"] = "latest_version = :previous AND updated_at = :updated"
            head_put["ExpressionAttributeValues"] = {
                ":previous": {"N": str(previous.latest_version)},
                ":updated": {"S": previous.updated_at},
            }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": version.to_item(),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": head_put},
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise DefinitionStoreError(f"could not store definition {version.job_type!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise DefinitionStoreError(f"could not store definition {version.job_type!r}: {exc}") from exc
        return True

    def set_disabled(self, org: str, job_type: str, disabled: bool) -> DefinitionHeadItem:
        """Disable or enable a job type; raises DefinitionNotFoundError when it is not defined."""
        return self._update_head(
            org, job_type, "SET disabled = :value, updated_at = :now", {":value": {"BOOL": disabled}}
        )

    def set_max_concurrency(self, org: str, job_type: str, max_concurrency: int) -> DefinitionHeadItem:
        """Set how many requests of the job type may run at once (0: unlimited)."""
        if max_concurrency < 0:
            raise ValueError("max_concurrency must be >= 0")
        return self._update_head(
            org,
            job_type,
            "SET max_concurrency = :value, updated_at = :now",
            {":value": {"N": str(max_concurrency)}},
        )

    def _update_head(
        self, org: str, job_type: str, expression: str, values: dict[str, Any]
    ) -> DefinitionHeadItem:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": definition_pk(org, job_type)}, "sk": {"S": HEAD_SK}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={**values, ":now": {"S": _now_iso()}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise DefinitionNotFoundError(org, job_type) from exc
            raise DefinitionStoreError(f"could not update definition {job_type!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise DefinitionStoreError(f"could not update definition {job_type!r}: {exc}") from exc
        return DefinitionHeadItem.from_item(response["Attributes"])

    def delete(self, org: str, job_type: str) -> int:
        """Delete the head and every version; returns how many versions went. NotFound when absent."""
        if self.get_head(org, job_type) is None:
            raise DefinitionNotFoundError(org, job_type)
        pk = definition_pk(org, job_type)
        keys: list[dict[str, Any]] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ProjectionExpression="pk, sk",
            ):
                keys.extend({"pk": item["pk"], "sk": item["sk"]} for item in page.get("Items", []))
            # Versions first, head last: a failure half-way leaves a head that can be deleted again.
            keys.sort(key=lambda key: key["sk"]["S"] == HEAD_SK)
            for key in keys:
                self._client.delete_item(TableName=self._table, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise DefinitionStoreError(f"could not delete definition {job_type!r}: {exc}") from exc
        return sum(1 for key in keys if key["sk"]["S"] != HEAD_SK)

    # -- reads ----------------------------------------------------------------------------------

    def get_head(self, org: str, job_type: str) -> DefinitionHeadItem | None:
        item = self._get(definition_pk(org, job_type), HEAD_SK)
        return None if item is None else DefinitionHeadItem.from_item(item)

    def get_version(
        self, org: str, job_type: str, version: int | None = None
    ) -> DefinitionVersionItem | None:
        """A version of the job type (the latest when ``version`` is None), or None."""
        if version is None:
            head = self.get_head(org, job_type)
            if head is None:
                return None
            version = head.latest_version
        if version < 1:
            return None
        item = self._get(definition_pk(org, job_type), version_sk(version))
        return None if item is None else DefinitionVersionItem.from_item(item)

    def resolve_version(
        self, org: str, job_type: str, wanted: int | str | None
    ) -> DefinitionVersionItem | None:
        """The version a fork asks for (``TaskDefinition.fork_version``), or None.

        Parameters
        ----------
        org
            The caller's organisation: a fork names a job type of its own organisation only.
        job_type
            The job type to fork.
        wanted
            None or ``"latest"``: the latest version; an int: that version number; other text: the
            newest version whose ``sem_version`` equals it (exactly, as uploaded).

        Returns
        -------
        DefinitionVersionItem | None
            None when the job type is not defined or is disabled (a disabled job type starts no
            request, whichever version is asked for), or no version matches.
        """
        head = self.get_head(org, job_type)
        if head is None or head.disabled:
            return None
        if wanted is None or wanted == LATEST_VERSION:
            return self.get_version(org, job_type, head.latest_version)
        if isinstance(wanted, int):
            return self.get_version(org, job_type, wanted) if 1 <= wanted <= head.latest_version else None
        return self._newest_with_sem_version(org, job_type, wanted)

    def _newest_with_sem_version(
        self, org: str, job_type: str, sem_version: str
    ) -> DefinitionVersionItem | None:
        # Newest first with a filter: DynamoDB applies the filter after reading each page, so pages
        # are followed until a match; versions written before sem_version was stored never match.
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :v)",
            "FilterExpression": "sem_version = :sem",
            "ExpressionAttributeValues": {
                ":pk": {"S": definition_pk(org, job_type)},
                ":v": {"S": "V#"},
                ":sem": {"S": sem_version},
            },
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        try:
            while True:
                response = self._client.query(**query)
                items = response.get("Items", [])
                if items:
                    return DefinitionVersionItem.from_item(items[0])
                start = response.get("LastEvaluatedKey")
                if not start:
                    return None
                query["ExclusiveStartKey"] = start
        except (ClientError, BotoCoreError) as exc:
            raise DefinitionStoreError(f"could not read versions of {job_type!r}: {exc}") from exc

    def list_versions(self, org: str, job_type: str) -> list[int]:
        """Every stored version number of the job type, ascending."""
        versions: list[int] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
                ExpressionAttributeValues={":pk": {"S": definition_pk(org, job_type)}, ":v": {"S": "V#"}},
                ProjectionExpression="version",
            ):
                versions.extend(int(item["version"]["N"]) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise DefinitionStoreError(f"could not list versions of {job_type!r}: {exc}") from exc
        return versions

    def list_version_page(
        self, org: str, job_type: str, *, limit: int = 50, next_token: str | None = None
    ) -> Page[DefinitionVersionSummary]:
        """The job type's versions, newest first, one page at a time, without their text.

        Raises ``InvalidCursorError`` for a ``next_token`` this listing (this job type) did not issue.
        """
        pk = definition_pk(org, job_type)
        start = decode_cursor(next_token, partition_attribute="pk", partition_value=pk)
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :v)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":v": {"S": "V#"}},
            "ExpressionAttributeNames": {"#v": "version"},
            "ProjectionExpression": "#v, definition_id, sha256, created_at",
            "ScanIndexForward": False,
            "Limit": max(1, min(limit, MAX_LIST_LIMIT)),
        }
        if start is not None:
            query["ExclusiveStartKey"] = start
        try:
            response = self._client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise DefinitionStoreError(f"could not list versions of {job_type!r}: {exc}") from exc
        records = [
            DefinitionVersionSummary(
                version=int(item["version"]["N"]),
                definition_id=item["definition_id"]["S"],
                sha256=item["sha256"]["S"],
                created_at=item["created_at"]["S"],
            )
            for item in response.get("Items", [])
        ]
        return Page(records=records, next_token=encode_cursor(response.get("LastEvaluatedKey")))

    def list_for_org(
        self,
        org: str,
        *,
        limit: int = 50,
        next_token: str | None = None,
        prefix: str | None = None,
        disabled: bool | None = None,
    ) -> Page[DefinitionHeadItem]:
        """The organisation's job types by name, one page at a time (gsi1).

        Parameters
        ----------
        org:
            The caller's organisation: the only partition read.
        limit:
            At most this many heads per page (at most ``MAX_LIST_LIMIT``).
        next_token:
            The cursor of the previous page, issued by the same listing (same ``prefix``).
        prefix:
            Only job types whose name starts with it (a key condition: no other item is read).
        disabled:
            Only disabled (True) or enabled (False) job types; a filtered page may hold fewer than
            ``limit`` heads and still have a next page.

        Raises ``InvalidCursorError`` for a ``next_token`` this listing did not issue.
        """
        partition = definitions_gsi1pk(org)
        start = decode_cursor(next_token, partition_attribute="gsi1pk", partition_value=partition)
        if start is not None and prefix and not start.get("gsi1sk", {}).get("S", "").startswith(prefix):
            # DynamoDB refuses a start key outside the key condition (a 500): the cursor of another q.
            raise InvalidCursorError("next_token belongs to another listing")
        values: dict[str, Any] = {":pk": {"S": partition}}
        condition = "gsi1pk = :pk"
        if prefix:
            condition += " AND begins_with(gsi1sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": condition,
            "Limit": max(1, min(limit, MAX_LIST_LIMIT)),
        }
        if disabled is not None:
            # Heads written before `disabled` existed have no attribute: they are enabled.
            query["FilterExpression"] = (
                "disabled = :disabled"
                if disabled
                else "attribute_not_exists(disabled) OR disabled = :disabled"
            )
            values[":disabled"] = {"BOOL": disabled}
        query["ExpressionAttributeValues"] = values
        if start is not None:
            query["ExclusiveStartKey"] = start
        try:
            response = self._client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise DefinitionStoreError(f"could not list definitions: {exc}") from exc
        return Page(
            records=[DefinitionHeadItem.from_item(item) for item in response.get("Items", [])],
            next_token=encode_cursor(response.get("LastEvaluatedKey")),
        )

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DefinitionStoreError(f"could not read definition {pk!r}: {exc}") from exc
        item: dict[str, Any] | None = response.get("Item")
        return item
