"""Configs: the KMS key secret configs are encrypted with, and who may write or read their values.

A secret config's value is an SSM Parameter Store SecureString (standard tier) named
``{parameter_prefix}/{org}/org/{name}`` or ``.../job/{job_type}/{name}`` (``formica.store.configs``),
created, changed and deleted by the API at run time: the stack creates no parameter, only the key
and the grants. Writing them is the API's alone; reading them is for the functions that run task
attempts or settle them (they render the job with its secrets and mask them in what they store), and
for the API, which checks webhook triggers' signatures with a secret config. Every grant names this
stack's prefix only, and the key's use is allowed through SSM only (``kms:ViaService``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk.constructs.lambdas import FormicaFunction
from cdk.constructs.nag import acknowledge_wildcard_resource

KEY_DELETION_WINDOW = Duration.days(30)
"""How long a key scheduled for deletion can still be cancelled (KMS's longest)."""
WRITER = "api"
"""The one function that creates, changes and deletes secret values (the config routes)."""
READERS: Mapping[str, str] = {
    "api": "a webhook trigger's HMAC secret is a secret config",
    "http_task": "renders an HTTP attempt with the job's secrets and masks them",
    "shell_task": "renders a SHELL attempt with the job's secrets (the sandbox gets values, no grant)",
    "fork_task": "renders a FORK_JOB attempt with the job's secrets",
    "expire_task": "renders an EXPIRE_ARTIFACTS attempt with the job's secrets",
    "launch": "renders a container attempt with the job's secrets (its environment)",
    "container_events": "masks the job's secrets in a finished container's log",
    "reconciler": "masks the job's secrets in the log of a container it settles",
    "notify": "reads the SlackWebhookURL config to post a job's Slack notification",
}
"""The functions that read secret values, and why: every caller of ``resolve_job_configs`` with
secrets (``Walker.run_attempt``, ``launch``, ``containers.WalkReporter``, ``triggers``)."""
READ_ACTIONS = ("ssm:GetParameters",)
WRITE_ACTIONS = ("ssm:PutParameter", "ssm:DeleteParameter")
# Standard SecureStrings are encrypted and decrypted under the key directly (no data key: that is
# the advanced tier's envelope encryption, which Formica does not use).
KEY_READ_ACTIONS = ("kms:Decrypt",)
KEY_WRITE_ACTIONS = ("kms:Encrypt",)


class Configs(Construct):
    """The secret configs' KMS key, their parameter prefix, and the grants to use them.

    Parameters
    ----------
    parameter_prefix
        The parameters' name prefix, starting with ``/`` (one per stage).
    key_alias
        The key's alias (``alias/...``), how operators find it.
    removal_policy
        The key's: RETAIN keeps it (and so the stored secrets readable) when the stack is deleted;
        DESTROY schedules its deletion, after ``KEY_DELETION_WINDOW``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        parameter_prefix: str,
        key_alias: str,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        if not parameter_prefix.startswith("/") or parameter_prefix.endswith("/"):
            raise ValueError(
                f"parameter prefix {parameter_prefix!r}: starts with '/' and does not end with one"
            )
        self.parameter_prefix = parameter_prefix
        self.key = kms.Key(
            self,
            "SecretsKey",
            description="Formica: encrypts secret configs (SSM SecureString parameters)",
            alias=key_alias,
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=KEY_DELETION_WINDOW,
        )
        self.parameters_arn = Stack.of(self).format_arn(
            service="ssm",
            resource="parameter",
            resource_name=f"{parameter_prefix.lstrip('/')}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )

    def settings(self) -> dict[str, str]:
        """The ``FORMICA_*`` settings of the functions that use secret configs."""
        return {
            "FORMICA_CONFIGS_PARAMETER_PREFIX": self.parameter_prefix,
            "FORMICA_CONFIGS_KMS_KEY_ID": self.key.key_arn,
        }

    def grant_to_functions(self, scope: Construct) -> None:
        """Grant ``WRITER`` and ``READERS`` among the functions under ``scope`` (each must exist)."""
        functions = {node.folder: node for node in scope.node.find_all() if isinstance(node, FormicaFunction)}
        missing = sorted({WRITER, *READERS} - set(functions))
        if missing:
            raise ValueError(f"functions that use secret configs are missing: {', '.join(missing)}")
        for folder in READERS:
            self.grant(functions[folder], write=folder == WRITER)
        if WRITER not in READERS:
            self.grant(functions[WRITER], write=True)

    def grant(self, function: FormicaFunction, *, write: bool) -> None:
        """Let ``function`` read the secret configs' values (and, with ``write``, store and delete
        them), through SSM only, and give it the settings."""
        for name, value in self.settings().items():
            function.function.add_environment(name, value)
        actions = [*READ_ACTIONS, *(WRITE_ACTIONS if write else ())]
        function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[self.parameters_arn])
        )
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[*KEY_READ_ACTIONS, *(KEY_WRITE_ACTIONS if write else ())],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"ssm.{Stack.of(self).region}.amazonaws.com"}},
            )
        )
        acknowledge_wildcard_resource(
            function.role,
            self.parameters_arn,
            "Secret configs are parameters created at run time, one per organisation (or job type) "
            "and name, all under this stack's prefix: the prefix is the narrowest name known here.",
        )
