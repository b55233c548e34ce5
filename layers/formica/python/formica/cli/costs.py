"""How `formica status` prints a request's cost (the API's ``cost``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_cost"]


def _dollars(value: Any) -> str:
    return f"${float(value or 0):.6f}"


def format_cost(cost: Mapping[str, Any]) -> str:
    """The lines of a request's ``cost``: its total, then each service's quantities and dollars."""
    dollars: Mapping[str, Any] = cost.get("dollars") or {}
    rows = [
        ("state transitions", f"{cost.get('transitions', 0)}", dollars.get("transitions")),
        (
            "Lambda",
            f"{cost.get('lambda_invocations', 0)} calls, "
            f"{float(cost.get('lambda_gb_seconds') or 0):.3f} GB-s",
            dollars.get("lambdas"),
        ),
        (
            "Fargate",
            f"{float(cost.get('fargate_vcpu_seconds') or 0):.1f} vCPU-s, "
            f"{float(cost.get('fargate_gb_seconds') or 0):.1f} GB-s",
            dollars.get("fargate"),
        ),
        (
            "DynamoDB",
            f"{cost.get('dynamodb_read_units', 0)} read, {cost.get('dynamodb_write_units', 0)} write units",
            dollars.get("dynamodb"),
        ),
        (
            "S3",
            f"{cost.get('s3_write_requests', 0)} PUT/LIST, {cost.get('s3_read_requests', 0)} GET requests",
            dollars.get("s3"),
        ),
    ]
    width = max(len(quantity) for _, quantity, _ in rows)
    lines = [
        f"cost: {_dollars(dollars.get('total'))} at {cost.get('prices_region')} list prices "
        f"(as of {cost.get('prices_as_of')})"
    ]
    lines += [f"  {name:<18} {quantity:<{width}}  {_dollars(amount)}" for name, quantity, amount in rows]
    return "\n".join(lines)
