"""FailureRouting and PricingMonitoring (the two halves of the former PricingOperations) under
mocks, for both stack files: failure routing into the Lambda, job events by email, metric
filters against the runtime's log contract, alarms, dashboard, IAM."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import parliament
import pytest

from .harness import ACCOUNT, ROOT, STACKS, Run, run_stack
from .policies import as_list

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

COMPONENTS = ("mc-pricing:components:FailureRouting", "mc-pricing:components:PricingMonitoring")
EMAIL = "ops@example.com"
EVENTS = ROOT / "tests" / "events"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
QUEUE = "aws:sqs/queue:Queue"
FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
SNS_TYPES = (
    "aws:sns/topic:Topic",
    "aws:sns/topicSubscription:TopicSubscription",
    "aws:sns/topicPolicy:TopicPolicy",
)


@pytest.fixture(scope="module", params=STACKS)
def run(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param)


@pytest.fixture(scope="module", params=STACKS)
def emailed(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param, (("notifyEmail", EMAIL),))


# --- what the rest of the stack exposes, found by wiring rather than by resource names ----------


def prefix(run: Run) -> str:
    return run.one("aws:ecr/repository:Repository").inputs["name"]


def ops(run: Run, key: str, type_: str | None = None) -> Any:
    """A resource the former PricingOperations created as `ops-<key>`, now in one of its two
    halves (FailureRouting "failures", PricingMonitoring "monitoring")."""
    names = {f"failures-{key}", f"monitoring-{key}"}
    (found,) = [r for r in run.resources if r.name in names and (type_ is None or r.type == type_)]
    return found


def function(run: Run) -> dict:
    return run.one("aws:lambda/function:Function").inputs


def function_arn(run: Run) -> str:
    return f"arn:aws:lambda:{run.region}:{ACCOUNT}:function:{function(run)['name']}"


def arn_of(run: Run, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{run.region}:{ACCOUNT}:{resource}"


def queue_by_arn(run: Run, arn: str) -> dict:
    (queue,) = [q.inputs for q in run.of_type(QUEUE) if q.state.get("arn") == arn]
    return queue


def fast_failure_queue_arn(run: Run) -> str:
    config = run.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
    return config["destinationConfig"]["onFailure"]["destination"]


def normal_dlq_arn(run: Run) -> str:
    """The upload rules' dead-letter queue (still named <p>-normal-failures)."""
    upload = run.named("notifications-normal-upload-function").inputs
    return upload["deadLetterConfig"]["arn"]


def queue_arns(run: Run) -> list[str]:
    return [run.outputs["jobQueueArn"], run.outputs["urgentJobQueueArn"]]


def parked_arn(run: Run) -> str:
    return arn_of(run, "sqs", f"{prefix(run)}-parked")


def lambda_log_group(run: Run) -> str:
    return f"/aws/lambda/{function(run)['name']}"


def batch_log_group(run: Run) -> str:
    props = json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )
    return props["logConfiguration"]["options"]["awslogs-group"]


def pattern(resource: Any) -> dict:
    return json.loads(resource.inputs["eventPattern"])


# --- tiny evaluators: EventBridge patterns and CloudWatch Logs JSON filter patterns -------------


