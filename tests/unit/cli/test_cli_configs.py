"""``formica configs set|list|delete`` through ``formica.cli.main`` against an in-memory configs API."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import httpx
import pytest
from formica.cli import main
from formica.cli import remote as remote_module
from formica.cli.client import ClientConfig, FormicaClient

SECRET = "s3cret-Value-42"


class ConfigsApi:
    """The config routes of one organisation ("acme"), keeping configs per scope; records requests."""

    def __init__(self) -> None:
        self.scopes: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []
        self.token_scope_admin = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content) if request.content else {}
        self.bodies.append(body)
        path = request.url.path
        if path == "/api/auth/tokens":
            if not self.token_scope_admin:
                return httpx.Response(403, json={"error": "FORBIDDEN", "message": "needs the admin scope"})
            return httpx.Response(200, json={"records": [{"id": "t1", "name": "cli", "org": "acme"}]})
        base, _, name = path.partition("/configs")
        if base.startswith("/api/orgs/") and base != "/api/orgs/acme":
            return httpx.Response(404, json={"error": "NOT_FOUND", "message": "organisation not found"})
        configs = self.scopes.setdefault(base, {})
        name = name.lstrip("/")
        if request.method == "GET" and not name:
            return httpx.Response(200, json={"records": [self._shown(c) for _, c in sorted(configs.items())]})
        if request.method == "POST":
            if body["name"] in configs:
                return httpx.Response(409, json={"error": "CONFLICT", "message": "exists already"})
            configs[body["name"]] = {**body, "updated_at": "t1"}
            return httpx.Response(201, json=self._shown(configs[body["name"]]))
        if name not in configs:
            return httpx.Response(404, json={"error": "NOT_FOUND", "message": f"no config {name!r}"})
        if request.method == "GET":
            return httpx.Response(200, json=self._shown(configs[name]))
        if request.method == "PUT":
            configs[name] = {"name": name, **body, "updated_at": "t2"}
            return httpx.Response(200, json=self._shown(configs[name]))
        return httpx.Response(200, json=self._shown(configs.pop(name)))

    @staticmethod
    def _shown(config: dict[str, Any]) -> dict[str, Any]:
        secret = bool(config.get("secret"))
        return {
            "id": config["name"],
            "name": config["name"],
            "value": None if secret else config["value"],
            "secret": secret,
            "updated_at": config["updated_at"],
        }

    def stored(self, base: str, name: str) -> dict[str, Any]:
        return self.scopes[base][name]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> ConfigsApi:
    fake = ConfigsApi()

    def client(_args: argparse.Namespace) -> FormicaClient:
        return FormicaClient(
            ClientConfig(server="http://api.test", token="fmc_x"), transport=httpx.MockTransport(fake)
        )

    monkeypatch.setattr(remote_module, "_client", client)
    monkeypatch.delenv("FORMICA_ORG", raising=False)
    return fake


def test_set_creates_then_changes_an_organisation_config_found_from_the_token(
    api: ConfigsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["configs", "set", "REGION", "eu-west-1"]) == 0
    assert main(["configs", "set", "REGION", "us-east-2"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "created config REGION (plain) of organisation acme",
        "changed config REGION (plain) of organisation acme",
    ]
    assert api.stored("/api/orgs/acme", "REGION")["value"] == "us-east-2"
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("GET", "/api/auth/tokens"),
        ("POST", "/api/orgs/acme/configs"),
        ("GET", "/api/auth/tokens"),
        ("POST", "/api/orgs/acme/configs"),
        ("GET", "/api/orgs/acme/configs/REGION"),
        ("PUT", "/api/orgs/acme/configs/REGION"),
    ]


def test_a_secret_read_from_stdin_is_sent_but_never_printed(
    api: ConfigsApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))

    assert main(["configs", "set", "DB_PASSWORD", "-", "--secret", "--org", "acme"]) == 0
    assert main(["configs", "list", "--org", "acme"]) == 0
    assert main(["configs", "list", "--org", "acme", "--json"]) == 0

    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert api.stored("/api/orgs/acme", "DB_PASSWORD") == {
        "name": "DB_PASSWORD",
        "value": SECRET,  # the trailing newline dropped
        "secret": True,
        "updated_at": "t1",
    }
    lines = captured.out.splitlines()
    assert lines[0] == "created config DB_PASSWORD (secret) of organisation acme"
    assert lines[2].split() == ["DB_PASSWORD", "secret", "****", "t1"]
    assert json.loads("\n".join(lines[3:]))[0]["value"] is None
    assert all(r.url.path != "/api/auth/tokens" for r in api.requests)  # --org: no look-up


def test_rotating_a_secret_without_secret_is_refused_and_changes_nothing(
    api: ConfigsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["configs", "set", "API_KEY", SECRET, "--secret", "--job", "sensor-job"]) == 0

    code = main(["configs", "set", "API_KEY", "now-in-plain-text", "--job", "sensor-job"])

    assert code == 1
    assert "is a secret: give --secret" in capsys.readouterr().err
    assert api.stored("/api/jobs/definitions/sensor-job", "API_KEY")["value"] == SECRET
    assert [r.method for r in api.requests] == ["POST", "POST", "GET"]

    assert main(["configs", "set", "API_KEY", "rotated-secret-1", "--secret", "--job", "sensor-job"]) == 0
    assert api.stored("/api/jobs/definitions/sensor-job", "API_KEY")["value"] == "rotated-secret-1"


def test_list_and_delete_of_a_job_type_use_its_routes(
    api: ConfigsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["configs", "set", "MODE", "fast", "--job", "sensor-job"]) == 0
    assert main(["configs", "set", "LONG", "x" * 100, "--job", "sensor-job"]) == 0
    capsys.readouterr()

    assert main(["configs", "list", "--job", "sensor-job"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["NAME", "KIND", "VALUE", "UPDATED"]
    assert rows[1].split() == ["LONG", "plain", "x" * 57 + "...", "t1"]
    assert rows[2].split() == ["MODE", "plain", "fast", "t1"]

    assert main(["configs", "delete", "MODE", "--job", "sensor-job", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "MODE"
    assert main(["configs", "delete", "MODE", "--job", "sensor-job"]) == 1
    assert "no config 'MODE' (404 NOT_FOUND)" in capsys.readouterr().err
    assert list(api.scopes["/api/jobs/definitions/sensor-job"]) == ["LONG"]


def test_the_organisation_comes_from_formica_org_and_a_read_token_is_told_to_name_it(
    api: ConfigsApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.token_scope_admin = False
    assert main(["configs", "list"]) == 1
    assert "--org ORG or FORMICA_ORG" in capsys.readouterr().err

    monkeypatch.setenv("FORMICA_ORG", "acme")
    assert main(["configs", "list"]) == 0
    assert capsys.readouterr().out == "no configs of organisation acme\n"
    assert api.requests[-1].url.path == "/api/orgs/acme/configs"


def test_org_and_job_together_are_refused(api: ConfigsApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "list", "--org", "acme", "--job", "sensor-job"]) == 1
    assert "--org and --job" in capsys.readouterr().err
    assert api.requests == []


def test_help_says_how_to_keep_a_secret_out_of_the_shell_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "set", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "'-' to read it from standard input" in help_text
    assert "shell's history" in help_text
