"""Storage: the one DynamoDB table and the artifacts bucket (docs/architecture.md, Data and S3 contracts)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.constructs.nag import acknowledge, acknowledge_wildcard_resource

PARTITION_KEY = "pk"
SORT_KEY = "sk"
GLOBAL_INDEXES = ("gsi1", "gsi2")
TTL_ATTRIBUTE = "expires_at"

# No Scan: every request path reads with GetItem or Query on a key designed for it.
TABLE_READ_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
TABLE_WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
BUCKET_READ_ACTIONS = ("s3:GetObject",)
BUCKET_LIST_ACTIONS = ("s3:ListBucket",)
BUCKET_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")

ACCESS_LOG_EXPIRY = Duration.days(90)
INCOMPLETE_UPLOAD_EXPIRY = Duration.days(1)


class Storage(Construct):
    """The table (on-demand, PITR, TTL, deletion protection by flag) and the artifacts bucket.

    Parameters
    ----------
    deletion_protection
        Protect the table from deletion and retain table and buckets when the stack is deleted.
        Off for throwaway dev stacks.
    artifact_expiry
        Objects under the artifacts bucket (artifacts and task logs, both under
        ``{org}/{request_id}/...``) are deleted this long after they were written.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, deletion_protection: bool, artifact_expiry: Duration
    ) -> None:
        super().__init__(scope, construct_id)
        removal_policy = RemovalPolicy.RETAIN if deletion_protection else RemovalPolicy.DESTROY

        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )
        for index in GLOBAL_INDEXES:
            self.table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(name=f"{index}pk", type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=f"{index}sk", type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            # SSE-S3: the only encryption S3 server access log delivery supports.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=ACCESS_LOG_EXPIRY)],
            removal_policy=removal_policy,
        )
        acknowledge(
            self.access_logs_bucket,
            "AwsSolutions-S1",
            "This bucket is the server access log target of the artifacts bucket; logging it to itself "
            "would loop.",
        )

        self.bucket = s3.Bucket(
            self,
            "ArtifactsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="artifacts-bucket/",
            # Keys are {org}/{request_id}/{task_type}/artifacts|logs/..., so one bucket-wide rule
            # expires artifacts and task logs alike; no other objects live in this bucket.
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-artifacts-and-task-logs",
                    expiration=artifact_expiry,
                    abort_incomplete_multipart_upload_after=INCOMPLETE_UPLOAD_EXPIRY,
                )
            ],
            removal_policy=removal_policy,
        )

    @property
    def index_arns(self) -> list[str]:
        """The ARNs of the table's global secondary indexes (named, never ``index/*``)."""
        return [f"{self.table.table_arn}/index/{index}" for index in GLOBAL_INDEXES]

    def grant_table_read(self, role: iam.IRole) -> None:
        """GetItem/BatchGetItem/Query/ConditionCheckItem on the table and its two indexes."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(TABLE_READ_ACTIONS), resources=[self.table.table_arn, *self.index_arns]
            )
        )

    def grant_table_read_write(self, role: iam.IRole) -> None:
        """Table reads (as :meth:`grant_table_read`) plus item writes on the table."""
        self.grant_table_read(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(TABLE_WRITE_ACTIONS), resources=[self.table.table_arn])
        )

    def grant_expire(self, role: iam.IRole) -> None:
        """EXPIRE_ARTIFACTS: list the bucket, delete objects, and write the attempt's own log."""
        objects = self.bucket.arn_for_objects("*")
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject", "s3:DeleteObject"], resources=[objects])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(BUCKET_LIST_ACTIONS), resources=[self.bucket.bucket_arn])
        )
        acknowledge_wildcard_resource(
            role,
            objects,
            "EXPIRE_ARTIFACTS deletes old objects under {org}/, an organisation known only at run time; "
            "the code lists and deletes under the organisation's own prefix only.",
        )

    def grant_attempt_logs(self, role: iam.IRole, *, read: bool = False) -> None:
        """Store attempts' whole logs (``*/logs/*``; with ``read``, read them back), and list the
        bucket: storing an attempt's whole log lists its live chunks to discard (``Walker.keep_outputs``)."""
        logs = self.bucket.arn_for_objects("*/logs/*")
        actions = ["s3:PutObject", *(BUCKET_READ_ACTIONS if read else ())]
        role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[logs]))
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(BUCKET_LIST_ACTIONS), resources=[self.bucket.bucket_arn])
        )
        acknowledge_wildcard_resource(
            role,
            logs,
            "An attempt's log is keyed {org}/{request_id}/{task_type}/logs/..., known only at run time; "
            "the grant covers logs in this one bucket.",
        )

    def grant_cancel_markers(self, role: iam.IRole) -> None:
        """Write a request's cancel marker (``*/_control/*``): a cancel, from whichever function it
        comes, tells a SHELL sandbox (which holds no credentials and polls it through a presigned GET)
        to kill its script."""
        markers = self.bucket.arn_for_objects("*/_control/*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[markers]))
        acknowledge_wildcard_resource(
            role,
            markers,
            "A cancel marker is keyed {org}/{request_id}/_control/cancelled-{execution}, known only at "
            "run time; the grant covers those markers in this one bucket.",
        )

    def grant_discard_live_logs(self, role: iam.IRole) -> None:
        """Delete live log chunks (``*/logs/live/*``): HTTP and SHELL attempts write them while they
        run, and storing the attempt's whole log deletes them."""
        live = self.bucket.arn_for_objects("*/logs/live/*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[live]))
        acknowledge_wildcard_resource(
            role,
            live,
            "Live chunks are keyed {org}/{request_id}/{task_type}/logs/live/..., known only at run time; "
            "the grant deletes nothing but live chunks in this one bucket.",
        )

    def grant_bucket(self, role: iam.IRole, *, read: bool = False, write: bool = False) -> None:
        """Object access on the artifacts bucket; reading comes with listing (a missing key is a 404)."""
        actions: list[str] = []
        if read:
            actions.extend(BUCKET_READ_ACTIONS)
        if write:
            actions.extend(BUCKET_WRITE_ACTIONS)
        if not actions:
            raise ValueError("grant_bucket needs read or write")
        objects = self.bucket.arn_for_objects("*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[objects]))
        if read:
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=list(BUCKET_LIST_ACTIONS), resources=[self.bucket.bucket_arn])
            )
        acknowledge_wildcard_resource(
            role,
            objects,
            "Object keys start with the organisation and request id ({org}/{request_id}/...), known only at "
            "run time; access is limited to this one bucket and to the listed object actions.",
        )
