"""Monitoring: the alarms, their SNS topic, the dashboard, and the dead-letter queue of the functions
that are invoked asynchronously (docs/deploy.md, "Operating Formica", says what each alarm means).

Every alarm notifies one SNS topic: the one named by the ``alarm_topic_arn`` context value, or one
made here (the stack outputs its ARN; subscribe to it). The ``Formica`` namespace holds the walk's
own metrics (EMF, ``formica.runtime.metrics``); the dashboard shows them beside the AWS ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.constructs.lambdas import FormicaFunction
from cdk.constructs.nag import acknowledge

NAMESPACE = "Formica"
SERVICE_DIMENSION = "formica"  # formica.runtime.metrics.SERVICE: every Formica metric's ``service``
PERIOD = Duration.minutes(5)
# A job that fails is a failed execution (its Fail state): alarm on a surge, not on one.
FAILED_EXECUTIONS_THRESHOLD = 10
# Any of these in a period is not normal.
FUNCTION_ERRORS_THRESHOLD = 1
FUNCTION_THROTTLES_THRESHOLD = 1
API_5XX_THRESHOLD = 5
DYNAMODB_THROTTLES_THRESHOLD = 10
DLQ_DEPTH_THRESHOLD = 1
# The sweep's OldestStartedAge (formica.runtime.metrics): a request admitted whose walk never began
# and that the sweep could not start again. The threshold comes from context
# (``oldest_started_alarm_seconds``); this is its default.
OLDEST_STARTED_METRIC = "OldestStartedAge"
# The notify function's DeliveriesFailed (formica.runtime.metrics), one series per channel: a
# webhook, email or Slack message given up after its last attempt.
DELIVERIES_FAILED_METRIC = "DeliveriesFailed"
DELIVERY_CHANNELS = ("webhook", "email", "slack")
OLDEST_STARTED_THRESHOLD = Duration.seconds(900)
# A periodic function that runs longer than this share of its timeout is falling behind.
BEHIND_SHARE_OF_TIMEOUT = 0.8
ASYNC_RETRY_ATTEMPTS = 2
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
DLQ_RETENTION = Duration.days(14)


class Monitoring(Construct):
    """Alarms on the state machine, every function, the API, the table and every DLQ; a dashboard.

    Parameters
    ----------
    functions
        Every Formica function (errors and throttles alarms, one pair each).
    async_functions
        The functions invoked asynchronously (EventBridge rules, schedules): failed invocations,
        after ``ASYNC_RETRY_ATTEMPTS`` retries, go to this construct's dead-letter queue.
    periodic_functions
        The functions that keep the walk going on a timer (the sweep, the reconciler), each with
        its period: alarmed when they stop running or run close to their timeout.
    dead_letter_queues
        Other dead-letter queues of the stack; each gets a depth alarm like this construct's own.
    alarm_topic_arn
        An existing SNS topic for the alarms; None: a topic is created (``topic``).
    oldest_started_threshold
        How long a request may stay STARTED (admitted, its walk not begun) before the
        ``OldestStarted`` alarm rings.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Sequence[FormicaFunction],
        async_functions: Sequence[FormicaFunction],
        periodic_functions: Sequence[tuple[FormicaFunction, Duration]],
        state_machine: sfn.IStateMachine,
        rest_api: apigw.RestApi,
        table: dynamodb.ITable,
        dead_letter_queues: Sequence[sqs.IQueue] = (),
        alarm_topic_arn: str | None = None,
        oldest_started_threshold: Duration = OLDEST_STARTED_THRESHOLD,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._build_topic(alarm_topic_arn)
        self.action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        self.async_dlq = self._build_async_dead_letters(async_functions)
        self._alarm_state_machine(state_machine)
        for function in functions:
            self._alarm_function(function)
        for function, every in periodic_functions:
            self._alarm_periodic(function, every)
        self._alarm_api(rest_api)
        self._alarm_table(table)
        self.oldest_started_threshold_seconds = oldest_started_threshold.to_seconds()
        self.oldest_started = self._alarm_oldest_started(oldest_started_threshold)
        self.deliveries_failed = self._alarm_deliveries_failed()
        for queue in (self.async_dlq, *dead_letter_queues):
            self._alarm_dead_letters(queue)
        self.dashboard = self._build_dashboard(functions, state_machine, rest_api, table)

    # -- parts -------------------------------------------------------------------------------------

    def _build_topic(self, alarm_topic_arn: str | None) -> sns.ITopic:
        if alarm_topic_arn:
            return sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
        topic = sns.Topic(self, "AlarmTopic", display_name="Formica alarms", enforce_ssl=True)
        acknowledge(
            topic,
            "AwsSolutions-SNS2",
            "Alarm notifications carry metric names and thresholds only, no job data; SSE with a "
            "customer key would also need a key policy for CloudWatch. Pass alarm_topic_arn for "
            "an encrypted topic of your own.",
        )
        return topic

    def _build_async_dead_letters(self, functions: Sequence[FormicaFunction]) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "AsyncInvokeDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        acknowledge(queue, "AwsSolutions-SQS3", "This queue is itself the dead-letter queue.")
        for function in functions:
            function.function.configure_async_invoke(
                on_failure=destinations.SqsDestination(queue), retry_attempts=ASYNC_RETRY_ATTEMPTS
            )
        return queue

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = AT_LEAST,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self.action)
        self.alarms.append(alarm)
        return alarm

    def _alarm_state_machine(self, machine: sfn.IStateMachine) -> None:
        self._alarm(
            "ExecutionsFailed",
            machine.metric_failed(period=PERIOD, statistic="Sum"),
            threshold=FAILED_EXECUTIONS_THRESHOLD,
            description="Many job executions failed in 5 minutes (jobs failing, or the walk itself)",
        )
        for name, metric in (
            ("ExecutionsTimedOut", machine.metric_timed_out(period=PERIOD, statistic="Sum")),
            ("ExecutionsAborted", machine.metric_aborted(period=PERIOD, statistic="Sum")),
            ("ExecutionThrottled", machine.metric_throttled(period=PERIOD, statistic="Sum")),
        ):
            self._alarm(name, metric, threshold=1, description=f"Job state machine: {name}")

    def _alarm_function(self, function: FormicaFunction) -> None:
        name = function.folder
        self._alarm(
            f"{function.node.id}Errors",
            function.function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=FUNCTION_ERRORS_THRESHOLD,
            description=f"The {name} function raised (its handler failed an invocation)",
        )
        self._alarm(
            f"{function.node.id}Throttles",
            function.function.metric_throttles(period=PERIOD, statistic="Sum"),
            threshold=FUNCTION_THROTTLES_THRESHOLD,
            description=f"The {name} function was throttled (reserved concurrency or account limit)",
        )

    def _alarm_periodic(self, function: FormicaFunction, every: Duration) -> None:
        name = function.folder
        timeout = function.function.timeout or Duration.seconds(3)
        self._alarm(
            f"{function.node.id}NotRunning",
            function.function.metric_invocations(period=Duration.minutes(15), statistic="Sum"),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
            description=f"The {name} function (every {every.to_minutes()} min) did not run for 15 minutes",
        )
        self._alarm(
            f"{function.node.id}Behind",
            function.function.metric_duration(period=PERIOD, statistic="Maximum"),
            threshold=timeout.to_milliseconds() * BEHIND_SHARE_OF_TIMEOUT,
            description=f"The {name} function ran close to its timeout: it is falling behind",
        )

    def _alarm_api(self, api: apigw.RestApi) -> None:
        self._alarm(
            "Api5xx",
            api.metric_server_error(period=PERIOD, statistic="Sum"),
            threshold=API_5XX_THRESHOLD,
            description="The API answered 5xx (an internal error or an unreachable integration)",
        )

    def _alarm_table(self, table: dynamodb.ITable) -> None:
        throttles = cloudwatch.MathExpression(
            expression="reads + writes",
            using_metrics={
                "reads": table.metric("ReadThrottleEvents", period=PERIOD, statistic="Sum"),
                "writes": table.metric("WriteThrottleEvents", period=PERIOD, statistic="Sum"),
            },
            label="DynamoDB throttle events",
            period=PERIOD,
        )
        self._alarm(
            "TableThrottles",
            throttles,
            threshold=DYNAMODB_THROTTLES_THRESHOLD,
            description="The table throttled reads or writes (on-demand limits, a hot partition)",
        )

    def _alarm_oldest_started(self, threshold: Duration) -> cloudwatch.Alarm:
        self.oldest_started_age = metric = cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=OLDEST_STARTED_METRIC,
            dimensions_map={"service": SERVICE_DIMENSION},
            period=PERIOD,
            statistic="Maximum",
        )
        # Missing data is not breaching: the sweep emits every minute (0 when nothing is STARTED),
        # and the sweep not running at all is the scheduler's NotRunning alarm.
        return self._alarm(
            "OldestStarted",
            metric,
            threshold=threshold.to_seconds(),
            description=(
                f"A request has been STARTED (admitted, its walk not begun) for {threshold.to_seconds()} s "
                "or more: its execution never began and the sweep could not start it"
            ),
        )

    def _alarm_deliveries_failed(self) -> cloudwatch.Alarm:
        per_channel = {
            f"{channel}": cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=DELIVERIES_FAILED_METRIC,
                dimensions_map={"channel": channel, "service": SERVICE_DIMENSION},
                period=PERIOD,
                statistic="Sum",
            )
            for channel in DELIVERY_CHANNELS
        }
        self.deliveries_failed_total = total = cloudwatch.MathExpression(
            expression=" + ".join(f"FILL({channel}, 0)" for channel in per_channel),
            using_metrics=per_channel,
            label="Deliveries given up",
            period=PERIOD,
        )
        return self._alarm(
            "DeliveriesFailed",
            total,
            threshold=1,
            description=(
                "A webhook, email or Slack message was given up after its last attempt: "
                "GET /api/jobs/requests/{id}/webhooks shows which and why"
            ),
        )

    def _alarm_dead_letters(self, queue: sqs.IQueue) -> None:
        self._alarm(
            f"{queue.node.id}Depth",
            queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
            threshold=DLQ_DEPTH_THRESHOLD,
            description=f"Messages wait in the dead-letter queue {queue.node.id}: something failed for good",
        )

    def _build_dashboard(
        self,
        functions: Sequence[FormicaFunction],
        machine: sfn.IStateMachine,
        api: apigw.RestApi,
        table: dynamodb.ITable,
    ) -> cloudwatch.Dashboard:
        def search(metric: str, dimension: str, statistic: str = "Sum") -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression=(
                    f"SEARCH('{{{NAMESPACE},{dimension},service}} MetricName=\"{metric}\"', "
                    f"'{statistic}', {int(PERIOD.to_seconds())})"
                ),
                label=metric,
                period=PERIOD,
            )

        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-operations"
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs by type",
                left=[
                    search(name, "job_type")
                    for name in ("JobsStarted", "JobsCompleted", "JobsFailed", "JobsCancelled")
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Queue wait (s, max)", left=[search("QueueWait", "job_type", "Maximum")], width=12
            ),
            cloudwatch.GraphWidget(
                title="Oldest STARTED request (s, max)",
                left=[self.oldest_started_age.with_(label="Oldest STARTED request (s)")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=self.oldest_started_threshold_seconds, label="alarm threshold"
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Deliveries failed by channel",
                left=[
                    search("DeliveryAttemptsFailed", "channel"),
                    search(DELIVERIES_FAILED_METRIC, "channel"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Task attempts by method",
                left=[search("TaskAttempts", "method"), search("TaskAttemptsFailed", "method")],
                right=[search("TaskAttemptDuration", "method", "p90")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Executions",
                left=[
                    machine.metric_started(period=PERIOD, statistic="Sum"),
                    machine.metric_succeeded(period=PERIOD, statistic="Sum"),
                    machine.metric_failed(period=PERIOD, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function errors",
                left=[
                    f.function.metric_errors(period=PERIOD, statistic="Sum", label=f.folder)
                    for f in functions
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API",
                left=[
                    api.metric_count(period=PERIOD, statistic="Sum"),
                    api.metric_server_error(period=PERIOD, statistic="Sum"),
                    api.metric_client_error(period=PERIOD, statistic="Sum"),
                ],
                right=[api.metric_latency(period=PERIOD, statistic="p90")],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24),
        )
        return dashboard