def event_matches(pattern: dict, event: dict) -> bool:
    """EventBridge matching for the subset used here: nested keys, lists of exact values."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        if isinstance(expected, dict):
            if not isinstance(event[key], dict) or not event_matches(expected, event[key]):
                return False
        elif event[key] not in expected:
            return False
    return True


TERM = re.compile(r'^\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*=\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)$')


def selector(document: Any, path: str) -> Any:
    for part in path.strip(".").split("."):
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def filter_matches(filter_pattern: str, line: str) -> bool:
    """CloudWatch Logs JSON filter patterns for the subset used here: `{ T && T ... }` where
    each T is `$.a.b = "string"` or `$.a.b = number`. Non-JSON lines never match."""
    text = filter_pattern.strip()
    assert text.startswith("{") and text.endswith("}"), filter_pattern
    try:
        document = json.loads(line)
    except ValueError:
        return False
    for term in text[1:-1].split("&&"):
        found = TERM.match(term.strip())
        assert found, f"unsupported term {term!r}"
        path, literal = found.groups()
        if selector(document, path) != json.loads(literal):
            return False
    return True


def metric_value(value: str, line: str) -> float:
    return float(selector(json.loads(line), value[1:])) if value.startswith("$.") else float(value)


def job_line(state: str, **detail: Any) -> str:
    """A terminal-state log line as the runtime writes it (docs/operations.md)."""
    base = {
        "input": "s3://in/fast/1/a.csv",
        "inputBucket": "in",
        "inputKey": "fast/1/a.csv",
        "token": "t0k3n",
        "state": state,
        "path": "fast",
        "rows": 100,
        "rowsWithErrors": 2,
        "parts": 1,
        "resultKey": "fast/1/a.csv-result",
        "errorKey": None,
        "error": None,
        "failedParts": [],
        "startedAt": "2026-12-01T10:00:00Z",
        "finishedAt": "2026-12-01T10:00:02Z",
        "seconds": 2.0,
        "engine": "lsm",
        "region": "us-east-1",
    }
    return json.dumps(
        {
            "time": "2026-12-01T10:00:02Z",
            "level": "INFO",
            "logger": "runtime",
            "message": f"job {state}",
            "token": "t0k3n",
            "inputKey": "fast/1/a.csv",
            "event": "Pricing Job State Change",
            "detail": base | detail,
        }
    )


ORDINARY_LINE = json.dumps(
    {"time": "t", "level": "INFO", "logger": "runtime", "message": "part priced", "token": "x"}
)


def batch_event(status: str, queue: str) -> dict:
    """tests/events' real-format Batch Job State Change, for this status and queue."""
    template = string.Template((EVENTS / "batch-job-state-change-failed.json").read_text())
    text = template.substitute(
        job_id="4c7599ae-0a82-49aa-ba5a-4727fcce14a8",
        token="t0k3n",
        bucket="in",
        key="normal/1/a.csv",
        container_reason="OutOfMemoryError: Container killed due to memory usage",
        status_reason="Essential container in task exited",
        environment="[]",
        array_properties="{}",
    )
    event = json.loads(text)
    event["detail"] |= {"status": status, "jobQueue": queue}
    return event


# --- 1. failure routing ------------------------------------------------------------------------


def test_batch_failure_rule_pattern(run: Run) -> None:
    rule = ops(run, "batch-failed", RULE)
    assert rule.inputs["name"] == f"{prefix(run)}-batch-failed"
    assert rule.inputs.get("eventBusName") in (None, "default")
    assert pattern(rule) == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"status": ["FAILED"], "jobQueue": queue_arns(run)},
    }
    for queue in queue_arns(run):  # both lanes
        assert event_matches(pattern(rule), batch_event("FAILED", queue))
        assert not event_matches(pattern(rule), batch_event("SUCCEEDED", queue))
        assert not event_matches(pattern(rule), batch_event("FAILED", queue + "-other"))


def test_batch_failures_invoke_the_lambda(run: Run) -> None:
    rule = ops(run, "batch-failed", RULE)
    target = ops(run, "batch-failed-lambda")
    permission = ops(run, "batch-failed-invoke").inputs
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == function_arn(run)
    assert "inputTransformer" not in target.inputs  # the handler gets the event as AWS sends it
    assert target.inputs["retryPolicy"] == {
        "maximumEventAgeInSeconds": 86400,
        "maximumRetryAttempts": 185,
    }
    assert target.inputs["deadLetterConfig"] == {"arn": parked_arn(run)}
    assert permission == {
        "action": "lambda:InvokeFunction",
        "function": function(run)["name"],
        "principal": "events.amazonaws.com",
        "sourceArn": rule.state["arn"],
    }
    assert run.depends_on(target, ops(run, "batch-failed-invoke"))
    assert run.depends_on(target, ops(run, "parked-policy"))


def test_both_failure_queues_are_consumed_by_the_lambda(run: Run) -> None:
    mappings = {m.inputs["eventSourceArn"]: m for m in run.of_type(MAPPING)}
    assert set(mappings) == {fast_failure_queue_arn(run), normal_dlq_arn(run)}
    policy = ops(run, "lambda-policy")
    for mapping in mappings.values():
        inputs = mapping.inputs
        assert inputs["functionName"] == function_arn(run)
        assert inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert inputs["batchSize"] == 1
        assert inputs["maximumBatchingWindowInSeconds"] == 0
        assert inputs["enabled"] is True
        assert inputs["scalingConfig"] == {"maximumConcurrency": 5}
        # Lambda checks the role's SQS permissions when the mapping is created.
        assert run.depends_on(mapping, policy)


