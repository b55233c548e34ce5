"""Task outputs: the values a task publishes for the tasks after it (the contract; pure).

A task publishes outputs: an HTTP task its ``status``, ``url`` and ``body``; a SHELL task the
``NAME=value`` lines its script writes to the file named by ``$FORMICA_OUTPUTS``; a task that uploaded
artifacts also publishes ``ArtifactURL_<n>``, the n-th artifact's download URL (the walk presigns
them, ``artifact_url_outputs`` bounds them). The walk keeps them
per task on the request (``WalkState.outputs``: task_type -> name -> value, the task that published
last at the end) and every later task reads them under these names (docs/job-language.md,
"Task outputs"):

- ``<task>_<Name>`` (formicary's form for a task's context, e.g. ``split_ArtifactURL_1``) for a task
  whose name is a template identifier (letters, digits and ``_``, not starting with a digit);
- ``Outputs``, a map task_type -> name -> value, for every task: ``{{ index .Outputs "call-plugin" "x" }}``
  reads a task whose name holds ``-`` or ``.``. Names are not mangled (``call-plugin`` -> ``call_plugin``)
  because two tasks (``a-b``, ``a_b``) would then share one name;
- the bare ``<Name>``: the value of the task that published it last (compatibility with earlier
  Formica definitions: ``{{ .status }}``, ``{{ .body }}``).

The same names, except ``Outputs``, are exported to the environment of SHELL and container tasks.

Bounds (``formica.jobs.limits``): a name matches ``OUTPUT_NAME_PATTERN`` (at most
``OUTPUT_NAME_MAX_CHARS``), a value has at most ``OUTPUT_VALUE_MAX_BYTES``, a task publishes at most
``OUTPUTS_PER_TASK_MAX`` outputs of ``TASK_OUTPUTS_MAX_BYTES`` together, and all tasks' outputs stay
under ``JOB_OUTPUTS_MAX_BYTES`` (the oldest task's are dropped first), sizes counted as stored (JSON).
Runners check their outputs against these bounds and fail or warn with the reason; ``bounded`` is the
walk's last guard, so whatever reaches the request item is bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from formica.jobs.limits import (
    JOB_OUTPUTS_MAX_BYTES,
    OUTPUT_NAME_MAX_CHARS,
    OUTPUT_NAME_PATTERN,
    OUTPUT_VALUE_MAX_BYTES,
    OUTPUTS_FILE_MAX_BYTES,
    OUTPUTS_PER_TASK_MAX,
    TASK_OUTPUTS_MAX_BYTES,
)

OUTPUTS_MAP = "Outputs"
"""The template variable holding every task's outputs by task name."""
OUTPUTS_FILE_VARIABLE = "FORMICA_OUTPUTS"
"""The environment variable naming the file a SHELL task writes its outputs to."""

_NAME = re.compile(OUTPUT_NAME_PATTERN)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

OUTPUT_NAME_RULE = (
    f"letters, digits and '_', not starting with a digit ({OUTPUT_NAME_PATTERN}), "
    f"at most {OUTPUT_NAME_MAX_CHARS} characters"
)


class OutputsFileError(ValueError):
    """A ``$FORMICA_OUTPUTS`` file breaks a rule; ``line`` is 1-based (None: the whole file)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


def is_output_name(name: str) -> bool:
    """True when ``name`` may name an output."""
    return len(name) <= OUTPUT_NAME_MAX_CHARS and _NAME.fullmatch(name) is not None


def is_identifier(name: str) -> bool:
    """True when ``name`` is a template identifier and an environment variable name."""
    return _IDENTIFIER.fullmatch(name) is not None


def stored_size(name: str, value: str) -> int:
    """The bytes one output takes in the stored JSON (``"name":"value",``)."""
    encoded = json.dumps(name, ensure_ascii=False) + json.dumps(value, ensure_ascii=False)
    return len(encoded.encode("utf-8", errors="surrogatepass")) + 2


def outputs_size(outputs: Mapping[str, str]) -> int:
    """The bytes a task's outputs take in the stored JSON."""
    return sum(stored_size(name, value) for name, value in outputs.items()) + 2


