"""CORS: the API Lambda's answers carry Access-Control-Allow-Origin for allowed browser origins only."""

from __future__ import annotations

import pytest
from formica.api.cors import allowed_origin, parse_origins
from formica.settings import reset_settings

from tests.integration.api.conftest import ApiWorld

APP = "https://app.example.com"


@pytest.fixture
def cors_world(world: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> ApiWorld:
    monkeypatch.setenv("FORMICA_CORS_ORIGINS", f"{APP}, https://ops.example.com:8443")
    reset_settings()
    return world


def test_an_allowed_origin_is_echoed_on_success_and_error_answers(cors_world: ApiWorld) -> None:
    # Given the API configured for two origins
    # When a browser on one of them calls a protected route, a missing resource and the health check
    listing = cors_world.call("GET", "/api/jobs/definitions", headers={"Origin": APP})
    missing = cors_world.call("GET", "/api/jobs/requests/nope", headers={"Origin": APP})
    health = cors_world.call(
        "GET", "/api/health", token=None, headers={"Origin": "https://ops.example.com:8443"}
    )

    # Then every answer lets that origin read it, and says it varies by origin
    assert (listing.status, missing.status, health.status) == (200, 404, 200)
    assert listing.header("Access-Control-Allow-Origin") == APP
    assert missing.header("Access-Control-Allow-Origin") == APP
    assert health.header("Access-Control-Allow-Origin") == "https://ops.example.com:8443"
    assert listing.header("Vary") == "Origin"
    assert listing.header("Access-Control-Expose-Headers") == "Location"


def test_another_origin_gets_no_cors_header(cors_world: ApiWorld) -> None:
    response = cors_world.call("GET", "/api/jobs/definitions", headers={"Origin": "https://evil.example.com"})

    assert response.status == 200  # the API answers; the browser keeps the answer from the page
    assert response.header("Access-Control-Allow-Origin") is None


def test_without_configured_origins_no_cors_header_is_sent(world: ApiWorld) -> None:
    response = world.call("GET", "/api/jobs/definitions", headers={"Origin": APP})

    assert response.status == 200
    assert response.header("Access-Control-Allow-Origin") is None


def test_a_wildcard_allows_every_origin(world: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORMICA_CORS_ORIGINS", "*")
    reset_settings()

    response = world.call("GET", "/api/health", token=None, headers={"Origin": "https://any.example.org"})

    assert response.header("Access-Control-Allow-Origin") == "*"
    assert response.header("Vary") is None


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://APP.EXAMPLE.COM", "HTTPS://APP.EXAMPLE.COM"),
        ("https://app.example.com.evil.net", None),
        ("http://app.example.com", None),
        ("null", None),
        (None, None),
        ("", None),
    ],
)
def test_origin_matching_is_exact(origin: str | None, expected: str | None) -> None:
    assert allowed_origin(origin, parse_origins("https://app.example.com/")) == expected
