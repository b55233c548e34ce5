"""A running attempt's log, readable while it runs: chunk objects in S3, read back by byte offset (D35).

S3 cannot append. While an attempt runs, its runner flushes what it wrote since its last flush as
one chunk object under ``{org}/{request_id}/{task_type}/logs/live/attempt-{n}/``, named
``{end:012d}-{start:012d}.log`` after the byte range of the attempt's log it holds. A reader asking
for the bytes from offset ``since`` lists with StartAfter ``{since:012d}-~``: the first chunk listed
is the one holding byte ``since``, and no chunk before it is listed or read. When the attempt ends,
its whole log is stored at ``schema.log_key`` as before and the chunks are deleted; the whole log
begins with the same bytes the chunks held, so an offset read from the chunks stays valid.

A running instance of a task fan-out streams the same way under its own prefix
(``instance_live_prefix``), and its whole log replaces its chunks when it ends.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from formica.store.blobs import BlobNotFoundError, BlobStore, BlobStoreError
from formica.store.schema import task_prefix

logger = logging.getLogger(__name__)

LOG_CONTENT_TYPE = "text/plain; charset=utf-8"
OFFSET_DIGITS = 12
"""Zero-padded offsets sort as numbers (a log never reaches 10^12 bytes: it is capped)."""
CHUNKS_PER_READ = 64
"""A read returns the text of at most this many chunks; the reader asks again for the rest."""
_CHUNK_NAME = re.compile(r"/(\d{12})-(\d{12})\.log$")


def live_prefix(org: str, request_id: str, task_type: str, attempt: int) -> str:
    """``{org}/{request_id}/{task_type}/logs/live/attempt-{n}/``: one running attempt's chunks."""
    return f"{task_prefix(org, request_id, task_type)}logs/live/attempt-{attempt}/"


def instance_live_prefix(org: str, request_id: str, task_type: str, step: int, index: int) -> str:
    """``{org}/{request_id}/{task_type}/logs/live/instances/step-{step}/item-{index}/``: the chunks of
    one running instance of a task fan-out (item ``index`` of the fan-out at ``step``). Under
    ``logs/live/`` with every live chunk, so whoever may discard live chunks (``*/logs/live/*``)
    may discard these; ``instances/`` keeps them apart from the attempts' ``attempt-{n}/``, and the
    trailing slash item 1's from item 10's."""
    return f"{task_prefix(org, request_id, task_type)}logs/live/instances/step-{step}/item-{index}/"


def chunk_key(prefix: str, start: int, end: int) -> str:
    """The chunk under ``prefix`` (``live_prefix``) holding bytes ``[start, end)`` of the attempt's log."""
    return f"{prefix}{end:0{OFFSET_DIGITS}d}-{start:0{OFFSET_DIGITS}d}.log"


@dataclass(frozen=True)
class LiveRead:
    """What a read of a running attempt's chunks found: ``data`` from ``since`` to ``end``."""

    data: bytes
    end: int
    more: bool  # chunks beyond CHUNKS_PER_READ were left for the next read


class TaskLogs:
    """The running attempts' chunks of one blob store (written by runners, read by the API)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def write_chunk(self, prefix: str, start: int, data: bytes) -> None:
        """Store bytes ``[start, start + len(data))`` of the log of the attempt whose chunks are under
        ``prefix`` (``live_prefix``): one PUT."""
        key = chunk_key(prefix, start, start + len(data))
        self._blobs.put_bytes(key, data, LOG_CONTENT_TYPE)

    def read_live(self, prefix: str, since: int) -> LiveRead:
        """The bytes from ``since`` that the chunks under ``prefix`` hold so far (one LIST, a GET per
        chunk)."""
        listed = self._blobs.list_keys(prefix, start_after=f"{prefix}{since:0{OFFSET_DIGITS}d}-~")
        parts: list[bytes] = []
        end = since
        for key, _size in listed[:CHUNKS_PER_READ]:
            match = _CHUNK_NAME.search(key)
            if match is None:
                continue
            chunk_end, chunk_start = int(match.group(1)), int(match.group(2))
            if chunk_start > end:
                break  # a chunk not (yet) listed in between: never skip bytes
            try:
                data = self._blobs.get_bytes(key)
            except BlobNotFoundError:
                break  # the attempt ended and its chunks were deleted: its whole log is stored
            parts.append(data[end - chunk_start :])
            end = chunk_end
        return LiveRead(data=b"".join(parts), end=end, more=len(listed) > CHUNKS_PER_READ)

    def discard_live(self, prefix: str) -> None:
        """Delete an attempt's chunks once its whole log is stored (best effort: a failure leaves
        chunks that no reader lists again, since the whole log is read first)."""
        try:
            self._blobs.delete_prefix(prefix)
        except BlobStoreError as exc:
            logger.warning("live log chunks not deleted", extra={"prefix": prefix, "error": str(exc)})
