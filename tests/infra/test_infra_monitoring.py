"""PricingMonitoring under mocks, for both stack files: failed jobs by email (notifyEmail),
metric filters against the runtime's log contract, alarms and the dashboard. Failure
routing: test_infra_failure_routing.py."""

from __future__ import annotations

import json
import re

import pytest

from .harness import ACCOUNT, Run
from .operations_cases import (
    ALARM,
    EMAIL,
    FILTER,
    ORDINARY_LINE,
    RULE,
    SNS_TYPES,
    arn_of,
    batch_event,
    batch_log_group,
    event_matches,
    fast_failure_queue_arn,
    filter_matches,
    function,
    job_line,
    lambda_log_group,
    metric_value,
    normal_dlq_arn,
    ops,
    parked_arn,
    pattern,
    prefix,
    queue_arns,
    queue_by_arn,
    selector,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")


# --- 2. job events to people -------------------------------------------------------------------


def test_no_topic_without_notify_email(run: Run) -> None:
    for type_ in SNS_TYPES:
        assert not run.of_type(type_)
    assert run.outputs["alarmTopicArn"] is None
    assert not [r for r in run.of_type(RULE) if r.name == "monitoring-job-failed"]
    for alarm in run.of_type(ALARM):
        assert not alarm.inputs.get("alarmActions"), alarm.name


def topic_arn(run: Run) -> str:
    return arn_of(run, "sns", f"{prefix(run)}-notify")


def test_notify_email_subscribes_to_a_topic(emailed: Run) -> None:
    run = emailed
    topic = run.one("aws:sns/topic:Topic").inputs
    assert topic["name"] == f"{prefix(run)}-notify"
    assert run.outputs["alarmTopicArn"] == topic_arn(run)
    subscription = run.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert subscription == {"topic": topic_arn(run), "protocol": "email", "endpoint": EMAIL}


def test_failed_jobs_rule_and_readable_message(emailed: Run) -> None:
    run = emailed
    rule = ops(run, "job-failed", RULE)
    bucket = run.outputs["inputBucket"]
    assert pattern(rule) == {
        "source": ["mc-pricing"],
        "detail-type": ["Pricing Job State Change"],
        "detail": {"state": ["failed"], "inputBucket": [bucket]},
    }
    event = {
        "source": "mc-pricing",
        "detail-type": "Pricing Job State Change",
        "detail": json.loads(
            job_line("failed", inputBucket=bucket, error="part-00003: engine error")
        )["detail"],
    }
    assert event_matches(pattern(rule), event)
    for state in ("done", "superseded", "cancelled"):
        assert not event_matches(
            pattern(rule), event | {"detail": event["detail"] | {"state": state}}
        )
    other_stack = event | {"detail": event["detail"] | {"inputBucket": "someone-elses"}}
    assert not event_matches(pattern(rule), other_stack)

    target = ops(run, "job-failed-email").inputs
    assert target["rule"] == rule.inputs["name"] and target["arn"] == topic_arn(run)
    assert target["deadLetterConfig"] == {"arn": parked_arn(run)}
    assert target["retryPolicy"]["maximumRetryAttempts"] == 185
    transformer = target["inputTransformer"]
    # Substitute as EventBridge does in a string template (values inside the quotes), then
    # read each quoted line back: the email's body.
    rendered = transformer["inputTemplate"]
    for name, path in transformer["inputPaths"].items():
        value = selector(event, path[1:])
        rendered = rendered.replace(f"<{name}>", "" if value is None else str(value))
    assert not re.search(r"<[A-Za-z]+>", rendered)
    body = "\n".join(json.loads(line) for line in rendered.splitlines())
    assert "failed" in body.splitlines()[0] and prefix(run) in body.splitlines()[0]
    assert f"s3://{bucket}/fast/1/a.csv" in body
    assert "part-00003: engine error" in body
    assert f"s3://{run.outputs['resultBucket']}/fast/1/a.csv-status.json" in body


def test_topic_policy_admits_exactly_our_rule_and_alarms(emailed: Run) -> None:
    run = emailed
    policy = run.one("aws:sns/topicPolicy:TopicPolicy").inputs
    assert policy["arn"] == topic_arn(run)
    events, alarms = json.loads(policy["policy"])["Statement"]
    assert events == {
        "Sid": "FailedJobEventsPublish",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": ["sns:Publish"],
        "Resource": [topic_arn(run)],
        "Condition": {"ArnEquals": {"aws:SourceArn": ops(run, "job-failed", RULE).state["arn"]}},
    }
    alarm_arns = sorted(
        arn_of(run, "cloudwatch", f"alarm:{a.inputs['name']}") for a in run.of_type(ALARM)
    )
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == ["sns:Publish"] and alarms["Resource"] == [topic_arn(run)]
    assert sorted(alarms["Condition"]["ArnEquals"]["aws:SourceArn"]) == alarm_arns
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    for alarm in run.of_type(ALARM):
        assert alarm.inputs["alarmActions"] == [topic_arn(run)], alarm.name


# --- 3. metrics, alarms, dashboard ------------------------------------------------------------


def filters_on(run: Run, log_group: str) -> dict[str, dict]:
    return {
        f.inputs["metricTransformation"]["name"]: f.inputs
        for f in run.of_type(FILTER)
        if f.inputs["logGroupName"] == log_group
    }


def namespace(run: Run) -> str:
    return f"mc-pricing/{prefix(run)}"


def test_job_metric_filters_follow_the_log_contract(run: Run) -> None:
    lines = {state: job_line(state) for state in ("done", "failed", "superseded", "cancelled")}
    expected = {
        "JobsDone": ("done", "1"),
        "JobsFailed": ("failed", "1"),
        "JobsSuperseded": ("superseded", "1"),
        "JobsCancelled": ("cancelled", "1"),
        "RowsPriced": ("done", "$.detail.rows"),
        "RowsWithErrors": ("done", "$.detail.rowsWithErrors"),
    }
    for group in (lambda_log_group(run), batch_log_group(run)):
        filters = filters_on(run, group)
        assert set(filters) == set(expected), group
        for metric, (state, value) in expected.items():
            f = filters[metric]
            assert f["pattern"] == (
                f'{{ $.event = "Pricing Job State Change" && $.detail.state = "{state}" }}'
            )
            transformation = f["metricTransformation"]
            assert transformation == {
                "namespace": namespace(run),
                "name": metric,
                "value": value,
                "unit": "Count",
            }
            matched = [s for s, line in lines.items() if filter_matches(f["pattern"], line)]
            assert matched == [state], metric
            assert not filter_matches(f["pattern"], ORDINARY_LINE)
            assert not filter_matches(f["pattern"], "REPORT RequestId: 1 Duration: 2 ms")
    done = filters_on(run, lambda_log_group(run))
    assert metric_value(done["RowsPriced"]["metricTransformation"]["value"], lines["done"]) == 100
    assert metric_value(done["RowsWithErrors"]["metricTransformation"]["value"], lines["done"]) == 2
    assert metric_value(done["JobsDone"]["metricTransformation"]["value"], lines["done"]) == 1


def test_batch_state_changes_are_logged_and_counted(run: Run) -> None:
    queue = run.outputs["jobQueueArn"]
    rule = ops(run, "batch-states", RULE)
    assert pattern(rule) == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"jobQueue": queue_arns(run)},
    }
    group = ops(run, "batch-events", "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == f"/aws/events/{prefix(run)}-batch-jobs"
    assert group.inputs["retentionInDays"] == 30
    target = ops(run, "batch-states-logs").inputs
    assert target["rule"] == rule.inputs["name"] and target["arn"] == group.state["arn"]
    policy = ops(run, "batch-events-policy")
    assert run.depends_on(ops(run, "batch-states-logs"), policy)
    create, put = json.loads(policy.inputs["policyDocument"])["Statement"]
    streams = group.state["arn"] + ":*"
    services = {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]}
    assert create == {
        "Sid": "EventBridgeCreateStream",
        "Effect": "Allow",
        "Principal": services,
        "Action": ["logs:CreateLogStream"],
        "Resource": [streams],
    }
    assert put == {
        "Sid": "EventBridgePutEvents",
        "Effect": "Allow",
        "Principal": services,
        "Action": ["logs:PutLogEvents"],
        "Resource": [streams],
        "Condition": {"ArnEquals": {"aws:SourceArn": rule.state["arn"]}},
    }
    states = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
    filters = filters_on(run, group.inputs["name"])
    assert set(filters) == {f"BatchJobs{s.title()}" for s in states}
    for status in states:
        f = filters[f"BatchJobs{status.title()}"]
        assert f["pattern"] == f'{{ $.detail.status = "{status}" }}'
        assert f["metricTransformation"]["namespace"] == namespace(run)
        for other in states:
            line = json.dumps(batch_event(other, queue))
            assert filter_matches(f["pattern"], line) == (other == status)