def _cut(value: str, max_bytes: int) -> str:
    encoded = value.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return value
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class Bounded:
    """Outputs kept within the bounds, and what was dropped or cut to keep them there."""

    outputs: dict[str, str]
    notes: list[str]


def bounded(outputs: Mapping[str, Any]) -> Bounded:
    """One task's outputs within the per-task bounds, in order; each drop or cut is noted.

    Parameters
    ----------
    outputs:
        Name -> value as a runner (or an untrusted answer) reported them; values are made text.

    Returns
    -------
    Bounded
        The outputs kept and one note per rule applied.
    """
    kept: dict[str, str] = {}
    notes: list[str] = []
    size = 2
    for name, raw in outputs.items():
        key = str(name)
        if not is_output_name(key):
            notes.append(f"output {key[:80]!r} dropped: an output name uses {OUTPUT_NAME_RULE}")
            continue
        if len(kept) >= OUTPUTS_PER_TASK_MAX and key not in kept:
            notes.append(f"outputs past the first {OUTPUTS_PER_TASK_MAX} dropped")
            break
        value = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        cut = _cut(value, OUTPUT_VALUE_MAX_BYTES)
        if cut != value:
            notes.append(f"output {key} cut to {OUTPUT_VALUE_MAX_BYTES} bytes")
        grown = size + stored_size(key, cut) - (stored_size(key, kept[key]) if key in kept else 0)
        if grown > TASK_OUTPUTS_MAX_BYTES:
            notes.append(
                f"output {key} dropped: the task's outputs would pass {TASK_OUTPUTS_MAX_BYTES} bytes"
            )
            continue
        kept[key] = cut
        size = grown
    return Bounded(kept, notes)


ARTIFACT_URL_PREFIX = "ArtifactURL_"
"""``ArtifactURL_<n>``: the download URL of the n-th artifact a task uploaded (formicary's output)."""


def artifact_url_outputs(outputs: Mapping[str, str], urls: Sequence[str], uploaded: int) -> Bounded:
    """A task's outputs with ``ArtifactURL_1..N`` added for its uploaded artifacts, in upload order.

    Parameters
    ----------
    outputs:
        The outputs the task published itself; one it wrote under an ``ArtifactURL_<n>`` name wins.
    urls:
        The download URLs of the first artifacts, in upload order (a caller presigns no more than
        ``OUTPUTS_PER_TASK_MAX``).
    uploaded:
        How many artifacts the task uploaded (``len(urls)`` or more).

    Returns
    -------
    Bounded
        The outputs within the per-task bounds (``OUTPUTS_PER_TASK_MAX`` outputs,
        ``OUTPUT_VALUE_MAX_BYTES`` a value, ``TASK_OUTPUTS_MAX_BYTES`` together), and one note naming
        the first URL that did not fit and why.
    """
    kept = dict(outputs)
    size = outputs_size(kept)
    for number in range(1, uploaded + 1):
        name = f"{ARTIFACT_URL_PREFIX}{number}"
        if name in kept:
            continue
        url = urls[number - 1] if number <= len(urls) else None
        reason: str | None = None
        if url is None or len(kept) >= OUTPUTS_PER_TASK_MAX:
            reason = f"a task publishes at most {OUTPUTS_PER_TASK_MAX} outputs (OUTPUTS_PER_TASK_MAX)"
        elif len(url.encode("utf-8")) > OUTPUT_VALUE_MAX_BYTES:
            reason = f"the URL is over {OUTPUT_VALUE_MAX_BYTES} bytes (OUTPUT_VALUE_MAX_BYTES)"
        elif size + stored_size(name, url) > TASK_OUTPUTS_MAX_BYTES:
            reason = f"the task's outputs would pass {TASK_OUTPUTS_MAX_BYTES} bytes (TASK_OUTPUTS_MAX_BYTES)"
        if url is None or reason is not None:
            names = name if number == uploaded else f"{name}..{ARTIFACT_URL_PREFIX}{uploaded}"
            note = f"{names} not published: {reason}"
            return Bounded(kept, [note])
        kept[name] = url
        size += stored_size(name, url)
    return Bounded(kept, [])


