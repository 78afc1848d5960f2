"""FailureRouting under mocks, for both stack files: every failure signal into the Lambda
(failed Batch jobs, the failure queues), the parked queue, and the IAM both paths' roles
gain for it. Job events to people, metrics, alarms, dashboard: test_infra_monitoring.py."""

from __future__ import annotations

import json
import re

import parliament
import pytest

from .harness import ACCOUNT, Run, run_stack
from .operations_cases import (
    COMPONENTS,
    EMAIL,
    MAPPING,
    QUEUE,
    RULE,
    TARGET,
    arn_of,
    batch_event,
    event_matches,
    fast_failure_queue_arn,
    function,
    function_arn,
    normal_dlq_arn,
    ops,
    parked_arn,
    pattern,
    prefix,
    queue_arns,
    queue_by_arn,
)
from .policies import as_list

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")


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


def test_receive_counts_agree_with_the_runtime() -> None:
    """The runtime stops resuming a merge, and records the failure as final, on a receive
    before the redrive policy parks the message; `simulate` parks after as many receives."""
    from components.failure_routing import MAX_RECEIVES
    from runtime.adapters import lambda_handler
    from runtime.tools import emulator

    assert lambda_handler._LAST_RECEIVE < MAX_RECEIVES
    assert emulator.MAX_RECEIVES == MAX_RECEIVES
