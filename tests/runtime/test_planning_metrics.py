"""The job's embedded-metric-format line: what CloudWatch turns into metrics."""

from __future__ import annotations

import json

from runtime.planning.metrics import DIMENSION_SETS, METRICS, NAMESPACE, job_metrics_line, team_name


def test_the_line_is_an_emf_document_whose_metrics_and_dimensions_are_at_its_root():
    cost = {"usd": 0.0123, "lambdaGbSeconds": 4.5, "batchVcpuSeconds": 0.0}
    line = job_metrics_line(
        "mc-pricing-us-east-1", "fast", "lsm", "Rates Desk", "done", 10_000, 12.5, cost,
        rows_with_errors=3, timestamp_ms=1_700_000_000_000,
    )  # fmt: skip
    assert "\n" not in line
    document = json.loads(line)
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert document["_aws"]["Timestamp"] == 1_700_000_000_000
    assert directive["Namespace"] == NAMESPACE
    for dimensions in directive["Dimensions"]:
        assert all(isinstance(document[name], str) for name in dimensions)
    assert [tuple(d) for d in directive["Dimensions"]] == list(DIMENSION_SETS)
    for metric in directive["Metrics"]:
        assert isinstance(document[metric["Name"]], (int, float))
    assert [m["Name"] for m in directive["Metrics"]] == [name for name, _ in METRICS]
    assert (document["Jobs"], document["JobsFailed"], document["Rows"]) == (1, 0, 10_000)
    assert (document["CostUsd"], document["Team"], document["Path"]) == (
        0.0123,
        "rates-desk",
        "fast",
    )


def test_failed_jobs_count_and_superseded_ones_keep_their_rows_and_cost_only():
    failed = json.loads(job_metrics_line("s", "normal", "mc", None, "failed", 5, 1.0))
    assert (failed["Jobs"], failed["JobsFailed"], failed["CostUsd"]) == (1, 1, 0.0)
    superseded = json.loads(job_metrics_line("s", "normal", "mc", "", "superseded", 5, 1.0))
    assert (superseded["Jobs"], superseded["Rows"]) == (0, 5)


def test_team_names_are_bounded_so_the_metric_count_stays_small():
    assert team_name(None) == team_name("  ") == "unknown"
    assert team_name("Équipe/Taux #1") == "quipe-taux-1"
    assert len(team_name("x" * 500)) == 32
