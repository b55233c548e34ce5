"""Lambda plumbing: the shared code asset and layer, and one function with its own role and log group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Annotations, Duration, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.assets import ASSET_EXCLUDES
from cdk.constructs.nag import acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
SERVICE_NAME = "formica"


class FunctionsRuntime(Construct):
    """The one code asset (the ``functions/`` folder) and the one layer (``formica`` and its deps).

    Parameters
    ----------
    functions_dir
        The ``functions/`` folder; each function's handler is ``<folder>.app.handler``.
    layer_dir
        A directory holding ``python/formica`` and the locked dependencies (see
        ``cdk/layer_build.py``); tests pass ``layers/formica`` (the library alone).
    """

    def __init__(self, scope: Construct, construct_id: str, *, functions_dir: Path, layer_dir: Path) -> None:
        super().__init__(scope, construct_id)
        if not (layer_dir / "python" / "formica").is_dir():
            raise ValueError(f"{layer_dir} does not contain python/formica")
        self.functions_dir = functions_dir
        self.code = lambda_.Code.from_asset(str(functions_dir), exclude=ASSET_EXCLUDES)
        self.layer = lambda_.LayerVersion(
            self,
            "FormicaLayer",
            code=lambda_.Code.from_asset(str(layer_dir), exclude=ASSET_EXCLUDES),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="The formica library and its locked dependencies (python3.12, arm64)",
        )


@dataclass(frozen=True, kw_only=True)
class FunctionDefaults:
    """What every Formica function shares: code, layer, settings, log retention.

    Parameters
    ----------
    environment
        ``FORMICA_*`` settings (each maps to a field of ``formica.settings.FormicaSettings``).
    reserved_concurrency
        Apply the functions' reserved concurrency caps; off for accounts whose concurrency quota
        is too small to reserve any (new accounts start at 10).
    """

    runtime: FunctionsRuntime
    environment: Mapping[str, str] = field(default_factory=dict)
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    reserved_concurrency: bool = True


class FormicaFunction(Construct):
    """One Lambda function: python3.12 arm64, JSON logs, active tracing, its own role and log group.

    The role starts empty apart from writing to this function's log group (and X-Ray, which
    tracing adds); the construct that owns the function grants exactly what it calls.

    Parameters
    ----------
    folder
        The folder under ``functions/``; the handler is ``<folder>.app.handler``.
    environment
        Settings for this function only, added to ``defaults.environment``.
    reserved_concurrency
        Caps concurrent executions, to protect what the function calls; ``None`` for no cap.
    tracing
        Active X-Ray tracing (its role then may write trace segments); off for the SHELL sandbox,
        whose role may write its own logs and nothing else.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        folder: str,
        description: str,
        defaults: FunctionDefaults,
        timeout: Duration,
        environment: Mapping[str, str] | None = None,
        memory_size: int = 256,
        ephemeral_storage: Size | None = None,
        reserved_concurrency: int | None = None,
        tracing: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.folder = folder
        if not (defaults.runtime.functions_dir / folder / "app.py").is_file():
            # A warning, not an error: the stack stays synthesizable while a handler is being
            # written, but a deploy now would fail every invocation of this function.
            Annotations.of(self).add_warning_v2(
                "formica:missing-handler", f"functions/{folder}/app.py does not exist: {folder} cannot run"
            )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Formica {folder} function",
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=defaults.log_retention, removal_policy=defaults.removal_policy
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            code=defaults.runtime.code,
            handler=f"{folder}.app.handler",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            layers=[defaults.runtime.layer],
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
            timeout=timeout,
            memory_size=memory_size,
            ephemeral_storage_size=ephemeral_storage,
            reserved_concurrent_executions=reserved_concurrency if defaults.reserved_concurrency else None,
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                **defaults.environment,
                **(environment or {}),
            },
        )
        self.log_group.grant_write(self.role)
        if tracing:
            acknowledge(
                self.role,
                "AwsSolutions-IAM5[Resource::*]",
                "Only xray:PutTraceSegments and xray:PutTelemetryRecords (added by active tracing) use "
                "'*': X-Ray has no resource-level permissions for them.",
            )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "python3.12 is deliberate: the layer's compiled wheels are built for CPython 3.12 "
            "(cdk/layer_build.py).",
        )

    @property
    def function_arn(self) -> str:
        return self.function.function_arn
