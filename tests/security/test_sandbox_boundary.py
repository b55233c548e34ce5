"""Organisation B's SHELL script runs in the sandbox function: whatever it reads from its process
(its environment, /proc/$PPID/environ: the role's credentials in Lambda), those credentials reach
none of Formica's data. Checked with moto's IAM enforcement against the sandbox role's policies as
the CDK stack synthesizes them, and for the shell-task function (trusted) as a control."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.synthesis import Synth
from tests.security.conftest import as_role, data_attempts, data_plane, role_policy


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with data_plane(monkeypatch) as names:
        yield names


def test_the_sandbox_role_reaches_no_table_bucket_secret_or_state_machine(
    synth: Synth, aws: dict[str, str]
) -> None:
    # Given the credentials of the sandbox function's role, exactly as synthesized
    policy = role_policy(synth, synth.role_of("shell_sandbox"), aws)
    with as_role(policy) as sandbox:
        # When a script tries to read or write Formica's data with them, each call is refused
        refused = {name: sandbox.denied(call) for name, call in data_attempts(aws).items()}
    assert refused == dict.fromkeys(refused, True)


def test_the_check_is_real_the_trusted_shell_function_reaches_the_table_and_bucket(
    synth: Synth, aws: dict[str, str]
) -> None:
    # The same enforcement lets the trusted shell-task role read its table and bucket: the refusals
    # above come from the sandbox's policy, not from a check that refuses everything.
    policy = role_policy(synth, synth.role_of("shell_task"), aws)
    with as_role(policy) as trusted:
        attempts = data_attempts(aws)
        assert not trusted.denied(attempts["dynamodb get"])
        assert not trusted.denied(attempts["s3 get"])
        assert trusted.denied(attempts["secret"])
