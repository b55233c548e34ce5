"""A job's configs at run time: the organisation's, then the job type's, secrets fetched.

``resolve_job_configs`` is the one way the runtime reads them: the walk renders them as template
variables (below job_variables, params and task variables) and exports them into every task's
environment; notifications read their webhook URLs from them. Secret values are read afresh on
every call (never cached), so a rotated secret takes effect from the next attempt on, and
``JobConfigs.masker`` masks every one of them wherever Formica writes text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from formica.engine.masking import MASK, NO_SECRETS, SecretMasker
from formica.runtime.deps import Runtime
from formica.store.configs import ConfigItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobConfigs:
    """The configs a job of one type sees, resolved.

    ``variables``: name -> value, the organisation's configs overridden by the job type's, with the
    secrets' values (or ``MASK`` when resolved without them); ``secrets``: the secret values, for
    masking.
    """

    variables: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    secret_names: frozenset[str] = frozenset()

    @property
    def masker(self) -> SecretMasker:
        """Masks every form of every secret of these configs."""
        return SecretMasker(self.secrets) if self.secrets else NO_SECRETS


NO_CONFIGS = JobConfigs()


def resolve_job_configs(
    runtime: Runtime, org: str, job_type: str, *, with_secrets: bool = True
) -> JobConfigs:
    """The configs of ``org`` then of its job type ``job_type`` (the job type's win on a name).

    Parameters
    ----------
    runtime
        Its ``configs`` (the table's config items) and ``config_secrets`` (the parameter store);
        without ``configs`` there are none.
    org, job_type
        Whose configs: only items keyed by ``org`` are read.
    with_secrets
        Fetch the secrets' values (a task attempt, a notification); False gives them as ``MASK``
        (the walk's own decisions: a secret never steers routing, and Advance holds no read grant).

    Returns
    -------
    JobConfigs
        Resolved variables and the secret values to mask.

    Raises
    ------
    formica.store.configs.ConfigStoreError
        The table or the parameter store could not be read.
    """
    if runtime.configs is None:
        return NO_CONFIGS
    chosen: dict[str, ConfigItem] = {}
    for item in runtime.configs.list(org):
        chosen[item.name] = item
    for item in runtime.configs.list(org, job_type):
        chosen[item.name] = item
    references = [item.secret_ref for item in chosen.values() if item.secret and item.secret_ref]
    values: dict[str, str] = {}
    if with_secrets and references:
        if runtime.config_secrets is None:
            logger.warning("secret configs left out: no parameter store", extra={"org": org})
        else:
            values = runtime.config_secrets.values(references)
    variables: dict[str, str] = {}
    secrets: list[str] = []
    names: set[str] = set()
    for name, item in chosen.items():
        if not item.secret:
            variables[name] = item.value or ""
            continue
        names.add(name)
        if not with_secrets:
            variables[name] = MASK
            continue
        value = values.get(item.secret_ref or "")
        if value is None:
            # Written a moment ago (its parameter follows its item) or deleted meanwhile.
            logger.warning("secret config has no value", extra={"org": org, "config": name})
            continue
        variables[name] = value
        secrets.append(value)
    return JobConfigs(variables=variables, secrets=tuple(secrets), secret_names=frozenset(names))
