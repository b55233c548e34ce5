"""The runtime's composition root: the process's ``Runtime`` and container service, built lazily.

This is the one module that knows every concrete part: the store's adapters for the settings'
table, bucket and state machine, admission's ``request_finished`` as the walk's ``request_ended``,
and the ECS / EKS container service. Nothing is built at import time; ``get_runtime()`` builds
the process's Runtime on first use. Lambda handlers, the API's services and ``formica dev`` call
it; the modules below take a ``Runtime`` as an argument, so tests build their own (``build_runtime``
with fakes, or by hand) and pass it explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from formica.runtime.deps import ContainerControl, Runtime
from formica.settings import FormicaSettings, SettingsError, get_settings
from formica.store.blobs import S3BlobStore
from formica.store.configs import ConfigRepository, SsmConfigSecretStore
from formica.store.definitions import DefinitionRepository
from formica.store.events import EventBridgePublisher
from formica.store.functions import LambdaFunctionInvoker
from formica.store.grants import DynamoGrantRepository
from formica.store.requests import JobRequestItem, RequestRepository
from formica.store.state_machine import StepFunctionsStateMachine
from formica.store.stats import JobStatsRepository

if TYPE_CHECKING:
    from formica.runners.ecs import EcsRunner
    from formica.runners.eks import EksJobRunner
    from formica.runtime.containers import ContainerService, Reporter
    from formica.runtime.notify import NotifyServices

# Admission and the container service are imported when first used, not with this module: every
# handler imports the wiring, and a task Lambda's cold start would otherwise load the slot store,
# the ECS and EKS runners and the container service it never calls.


def _request_finished(runtime: Runtime, request: JobRequestItem) -> None:
    from formica.runtime.scheduling import request_finished  # noqa: PLC0415 - cold start, see above

    request_finished(runtime, request)
    from formica.runtime.stats import record_request_end  # noqa: PLC0415 - cold start, see above

    record_request_end(runtime, request)
    if request.parent_id is not None:
        from formica.runtime.forks import child_finished  # noqa: PLC0415 - cold start, see above

        child_finished(runtime, request)


def _take_slot(runtime: Runtime, request: JobRequestItem) -> bool:
    from formica.runtime.scheduling import take_slot_again  # noqa: PLC0415 - cold start, see above

    return take_slot_again(runtime, request)


def _repair_lost_answers(runtime: Runtime) -> int:
    from formica.runtime.pauses import repair_lost_answers  # noqa: PLC0415 - cold start, see above

    return repair_lost_answers(runtime)


def _repair_lost_deliveries(runtime: Runtime) -> int:
    if not runtime.settings.notify_queue_url:
        return 0  # no delivery queue: nothing is delivered here
    from formica.runtime.notify import repair_lost_deliveries  # noqa: PLC0415 - cold start, see above

    return repair_lost_deliveries(runtime, get_notify_services())


def _sweep_children(runtime: Runtime) -> int:
    from formica.runtime.forks import sweep_children  # noqa: PLC0415 - cold start, see above

    return sweep_children(runtime)


def _sweep_instances(runtime: Runtime) -> int:
    from formica.runtime.task_fanout import sweep_instances  # noqa: PLC0415 - cold start, see above

    return sweep_instances(runtime)


def _process_containers(runtime: Runtime) -> ContainerControl:
    return default_container_service()


def build_runtime(settings: FormicaSettings | None = None) -> Runtime:
    """A Runtime on the settings' table, bucket, state machine and endpoint (cached clients)."""
    resolved = settings or get_settings()
    return Runtime(
        settings=resolved,
        requests=RequestRepository(resolved.table_name, retention_days=resolved.retention_days),
        definitions=DefinitionRepository(resolved.table_name),
        blobs=S3BlobStore(resolved.bucket_name),
        state_machine=StepFunctionsStateMachine(resolved.state_machine_arn),
        request_ended=_request_finished,
        take_slot=_take_slot,
        repairs=(_sweep_children, _repair_lost_answers, _sweep_instances, _repair_lost_deliveries),
        container_factory=_process_containers,
        events=EventBridgePublisher(resolved.event_bus_name) if resolved.event_bus_name else None,
        stats=JobStatsRepository(resolved.table_name),
        # Lazy (a client on first use): the SHELL sandbox and a task fan-out's instances.
        functions=LambdaFunctionInvoker(),
        grants=DynamoGrantRepository(resolved.table_name) if resolved.shell_sandbox_function else None,
        configs=ConfigRepository(resolved.table_name),
        config_secrets=SsmConfigSecretStore(resolved.configs_parameter_prefix, resolved.configs_kms_key_id),
    )


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """The process's Runtime, built from the settings on first use."""
    return build_runtime()


def reset_runtime() -> None:
    """Forget the cached Runtime (tests and the local server change settings)."""
    get_runtime.cache_clear()
    get_notify_services.cache_clear()


