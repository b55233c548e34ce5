"""A request's counted usage in the API's shape: quantities and dollars at the region's list prices."""

from __future__ import annotations

from formica.api.models import CostDollarsResponse, LambdaCostResponse, RequestCostResponse
from formica.engine.pricing import price_usage
from formica.engine.usage import RequestUsage

__all__ = ["cost_response"]


def cost_response(usage: RequestUsage, region: str) -> RequestCostResponse:
    """``usage`` as the ``cost`` of a request (or of a day's requests in the statistics).

    Parameters
    ----------
    usage:
        Counted usage (``JobRequestItem.usage``, or a sum of them).
    region:
        The stack's region: its prices (``formica.engine.pricing``).
    """
    dollars = price_usage(usage, region)
    return RequestCostResponse(
        transitions=usage.transitions,
        lambda_invocations=usage.lambda_invocations,
        lambda_gb_seconds=usage.lambda_gb_seconds,
        lambdas=[
            LambdaCostResponse(function=name, invocations=calls.invocations, gb_seconds=calls.gb_seconds)
            for name, calls in sorted(usage.lambdas.items())
        ],
        fargate_vcpu_seconds=usage.fargate_vcpu_seconds,
        fargate_gb_seconds=usage.fargate_gb_seconds,
        dynamodb_read_units=usage.dynamodb_read_units,
        dynamodb_write_units=usage.dynamodb_write_units,
        s3_write_requests=usage.s3_write_requests,
        s3_read_requests=usage.s3_read_requests,
        dollars=CostDollarsResponse(
            transitions=dollars.transitions,
            lambdas=dollars.lambda_,
            fargate=dollars.fargate,
            dynamodb=dollars.dynamodb,
            s3=dollars.s3,
            total=dollars.total,
        ),
        prices_region=dollars.region,
        prices_as_of=dollars.prices_as_of,
    )
