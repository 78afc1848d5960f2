"""What the failure routing and monitoring tests (test_infra_failure_routing.py,
test_infra_monitoring.py) share: resources found by wiring rather than by name, and tiny
evaluators of EventBridge patterns and CloudWatch Logs filter patterns."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers import aws_event

from .harness import ACCOUNT, Run

COMPONENTS = ("mc-pricing:components:FailureRouting", "mc-pricing:components:PricingMonitoring")
EMAIL = "ops@example.com"
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
    """tests/events' real Batch Job State Change (FAILED), for this status and queue: the
    rules must match what AWS sends."""
    event = aws_event(
        "batch-job-state-change-failed",
        job_id="4c7599ae-0a82-49aa-ba5a-4727fcce14a8",
        token="t0k3n",
        bucket="in",
        key="normal/1/a.csv",
        container_reason="OutOfMemoryError: Container killed due to memory usage",
        status_reason="Essential container in task exited",
        environment=[],
        array_properties={},
    )
    event["detail"] |= {"status": status, "jobQueue": queue}
    return event
