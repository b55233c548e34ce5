"""List prices, in one table with their date, and the dollars of a request's counted usage.

Pure arithmetic: ``price_usage(usage, region)``. The prices are AWS's public on-demand list prices
(no free tier, no savings plans); a region missing from the table is priced at us-east-1's, and the
answer says which region's prices it used. bench/cost.py prices its jobs with the same table.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from formica.engine.usage import RequestUsage

__all__ = ["PRICES", "PRICES_AS_OF", "CostBreakdown", "Prices", "billed_ms", "price_usage", "prices_for"]

PRICES_AS_OF = "2025-01-15"
"""When the figures below were read from AWS's pricing pages."""


class Prices(BaseModel):
    """One region's list prices, in dollars."""

    region: str
    as_of: str = PRICES_AS_OF
    state_transition: float
    """Step Functions Standard, per state transition."""
    lambda_gb_second: float
    """Lambda arm64 (the stack's architecture), per GB-second."""
    lambda_request: float
    fargate_vcpu_hour: float
    """Fargate Linux/x86 (the runner's task definitions), per vCPU-hour."""
    fargate_gb_hour: float
    dynamodb_read_unit: float
    """On-demand, per read request unit."""
    dynamodb_write_unit: float
    s3_write_request: float
    """S3 Standard PUT, COPY, POST, LIST, per request."""
    s3_read_request: float
    """S3 Standard GET and the rest, per request."""


PRICES: dict[str, Prices] = {
    "us-east-1": Prices(
        region="us-east-1",
        state_transition=0.025 / 1000,
        lambda_gb_second=0.0000133334,
        lambda_request=0.20 / 1_000_000,
        fargate_vcpu_hour=0.04048,
        fargate_gb_hour=0.004445,
        dynamodb_read_unit=0.125 / 1_000_000,
        dynamodb_write_unit=0.625 / 1_000_000,
        s3_write_request=0.005 / 1000,
        s3_read_request=0.0004 / 1000,
    ),
}
DEFAULT_REGION = "us-east-1"


def prices_for(region: str) -> Prices:
    """The region's prices, or us-east-1's when the table has none for it."""
    return PRICES.get(region, PRICES[DEFAULT_REGION])


def billed_ms(seconds: float) -> int:
    """Lambda bills duration rounded up to the millisecond."""
    return max(0, math.ceil(seconds * 1000 - 1e-9))


class CostBreakdown(BaseModel):
    """Dollars by service and in total, and the prices they came from."""

    transitions: float
    lambda_: float
    fargate: float
    dynamodb: float
    s3: float
    total: float
    region: str
    prices_as_of: str


def price_usage(usage: RequestUsage, region: str) -> CostBreakdown:
    """The dollars of ``usage`` at ``region``'s list prices.

    Parameters
    ----------
    usage:
        Counted usage (a request's, or a sum of requests').
    region:
        The stack's region; a region the table lacks is priced at us-east-1's (``region`` in the
        answer says which).

    Returns
    -------
    CostBreakdown
        Unrounded dollars per service and their total.
    """
    prices = prices_for(region)
    transitions = usage.transitions * prices.state_transition
    lambda_ = (
        usage.lambda_gb_seconds * prices.lambda_gb_second + usage.lambda_invocations * prices.lambda_request
    )
    fargate = (
        usage.fargate_vcpu_seconds / 3600 * prices.fargate_vcpu_hour
        + usage.fargate_gb_seconds / 3600 * prices.fargate_gb_hour
    )
    dynamodb = (
        usage.dynamodb_read_units * prices.dynamodb_read_unit
        + usage.dynamodb_write_units * prices.dynamodb_write_unit
    )
    s3 = usage.s3_write_requests * prices.s3_write_request + usage.s3_read_requests * prices.s3_read_request
    return CostBreakdown(
        transitions=transitions,
        lambda_=lambda_,
        fargate=fargate,
        dynamodb=dynamodb,
        s3=s3,
        total=transitions + lambda_ + fargate + dynamodb + s3,
        region=prices.region,
        prices_as_of=prices.as_of,
    )
