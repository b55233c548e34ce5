"""The dollars of a request's counted usage, against a hand-worked example, and the step rule."""

from __future__ import annotations

import pytest
from formica.engine.pricing import PRICES, PRICES_AS_OF, price_usage
from formica.engine.usage import LambdaUsage, RequestUsage, StepEntry, step_transitions
from formica.engine.walk import Action, Decision


def worked_usage() -> RequestUsage:
    return RequestUsage(
        transitions=8,
        # 3 invocations at 256 MB for 1.2 s in all: 0.3 GB-s
        lambdas={"shell_task": LambdaUsage(invocations=3, mb_ms=256 * 1200)},
        # 0.25 vCPU (256 units) and 512 MiB for 60 s: 15 vCPU-s and 30 GB-s
        fargate_cpu_unit_ms=256 * 60_000,
        fargate_mib_ms=512 * 60_000,
        dynamodb_read_units=10,
        dynamodb_write_units=20,
        s3_write_requests=3,
        s3_read_requests=2,
    )


def test_dollars_of_a_hand_worked_example_at_us_east_1() -> None:
    cost = price_usage(worked_usage(), "us-east-1")
    # 8 x $0.025/1,000
    assert cost.transitions == pytest.approx(0.0002, rel=1e-12)
    # 0.3 GB-s x $0.0000133334 + 3 x $0.20/1,000,000
    assert cost.lambda_ == pytest.approx(0.00000400002 + 0.0000006, rel=1e-12)
    # 15/3,600 vCPU-h x $0.04048 + 30/3,600 GB-h x $0.004445
    assert cost.fargate == pytest.approx(0.000168666667 + 0.0000370416667, rel=1e-9)
    # 10 x $0.125/M + 20 x $0.625/M
    assert cost.dynamodb == pytest.approx(0.00000125 + 0.0000125, rel=1e-12)
    # 3 x $0.005/1,000 + 2 x $0.0004/1,000
    assert cost.s3 == pytest.approx(0.000015 + 0.0000008, rel=1e-12)
    assert cost.total == pytest.approx(0.000439858353, rel=1e-9)
    assert (cost.region, cost.prices_as_of) == ("us-east-1", PRICES_AS_OF)


def test_a_region_without_prices_is_priced_at_us_east_1_and_says_so() -> None:
    assert "ap-south-2" not in PRICES
    cost = price_usage(worked_usage(), "ap-south-2")
    assert cost.region == "us-east-1"
    assert cost.total == price_usage(worked_usage(), "us-east-1").total


@pytest.mark.parametrize(
    ("decision", "entry", "states"),
    [
        (Decision(action=Action.RUN_SHELL), StepEntry.DECIDED, 2),  # Route, RunShell
        (Decision(action=Action.RUN_HTTP, wait_seconds=5), StepEntry.DECIDED, 3),  # + the Wait
        (Decision(action=Action.RUN_CONTAINER), StepEntry.CATCH, 3),  # Advance, Route, Launch
        (Decision(action=Action.RUN_SHELL), StepEntry.BEGIN, 4),  # Route, Begin, Route, RunShell
        (Decision(action=Action.CONTINUE), StepEntry.DECIDED, 3),  # Route, ContinueAsNew, Continued
        (Decision(action=Action.SUCCEED), StepEntry.DECIDED, 2),  # Route, Done
        (Decision(action=Action.FAIL), StepEntry.FATAL, 2),  # AdvanceFailed, Failed
    ],
)
def test_states_a_committed_step_accounts_for(decision: Decision, entry: StepEntry, states: int) -> None:
    assert step_transitions(decision, entry) == states


def test_usages_add_up_per_function() -> None:
    one = RequestUsage(transitions=2, lambdas={"advance": LambdaUsage(invocations=1, mb_ms=10)})
    two = RequestUsage(
        transitions=3,
        lambdas={"advance": LambdaUsage(invocations=2, mb_ms=5), "launch": LambdaUsage(invocations=1)},
    )
    total = one.plus(two)
    assert total.transitions == 5
    assert total.lambdas == {
        "advance": LambdaUsage(invocations=3, mb_ms=15),
        "launch": LambdaUsage(invocations=1),
    }
    assert one.lambdas["advance"].invocations == 1  # the operands are left alone
