"""``formica status`` prints the request's cost: its total, then each service's quantities and dollars."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import pytest
from formica.cli import main
from formica.cli import remote as remote_module
from formica.cli.client import ClientConfig, FormicaClient

COST = {
    "transitions": 8,
    "lambda_invocations": 3,
    "lambda_gb_seconds": 0.3,
    "lambdas": [{"function": "shell_task", "invocations": 3, "gb_seconds": 0.3}],
    "fargate_vcpu_seconds": 15.0,
    "fargate_gb_seconds": 30.0,
    "dynamodb_read_units": 10,
    "dynamodb_write_units": 20,
    "s3_write_requests": 3,
    "s3_read_requests": 2,
    "dollars": {
        "transitions": 0.0002,
        "lambdas": 0.0000046,
        "fargate": 0.0002057,
        "dynamodb": 0.00001375,
        "s3": 0.0000158,
        "total": 0.00043986,
    },
    "prices_region": "us-east-1",
    "prices_as_of": "2025-01-15",
}


def test_status_prints_the_cost(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    request: dict[str, Any] = {
        "id": "r1",
        "job_type": "three-steps",
        "job_version": 1,
        "job_state": "COMPLETED",
        "created_at": "2026-01-01T00:00:00Z",
        "tasks": [],
        "cost": COST,
    }

    def client(_args: argparse.Namespace) -> FormicaClient:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=request))
        return FormicaClient(ClientConfig(server="http://api.test", token="fmc_x"), transport=transport)

    monkeypatch.setattr(remote_module, "_client", client)

    assert main(["status", "r1"]) == 0

    out = capsys.readouterr().out
    assert "cost: $0.000440 at us-east-1 list prices (as of 2025-01-15)\n" in out
    assert "  state transitions  8 " in out
    assert "  Lambda             3 calls, 0.300 GB-s" in out
    assert "15.0 vCPU-s, 30.0 GB-s" in out
    assert "10 read, 20 write units" in out
    assert out.rstrip().endswith("$0.000016")