@pytest.mark.parametrize("timeout", [900, 300, 30])
def test_visibility_timeout_covers_the_function_timeout(timeout: int) -> None:
    run = run_stack("eu-west-1", (("lambdaTimeoutSeconds", timeout),))
    assert function(run)["timeout"] == timeout
    for arn in (fast_failure_queue_arn(run), normal_dlq_arn(run)):
        visibility = queue_by_arn(run, arn)["visibilityTimeoutSeconds"]
        # AWS refuses the mapping below the timeout; it recommends six times it.
        assert visibility >= timeout
        assert visibility == min(6 * timeout, 43200)


def test_poison_messages_are_parked_after_five_receives(run: Run) -> None:
    redrives = {
        r.inputs["queueUrl"]: json.loads(r.inputs["redrivePolicy"])
        for r in run.of_type("aws:sqs/redrivePolicy:RedrivePolicy")
    }
    urls = {
        q.state["arn"]: q.state["url"]
        for q in run.of_type(QUEUE)
        if q.state["arn"] in (fast_failure_queue_arn(run), normal_dlq_arn(run))
    }
    assert set(redrives) == set(urls.values()) and len(urls) == 2
    for policy in redrives.values():
        assert policy == {"deadLetterTargetArn": parked_arn(run), "maxReceiveCount": 5}
    parked = queue_by_arn(run, parked_arn(run))
    assert parked["sqsManagedSseEnabled"] is True
    assert parked["messageRetentionSeconds"] == 14 * 24 * 3600
    assert json.loads(parked["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [fast_failure_queue_arn(run), normal_dlq_arn(run)],
    }
    # Nothing consumes the parked queue automatically.
    assert parked_arn(run) not in {m.inputs["eventSourceArn"] for m in run.of_type(MAPPING)}


@pytest.mark.parametrize("with_email", [False, True])
def test_parked_queue_accepts_only_our_rules_dead_letters(with_email: bool) -> None:
    run = run_stack("us-east-1", (("notifyEmail", EMAIL),) if with_email else ())
    (statement,) = json.loads(ops(run, "parked-policy").inputs["policy"])["Statement"]
    rules = [ops(run, "batch-failed", RULE).state["arn"]]
    if with_email:
        rules.append(ops(run, "job-failed", RULE).state["arn"])
    assert statement == {
        "Sid": "EventBridgeDeadLetters",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": ["sqs:SendMessage"],
        "Resource": [parked_arn(run)],
        "Condition": {"ArnEquals": {"aws:SourceArn": rules}},
    }
    dead_lettered = {
        t.inputs["rule"]
        for t in run.of_type(TARGET)
        if t.inputs.get("deadLetterConfig", {}).get("arn") == parked_arn(run)
    }
    assert dead_lettered == {arn.rsplit("/", 1)[1] for arn in rules}


# --- IAM -------------------------------------------------------------------------------------


PUT_EVENTS = {
    "Sid": "JobEvents",
    "Effect": "Allow",
    "Action": ["events:PutEvents"],
    "Condition": {
        "StringEquals": {
            "events:source": "mc-pricing",
            "events:detail-type": "Pricing Job State Change",
        }
    },
}


def test_lambda_role_consumes_exactly_the_failure_queues_and_publishes_job_events(run: Run) -> None:
    policy = ops(run, "lambda-policy").inputs
    assert policy["role"] == run.named("fast-role").inputs["name"]
    consume, put = json.loads(policy["policy"])["Statement"]
    assert consume == {
        "Sid": "ConsumeFailureQueues",
        "Effect": "Allow",
        "Action": [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        ],
        "Resource": [fast_failure_queue_arn(run), normal_dlq_arn(run)],
    }
    assert put == PUT_EVENTS | {"Resource": [arn_of(run, "events", "event-bus/default")]}
    # Both queues are SSE-SQS (no customer-managed key), so no KMS permission is needed.
    for arn in (fast_failure_queue_arn(run), normal_dlq_arn(run)):
        queue = queue_by_arn(run, arn)
        assert queue["sqsManagedSseEnabled"] is True and not queue.get("kmsMasterKeyId")


def test_batch_job_role_publishes_job_events(run: Run) -> None:
    policy = ops(run, "job-policy").inputs
    props = json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )
    assert props["jobRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{policy['role']}"
    (put,) = json.loads(policy["policy"])["Statement"]
    assert put == PUT_EVENTS | {"Resource": [arn_of(run, "events", "event-bus/default")]}


def operations_policies(run: Run) -> list[tuple[str, dict]]:
    properties = {
        "aws:iam/rolePolicy:RolePolicy": "policy",
        "aws:sqs/queuePolicy:QueuePolicy": "policy",
        "aws:sns/topicPolicy:TopicPolicy": "policy",
        "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": "policyDocument",
    }
    return [
        (r.name, json.loads(r.inputs[properties[r.type]]))
        for r in run.resources
        if r.type in properties and any(c in r.urn for c in COMPONENTS)
    ]


def test_every_statement_is_scoped_to_this_stack(emailed: Run) -> None:
    run = emailed
    docs = operations_policies(run)
    assert {name for name, _ in docs} == {
        "failures-lambda-policy",
        "failures-job-policy",
        "failures-parked-policy",
        "monitoring-notify-policy",
        "monitoring-batch-events-policy",
    }
    for name, doc in docs:
        for statement in doc["Statement"]:
            assert statement["Effect"] == "Allow" and "NotAction" not in statement, name
            for action in as_list(statement["Action"]):
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), (name, action)
            for resource in as_list(statement["Resource"]):
                assert resource.startswith("arn:aws:") and f":{run.region}:{ACCOUNT}:" in resource
                # The default event bus is the one shared resource (the runtime's contract).
                if not resource.endswith(":event-bus/default"):
                    assert prefix(run) in resource, (name, resource)
            if "Principal" in statement:  # resource policies: one service, pinned to a source
                assert set(statement["Principal"]) == {"Service"}, name
                if statement["Action"] != ["logs:CreateLogStream"]:
                    assert "aws:SourceArn" in json.dumps(statement["Condition"]), name


