"""How uploads reach the function, for both stack files: the input bucket's one notification
(fast/ keys in any letter case), EventBridge's upload rules for the Batch lanes, the
function's invoke permissions and the upload rules' dead-letter queue."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from .harness import ACCOUNT, Run, run_stack

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

CSV_SPELLINGS = {".csv", ".csV", ".cSv", ".cSV", ".Csv", ".CsV", ".CSv", ".CSV"}

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


def test_single_bucket_notification_carries_lambda_and_eventbridge(run: Run) -> None:
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    assert notification.urn.split("::")[2].startswith(
        "mc-pricing:components:InputNotifications$"
    ), notification.urn
    inputs = notification.inputs
    assert inputs["bucket"] == run.outputs["inputBucket"]
    assert inputs["eventbridge"] is True
    targets = inputs["lambdaFunctions"]
    function = run.one("aws:lambda/function:Function")
    # One rule per spelling of ".csv": S3 key filters are case-sensitive.
    assert {t["filterSuffix"] for t in targets} == CSV_SPELLINGS and len(targets) == 8
    assert len({t["id"] for t in targets}) == 8
    for target in targets:
        assert target["filterPrefix"] == "fast/"
        assert target["events"] == ["s3:ObjectCreated:*"]
        assert target["lambdaFunctionArn"].endswith(f":function:{function.inputs['name']}")
    # S3 refuses overlapping rules: no suffix may end another one.
    for a, b in itertools.permutations([t["filterSuffix"] for t in targets], 2):
        assert not a.endswith(b)
    assert not inputs.get("queues") and not inputs.get("topics")
    # S3 verifies it may invoke the function when the configuration is written.
    assert run.depends_on(notification, run.named("fast-s3-invoke"))


LANES = ("normal", "urgent", "auto")


@pytest.mark.parametrize(
    ("key", "fast", "lane"),
    [
        ("fast/1/a.csv", True, None),
        ("fast/1/a.CSV", True, None),
        ("fast/1/a.Csv", True, None),
        ("fast/_parts/tok/part-00001.csv", True, None),
        ("fast/1/a.csv.gz", False, None),
        ("fast/1/a.txt", False, None),
        ("normal/1/a.csv", False, "normal"),
        ("normal/1/a.CSV", False, "normal"),
        ("normal/1/deeper/b.cSv", False, "normal"),
        ("normal/1/a.xlsx", False, None),
        ('normal/1/a"b\\c.csv', False, "normal"),  # the SDK escapes any key: no unsafe keys
        ("urgent/1/a.csv", False, "urgent"),
        ("urgent/1/a.CsV", False, "urgent"),
        ("auto/1/a.csv", False, "auto"),
        ("books/eod.csv", False, None),  # a standing book is never a job by itself
        ("other/a.csv", False, None),
    ],
)
def test_csv_uploads_reach_their_path_in_any_letter_case(
    key: str, fast: bool, lane: str | None
) -> None:
    run = run_stack("us-east-1")
    notification = run.one("aws:s3/bucketNotification:BucketNotification").inputs
    reaches_lambda = any(
        key.startswith(t["filterPrefix"]) and key.endswith(t["filterSuffix"])
        for t in notification["lambdaFunctions"]
    )
    matched = [
        name
        for name in LANES
        if any(
            wildcard_match(p["wildcard"], key)
            for p in json.loads(
                run.named(f"notifications-{name}-upload-rule").inputs["eventPattern"]
            )["detail"]["object"]["key"]
        )
    ]
    assert (reaches_lambda, matched) == (fast, [lane] if lane else [])


def wildcard_match(pattern: str, text: str) -> bool:
    """EventBridge wildcard semantics: `*` any run of characters, a backslash escapes."""
    regex, chars = "", iter(pattern)
    for char in chars:
        if char == "\\":
            regex += re.escape(next(chars))
        elif char == "*":
            regex += ".*"
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def test_no_rule_sends_keys_around_the_function(run: Run) -> None:
    """The former unsafe-key rule (keys with `"` or `\\` could not be carried in a Batch
    target's parameters) and the events role that submitted Batch jobs are gone: every upload
    rule invokes the function with the event as AWS sends it."""
    names = {r.inputs["name"] for r in run.of_type(RULE)}
    assert not [n for n in names if "unsafe" in n]
    assert not [r for r in run.of_type("aws:iam/role:Role") if "events" in r.name]
    for target in run.of_type(TARGET):
        assert not target.inputs.get("batchTarget"), target.name


def test_lambda_permission_for_the_input_bucket_only(run: Run) -> None:
    permission = run.named("fast-s3-invoke").inputs
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["principal"] == "s3.amazonaws.com"
    assert permission["sourceArn"] == f"arn:aws:s3:::{run.outputs['inputBucket']}"
    assert permission["sourceAccount"] == ACCOUNT
    assert permission["function"] == run.outputs["fastFunctionName"]


@pytest.mark.parametrize("lane", LANES)
def test_upload_rules_match_their_prefix_in_the_input_bucket(lane: str) -> None:
    run = run_stack("us-east-1")
    rule = run.named(f"notifications-{lane}-upload-rule").inputs
    assert rule.get("eventBusName") in (None, "default")
    assert rule["name"] == f"mc-pricing-us-east-1-{lane}-upload"
    # One rule per prefix: eight wildcards each, as EventBridge accepted for the normal path.
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [run.outputs["inputBucket"]]},
            "object": {
                "key": [{"wildcard": f"{lane}/*{s}"} for s in sorted(CSV_SPELLINGS, reverse=True)]
            },
        },
    }


@pytest.mark.parametrize("provisioned", [0, 2])
@pytest.mark.parametrize("lane", LANES)
def test_upload_rules_invoke_the_function_asynchronously(lane: str, provisioned: int) -> None:
    """Admission is the function's: EventBridge hands it the S3 event (no transformer, no
    Batch target, no role), retries what Lambda refuses, and dead-letters the rest."""
    run = run_stack("us-east-1", (("lambdaProvisionedConcurrency", provisioned),))
    rule = run.named(f"notifications-{lane}-upload-rule")
    target = run.named(f"notifications-{lane}-upload-function")
    function = run.one("aws:lambda/function:Function").inputs["name"]
    qualifier = "live" if provisioned else None
    expected_arn = f"arn:aws:lambda:{run.region}:{ACCOUNT}:function:{function}" + (
        ":live" if provisioned else ""
    )
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == expected_arn
    assert not target.inputs.get("inputTransformer") and not target.inputs.get("roleArn")
    assert target.inputs["retryPolicy"] == {
        "maximumEventAgeInSeconds": 4 * 3600,
        "maximumRetryAttempts": 40,
    }
    dlq = run.named("notifications-upload-failures").inputs
    assert target.inputs["deadLetterConfig"]["arn"] == (
        f"arn:aws:sqs:{run.region}:{ACCOUNT}:{dlq['name']}"
    )
    permission = run.named(f"notifications-{lane}-upload-invoke")
    assert {k: v for k, v in permission.inputs.items() if k != "qualifier"} == {
        "action": "lambda:InvokeFunction",
        "function": function,
        "principal": "events.amazonaws.com",
        "sourceArn": rule.state["arn"],
    }
    assert permission.inputs.get("qualifier") == qualifier
    assert run.depends_on(target, permission)


def test_dead_letter_queue_accepts_only_the_upload_rules(run: Run) -> None:
    policy = json.loads(run.named("notifications-upload-failures-policy").inputs["policy"])
    (statement,) = policy["Statement"]
    rules = [run.named(f"notifications-{lane}-upload-rule").inputs["name"] for lane in LANES]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == ["sqs:SendMessage"]
    assert statement["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": [f"arn:aws:events:{run.region}:{ACCOUNT}:rule/{r}" for r in rules]
        }
    }
