"""A fan_out task's items: its rendered ``fan_out.source`` read as a JSON array.

Pure: the run time renders the source (with the request's params and earlier tasks' outputs) and
hands the text here; a refusal is a ``FanOutSourceError`` whose message says what the text was
and what was expected, so the task fails with a reason its author can act on.
"""

from __future__ import annotations

import json
from typing import Any

from formica.jobs.limits import FAN_OUT_MAX_ITEMS, shown

_EXPECTED = 'it must render to a JSON array, such as ["a", "b"]'
_JSON_KINDS = {dict: "a JSON object", str: "a JSON string", bool: "a JSON boolean", type(None): "null"}


class FanOutSourceError(ValueError):
    """The rendered ``fan_out.source`` is not a JSON array of at most ``FAN_OUT_MAX_ITEMS`` items."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def fan_out_items(source: str) -> list[Any]:
    """The items of a rendered ``fan_out.source``: one child job each, in order.

    Parameters
    ----------
    source
        The source as rendered: the text of a JSON array (surrounding whitespace ignored).

    Returns
    -------
    list[Any]
        The array's items, as JSON values (an empty array gives no items: no child is forked).

    Raises
    ------
    FanOutSourceError
        When the text is empty, not JSON (``NaN`` and ``Infinity`` included), nested too deeply to
        read, not an array, or an array of more than ``FAN_OUT_MAX_ITEMS`` items.
    """
    text = source.strip()
    if not text:
        raise FanOutSourceError(f"fan_out.source rendered empty: {_EXPECTED}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise FanOutSourceError(
            f"fan_out.source {shown(text)} is not JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): {_EXPECTED}"
        ) from exc
    except ValueError as exc:
        raise FanOutSourceError(f"fan_out.source {shown(text)} is not JSON ({exc}): {_EXPECTED}") from exc
    except RecursionError as exc:
        raise FanOutSourceError(f"fan_out.source is nested too deeply to read: {_EXPECTED}") from exc
    if not isinstance(value, list):
        kind = _JSON_KINDS.get(type(value), "a JSON number")
        raise FanOutSourceError(f"fan_out.source {shown(text)} is {kind}, not an array: {_EXPECTED}")
    if len(value) > FAN_OUT_MAX_ITEMS:
        raise FanOutSourceError(
            f"fan_out.source has {len(value)} items; the limit is {FAN_OUT_MAX_ITEMS} (one child job each)"
        )
    return value