ALARMS = {
    # key: (namespace or None for the stack's own, metric, statistic, dimension name)
    "fast-failures": ("AWS/SQS", "NumberOfMessagesSent", "Sum", "QueueName"),
    "normal-failures": ("AWS/SQS", "NumberOfMessagesSent", "Sum", "QueueName"),
    "parked": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "QueueName"),
    "lambda-errors": ("AWS/Lambda", "Errors", "Sum", "FunctionName"),
    "lambda-throttles": ("AWS/Lambda", "Throttles", "Sum", "FunctionName"),
    "batch-failure-routing": ("AWS/Events", "FailedInvocations", "Sum", "RuleName"),
    "jobs-failed": (None, "JobsFailed", "Sum", None),
}


def test_alarms(run: Run) -> None:
    alarms = {a.inputs["name"]: a.inputs for a in run.of_type(ALARM)}
    p = prefix(run)
    assert set(alarms) == {f"{p}-{key}" for key in ALARMS}
    queue_names = {
        "fast-failures": queue_by_arn(run, fast_failure_queue_arn(run))["name"],
        "normal-failures": queue_by_arn(run, normal_dlq_arn(run))["name"],
        "parked": f"{p}-parked",
    }
    for key, (ns, metric, statistic, dimension) in ALARMS.items():
        alarm = alarms[f"{p}-{key}"]
        assert alarm["namespace"] == (ns or namespace(run)), key
        assert (alarm["metricName"], alarm["statistic"]) == (metric, statistic), key
        assert alarm["threshold"] == 1 and alarm["evaluationPeriods"] == 1, key
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold", key
        assert alarm["treatMissingData"] == "notBreaching", key
        assert alarm["period"] == 300 and alarm["alarmDescription"], key
        if dimension == "QueueName":
            assert alarm["dimensions"] == {"QueueName": queue_names[key]}, key
        elif dimension == "RuleName":
            assert alarm["dimensions"] == {"RuleName": f"{p}-batch-failed"}, key
        elif dimension == "FunctionName":
            assert alarm["dimensions"] == {"FunctionName": function(run)["name"]}, key
        else:
            assert not alarm.get("dimensions"), key
    # The failed-jobs alarm watches a metric the filters really produce.
    produced = {f.inputs["metricTransformation"]["name"] for f in run.of_type(FILTER)}
    assert "JobsFailed" in produced


