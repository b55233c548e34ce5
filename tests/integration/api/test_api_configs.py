"""The config routes over the gateway: create, read, rotate and delete; refusals; tenancy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest
from formica.api.services import use_services

from tests.integration.api.conftest import CONFIGS_KMS_KEY, CONFIGS_PREFIX, ApiWorld

SECRET = "hunter2-but-longer"
ORG_CONFIGS = "/api/orgs/acme/configs"
JOB_CONFIGS = "/api/jobs/definitions/hello-job/configs"


def _parameters() -> dict[str, Any]:
    ssm = boto3.client("ssm", region_name="us-east-1")
    described = {item["Name"]: item for item in ssm.describe_parameters()["Parameters"]}
    if not described:
        return {}
    values = ssm.get_parameters(Names=list(described), WithDecryption=True)["Parameters"]
    return {item["Name"]: {**described[item["Name"]], "Value": item["Value"]} for item in values}


def test_a_secret_is_stored_encrypted_and_never_answered(world: ApiWorld) -> None:
    # When: a plain and a secret config are created
    plain = world.call("POST", ORG_CONFIGS, json_body={"name": "Region", "value": "eu-west-1"})
    secret = world.call("POST", ORG_CONFIGS, json_body={"name": "ApiToken", "value": SECRET, "secret": True})
    # Then: the secret answers without its value, everywhere
    assert plain.status == 201 and plain.json()["value"] == "eu-west-1"
    assert secret.status == 201
    assert secret.json() | {"created_at": "", "updated_at": ""} == {
        "id": "ApiToken",
        "name": "ApiToken",
        "value": None,
        "secret": True,
        "job_type": None,
        "created_at": "",
        "updated_at": "",
    }
    listed = world.call("GET", ORG_CONFIGS)
    one = world.call("GET", f"{ORG_CONFIGS}/ApiToken")
    for response in (secret, listed, one):
        assert SECRET not in response.body
    assert [(c["name"], c["value"], c["secret"]) for c in listed.json()["records"]] == [
        ("ApiToken", None, True),
        ("Region", "eu-west-1", False),
    ]
    # ... the table keeps a reference; the value is a SecureString under the prefix, with the key passed.
    parameters = _parameters()
    assert list(parameters) == [f"{CONFIGS_PREFIX}/acme/org/ApiToken"]
    parameter = parameters[f"{CONFIGS_PREFIX}/acme/org/ApiToken"]
    assert (parameter["Type"], parameter["KeyId"], parameter["Value"]) == (
        "SecureString",
        CONFIGS_KMS_KEY,
        SECRET,
    )


def test_the_table_holds_no_secret_value(world: ApiWorld) -> None:
    world.call("POST", ORG_CONFIGS, json_body={"name": "ApiToken", "value": SECRET, "secret": True})
    from tests.integration.api.tables import TABLE

    items = world.ddb.scan(TableName=TABLE)["Items"]
    config_items = [item for item in items if item["pk"]["S"] == "ORG#acme#CONFIGS"]
    assert len(config_items) == 1
    assert SECRET not in str(config_items)
    assert config_items[0]["secret_ref"]["S"] == f"{CONFIGS_PREFIX}/acme/org/ApiToken"


def test_rotation_plain_again_and_delete_follow_the_parameter(world: ApiWorld) -> None:
    world.call("POST", ORG_CONFIGS, json_body={"name": "ApiToken", "value": SECRET, "secret": True})
    name = f"{CONFIGS_PREFIX}/acme/org/ApiToken"
    # When: rotated
    rotated = world.call(
        "PUT", f"{ORG_CONFIGS}/ApiToken", json_body={"value": "rotated-value-9", "secret": True}
    )
    assert rotated.status == 200 and rotated.json()["value"] is None
    assert _parameters()[name]["Value"] == "rotated-value-9"
    # When: made plain, its parameter goes
    plain = world.call("PUT", f"{ORG_CONFIGS}/ApiToken", json_body={"name": "ApiToken", "value": "public"})
    assert (plain.status, plain.json()["value"], plain.json()["secret"]) == (200, "public", False)
    assert _parameters() == {}
    # When: secret again, then deleted
    world.call("PUT", f"{ORG_CONFIGS}/ApiToken", json_body={"value": SECRET, "secret": True})
    deleted = world.call("DELETE", f"{ORG_CONFIGS}/ApiToken")
    assert deleted.status == 200 and SECRET not in deleted.body
    assert _parameters() == {}
    assert world.call("GET", f"{ORG_CONFIGS}/ApiToken").status == 404


@pytest.mark.parametrize(
    "case",
    [
        ("POST", ORG_CONFIGS, {"name": "ApiToken", "value": "short", "secret": True}, 400, "value"),
        ("POST", ORG_CONFIGS, {"name": "not-a-variable", "value": "x"}, 400, "name"),
        ("POST", ORG_CONFIGS, {"name": "Big", "value": "x" * 4097}, 400, "value"),
        ("POST", ORG_CONFIGS, {"name": "Taken", "value": "again"}, 409, "name"),
        ("PUT", f"{ORG_CONFIGS}/Taken", {"name": "Renamed", "value": "x"}, 400, "name"),
        ("PUT", f"{ORG_CONFIGS}/Taken", {"value": "tiny", "secret": True}, 400, "value"),
        ("PUT", f"{ORG_CONFIGS}/Missing", {"value": "x"}, 404, None),
        ("GET", f"{ORG_CONFIGS}/Missing", None, 404, None),
        ("DELETE", f"{ORG_CONFIGS}/Missing", None, 404, None),
        ("GET", "/api/jobs/definitions/no-such-job/configs", None, 404, None),
        ("POST", "/api/jobs/definitions/no-such-job/configs", {"name": "A", "value": "x"}, 404, None),
    ],
)
def test_refusals_name_their_reason_and_change_nothing(
    defined: ApiWorld, case: tuple[str, str, Any, int, str | None]
) -> None:
    method, path, body, status, field = case
    world = defined
    assert world.call("POST", ORG_CONFIGS, json_body={"name": "Taken", "value": "first"}).status == 201
    before = world.call("GET", ORG_CONFIGS).json()
    response = world.call(method, path, json_body=body) if body is not None else world.call(method, path)
    assert response.status == status, response.body
    if field is not None:
        assert [detail["field"] for detail in response.json()["details"]] == [field]
    assert world.call("GET", ORG_CONFIGS).json() == before
    assert _parameters() == {}


def test_job_configs_live_beside_the_organisation_s(defined: ApiWorld) -> None:
    world = defined
    world.call("POST", ORG_CONFIGS, json_body={"name": "Level", "value": "org"})
    created = world.call("POST", JOB_CONFIGS, json_body={"name": "Level", "value": SECRET, "secret": True})
    assert created.status == 201 and created.json()["job_type"] == "hello-job"
    assert [c["name"] for c in world.call("GET", JOB_CONFIGS).json()["records"]] == ["Level"]
    assert world.call("GET", f"{ORG_CONFIGS}/Level").json()["value"] == "org"
    assert list(_parameters()) == [f"{CONFIGS_PREFIX}/acme/job/hello-job/Level"]


def test_another_organisation_reaches_nothing(defined: ApiWorld) -> None:
    world = defined
    world.call("POST", ORG_CONFIGS, json_body={"name": "ApiToken", "value": SECRET, "secret": True})
    world.call("POST", JOB_CONFIGS, json_body={"name": "JobOnly", "value": "acme-only"})
    other = world.other_token
    # The other organisation naming acme in the path, or acme's job type, or acme's config by id
    for method, path in (
        ("GET", ORG_CONFIGS),
        ("GET", f"{ORG_CONFIGS}/ApiToken"),
        ("DELETE", f"{ORG_CONFIGS}/ApiToken"),
        ("GET", JOB_CONFIGS),
        ("GET", f"{JOB_CONFIGS}/JobOnly"),
        ("GET", "/api/orgs/other/configs/ApiToken"),
    ):
        assert world.call(method, path, token=other).status == 404, (method, path)
    assert world.call("GET", "/api/orgs/other/configs", token=other).json() == {"records": []}
    denied = world.call(
        "PUT", f"{ORG_CONFIGS}/ApiToken", token=other, json_body={"value": "stolen-value", "secret": True}
    )
    assert denied.status == 404
    assert _parameters()[f"{CONFIGS_PREFIX}/acme/org/ApiToken"]["Value"] == SECRET
    assert [c["name"] for c in world.call("GET", ORG_CONFIGS).json()["records"]] == ["ApiToken"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ORG_CONFIGS, None),
        ("POST", ORG_CONFIGS, {"name": "Region", "value": "eu-west-1"}),
        ("GET", f"{ORG_CONFIGS}/Region", None),
        ("PUT", f"{ORG_CONFIGS}/Region", {"value": "eu-west-2"}),
        ("DELETE", f"{ORG_CONFIGS}/Region", None),
        ("GET", JOB_CONFIGS, None),
        ("POST", JOB_CONFIGS, {"name": "Region", "value": "eu-west-1"}),
    ],
)
def test_an_api_built_without_a_config_store_answers_503_naming_it(
    defined: ApiWorld, method: str, path: str, body: dict[str, Any] | None
) -> None:
    # Given an API whose services hold no config store (a host that does not offer configs)
    world = defined
    use_services(replace(world.services, configs=None, config_secrets=None))

    # When a config route is called
    response = world.call(method, path, json_body=body) if body is not None else world.call(method, path)

    # Then it answers 503 with a reason naming the missing store, not an internal error
    assert response.status == 503, response.body
    answer = response.json()
    assert answer["error"] == "SERVICE_UNAVAILABLE"
    assert "config store" in answer["message"]
    assert answer["correlation_id"] is None