def test_parliament_finds_nothing_in_our_policies(emailed: Run) -> None:
    for name, doc in operations_policies(emailed):
        findings = parliament.analyze_policy_string(
            json.dumps(doc), include_community_auditors=True
        ).findings
        assert not findings, (name, [(f.issue, f.detail) for f in findings])


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


# --- structure and outputs --------------------------------------------------------------------


def test_components_own_their_resources(emailed: Run) -> None:
    run = emailed
    for component, prefix_ in zip(COMPONENTS, ("failures-", "monitoring-"), strict=True):
        assert run.one(component).urn
        mine = [r for r in run.resources if r.name.startswith(prefix_)]
        assert mine
        for resource in mine:
            assert resource.custom and resource.urn.split("::")[2].endswith(
                f"{component}${resource.type}"
            ), resource.name
    assert len([r for r in run.resources if r.name.startswith(("failures-", "monitoring-"))]) > 40
    assert {"dashboardName", "alarmTopicArn"} <= set(run.outputs)
    assert not run.of_type("mc-pricing:components:PricingOperations")


def test_split_resources_keep_their_deployed_identity(emailed: Run) -> None:
    """Every resource of the former PricingOperations ("ops") is aliased to its name under it,
    so a deployed stack keeps them (a renamed queue, rule or policy would be created anew and the
    old one deleted: the parked queue with its messages, the alarms, the dashboard)."""
    run = emailed
    ops_urn = run.one(COMPONENTS[0]).urn.replace(
        "mc-pricing:components:FailureRouting::failures",
        "mc-pricing:components:PricingOperations::ops",
    )
    split = [
        r for r in run.resources if r.name.startswith(("failures-", "monitoring-")) and r.custom
    ]
    new_ones = {"failures-schedule-redrive", "failures-schedule-failures-mapping"}
    for resource in split:
        if resource.name in new_ones:
            continue
        key = resource.name.split("-", 1)[1]
        assert resource.aliases == [{"name": f"ops-{key}", "parentUrn": ops_urn}], resource.name


def test_receive_counts_agree_with_the_runtime() -> None:
    """The runtime stops resuming a merge, and records the failure as final, on a receive
    before the redrive policy parks the message; `simulate` parks after as many receives."""
    from components.failure_routing import MAX_RECEIVES
    from runtime.adapters import lambda_handler
    from runtime.tools import emulator

    assert lambda_handler._LAST_RECEIVE < MAX_RECEIVES
    assert emulator.MAX_RECEIVES == MAX_RECEIVES