def build_notify_services(settings: FormicaSettings | None = None) -> NotifyServices:
    """The notify function's deliveries, delivery queue, webhook secrets and email sender, from the
    settings: an outbox folder (`formica dev`) wins over SES; neither: email is off."""
    # Only the notify function (and `formica dev`) delivers: the other handlers never load this.
    from formica.runtime.notify import NotifyServices  # noqa: PLC0415
    from formica.runtime.notify_channels import ChannelServices  # noqa: PLC0415
    from formica.store.deliveries import DeliveryRepository  # noqa: PLC0415
    from formica.store.events import SqsDeliveryQueue  # noqa: PLC0415
    from formica.store.mail import SesEmailSender  # noqa: PLC0415
    from formica.store.outbox import LOCAL_SENDER, OutboxEmailSender  # noqa: PLC0415
    from formica.store.webhook_secrets import SecretsManagerWebhookSecrets  # noqa: PLC0415

    resolved = settings or get_settings()
    if not resolved.notify_queue_url:
        raise SettingsError("invalid or missing settings: FORMICA_NOTIFY_QUEUE_URL")
    if resolved.email_outbox:
        channels = ChannelServices(
            email=OutboxEmailSender(Path(resolved.email_outbox)),
            email_sender=resolved.notify_sender or LOCAL_SENDER,
            email_to_outbox=True,
        )
    elif resolved.notify_sender:
        channels = ChannelServices(email=SesEmailSender(), email_sender=resolved.notify_sender)
    else:
        channels = ChannelServices()
    return NotifyServices(
        deliveries=DeliveryRepository(resolved.table_name),
        queue=SqsDeliveryQueue(resolved.notify_queue_url),
        secrets=SecretsManagerWebhookSecrets(resolved.webhook_secret_prefix),
        backoff_seconds=resolved.webhook_backoff_seconds,
        max_attempts=resolved.webhook_max_attempts,
        repair_grace_seconds=resolved.delivery_repair_grace_seconds,
        channels=channels,
    )


@lru_cache(maxsize=1)
def get_notify_services() -> NotifyServices:
    """The process's notify services, built from the settings on first use."""
    return build_notify_services()


def build_container_service(
    settings: FormicaSettings | None = None,
    *,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
) -> ContainerService:
    """A ContainerService wired to AWS (or moto) from settings; clients are built on first use.

    The reporter defaults to ``WalkReporter`` on ``runtime`` (the process's by default: the
    deployed walk); pass ``DirectReporter`` when no job request stands behind the runs.
    """
    # Cold start, see above: only the container functions and a cancel build the container service.
    from formica.runners.ecs import EcsLaunchConfig, EcsRunner  # noqa: PLC0415
    from formica.runners.eks import EksRunnerError, build_eks_runner  # noqa: PLC0415
    from formica.runtime.containers import ContainerService, WalkReporter  # noqa: PLC0415
    from formica.store.container_logs import CloudWatchContainerLogs  # noqa: PLC0415
    from formica.store.container_runs import DynamoContainerRunRepository  # noqa: PLC0415

    resolved = settings or get_settings()
    blobs = S3BlobStore(resolved.bucket_name)

    def ecs() -> EcsRunner:
        return EcsRunner(EcsLaunchConfig.from_settings(resolved), blobs=blobs)

    def eks() -> EksJobRunner:
        if not resolved.eks_cluster_name:
            raise EksRunnerError("no EKS cluster configured (FORMICA_EKS_CLUSTER_NAME)")
        return build_eks_runner(
            cluster_name=resolved.eks_cluster_name,
            region=resolved.region,
            namespace=resolved.eks_namespace,
            bucket=resolved.bucket_name,
            blobs=blobs,
        )

    return ContainerService(
        settings=resolved,
        runs=DynamoContainerRunRepository(resolved.table_name),
        state_machine=StepFunctionsStateMachine(resolved.state_machine_arn),
        reporter=reporter or WalkReporter(runtime or get_runtime()),
        ecs=ecs,
        eks=eks,
        logs=CloudWatchContainerLogs(),
        blobs=blobs,
        grants=DynamoGrantRepository(resolved.table_name),
    )


_installed: list[ContainerService] = []


@lru_cache(maxsize=1)
def _built_container_service() -> ContainerService:
    return build_container_service()


def default_container_service() -> ContainerService:
    """The process's container service: an installed one, else one built from the settings."""
    return _installed[-1] if _installed else _built_container_service()


def install_container_service(service: ContainerService | None) -> None:
    """Make ``service`` the process's (tests, the local server); None goes back to the settings'."""
    _installed.clear()
    if service is not None:
        _installed.append(service)


def reset_container_service() -> None:
    """Forget the cached and installed services (tests, and the local server when settings change)."""
    _installed.clear()
    _built_container_service.cache_clear()
