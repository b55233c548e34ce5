"""API: the REST API Gateway, the API Lambda behind it, and the bearer-token authorizer.

Routes reach the ``api`` function as a Lambda proxy under ``/api`` (``ANY /api`` and
``ANY /api/{proxy+}``), plus ``POST /jobs/requests``, formicary's path for submitting a request.
Every route needs ``Authorization: Bearer <token>`` except ``GET /api/health``,
``GET /api/openapi.json`` and ``GET /api/docs``.

The authorizer's answer is cached for ``AUTHORIZER_CACHE_TTL`` per Authorization header value, so
a revoked token keeps working for at most that long. Because one cached answer serves every route,
the authorizer must return a policy covering the whole API, not only the method it was asked about.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.constructs.containers import ContainerPlatform
from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge, acknowledge_wildcard_resource
from cdk.constructs.scheduling import Scheduling
from cdk.constructs.storage import Storage

AUTHORIZER_CACHE_TTL = Duration.seconds(30)
PUBLIC_ROUTES = ("health", "openapi.json", "docs")  # GET /api/<route>, no token
CORS_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Amz-Date", "X-Amz-Security-Token")
API_TIMEOUT = Duration.seconds(29)  # API Gateway's integration timeout
GATEWAY_ERRORS = (
    (
        "Unauthorized",
        apigw.ResponseType.UNAUTHORIZED,
        "401",
        "UNAUTHORIZED",
        "missing, unknown, expired or revoked bearer token",
    ),
    ("AccessDenied", apigw.ResponseType.ACCESS_DENIED, "403", "FORBIDDEN", "access denied"),
    ("MissingToken", apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "NOT_FOUND", "no such route"),
    ("Throttled", apigw.ResponseType.THROTTLED, "429", "THROTTLED", "too many requests, retry later"),
)


def gateway_cors_headers(cors_origins: Sequence[str]) -> dict[str, str]:
    """Access-Control-Allow-Origin for API Gateway's own error answers (none without CORS).

    One origin (or ``*``) is a static value. Several cannot be matched by a gateway response, so the
    request's Origin is echoed: these answers carry no organisation data, and the API Lambda's own
    answers echo only the allowed origins (``formica.api.cors``).
    """
    if not cors_origins:
        return {}
    if len(cors_origins) == 1:
        return {"Access-Control-Allow-Origin": f"'{cors_origins[0]}'", "Vary": "'Origin'"}
    return {"Access-Control-Allow-Origin": "method.request.header.Origin", "Vary": "'Origin'"}


class Api(Construct):
    """REST API (regional), its stage with access logs and throttling, the api and authorizer functions.

    Parameters
    ----------
    stage_name
        The API Gateway stage (also the first path segment of the URL).
    cors_origins
        Allowed browser origins; empty means no CORS at all.
    throttle_rate, throttle_burst
        Stage-wide steady-state requests per second and burst.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_name: str,
        storage: Storage,
        platform: ContainerPlatform,
        scheduling: Scheduling,
        defaults: FunctionDefaults,
        state_machine_arn: str,
        executions_arn: str,
        cors_origins: Sequence[str],
        throttle_rate: int,
        throttle_burst: int,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = scheduling.settings()
        if cors_origins:
            environment["FORMICA_CORS_ORIGINS"] = ",".join(cors_origins)
        self.handler = FormicaFunction(
            self,
            "ApiFunction",
            folder="api",
            description="Formica REST API",
            defaults=defaults,
            timeout=API_TIMEOUT,
            memory_size=1024,
            environment=environment,
        )
        self.authorizer_function = FormicaFunction(
            self,
            "AuthorizerFunction",
            folder="authorizer",
            description="Formica API authorizer: bearer token -> organisation",
            defaults=defaults,
            timeout=Duration.seconds(10),
        )
        self._grant_api(storage, platform, state_machine_arn, executions_arn)
        scheduling.grant_manage_schedules(self.handler)
        storage.grant_table_read(self.authorizer_function.role)

        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=defaults.log_retention, removal_policy=defaults.removal_policy
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"formica-{stage_name}",
            description="Formica: formicary-style jobs on AWS",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=stage_name,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
            ),
            default_cors_preflight_options=(
                apigw.CorsOptions(
                    allow_origins=list(cors_origins),
                    allow_methods=apigw.Cors.ALL_METHODS,
                    allow_headers=list(CORS_HEADERS),
                    max_age=Duration.hours(1),
                )
                if cors_origins
                else None
            ),
        )
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "TokenAuthorizer",
            handler=self.authorizer_function.function,
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=AUTHORIZER_CACHE_TTL,
        )
        self._add_routes()
        self._add_gateway_responses(cors_origins)
        self._acknowledge_findings()

    def _grant_api(
        self, storage: Storage, platform: ContainerPlatform, state_machine_arn: str, executions_arn: str
    ) -> None:
        role = self.handler.role
        storage.grant_table_read_write(role)
        # Presigned artifact downloads and task logs: read only.
        storage.grant_bucket(role, read=True)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn])
        )
        # Cancel: stop the execution (best effort) and fail a Launch state that waits for a container.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StopExecution"], resources=[executions_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure"], resources=[state_machine_arn]
            )
        )
        acknowledge_wildcard_resource(
            role,
            executions_arn,
            "Execution names are chosen per request at run time; StopExecution is limited to executions of "
            "this stack's job state machine.",
        )
        platform.grant_task_control(self.handler)
        platform.grant_read_logs(self.handler)
        platform.grant_eks(self.handler)

    def _add_routes(self) -> None:
        integration = apigw.LambdaIntegration(self.handler.function, proxy=True, allow_test_invoke=False)
        protected = apigw.MethodOptions(
            authorizer=self.authorizer, authorization_type=apigw.AuthorizationType.CUSTOM
        )
        api = self.rest_api.root.add_resource("api")
        api.add_method(
            "ANY",
            integration,
            authorizer=self.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
        )
        api.add_proxy(default_integration=integration, default_method_options=protected, any_method=True)
        self.public_methods: list[apigw.Method] = []
        for route in PUBLIC_ROUTES:
            method = api.add_resource(route).add_method(
                "GET",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
            )
            self.public_methods.append(method)
        jobs = self.rest_api.root.add_resource("jobs")
        jobs.add_resource("requests").add_method(
            "POST",
            integration,
            authorizer=self.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
        )

    def _add_gateway_responses(self, cors_origins: Sequence[str]) -> None:
        # API Gateway answers a refused token itself, before the API Lambda runs: give those answers
        # the API's error shape ({"error", "message", "details"}) instead of {"message": "Unauthorized"}.
        # With CORS on, a browser must be able to read the 401 too (else it sees a network error).
        headers = gateway_cors_headers(cors_origins)
        for response_id, response_type, status, error, message in GATEWAY_ERRORS:
            body = json.dumps({"error": error, "message": message, "details": []})
            self.rest_api.add_gateway_response(
                response_id,
                type=response_type,
                status_code=status,
                response_headers=headers or None,
                templates={"application/json": body},
            )

    def _acknowledge_findings(self) -> None:
        for method in self.public_methods:
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                "Deliberately public: the health check, the OpenAPI document and its docs page carry no "
                "organisation data.",
            )
        acknowledge(
            self.rest_api,
            "AwsSolutions-COG4",
            "Callers authenticate with Formica API tokens (bearer), checked by the REQUEST authorizer; "
            "there is no Cognito user pool.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG2",
            "Bodies and query strings are validated by the api function's pydantic models, which answer 400 "
            "naming the offending field; API Gateway models would duplicate them and drift.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG3",
            "No WAF by default (cost); stage throttling limits abuse. "
            "Attach a web ACL to the stage where needed.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level CloudWatch role, needed for execution logging, uses the AWS "
            "managed policy made for exactly that purpose.",
        )
        for method in self.rest_api.methods:
            if method.http_method == "OPTIONS":
                reason = "CORS preflights carry no credentials by design; the real request carries the token."
                acknowledge(method, "AwsSolutions-APIG4", reason)

    @property
    def url(self) -> str:
        """The base URL without a trailing slash (``FORMICA_SERVER``): ``$URL/api/...``."""
        stack = Stack.of(self)
        return (
            f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}/"
            f"{self.rest_api.deployment_stage.stage_name}"
        )
