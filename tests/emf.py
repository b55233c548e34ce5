"""CloudWatch embedded metric format (EMF) read back from what a handler printed, as CloudWatch would.

powertools' metrics print one JSON document a line, its ``_aws`` key first; each names its metrics
and their dimensions under ``_aws.CloudWatchMetrics`` and carries the values beside them.
"""

from __future__ import annotations

import json
from typing import Any

Metric = tuple[str, dict[str, str], float, str]
"""One value of one metric: (name, dimensions, value, unit)."""


def emf_documents(printed: str, metric: str | None = None) -> list[dict[str, Any]]:
    """The EMF documents in ``printed``, in order; with ``metric``, only those that carry it."""
    found = []
    for line in printed.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document: dict[str, Any] = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
        if metric is None or any(
            entry["Name"] == metric for directive in directives for entry in directive["Metrics"]
        ):
            found.append(document)
    return found


def emf_metrics(printed: str, namespace: str = "Formica") -> list[Metric]:
    """Every value of every metric in ``printed``; each document must be in ``namespace``."""
    found: list[Metric] = []
    for document in emf_documents(printed):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == namespace
            (dimension_names,) = directive["Dimensions"]
            dimensions = {name: document[name] for name in dimension_names}
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.append((metric["Name"], dimensions, float(value), metric["Unit"]))
    return found


def named(metrics: list[Metric], name: str) -> list[tuple[dict[str, str], float]]:
    """The (dimensions, value) of each value of the metric ``name``."""
    return [(dimensions, value) for metric, dimensions, value, _ in metrics if metric == name]
