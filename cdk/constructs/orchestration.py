"""Orchestration: the generic job state machine and the Lambdas it invokes.

The state machine's definition is cdk/statemachine/job.asl.json, the one source of truth for the
walk; its ``${...}Arn`` placeholders are filled with the functions built here. Its name is fixed
so its ARN can be formatted up front: continue_execution starts executions of the very state
machine that invokes it, and every function reads the ARN from its settings, which would
otherwise be a circular reference.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.constructs.containers import ContainerPlatform
from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge, acknowledge_wildcard_resource
from cdk.constructs.storage import Storage
from cdk.constructs.workers import LAUNCH_ACTIONS, grant_worker_queues

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
VENDED_LOGS_PREFIX = "/aws/vendedlogs/states/"
TASK_TIMEOUT = Duration.minutes(15)  # Lambda's ceiling; longer work belongs in a container task


class StateMachineDefinitionError(ValueError):
    """The ASL file is missing, not JSON, or names a placeholder this stack does not fill."""


def state_machine_arn(scope: Construct, name: str) -> str:
    """The ARN of the state machine called ``name`` in ``scope``'s stack, without referencing it."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="stateMachine",
        resource_name=name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def executions_arn(scope: Construct, name: str) -> str:
    """The ARN pattern of every execution of the state machine called ``name``."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def grant_stop_executions(function: FormicaFunction, executions: str) -> None:
    """StopExecution on the job state machine's executions (``executions_arn``): a request's cancel
    stops its execution (best effort: ``cancel_request``)."""
    function.role.add_to_principal_policy(
        iam.PolicyStatement(actions=["states:StopExecution"], resources=[executions])
    )
    acknowledge_wildcard_resource(
        function.role,
        executions,
        "Executions are named per request at run time; the grant covers this state machine's only.",
    )


def read_definition(definition_file: Path) -> tuple[str, set[str]]:
    """The ASL text and the names of its ``${Name}`` placeholders.

    Raises
    ------
    StateMachineDefinitionError
        When the file is absent or is not a JSON object.
    """
    try:
        text = definition_file.read_text()
    except FileNotFoundError as exc:
        raise StateMachineDefinitionError(f"state machine definition not found: {definition_file}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateMachineDefinitionError(f"{definition_file} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or "StartAt" not in document:
        raise StateMachineDefinitionError(f"{definition_file} is not an ASL state machine (no StartAt)")
    return text, set(PLACEHOLDER.findall(text))


class Orchestration(Construct):
    """The job state machine and its seven Lambdas: advance, http_task, shell_task, launch, fork_task,
    expire_task and continue_execution.

    Parameters
    ----------
    definition_file
        The ASL file with ``${AdvanceFunctionArn}``-style placeholders.
    state_machine_name
        The state machine's explicit name (its ARN is in every function's settings).
    http_allowed_networks
        Non-public networks HTTP tasks may call (CIDRs; context ``http_allowed_networks``): the
        http_task function's ``FORMICA_HTTP_ALLOWED_NETWORKS``. Empty: public addresses only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition_file: Path,
        state_machine_name: str,
        storage: Storage,
        platform: ContainerPlatform,
        defaults: FunctionDefaults,
        http_allowed_networks: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        definition, placeholders = read_definition(definition_file)
        self.state_machine_arn = state_machine_arn(self, state_machine_name)

        self.advance = FormicaFunction(
            self,
            "Advance",
            folder="advance",
            description="The engine: commit an attempt's result and decide the job's next action",
            defaults=defaults,
            timeout=Duration.seconds(60),
            memory_size=512,
        )
        self.http_task = FormicaFunction(
            self,
            "HttpTask",
            folder="http_task",
            description="Run one attempt of an HTTP task",
            defaults=defaults,
            timeout=TASK_TIMEOUT,
            memory_size=512,
            environment=(
                {"FORMICA_HTTP_ALLOWED_NETWORKS": ",".join(http_allowed_networks)}
                if http_allowed_networks
                else None
            ),
            # No reserved concurrency for the task Lambdas: attempts run for minutes, so a throttled
            # invocation would outlast the state machine's retry budget for
            # Lambda.TooManyRequestsException (about 30 s) and fail the task. Per-job-type
            # max_concurrency is how a job protects the services it calls.
        )
        self.shell_task = FormicaFunction(
            self,
            "ShellTask",
            folder="shell_task",
            description="Run one attempt of a SHELL task: render it, hand it to the sandbox, commit",
            defaults=defaults,
            timeout=TASK_TIMEOUT,
            # It waits while the sandbox runs the script (bench/README.md prices the wait): the
            # script's memory and disk are the sandbox's, so this function keeps the minimum.
            memory_size=256,
        )
        # The sandbox SHELL scripts run in: tenants' code, so its role may write its own logs and
        # nothing else, and its environment holds no setting of the stack (no table, bucket or
        # state machine name). The shell-task function renders the attempt, hands it over with
        # presigned grants for this attempt only, and waits for the answer.
        self.shell_sandbox = FormicaFunction(
            self,
            "ShellSandbox",
            folder="shell_sandbox",
            description="Run one SHELL attempt without credentials to Formica's data (tenants' code)",
            defaults=replace(defaults, environment={}),
            timeout=TASK_TIMEOUT,
            memory_size=1024,
            ephemeral_storage=Size.mebibytes(2048),
            environment={"FORMICA_WORK_ROOT": "/tmp", "FORMICA_SANDBOX_SCRUB": "all"},
            tracing=False,
        )
        self.shell_task.function.add_environment(
            "FORMICA_SHELL_SANDBOX_FUNCTION", self.shell_sandbox.function.function_name
        )
        # The function itself only (grant_invoke would add its versions and aliases, ":*").
        self.shell_task.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.shell_sandbox.function_arn]
            )
        )
        self.launch = FormicaFunction(
            self,
            "Launch",
            folder="launch",
            description="Start a container task (ECS Fargate or EKS) and record its task token",
            defaults=defaults,
            timeout=Duration.seconds(60),
            # ECS throttles RegisterTaskDefinition and RunTask per account; a burst of container
            # tasks queues here (Step Functions retries the throttled invocation, each call lasts a
            # second or two) instead of failing on ECS's ThrottlingException.
            reserved_concurrency=10,
        )
        self._grant_task_fan_out()
        self.fork_task = FormicaFunction(
            self,
            "ForkTask",
            folder="fork_task",
            description="Start the child request of a FORK_JOB task, then decide the job's next action",
            defaults=defaults,
            timeout=Duration.seconds(60),
        )
        # EXPIRE_ARTIFACTS: trusted code that deletes an organisation's old artifacts and logs.
        self.expire_task = FormicaFunction(
            self,
            "ExpireTask",
            folder="expire_task",
            description="Delete an organisation's old artifacts (EXPIRE_ARTIFACTS), then advance the walk",
            defaults=defaults,
            timeout=Duration.minutes(5),
        )
        self.continue_execution = FormicaFunction(
            self,
            "ContinueExecution",
            folder="continue_execution",
            description="Continue-as-new: start a fresh execution for the same request",
            defaults=defaults,
            timeout=Duration.seconds(30),
        )

        for function in self.functions:
            storage.grant_table_read_write(function.role)
        storage.grant_bucket(self.http_task.role, read=True, write=True)
        storage.grant_bucket(self.shell_task.role, read=True, write=True)
        for live in (self.http_task, self.shell_task):
            storage.grant_discard_live_logs(live.role)
        storage.grant_attempt_logs(self.fork_task.role)  # a FORK_JOB attempt's log
        storage.grant_expire(self.expire_task.role)
        platform.grant_launch(self.launch)
        # WEBSOCKET tasks: Launch queues the attempt for the organisation's workers.
        grant_worker_queues(self, self.launch.role, LAUNCH_ACTIONS)
        platform.grant_eks(self.launch)
        # Launch answers container and await tokens; the functions that can end a forked request
        # answer its parent's await (formica.runtime.forks.child_finished).
        answerers = (
            self.launch,
            self.advance,
            self.http_task,
            self.shell_task,
            self.fork_task,
            self.expire_task,
        )
        for answerer in answerers:
            answerer.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                    resources=[self.state_machine_arn],
                )
            )
        # Continue-as-new starts executions; Advance, the task functions and Launch too, since a
        # request ending there starts the next PENDING ones of its job type (max_concurrency;
        # Launch ends a request whose container task cannot render, D13).
        # ForkTask starts the children it forks.
        starters = (
            self.continue_execution,
            self.advance,
            self.http_task,
            self.shell_task,
            self.launch,
            self.fork_task,
            self.expire_task,
        )
        for starter in starters:
            starter.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["states:StartExecution"], resources=[self.state_machine_arn])
            )

        arns = {
            "AdvanceFunctionArn": self.advance.function_arn,
            "HttpTaskFunctionArn": self.http_task.function_arn,
            "ShellTaskFunctionArn": self.shell_task.function_arn,
            "LaunchFunctionArn": self.launch.function_arn,
            "ForkTaskFunctionArn": self.fork_task.function_arn,
            "ExpireTaskFunctionArn": self.expire_task.function_arn,
            "ContinueFunctionArn": self.continue_execution.function_arn,
        }
        unknown = sorted(placeholders - arns.keys())
        if unknown:
            raise StateMachineDefinitionError(
                f"{definition_file} uses placeholders this stack does not fill: {', '.join(unknown)}"
            )
        substitutions = {name: arn for name, arn in arns.items() if name in placeholders}

        self.role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": Stack.of(self).account}}
            ),
            description="Formica job state machine: invoke its five functions",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[function.function_arn for function in self.functions],
            )
        )
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"{VENDED_LOGS_PREFIX}{state_machine_name}",
            retention=defaults.log_retention,
            removal_policy=defaults.removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            definition_substitutions=substitutions,
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only the CloudWatch Logs delivery actions (logs:CreateLogDelivery, ...) and X-Ray actions that "
            "Step Functions logging and tracing require use '*'; neither supports resource-level "
            "permissions.",
        )

    def _grant_task_fan_out(self) -> None:
        """A task fan-out's instances run in the task functions, invoked asynchronously by its looks
        (D42): Launch takes the first look and invokes either function (it is told their names, as the
        scheduler is, whose sweep looks after ending a lost instance: ``grant_task_fan_out_starts``); every
        instance's end looks again and invokes the next instances in its own function, which its
        handler names from its context. Each function itself only (not its versions or aliases)."""
        self.grant_task_fan_out_starts(self.launch)
        # A policy of its own, not the role's default policy: the function waits for its default
        # policy, which could then not name the function's own ARN without a dependency cycle.
        for construct_id, function in (
            ("HttpTaskInvokesItself", self.http_task),
            ("ShellTaskInvokesItself", self.shell_task),
        ):
            iam.Policy(
                self,
                construct_id,
                roles=[function.role],
                statements=[
                    iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn])
                ],
            )

    def grant_task_fan_out_starts(self, starter: FormicaFunction) -> None:
        """Let ``starter`` start a task fan-out's instances in either task function: their names in
        its environment, and InvokeFunction on the two functions themselves (Launch's first look;
        the minute sweep's look after it ended a lost instance)."""
        for variable, function in (
            ("FORMICA_HTTP_TASK_FUNCTION", self.http_task),
            ("FORMICA_SHELL_TASK_FUNCTION", self.shell_task),
        ):
            starter.function.add_environment(variable, function.function.function_name)
        starter.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[self.http_task.function_arn, self.shell_task.function_arn],
            )
        )

    @property
    def functions(self) -> tuple[FormicaFunction, ...]:
        """The functions the state machine invokes."""
        return (
            self.advance,
            self.http_task,
            self.shell_task,
            self.launch,
            self.fork_task,
            self.expire_task,
            self.continue_execution,
        )
