"""PricingSchedules under mocks: schedules of standing books, their payload, the scheduler's
least-privilege role, the dead-letter route into the function, validation, on and off."""

from __future__ import annotations

import json

import parliament
import pytest

from .harness import ACCOUNT, Run, run_program

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

SCHEDULE = "aws:scheduler/schedule:Schedule"
EOD = {
    "name": "eod-risk",
    "cron": "cron(30 17 ? * MON-FRI *)",
    "timezone": "America/New_York",
    "book": "risk/eod.csv",
    "path": "normal",
}
INTRADAY = {
    "name": "intraday.fx",
    "cron": "cron(0 9-16 ? * MON-FRI *)",
    "timezone": "Europe/London",
    "book": "fx.CSV",
    "path": "urgent",
}


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program("us-east-1", {"schedules": [EOD, INTRADAY], "scheduleWindowMinutes": 5})


def function_arn(run: Run) -> str:
    name = run.one("aws:lambda/function:Function").inputs["name"]
    return f"arn:aws:lambda:{run.region}:{ACCOUNT}:function:{name}"


def test_one_group_and_one_schedule_per_entry(run: Run) -> None:
    group = run.one("aws:scheduler/scheduleGroup:ScheduleGroup").inputs
    assert group["name"] == "mc-pricing-us-east-1-schedules"
    assert run.outputs["scheduleGroupName"] == group["name"]
    schedules = {s.inputs["name"]: s.inputs for s in run.of_type(SCHEDULE)}
    assert set(schedules) == {"eod-risk", "intraday.fx"}
    eod = schedules["eod-risk"]
    assert eod["groupName"] == group["name"]
    assert eod["scheduleExpression"] == "cron(30 17 ? * MON-FRI *)"
    assert eod["scheduleExpressionTimezone"] == "America/New_York"
    assert eod["state"] == "ENABLED"
    assert eod["flexibleTimeWindow"] == {"mode": "FLEXIBLE", "maximumWindowInMinutes": 5}


def test_each_run_invokes_the_function_with_the_scheduled_run_payload(run: Run) -> None:
    """Exactly the runtime's contract (docs/protocol.md): Scheduler substitutes the context
    attribute with the run's scheduled time, the same on every retry of one run."""
    bucket = run.outputs["inputBucket"]
    for entry in (EOD, INTRADAY):
        (schedule,) = [s for s in run.of_type(SCHEDULE) if s.inputs["name"] == entry["name"]]
        target = schedule.inputs["target"]
        assert target["arn"] == function_arn(run)
        assert json.loads(target["input"]) == {
            "source": "mc-pricing.schedule",
            "schedule": entry["name"],
            "book": entry["book"],
            "path": entry["path"],
            "inputBucket": bucket,
            "scheduledTime": "<aws.scheduler.scheduled-time>",
        }
        assert target["retryPolicy"] == {
            "maximumEventAgeInSeconds": 86400,
            "maximumRetryAttempts": 185,
        }
        dlq = run.named("schedules-failures").inputs
        assert target["deadLetterConfig"] == {
            "arn": f"arn:aws:sqs:{run.region}:{ACCOUNT}:{dlq['name']}"
        }
        assert target["roleArn"] == run.named("schedules-scheduler-role").state["arn"]
        assert run.depends_on(schedule, run.named("schedules-scheduler-policy"))


def test_window_off_by_default() -> None:
    run = run_program("eu-west-1", {"schedules": [EOD]})
    (schedule,) = run.of_type(SCHEDULE)
    assert schedule.inputs["flexibleTimeWindow"] == {"mode": "OFF"}


