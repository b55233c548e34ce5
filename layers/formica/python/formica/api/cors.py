"""CORS on the API's own answers: which browser origins may read them.

API Gateway answers the preflight (OPTIONS) itself when the stack sets ``cors_origins``; the real
request's answer comes from the API Lambda, so the Lambda must add ``Access-Control-Allow-Origin``
or the browser hides the response. The allowed origins are ``FORMICA_CORS_ORIGINS`` (the stack
writes it from the same ``cors_origins`` context value): comma-separated ``scheme://host[:port]``
values, or ``*``. Unset: no CORS header at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

EXPOSED_HEADERS = "Location"
"""A browser script may read these response headers (the artifact download's redirect target)."""


def parse_origins(value: str | None) -> tuple[str, ...]:
    """``"https://a.example, https://b.example"`` -> the origins, without blanks or trailing slashes."""
    if not value:
        return ()
    return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())


def allowed_origin(origin: str | None, allowed: Iterable[str]) -> str | None:
    """The value of Access-Control-Allow-Origin for a request from ``origin``, or None (no header).

    ``*`` allows every origin (answered as ``*``: the API authenticates with a bearer header, never
    cookies, so no credentials mode is involved). Otherwise the request's Origin is echoed when it is
    one of the allowed origins, compared without case differences in scheme and host.
    """
    origins = tuple(allowed)
    if "*" in origins:
        return "*"
    if not origin:
        return None
    wanted = origin.strip().rstrip("/").lower()
    return origin.strip() if any(wanted == candidate.lower() for candidate in origins) else None


def cors_headers(origin: str | None, allowed: Iterable[str]) -> dict[str, str]:
    """The headers to add to a response for a request from ``origin`` (empty: none)."""
    value = allowed_origin(origin, allowed)
    if value is None:
        return {}
    headers = {"Access-Control-Allow-Origin": value, "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    if value != "*":
        headers["Vary"] = "Origin"  # caches must not serve one origin's answer to another
    return headers


def request_origin(event: Mapping[str, Any]) -> str | None:
    """The Origin header of an API Gateway proxy event (header names are case-insensitive)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == "origin" and isinstance(value, str):
            return value
    return None


def add_cors_headers(result: MutableMapping[str, Any], headers: Mapping[str, str]) -> None:
    """Put ``headers`` on a proxy result, in ``multiValueHeaders`` when it uses them (in place)."""
    if not headers:
        return
    multi = result.get("multiValueHeaders")
    if isinstance(multi, dict):
        for name, value in headers.items():
            multi[name] = [value]
        single = result.get("headers")
        if isinstance(single, dict):
            for name in headers:
                single.pop(name, None)
        return
    single = result.setdefault("headers", {})
    if isinstance(single, dict):
        single.update(headers)
