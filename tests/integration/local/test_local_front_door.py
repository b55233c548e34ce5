"""The front door over a real socket, in front of a trivial handler (no moto needed)."""

from __future__ import annotations

import base64
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from formica.local.front_door import FrontDoor
from formica.local.gateway import ApiGateway


def echo_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["path"] == "/api/binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(bytes(range(256))).decode(),
            "isBase64Encoded": True,
        }
    if event["path"] == "/api/redirect":
        return {"statusCode": 302, "headers": {"Location": "http://127.0.0.1:1/elsewhere"}, "body": ""}
    headers = {key.lower(): value for key, value in (event["headers"] or {}).items()}
    return {
        "statusCode": 201,
        "multiValueHeaders": {"X-Seen": ["one", "two"]},
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {
                "method": event["httpMethod"],
                "query": event["multiValueQueryStringParameters"],
                "body": event["body"],
                "base64": event["isBase64Encoded"],
                "content_type": headers.get("content-type"),
            }
        ),
    }


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    door = FrontDoor("127.0.0.1", 0)
    door.start(ApiGateway(api_handler=echo_handler, authorizer_handler=None))
    try:
        yield f"http://127.0.0.1:{door.port}"
    finally:
        door.stop()


def test_post_body_and_multi_value_query_reach_the_handler(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/api/echo?a=1&a=2", content=b"job_type: x\n", headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201
    assert response.headers.get_list("x-seen") == ["one", "two"]
    payload = response.json()
    assert payload == {
        "method": "POST",
        "query": {"a": ["1", "2"]},
        "body": "job_type: x\n",
        "base64": False,
        "content_type": "application/yaml",
    }


def test_binary_request_and_response_bodies_round_trip(base_url: str) -> None:
    garbage = bytes([0xFF, 0x00, 0xC3, 0x28])
    sent = httpx.put(f"{base_url}/api/echo", content=garbage).json()
    assert sent["base64"] is True
    assert base64.b64decode(sent["body"]) == garbage
    received = httpx.get(f"{base_url}/api/binary")
    assert received.content == bytes(range(256))


def test_chunked_request_body_is_read(base_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"part one, "
        yield b"part two"

    payload = httpx.post(f"{base_url}/api/echo", content=chunks()).json()
    assert payload["body"] == "part one, part two"


def test_redirects_are_passed_through(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/redirect", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "http://127.0.0.1:1/elsewhere"


def test_paths_outside_the_api_are_refused_like_the_deployed_api(base_url: str) -> None:
    response = httpx.get(f"{base_url}/elsewhere")
    assert response.status_code == 404
    assert response.json() == {"error": "NOT_FOUND", "message": "no such route", "details": []}


def _answer(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(timeout)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer, time.monotonic() - started


@pytest.fixture
def strict_door() -> Iterator[int]:
    door = FrontDoor("127.0.0.1", 0, body_idle_seconds=0.5, body_total_seconds=1.5)
    door.start(ApiGateway(api_handler=echo_handler, authorizer_handler=None))
    try:
        yield door.port
    finally:
        door.stop()


def test_a_body_trickled_byte_by_byte_is_cut_at_the_total_bound(strict_door: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_door)) as sock:
        sock.sendall(b"POST /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        # A byte every 0.3 s (never idle for 0.5 s) until the server answers
        while time.monotonic() - started < 3.0:
            sock.sendall(b"x")
            if select.select([sock], [], [], 0.3)[0]:
                break
        answer, _ = _answer(sock, 5)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert elapsed < 3.5


@pytest.mark.parametrize(
    "partial",
    [
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"Content-Length: 5\r\n\r\n",
    ],
)
def test_a_stalled_body_gets_408_after_the_idle_bound(strict_door: int, partial: bytes) -> None:
    with socket.create_connection(("127.0.0.1", strict_door)) as sock:
        sock.sendall(b"POST /api/echo HTTP/1.1\r\nHost: h\r\n" + partial)
        answer, elapsed = _answer(sock, 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"REQUEST_TIMEOUT"' in answer
    assert elapsed < 1.5


def test_a_complete_body_after_a_short_pause_is_served(strict_door: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_door)) as sock:
        sock.sendall(
            b"POST /api/echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhe"
        )
        time.sleep(0.3)
        sock.sendall(b"llo")
        answer, _ = _answer(sock, 5)
    assert answer.startswith(b"HTTP/1.1 201 "), answer
    assert b'"body": "hello"' in answer


def test_unknown_methods_reach_the_gateway_and_keep_the_connection_in_step(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        for method in ("TRACE", "PROPFIND", "FOO"):
            response = client.request(method, "/api/echo", content=b"a body to skip")
            assert response.status_code == 404
            assert response.json() == {"error": "NOT_FOUND", "message": "no such route", "details": []}
        assert client.get("/api/echo").status_code == 201
