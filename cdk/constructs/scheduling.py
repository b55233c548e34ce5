"""Scheduling: cron triggers on EventBridge Scheduler and the PENDING sweep.

The API creates, updates and deletes one schedule per definition with a ``cron_trigger`` in this
stack's schedule group; every schedule invokes the ``scheduler`` function through the role made
here, with the input the API put on it. The same function runs every minute from an EventBridge
rule (a plain "Scheduled Event") to start PENDING requests whose wake-up was missed.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge_wildcard_resource
from cdk.constructs.storage import Storage

SCHEDULER_SERVICE = "scheduler.amazonaws.com"
SCHEDULE_ACTIONS = (
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
)
SWEEP_EVERY = Duration.minutes(1)


class Scheduling(Construct):
    """The schedule group, the role schedules run as, the ``scheduler`` function and its sweep rule.

    Parameters
    ----------
    group_name
        The EventBridge Scheduler schedule group holding this stack's cron schedules.
    state_machine_arn
        The job state machine; the scheduler function starts its executions.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group_name: str,
        storage: Storage,
        defaults: FunctionDefaults,
        state_machine_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.group = scheduler.ScheduleGroup(
            self, "ScheduleGroup", schedule_group_name=group_name, removal_policy=RemovalPolicy.DESTROY
        )
        self.schedule_arns = stack.format_arn(
            service="scheduler", resource="schedule", resource_name=f"{group_name}/*"
        )

        self.function = FormicaFunction(
            self,
            "SchedulerFunction",
            folder="scheduler",
            description="Cron fires submit a request; every minute, PENDING requests with a free slot start",
            defaults=defaults,
            timeout=Duration.seconds(60),
            # One sweep at a time; fires and sweeps race only through conditional writes anyway.
            reserved_concurrency=2,
        )
        storage.grant_table_read_write(self.function.role)
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn])
        )
        # The sweep answers an await whose last child's end was not heard (forks.sweep_children).
        self.function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure"], resources=[state_machine_arn]
            )
        )

        self.invoke_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(SCHEDULER_SERVICE).with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": self.schedule_arns},
                }
            ),
            description="Formica cron schedules: invoke the scheduler function",
        )
        self.invoke_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])
        )

        self.sweep_rule = events.Rule(
            self,
            "PendingSweep",
            description="Formica: start PENDING requests whose wake-up was missed",
            schedule=events.Schedule.rate(SWEEP_EVERY),
            targets=[targets.LambdaFunction(self.function.function, retry_attempts=0)],
        )

    def grant_manage_schedules(self, grantee: FormicaFunction) -> None:
        """Create, update, read and delete schedules in this group, and hand them the invoke role."""
        grantee.role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(SCHEDULE_ACTIONS), resources=[self.schedule_arns])
        )
        grantee.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.invoke_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
            )
        )
        acknowledge_wildcard_resource(
            grantee.role,
            self.schedule_arns,
            "Schedules are named per definition at upload time; the grant covers this stack's "
            "schedule group only.",
        )

    def settings(self) -> dict[str, str]:
        """The ``FORMICA_*`` settings the API needs to manage cron schedules."""
        return {
            "FORMICA_SCHEDULE_GROUP": self.group.schedule_group_name,
            "FORMICA_SCHEDULER_ROLE_ARN": self.invoke_role.role_arn,
            "FORMICA_SCHEDULER_FUNCTION_ARN": self.function.function_arn,
        }
