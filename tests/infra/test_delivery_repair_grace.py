"""The lost deliveries' repair waits longer than any delivery legitimately sits idle."""

from __future__ import annotations

import pytest
from formica.settings import FormicaSettings

from cdk.constructs.notifications import NOTIFY_TIMEOUT


def test_the_default_grace_exceeds_the_largest_retry_delay_plus_the_notify_timeout() -> None:
    settings = FormicaSettings(table_name="t", bucket_name="b")
    largest_delay = settings.webhook_backoff_seconds * 2 ** (settings.webhook_max_attempts - 2)
    assert settings.delivery_repair_grace_seconds > largest_delay + NOTIFY_TIMEOUT.to_seconds()


def test_a_grace_within_the_backoff_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="FORMICA_DELIVERY_REPAIR_GRACE_SECONDS"):
        FormicaSettings(table_name="t", bucket_name="b", delivery_repair_grace_seconds=300)