def test_scheduler_role_is_least_privilege(run: Run) -> None:
    role = run.named("schedules-scheduler-role").inputs
    trust = json.loads(role["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    # Against the confused deputy: this account's schedule group only.
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {
            "aws:SourceArn": f"arn:aws:scheduler:{run.region}:{ACCOUNT}:schedule-group/"
            "mc-pricing-us-east-1-schedules"
        },
    }
    policy = json.loads(run.named("schedules-scheduler-policy").inputs["policy"])
    dlq = run.named("schedules-failures").state["arn"]
    assert policy["Statement"] == [
        {
            "Sid": "InvokeFunction",
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [function_arn(run)],
        },
        {"Sid": "DeadLetters", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [dlq]},
    ]
    findings = parliament.analyze_policy_string(
        json.dumps(policy), include_community_auditors=True
    ).findings
    assert not findings, [(f.issue, f.detail) for f in findings]


def test_dead_letters_are_consumed_by_the_function_and_parked_after_five(run: Run) -> None:
    dlq = run.named("schedules-failures")
    assert dlq.inputs["sqsManagedSseEnabled"] is True
    assert dlq.inputs["name"] == "mc-pricing-us-east-1-schedule-failures"
    assert dlq.inputs["visibilityTimeoutSeconds"] == 5400  # 6 x the 900 s function timeout
    mapping = run.named("failures-schedule-failures-mapping").inputs
    assert mapping["eventSourceArn"] == dlq.state["arn"]
    assert mapping["functionName"] == function_arn(run)
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    redrive = json.loads(run.named("failures-schedule-redrive").inputs["redrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": f"arn:aws:sqs:{run.region}:{ACCOUNT}:mc-pricing-us-east-1-parked",
        "maxReceiveCount": 5,
    }
    parked = json.loads(run.named("failures-parked").inputs["redriveAllowPolicy"])
    assert dlq.state["arn"] in parked["sourceQueueArns"]
    consume = json.loads(run.named("failures-lambda-policy").inputs["policy"])["Statement"][0]
    assert dlq.state["arn"] in consume["Resource"]
    alarm = run.named("monitoring-alarm-schedule-failures").inputs
    assert alarm["dimensions"] == {"QueueName": dlq.inputs["name"]}


def test_scheduled_copies_may_write_only_the_paths_a_schedule_names(run: Run) -> None:
    """CopyObject books/<book> -> <path>/<jobId>/<file>: GetObject on books/, PutObject on
    fast/, normal/, urgent/ (never books/: standing books are never written by the stack)."""
    inp = run.outputs["inputBucket"]
    doc = json.loads(run.named("fast-policy").inputs["policy"])
    (copies,) = [s for s in doc["Statement"] if s["Sid"] == "ScheduledCopies"]
    assert copies["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload"]
    assert copies["Resource"] == [f"arn:aws:s3:::{inp}/{p}/*" for p in ("fast", "normal", "urgent")]
    writes = [r for s in doc["Statement"] if "s3:PutObject" in s["Action"] for r in s["Resource"]]
    assert not [r for r in writes if "/books/" in r]


def test_schedules_on_and_off() -> None:
    """Off -> on creates the group, role, queue, schedules and the third mapping; on -> off
    deletes them; nothing else is replaced (the function's target and the other mappings
    stay as they are)."""
    off = run_program("eu-west-1", {})
    on = run_program("eu-west-1", {"schedules": [EOD]})
    added = {r.urn for r in on.resources} - {r.urn for r in off.resources}
    assert {r.name for r in on.resources if r.urn in added} == {
        "schedules",
        "schedules-group",
        "schedules-failures",
        "schedules-scheduler-role",
        "schedules-scheduler-policy",
        "schedules-eod-risk",
        "failures-schedule-redrive",
        "failures-schedule-failures-mapping",
        "monitoring-alarm-schedule-failures",
    }
    assert {r.urn for r in off.resources} <= {r.urn for r in on.resources}
    for name in ("fast-function", "failures-fast-failures-mapping", "failures-parked"):
        assert off.named(name).urn == on.named(name).urn


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "eod risk"}, "name must be 1 to 64 letters, digits"),
        ({"name": "x" * 65}, "name must be 1 to 64"),
        ({"cron": "30 17 * * MON-FRI"}, "is not cron\\(minutes hours"),
        ({"cron": "cron(30 17 * * MON-FRI)"}, "is not cron\\(minutes hours"),
        ({"cron": "cron(30 17 * * MON-FRI *)"}, "exactly one of day-of-month and day-of-week"),
        ({"cron": "cron(30 17 ? * ? *)"}, "exactly one of day-of-month and day-of-week"),
        ({"cron": "cron(30 17 ? * MON;FRI *)"}, "characters cron expressions do not use"),
        ({"timezone": "New York"}, "is not an IANA time zone name"),
        ({"timezone": "America/Gotham"}, "is not an IANA time zone name"),
        ({"book": "../normal/x.csv"}, "must be a relative key under books/"),
        ({"book": "/eod.csv"}, "must be a relative key under books/"),
        ({"book": "a//b.csv"}, "must be a relative key under books/"),
        ({"book": "eod.xlsx"}, "must end in .csv"),
        ({"path": "auto"}, "path must be one of fast, normal, urgent"),
    ],
)
def test_entries_are_validated_with_clear_messages(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"schedules\\[0\\] .*{message}"):
        run_program("us-east-1", {"schedules": [EOD | entry]})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedules": [INTRADAY], "urgentMaxVcpus": 0}, "path urgent needs the urgent lane"),
        ({"schedules": [EOD, EOD]}, "every entry needs its own name"),
        ({"schedules": [{"name": "x"}]}, "needs the text fields name, cron, timezone, book, path"),
        ({"schedules": [EOD | {"extra": "1"}]}, "unknown extra"),
        ({"schedules": {"eod": EOD}}, "schedules must be a list"),
        ({"scheduleWindowMinutes": 1441}, "scheduleWindowMinutes must be 0 \\(off\\) to 1440"),
    ],
)
def test_settings_refused_at_preview(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program("us-east-1", overrides)
