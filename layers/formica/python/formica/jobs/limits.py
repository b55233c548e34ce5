"""The names, paths and sizes a definition must keep to: one constant each, used by ``formica
validate``, the API and the docs alike.

Names become keys: a job type is part of DynamoDB keys (``ORG#{org}#JOB#{job_type}``) and a task type
part of S3 keys (``{org}/{request_id}/{task_type}/...``). A name therefore holds letters, digits,
``.``, ``_`` and ``-`` only, starts with a letter or digit and has at most ``NAME_MAX_CHARS``
characters: no ``/`` or ``..`` segment to climb out of a prefix, no ``#`` to forge another key's
shape, nothing DynamoDB's or S3's length limits could refuse later (a 500 after the upload).
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
"""The name rule (job_type, task_type, fork_job_type, organisations): a full match of this."""
NAME_MAX_CHARS = 100
"""The longest name (ASCII only, so also its length in bytes)."""
NAME_RULE = (
    f"letters, digits, '.', '_' and '-', starting with a letter or digit ({NAME_PATTERN}), "
    f"at most {NAME_MAX_CHARS} characters"
)
"""The rule in words, for error messages."""

DEFINITION_MAX_BYTES = 128 * 1024
"""The longest definition text (UTF-8 bytes), refused before any parsing; a stored version keeps the
text and the parsed definition side by side in one DynamoDB item (at most 400 KB)."""
DEFINITION_PARSED_MAX_BYTES = 256 * 1024
"""The longest parsed definition as stored (JSON, YAML aliases expanded), so that the text and the
parsed form together stay under DynamoDB's 400 KB item limit."""
MAX_TASKS = 100
"""formicary's own limit (maxTasksPerJob)."""


def definition_size_problem(size: int) -> str | None:
    """Why a definition text of ``size`` UTF-8 bytes is refused, or None: THE message of the text
    limit, in ``formica validate`` and in the API's 413 alike."""
    if size <= DEFINITION_MAX_BYTES:
        return None
    return (
        f"definition is {size} bytes; the limit is {DEFINITION_MAX_BYTES} "
        f"({DEFINITION_MAX_BYTES // 1024} KiB)"
    )


_NAME = re.compile(NAME_PATTERN)
_SHOWN_CHARS = 60


def shown(value: str) -> str:
    """A user's value quoted for a message: control characters escaped, long values cut."""
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"


def is_name(value: str) -> bool:
    """True when ``value`` follows the name rule."""
    return len(value) <= NAME_MAX_CHARS and _NAME.fullmatch(value) is not None


def name_problem(field: str, value: str) -> str | None:
    """Why ``value`` is not a valid ``field`` (job_type, task_type, ...), or None."""
    if is_name(value):
        return None
    return f"{field} {shown(value)} is not a valid name: use {NAME_RULE}"


def artifact_path_problem(path: str) -> str | None:
    """Why an ``artifacts.paths`` entry may leave the working directory, or None.

    An entry is a file, a directory or a glob relative to the working directory: not empty, not
    absolute, not starting with ``~``, with no ``..`` segment (``\\`` counts as ``/``).
    """
    cleaned = path.strip()
    if not cleaned:
        return "an artifact path is empty: name a file, directory or glob inside the working directory"
    posix = PurePosixPath(cleaned.replace("\\", "/"))
    if posix.is_absolute() or cleaned.startswith("~"):
        return f"artifact path {shown(path)} must be relative to the working directory"
    if ".." in posix.parts:
        return f"artifact path {shown(path)} must not contain '..': it would leave the working directory"
    return None


# -- task outputs ----------------------------------------------------------------------------------
# Outputs ride on the job request's DynamoDB item (the walk state, the step's outbox, a recorded
# attempt) and on each task execution item: these bounds keep the request item far below DynamoDB's
# 400 KB whatever the tasks publish (formica.engine.outputs applies them; docs/job-language.md,
# "Task outputs").

OUTPUT_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
"""An output's name: a template identifier and an environment variable name."""
OUTPUT_NAME_MAX_CHARS = 64
"""The longest output name."""
OUTPUT_VALUE_MAX_BYTES = 4096
"""The longest output value (UTF-8 bytes)."""
OUTPUTS_PER_TASK_MAX = 32
"""The most outputs one task publishes."""
TASK_OUTPUTS_MAX_BYTES = 16 * 1024
"""One task's outputs together, as stored (JSON-encoded names and values)."""
JOB_OUTPUTS_MAX_BYTES = 64 * 1024
"""All tasks' outputs together on the request item, as stored; the oldest task's go first."""
OUTPUTS_FILE_MAX_BYTES = 16 * 1024
"""The longest ``$FORMICA_OUTPUTS`` file a SHELL task may write."""

# -- fan_out ---------------------------------------------------------------------------------------
# A fan_out task forks one child job per item of a JSON array (docs/job-language.md, "fan_out").

FAN_OUT_MAX_ITEMS = 1000
"""The most items a fan_out source may hold: one child request each."""
FAN_OUT_DEFAULT_PARALLEL = 10
"""``fan_out.max_parallel`` when it is not written: children running at once."""
FAN_OUT_MAX_PARALLEL = 100
"""The largest ``fan_out.max_parallel``."""
FAN_OUT_ITEM_VAR_MAX_CHARS = 32
"""The longest ``fan_out.item_var``, so ``{item_var}_{i}_status`` stays an output name
(``OUTPUT_NAME_MAX_CHARS``) for every index below ``FAN_OUT_MAX_ITEMS``."""

PARAMS_MAX_BYTES = 64 * 1024
"""A request's params as compact JSON (``params_size``): the request item holds them, and DynamoDB
items stop at 400 KB. A submit over it is 413; a fork whose variables pass it fails ERR_FORK_JOB."""


def params_size(params: dict[str, object]) -> int:
    """How many bytes ``params`` take as the request item stores them (compact JSON, ASCII)."""
    return len(json.dumps(params, separators=(",", ":"), default=str))
