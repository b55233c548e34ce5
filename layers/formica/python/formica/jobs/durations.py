"""Go-style durations (``15s``, ``1m30s``, ``2h``, ``500ms``) as seconds.

formicary writes durations with Go's ``time.ParseDuration`` syntax; YAML may also carry a bare
number, which formicary reads as nanoseconds but people mean as seconds, so a bare number is seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


class DurationError(ValueError):
    """A duration that is not a Go duration."""


def parse_duration(value: Any) -> float:
    """Return the duration in seconds; raise DurationError naming the bad text."""
    if isinstance(value, bool):
        raise DurationError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise DurationError(f"negative duration {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise DurationError(f"invalid duration {value!r}")
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise DurationError(f"invalid duration {value!r}: use Go forms such as 15s, 1m30s, 2h")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go form of a duration in seconds (``90.0`` -> ``1m30s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