def publish(job_outputs: dict[str, dict[str, str]], task_type: str, outputs: Mapping[str, str]) -> list[str]:
    """Keep ``task_type``'s outputs as the latest (in place), dropping the oldest tasks' outputs
    while all of them pass ``JOB_OUTPUTS_MAX_BYTES``. Returns the tasks whose outputs were dropped."""
    job_outputs.pop(task_type, None)
    job_outputs[task_type] = dict(outputs)
    dropped: list[str] = []
    total = sum(outputs_size(values) + len(name) + 4 for name, values in job_outputs.items())
    while len(job_outputs) > 1 and total > JOB_OUTPUTS_MAX_BYTES:
        oldest = next(iter(job_outputs))
        total -= outputs_size(job_outputs.pop(oldest)) + len(oldest) + 4
        dropped.append(oldest)
    return dropped


def qualified_name(task_type: str, name: str) -> str | None:
    """``<task>_<Name>``, or None when the task's name is not a template identifier."""
    return f"{task_type}_{name}" if is_identifier(task_type) else None


def environment_variables(job_outputs: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Outputs as environment variables: the bare names (the latest task's value wins), then
    ``<task>_<Name>`` for tasks whose name is an identifier."""
    variables: dict[str, str] = {}
    for values in job_outputs.values():
        variables.update({name: value for name, value in values.items() if is_identifier(name)})
    for task_type, values in job_outputs.items():
        for name, value in values.items():
            qualified = qualified_name(task_type, name)
            if qualified is not None and is_identifier(name):
                variables[qualified] = value
    return variables


def template_variables(job_outputs: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Outputs as template variables: ``environment_variables`` plus the ``Outputs`` map."""
    variables: dict[str, Any] = environment_variables(job_outputs)
    variables[OUTPUTS_MAP] = {task_type: dict(values) for task_type, values in job_outputs.items()}
    return variables


def parse_outputs_file(data: bytes) -> dict[str, str]:
    """The outputs a SHELL task wrote to ``$FORMICA_OUTPUTS``: one ``NAME=value`` per line.

    Blank lines and lines starting with ``#`` are ignored; the value is the rest of the line as
    written (no quotes removed); a name written twice keeps its last value. Raises
    ``OutputsFileError`` naming the line and the rule for: a file over ``OUTPUTS_FILE_MAX_BYTES``,
    text that is not UTF-8, a line with no ``=``, a name that breaks the name rule, a value over
    ``OUTPUT_VALUE_MAX_BYTES``, more than ``OUTPUTS_PER_TASK_MAX`` names, or outputs over
    ``TASK_OUTPUTS_MAX_BYTES`` as stored.
    """
    if len(data) > OUTPUTS_FILE_MAX_BYTES:
        raise OutputsFileError(f"the file is over {OUTPUTS_FILE_MAX_BYTES} bytes (OUTPUTS_FILE_MAX_BYTES)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OutputsFileError(f"the file is not UTF-8 text (byte {exc.start})") from None
    outputs: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise OutputsFileError("expected NAME=value", number)
        if not is_output_name(name):
            raise OutputsFileError(f"output name {name[:80]!r} is not valid: use {OUTPUT_NAME_RULE}", number)
        if len(value.encode("utf-8")) > OUTPUT_VALUE_MAX_BYTES:
            raise OutputsFileError(
                f"the value of {name} is over {OUTPUT_VALUE_MAX_BYTES} bytes (OUTPUT_VALUE_MAX_BYTES)", number
            )
        outputs[name] = value
        if len(outputs) > OUTPUTS_PER_TASK_MAX:
            raise OutputsFileError(f"more than {OUTPUTS_PER_TASK_MAX} outputs (OUTPUTS_PER_TASK_MAX)", number)
    if outputs_size(outputs) > TASK_OUTPUTS_MAX_BYTES:
        raise OutputsFileError(
            f"the outputs take over {TASK_OUTPUTS_MAX_BYTES} bytes as stored (TASK_OUTPUTS_MAX_BYTES)"
        )
    return outputs
