"""API: routes, the token authorizer and its cache, public routes, stage logging and throttling, CORS."""

from __future__ import annotations

from typing import Any

from cdk.constructs.api import gateway_cors_headers
from tests.infra.synthesis import Synth

PROTECTED = {("/api", "ANY"), ("/api/{proxy+}", "ANY"), ("/jobs/requests", "POST")}
# The grants route's credential is the attempt's capability in its body (no token).
# The dashboard's page and files: a browser's first GET carries no Authorization header.
PUBLIC = {
    ("/api/health", "GET"),
    ("/api/openapi.json", "GET"),
    ("/api/docs", "GET"),
    ("/api/grants", "POST"),
    ("/", "GET"),
    ("/ui/{name}", "GET"),
    ("/api/triggers/{org}/{job_type}/{name}", "POST"),  # a trigger's webhook: its HMAC is its credential
}


def paths(synth: Synth) -> dict[str, str]:
    """Logical id of every API resource -> its full path."""
    resources = synth.of_type("AWS::ApiGateway::Resource")
    found: dict[str, str] = {}

    def path_of(key: str) -> str:
        properties = resources[key]["Properties"]
        parent = properties["ParentId"]
        prefix = path_of(parent["Ref"]) if "Ref" in parent else ""
        return f"{prefix}/{properties['PathPart']}"

    for key in resources:
        found[key] = path_of(key)
    return found


def methods(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    by_id = paths(synth)
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for method in synth.of_type("AWS::ApiGateway::Method").values():
        properties = method["Properties"]
        resource = properties["ResourceId"]
        path = by_id[resource["Ref"]] if "Ref" in resource else "/"
        result[(path, properties["HttpMethod"])] = properties
    return result


def test_routes_reach_the_api_function(synth: Synth) -> None:
    found = methods(synth)
    api_function = synth.functions()["api"][0]
    assert set(found) == PROTECTED | PUBLIC
    for properties in found.values():
        integration = properties["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert api_function in str(integration["Uri"])


def test_only_health_openapi_docs_and_grants_are_public(synth: Synth) -> None:
    (authorizer_id,) = synth.of_type("AWS::ApiGateway::Authorizer")
    for route, properties in methods(synth).items():
        if route in PUBLIC:
            assert properties["AuthorizationType"] == "NONE", route
        else:
            assert properties["AuthorizationType"] == "CUSTOM", route
            assert properties["AuthorizerId"] == {"Ref": authorizer_id}, route


def test_authorizer_reads_the_authorization_header_and_caches_30_seconds(synth: Synth) -> None:
    (authorizer,) = synth.of_type("AWS::ApiGateway::Authorizer").values()
    properties = authorizer["Properties"]
    assert properties["Type"] == "REQUEST"
    assert properties["IdentitySource"] == "method.request.header.Authorization"
    # A revoked token keeps working for at most this long (docs/deploy.md).
    assert properties["AuthorizerResultTtlInSeconds"] == 30
    assert synth.functions()["authorizer"][0] in str(properties["AuthorizerUri"])


def test_stage_logs_access_traces_and_throttles(synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGateway::Stage").values()
    properties = stage["Properties"]
    assert properties["StageName"] == "test"
    assert properties["TracingEnabled"] is True
    group = properties["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert synth.resources[group]["Properties"]["RetentionInDays"] == 30
    assert '"status":"$context.status"' in properties["AccessLogSetting"]["Format"]
    (settings,) = properties["MethodSettings"]
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False
    assert settings["ThrottlingRateLimit"] == 50
    assert settings["ThrottlingBurstLimit"] == 100


def test_no_cors_unless_origins_are_configured(synth: Synth, variant: Synth) -> None:
    assert not any(method == "OPTIONS" for _, method in methods(synth))
    assert "FORMICA_CORS_ORIGINS" not in synth.functions()["api"][1]["Environment"]["Variables"]

    preflights = [properties for (_, method), properties in methods(variant).items() if method == "OPTIONS"]
    assert preflights
    for properties in preflights:
        headers = properties["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"
    variables = variant.functions()["api"][1]["Environment"]["Variables"]
    assert variables["FORMICA_CORS_ORIGINS"] == "https://app.example.com"
    # API Gateway's own 401/403/404/429 answers are readable by the allowed origin too
    for response in variant.of_type("AWS::ApiGateway::GatewayResponse").values():
        parameters = response["Properties"]["ResponseParameters"]
        assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"
    for response in synth.of_type("AWS::ApiGateway::GatewayResponse").values():
        assert "ResponseParameters" not in response["Properties"]


def test_gateway_cors_headers_for_several_origins_echo_the_request_origin() -> None:
    assert gateway_cors_headers([]) == {}
    assert gateway_cors_headers(["*"])["Access-Control-Allow-Origin"] == "'*'"
    several = gateway_cors_headers(["https://a.example.com", "https://b.example.com"])
    assert several["Access-Control-Allow-Origin"] == "method.request.header.Origin"


def test_url_is_a_stack_output(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    (rest_api,) = synth.of_type("AWS::ApiGateway::RestApi")
    (stage_id,) = synth.of_type("AWS::ApiGateway::Stage")
    url = outputs["ApiUrl"]["Value"]["Fn::Join"][1]
    assert url[0] == "https://" and url[1] == {"Ref": rest_api}
    # FORMICA_SERVER: no trailing slash, so "$URL/api/health" has exactly one slash before api; the
    # stage by its name (the functions told the URL must not wait for the stage resource).
    stage_name = synth.template["Resources"][stage_id]["Properties"]["StageName"]
    assert url[-1] == f"/{stage_name}"
    assert {
        "TableName",
        "BucketName",
        "StateMachineArn",
        "EcsClusterArn",
        "ContainerLogGroup",
    } <= outputs.keys()
    assert {"LaunchRoleArn", "ApiRoleArn", "ReconcilerRoleArn"} <= outputs.keys()


def test_api_gateway_may_invoke_only_the_api_and_authorizer_functions(synth: Synth) -> None:
    functions = synth.functions()
    invoked = {
        resource["Properties"]["FunctionName"]["Fn::GetAtt"][0]
        for resource in synth.of_type("AWS::Lambda::Permission").values()
        if resource["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    assert invoked == {functions["api"][0], functions["authorizer"][0]}


def test_refused_tokens_answer_in_the_api_error_shape(synth: Synth) -> None:
    """A refused token never reaches the API Lambda: the gateway itself answers, in the contract's shape."""
    import json

    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in synth.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    unauthorized = responses["UNAUTHORIZED"]
    assert unauthorized["StatusCode"] == "401"
    body = json.loads(unauthorized["ResponseTemplates"]["application/json"])
    assert body["error"] == "UNAUTHORIZED"
    assert set(body) == {"error", "message", "details"}
    assert {"ACCESS_DENIED", "THROTTLED"} <= set(responses)
