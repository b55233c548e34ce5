"""The stack both IAM checks read: synthesized once per session, with every optional consumer on."""

from __future__ import annotations

import json

import pytest

from tests.iamcheck.policies import FunctionPolicy, function_policies
from tests.iamcheck.recorder import ACCOUNT
from tests.infra.synthesis import DEFAULT_CONTEXT, definition_file, synthesize

STATE_MACHINE_NAME = f"formica-{DEFAULT_CONTEXT['stage']}-job"
TRIGGER_QUEUES = {
    "formica-acme-orders": ("acme", "orders"),
    "formica-other-orders": ("other-org", "orders"),
    "not-a-trigger-queue": ("acme", "untagged"),
}
"""The queues the suites' trigger_queue events come from, listed as an operator lists their own."""
# The trigger consumers (trigger_s3, trigger_queue) exist only when the context lists a bucket and
# queues: without them the suites' calls of those functions would be checked against no policy.
CHECK_CONTEXT: dict[str, object] = {
    **DEFAULT_CONTEXT,
    # The sender the notify suites verify and send from (tests/workflow/test_notify_channels.py).
    "notify_sender": "formica@example.com",
    "trigger_buckets": json.dumps({"formica-uploads": ["acme"]}),
    "trigger_queues": json.dumps(
        [
            {"org": org, "topic": topic, "queue_arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"}
            for name, (org, topic) in TRIGGER_QUEUES.items()
        ]
    ),
}


@pytest.fixture(scope="session")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FunctionPolicy]:
    root = tmp_path_factory.mktemp("iam-cdk")
    synth = synthesize(root / "cdk.out", definition_file(root), CHECK_CONTEXT)
    assert synth.validation_error is None, synth.validation_error
    return function_policies(synth.template, STATE_MACHINE_NAME)
