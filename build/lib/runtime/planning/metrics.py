"""A finished job as CloudWatch metrics: one embedded-metric-format (EMF) log line.

CloudWatch Logs turns a JSON log event whose root has an ``_aws`` key into metrics, for
any log group: Lambda's (written to stdout) and a Batch container's (the awslogs driver
sends stdout with PutLogEvents, where the ``x-amzn-logs-format`` header is optional), so
the same line works on both paths. Write it to stdout as it is, not through the JSON logger
(runtime/logs.py nests messages, and EMF needs ``_aws`` at the root).

Dimensions are kept few so the number of metrics stays small (each distinct combination is
a custom metric, billed monthly): ``Stack`` always; ``Path`` and ``Engine``; ``Team``
(object metadata, normalised, at most ``MAX_TEAM`` characters, ``unknown`` when absent).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "McPricing"
MAX_TEAM = 32
_TEAM = re.compile(r"[^a-z0-9_.-]+")
# (metric, unit): what the dashboard sums per day, path, engine and team
METRICS = (
    ("Jobs", "Count"),
    ("JobsFailed", "Count"),
    ("Rows", "Count"),
    ("RowsWithErrors", "Count"),
    ("Seconds", "Seconds"),
    ("CostUsd", "None"),
    ("LambdaGbSeconds", "None"),
    ("BatchVcpuSeconds", "None"),
)
DIMENSION_SETS = (("Stack",), ("Stack", "Path", "Engine"), ("Stack", "Team"))


def team_name(raw: str | None) -> str:
    """A bounded dimension value from an upload's ``team`` metadata."""
    name = _TEAM.sub("-", (raw or "").strip().lower()).strip("-")[:MAX_TEAM]
    return name or "unknown"


def job_metrics_line(
    stack: str,
    path: str,
    engine: str,
    team: str | None,
    state: str,
    rows: int,
    seconds: float,
    cost: Mapping[str, Any] | None = None,
    rows_with_errors: int = 0,
    timestamp_ms: int | None = None,
    namespace: str = NAMESPACE,
) -> str:
    """The EMF line for one job that reached a terminal state.

    ``cost`` is the job's cost document (``usage.Cost.to_dict``); absent, cost metrics are 0.
    Only ``done`` and ``failed`` jobs count as jobs; a superseded or cancelled one is
    reported with ``Jobs`` 0 so its rows and cost still show."""
    cost = cost or {}
    values = {
        "Jobs": 1 if state in ("done", "failed") else 0,
        "JobsFailed": 1 if state == "failed" else 0,
        "Rows": int(rows),
        "RowsWithErrors": int(rows_with_errors),
        "Seconds": round(float(seconds), 3),
        "CostUsd": float(cost.get("usd", 0.0)),
        "LambdaGbSeconds": float(cost.get("lambdaGbSeconds", 0.0)),
        "BatchVcpuSeconds": float(cost.get("batchVcpuSeconds", 0.0)),
    }
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(s) for s in DIMENSION_SETS],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in METRICS],
                }
            ],
        },
        "Stack": stack,
        "Path": path,
        "Engine": engine,
        "Team": team_name(team),
        "State": state,  # a property, not a dimension: searchable in Logs Insights
        **values,
    }
    return json.dumps(document, separators=(",", ":"))
