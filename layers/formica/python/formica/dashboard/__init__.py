"""The dashboard: the browser's page and its static files, served by the API without a token.

The page holds no organisation data: it is the same few files for everyone. It signs in with an
API token the user pastes (kept in the tab's ``sessionStorage``) and calls the JSON API with
``Authorization: Bearer``, so the API stays stateless. Everything a tenant wrote reaches the page
as JSON and is rendered with ``textContent`` only; the Content Security Policy below allows no
inline script or style and no origin but the API's own, so a payload that slipped through would
still not run.

Only the files of ``STATIC_FILES`` are served (a fixed allow-list: a name is never a path).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

PAGE = "index.html"
"""The page served at ``/``; its scripts and style sheet are at ``/ui/<name>``."""

STATIC_FILES: dict[str, str] = {
    PAGE: "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "main.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "graph.js": "text/javascript; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "definitions.js": "text/javascript; charset=utf-8",
    "request.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""Every file the dashboard serves, with its media type."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""No inline script or style, no eval, nothing from another origin; the page cannot be framed."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The files change with each deployment and are small: revalidate rather than serve a stale script.
    "Cache-Control": "no-cache",
}
"""Sent with the page and every static file."""


class DashboardFileNotFoundError(LookupError):
    """A name that is not one of the dashboard's files."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no dashboard file {name!r}")
        self.name = name


@dataclass(frozen=True)
class StaticFile:
    """One file of the dashboard, ready to send."""

    name: str
    media_type: str
    text: str

    @property
    def headers(self) -> dict[str, str]:
        """Its Content-Type and the security headers."""
        return {"Content-Type": self.media_type, **SECURITY_HEADERS}


@cache
def static_file(name: str) -> StaticFile:
    """The dashboard file called ``name`` (one of ``STATIC_FILES``).

    Parameters
    ----------
    name
        The file's name as it appears after ``/ui/`` (``index.html`` for the page).

    Returns
    -------
    StaticFile
        Its text and media type, read once per process from the package.

    Raises
    ------
    DashboardFileNotFoundError
        ``name`` is not in the allow-list.
    """
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise DashboardFileNotFoundError(name)
    text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
    return StaticFile(name=name, media_type=media_type, text=text)
