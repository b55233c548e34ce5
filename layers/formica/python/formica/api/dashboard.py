"""The dashboard's routes: its files (public, no token) and an artifact's link for the browser.

A browser cannot follow the download route's redirect with the token attached and then read a
presigned URL on another origin, so the page asks for the link as JSON and opens it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from formica.api.errors import ResourceNotFoundError
from formica.api.requests import artifact_download_url
from formica.api.services import ApiServices
from formica.dashboard import PAGE, DashboardFileNotFoundError, StaticFile, static_file

__all__ = ["PAGE", "ArtifactLinkResponse", "artifact_link", "dashboard_file"]


class ArtifactLinkResponse(BaseModel):
    """A short-lived presigned URL of one artifact, for a browser to open."""

    url: str = Field(description="a presigned GET, usable without a token until it expires")
    expires_in_seconds: int


def dashboard_file(name: str = PAGE) -> StaticFile:
    """The dashboard file ``name`` (the page by default); NOT_FOUND for any other name."""
    try:
        return static_file(name)
    except DashboardFileNotFoundError as exc:
        raise ResourceNotFoundError(str(exc)) from exc


def artifact_link(services: ApiServices, org: str, request_id: str, artifact_id: str) -> ArtifactLinkResponse:
    """The artifact's presigned URL as JSON (checked to be the organisation's, as the download route)."""
    url = artifact_download_url(services, org, request_id, artifact_id)
    return ArtifactLinkResponse(url=url, expires_in_seconds=services.presign_seconds)