def dashboard_metrics(body: dict) -> list[list]:
    """The metrics the dashboard names (search expressions aside)."""
    return [
        m
        for w in body["widgets"]
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if any(not isinstance(part, dict) for part in m)
    ]


def test_dashboard_references_the_real_resources(run: Run) -> None:
    dashboard = ops(run, "dashboard").inputs
    assert dashboard["dashboardName"] == run.outputs["dashboardName"] == f"{prefix(run)}-operations"
    body = json.loads(dashboard["dashboardBody"])
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert {
        "Jobs by final state",
        "Rows priced",
        "Lambda duration (ms)",
        "Lambda concurrency",
        "Batch jobs by state (transitions)",
        "Queue depths (visible messages)",
        "Alarms",
    } <= titles
    for w in body["widgets"]:
        assert {"x", "y", "width", "height"} <= set(w) and w["x"] + w["width"] <= 24
        if w["type"] == "metric":
            assert w["properties"]["region"] == run.region

    produced = {f.inputs["metricTransformation"]["name"] for f in run.of_type(FILTER)}
    references: dict[str, set] = {}
    for metric in dashboard_metrics(body):
        ns, name, *rest = [m for m in metric if not isinstance(m, dict)]
        references.setdefault(ns, set()).add((name, *rest))
        if ns == namespace(run):
            assert name in produced, name  # every custom metric shown is one a filter writes
    fn = function(run)["name"]
    assert {("Duration", "FunctionName", fn), ("ConcurrentExecutions", "FunctionName", fn)} <= (
        references["AWS/Lambda"]
    )
    queue_names = {
        queue_by_arn(run, fast_failure_queue_arn(run))["name"],
        queue_by_arn(run, normal_dlq_arn(run))["name"],
        f"{prefix(run)}-parked",
    }
    assert {
        ("ApproximateNumberOfMessagesVisible", "QueueName", q) for q in queue_names
    } <= references["AWS/SQS"]
    assert {name for name, *_ in references[namespace(run)]} == produced
    # Every rule of the stack: failure routing, monitoring and the upload rules.
    rules = {r.inputs["name"] for r in run.of_type(RULE)}
    assert {rule for _, _, rule in references["AWS/Events"]} == rules
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        arn_of(run, "cloudwatch", f"alarm:{a.inputs['name']}") for a in run.of_type(ALARM)
    )


def test_dashboard_shows_the_jobs_estimated_cost_per_day_by_path_and_by_team(run: Run) -> None:
    """From the runtime's metrics line (EMF; its namespace and dimension sets agree with
    runtime/planning/metrics.py: tests/project/test_contract.py), for this stack's Stack
    dimension (STACK_NAME, the name prefix)."""
    body = json.loads(ops(run, "dashboard").inputs["dashboardBody"])
    widgets = {w["properties"]["title"]: w for w in body["widgets"] if w["type"] == "metric"}
    stack = prefix(run)
    for title, dimensions in (
        ("Estimated cost per day by path (USD)", ("Stack", "Path", "Engine")),
        ("Estimated cost per day by team (USD)", ("Stack", "Team")),
    ):
        props = widgets[title]["properties"]
        ((query,),) = props["metrics"]
        schema = ",".join(("McPricing", *dimensions))
        assert query["expression"] == (
            f"SEARCH('{{{schema}}} MetricName=\"CostUsd\" Stack=\"{stack}\"', 'Sum', 86400)"
        )
        assert (props["period"], props["stat"], props["stacked"]) == (86400, "Sum", True)
    env = function(run)["environment"]["variables"]
    assert env["STACK_NAME"] == stack  # the line's Stack dimension


def test_embedded_metrics_need_no_permission_beyond_writing_logs(run: Run) -> None:
    """EMF lines are log events: CloudWatch extracts the metrics itself, so neither the
    function nor the jobs get cloudwatch:PutMetricData."""
    actions = {
        action
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        for statement in json.loads(r.inputs["policy"])["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert not {a for a in actions if a.startswith("cloudwatch:")}
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= actions
