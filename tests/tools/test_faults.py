"""Fault injection through simulate: every failure path ends in the right terminal state,
names the failed part, publishes exactly one job event, and a retry ends ``done``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.core.csvio import read_table
from runtime.engines import get_engine
from runtime.pricing import price_table
from runtime.protocol.lifecycle import Fence
from runtime.tools.faults import Fault, check_faults, parse_fault
from runtime.tools.jobs import Jobs, Target
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from runtime.tools.simulate import run_simulation
from tests.conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[2]
ENGINE = "qdfp"  # prices do not matter here; qdfp is the fastest
THRESHOLD = 40  # 100 rows: 3 parts


@pytest.fixture(scope="module")
def clean_result() -> bytes:
    return price_table(read_table(SAMPLE.read_bytes()), get_engine(ENGINE)).csv


def simulate(path: str, *faults: str, keep=None):
    return run_simulation(
        SAMPLE.read_bytes(),
        SAMPLE.name,
        path,
        threshold=THRESHOLD,
        workers=2,
        engine=ENGINE,
        faults=[parse_fault(f) for f in faults],
        keep=keep,
    )


def jobs_on(cloud, lines: list[str]) -> Jobs:
    return Jobs(Target.local(cloud.endpoint), lines.append)


def upload_key(jobs: Jobs, path: str) -> str:
    """The simulation's upload (the only object under the path that is not a part)."""
    return next(k for k in jobs.store.list_keys(INPUT_BUCKET, f"{path}/") if "/_parts/" not in k)


def assert_failed_on_part(outcome, part: int, *reason: str) -> None:
    status = outcome.status
    assert status["state"] == "failed"
    assert [f["part"] for f in status["failedParts"]] == [part]
    assert status["error"].startswith(f"part-{part:05d} failed: ")
    for text in reason:
        assert text in status["error"]
    assert outcome.result is None
    assert [(e["state"], e["failedParts"][0]["part"]) for e in outcome.job_events] == [
        ("failed", part)
    ]


def test_fast_part_error_fails_after_three_attempts_and_retry_ends_done(clean_result):
    retried: dict = {}

    def retry(cloud, outcome) -> None:
        lines: list[str] = []
        jobs = jobs_on(cloud, lines)
        key = upload_key(jobs, "fast")
        jobs.list(None, 10)
        retried["listed"] = lines[1]
        assert jobs.retry(key, workers=2) == 0
        retried["status"] = jobs.status_of(key)
        retried["result"] = jobs.store.get(RESULT_BUCKET, key + "-result")

    outcome = simulate("fast", "part-error:1", keep=retry)
    assert_failed_on_part(outcome, 1, "failed on all 3 attempts", "injected fault part-error:1")
    failures = [m for m in outcome.timeline.messages("lambda part-00001") if "FAILED" in m]
    assert len(failures) == 3  # Lambda's 2 retries, then the on-failure destination
    assert any("on-failure record handled" in m for m in outcome.timeline.messages())
    # The job commands see it, and the retry re-prices only part 1, then merges.
    assert retried["listed"].split()[:2] == ["failed", "2/3"]
    assert retried["status"]["state"] == "done"
    assert retried["status"]["failedParts"] == []
    assert retried["result"] == clean_result


def test_fast_part_kill_fails_the_job_naming_the_dead_runtime():
    outcome = simulate("fast", "part-kill:2")
    assert_failed_on_part(outcome, 2, "Runtime exited with error: signal: killed")
    # Lambda retries with the same request id (so a crashed merge can resume its claim).
    failures = [m for m in outcome.timeline.messages("lambda part-00002") if "FAILED" in m]
    request_ids = {m.split("RequestId: ")[1].split()[0] for m in failures}
    assert len(failures) == 3 and len(request_ids) == 1


@pytest.mark.parametrize(
    ("fault", "resumed_by"),
    [
        ("merge-kill", "merged: 100 rows from 3 parts (attempt 2/3)"),  # Lambda's retry
        ("merge-kill:3", "on-failure record handled (receive 1)"),  # the failure path
    ],
)
def test_fast_merge_kill_is_resumed_to_exactly_one_result(clean_result, fault, resumed_by):
    outcome = simulate("fast", fault)
    assert outcome.status["state"] == "done"
    assert outcome.result == clean_result
    assert [e["state"] for e in outcome.job_events] == ["done"]
    assert resumed_by in outcome.timeline.messages("lambda")
    merged = [m for m in outcome.timeline.messages("lambda") if m.startswith("merged")]
    assert len(merged) <= 1  # the failure path's merge reports no outcome line


def test_normal_part_kill_stops_the_merge_and_retry_ends_done(clean_result):
    after: dict = {}

    def retry(cloud, outcome) -> None:
        jobs = jobs_on(cloud, [])
        key = upload_key(jobs, "normal")
        assert jobs.retry(key, workers=2) == 0
        after["status"] = jobs.status_of(key)
        after["result"] = jobs.store.get(RESULT_BUCKET, key + "-result")

    outcome = simulate("normal", "part-kill:1", keep=retry)
    assert_failed_on_part(outcome, 1, "exit code 137")
    # The failure stops the attempt's Batch jobs: the merge fails without running.
    fence = f"{outcome.status['token']}.1"
    assert outcome.timeline.messages("batch merge") == [
        f"FAILED without running: job {fence} is failed"
    ]
    # One FAILED state change per failed job: the child, the array job, the merge job.
    assert outcome.timeline.count("lambda batch-event") == 3
    assert after["status"]["state"] == "done"
    assert after["result"] == clean_result
    assert set(after["status"]["batchJobs"]) == {"array", "merge"}


def test_normal_part_error_is_final_at_once():
    outcome = simulate("normal", "part-error:0")
    assert_failed_on_part(outcome, 0, "attempt 1: InjectedFault: injected fault part-error:0")
    assert not any("attempt 2" in m for m in outcome.timeline.messages("batch child"))


def test_normal_spot_reclaim_is_retried_to_success_and_merge_kill_resumed(clean_result):
    outcome = simulate("normal", "spot:1", "merge-kill")
    assert outcome.status["state"] == "done"
    assert outcome.result == clean_result
    assert [e["state"] for e in outcome.job_events] == ["done"]
    child = outcome.timeline.messages("batch child 1")
    assert "Host EC2" in child[0] and child[1].endswith("(attempt 2/3)")
    merge = outcome.timeline.messages("batch merge")
    assert "Host EC2" in merge[0] and merge[1].startswith("merged") and len(merge) == 2


def test_cancel_of_a_running_fast_job_stops_the_remaining_parts(tmp_path, capsys):
    cancelled: list[str] = []

    def cancel_after_first_part(emulator, invocation, kind, payload) -> None:
        # Runs before the (only) container takes the next invocation.
        actions = [o["action"] for o in payload.get("outcomes", [])] if kind == "ok" else []
        if "part-priced" in actions and not cancelled:
            lines: list[str] = []
            jobs_on(emulator.cloud, lines).cancel(sorted(emulator.watch)[0])
            cancelled.extend(lines)

    outcome = run_simulation(
        SAMPLE.read_bytes(),
        SAMPLE.name,
        "fast",
        threshold=25,  # 4 parts, priced one at a time
        workers=1,
        engine=ENGINE,
        on_invoked=cancel_after_first_part,
    )
    assert cancelled[0].startswith("cancelled fast/")
    assert outcome.status["state"] == "cancelled" and outcome.status["partsDone"] == 1
    assert outcome.result is None and outcome.error is None
    # One job event: the command's own run of the function (jobs cancel runs it on the
    # embedded AWS, and shows what it caused) saw it, and the simulation no other.
    shown = capsys.readouterr().err
    assert shown.count("Pricing Job State Change: cancelled fast/") == 1
    assert outcome.job_events == []
    # Every part after the cancel stops unpriced; nothing merges.
    parts = outcome.timeline.messages("lambda part")
    assert parts == [
        "part-priced: part-00000: 1/4 parts done",
        "stopped: part-00001: the job is cancelled",
        "stopped: part-00002: the job is cancelled",
        "stopped: part-00003: the job is cancelled",
    ]


def test_simulate_exits_with_the_status_reason_in_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime",
            "simulate",
            str(SAMPLE),
            "--path",
            "fast",
            "--threshold",
            "50",
            "--engine",
            ENGINE,
            "--workers",
            "2",
            "--fault",
            "part-error:0",
            "-o",
            str(tmp_path / "out.csv"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the job failed: part-00000 failed: failed on all 3 attempts")
    assert "event          Pricing Job State Change: failed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("part-error:3", Fault("part-error", 3)),
        ("part-kill:0", Fault("part-kill", 0)),
        ("merge-kill", Fault("merge-kill")),
        ("merge-kill:3", Fault("merge-kill", None, 3)),
        ("spot:2", Fault("spot", 2, 1)),
        ("spot:2:3", Fault("spot", 2, 3)),
    ],
)
def test_fault_spellings(text, expected):
    assert parse_fault(text) == expected
    assert str(parse_fault(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("disk-full:1", "unknown fault 'disk-full:1'"),
        ("part-error", "expected part-error:N"),
        ("part-kill:x", "expected part-kill:N"),
        ("merge-kill:x", "expected merge-kill or merge-kill:K"),
        ("merge-kill:4", "K must be 1 to 3"),
        ("spot:1:4", "K must be 1 to 3"),
    ],
)
def test_bad_fault_spellings_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_spot_on_the_fast_path_is_refused_and_a_bad_output_before_running(tmp_path):
    with pytest.raises(ValueError, match="normal path only"):
        check_faults([parse_fault("spot:1")], "fast")
    from runtime.tools.cli import main

    assert main(["simulate", str(SAMPLE), "--path", "fast", "--fault", "spot:1"]) == 1
    missing = tmp_path / "no-such-dir" / "out.csv"
    assert main(["simulate", str(SAMPLE), "--path", "fast", "-o", str(missing)]) == 1


def test_the_emulator_retries_as_the_stack_is_configured():
    from components import batch_array, fast_lambda, settings
    from runtime.tools import emulator

    assert emulator.LAMBDA_ATTEMPTS == fast_lambda.MAX_RETRY_ATTEMPTS + 1
    assert emulator.BATCH_ATTEMPTS == settings.BATCH_MAX_ATTEMPTS
    assert emulator.RETRY_STATUS_REASONS == batch_array.RETRY_STATUS_REASONS


def test_a_failure_record_the_function_reports_failed_is_redelivered_then_parked():
    from types import SimpleNamespace

    from runtime.tools.emulator import MAX_RECEIVES, Emulator, Invocation, Timeline, sqs_batch

    emulator = SimpleNamespace(timeline=Timeline())
    record = sqs_batch({"requestContext": {}}, "m-1", 1, "fast-failures")
    invocation = Invocation("on-failure", record, "part-00001.csv")
    reported = {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    counts = []
    while invocation is not None:
        counts.append(invocation.event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        invocation = Emulator._after_invocation(emulator, invocation, "ok", reported)
    assert counts == [str(n) for n in range(1, MAX_RECEIVES + 1)]
    assert emulator.timeline.messages("sqs") == [
        f"part-00001.csv: parked after {MAX_RECEIVES} receives"
    ]


def test_emulated_events_have_the_shape_of_the_real_ones():
    from runtime.adapters import batch_events
    from runtime.tools.emulator import batch_state_change, on_failure_record, s3_event, sqs_batch
    from tests.helpers import aws_event

    def shape(document: dict) -> set[str]:
        return set(document)

    real = aws_event(
        "batch-job-state-change-failed",
        job_id="j",
        token="t",
        bucket="b",
        key="normal/x.csv",
        status_reason="r",
        container_reason="c",
        environment=[],
        array_properties={"index": 1},
    )
    description = {
        "jobId": "j",
        "jobName": "price-t",
        "createdAt": 1,
        "jobDefinition": "d",
        "parameters": {"S3bucket": "b", "S3key": "normal/x.csv"},
        "container": {"environment": [{"name": "BATCH_ROLE", "value": "child"}]},
        "arrayProperties": {"size": 3},
    }
    environment = [
        {"name": "BATCH_ROLE", "value": "child"},
        {"name": "JOB_FENCE", "value": "t.1"},
    ]
    description["container"]["environment"] = environment
    attempt = {
        "container": {"exitCode": 137},
        "startedAt": 1,
        "stoppedAt": 2,
        "statusReason": "Essential container in task exited",
    }
    emulated = batch_state_change(description, "Essential container in task exited", [attempt], 1)
    assert shape(emulated) == shape(real)
    assert shape(emulated["detail"]) == shape(real["detail"])
    failure = batch_events.parse(emulated)
    assert (failure.role, failure.index, failure.fence) == ("child", 1, Fence("t", 1))
    parent = batch_events.parse(batch_state_change(description, "Array Child Job failed", []))
    assert parent.role == "array"

    request = s3_event("b", "fast/_parts/t/part-00001.csv")
    record = on_failure_record(request, "req-1", {"errorType": "E", "errorMessage": "m"}, 3)
    real_record = aws_event(
        "lambda-destination-on-failure",
        request_id="req-1",
        request_payload=request,
        error_message="m",
        error_type="E",
    )
    assert shape(record) == shape(real_record)
    assert record["requestContext"] == real_record["requestContext"] | {
        "functionArn": record["requestContext"]["functionArn"]
    }
    (message,) = sqs_batch(record, "m-1", 2, "q")["Records"]
    real_message = aws_event(
        "sqs-record", message_id="m-1", body="{}", receive_count="2", message_attributes={}
    )
    assert shape(message) == shape(real_message)
    assert message["attributes"]["ApproximateReceiveCount"] == "2"


def test_a_simulated_jobs_costs_add_up_interruptions_included(clean_result):
    """Real processes on the embedded AWS: the function's admission, the manager, three
    children (child 1's host reclaimed twice, then it succeeds) and the merge each leave
    their usage records, and the status' cost is what they add up to."""
    import json

    from runtime.core import keys
    from runtime.planning.prices import default_prices
    from runtime.planning.usage import INTERRUPTED, UsageRecord, total_cost

    found: dict = {}

    def read_records(cloud, outcome) -> None:
        s3 = cloud.client("s3")
        status = outcome.status
        prefix = keys.usage_prefix(status["plan"]["runner"], status["token"])
        listed = s3.list_objects_v2(Bucket=RESULT_BUCKET, Prefix=prefix).get("Contents", [])
        found["records"] = [
            json.loads(s3.get_object(Bucket=RESULT_BUCKET, Key=item["Key"])["Body"].read())
            for item in listed
        ]

    outcome = simulate("normal", "spot:1:2", keep=read_records)
    assert outcome.status["state"] == "done" and outcome.result == clean_result
    records = [UsageRecord.from_dict(d["record"]) for d in found["records"]]
    steps = sorted((r.step, r.attempt, r.outcome) for r in records if r.capacity != "LAMBDA")
    assert steps == [
        ("manager", 1, "succeeded"),
        ("merge", 1, "succeeded"),
        ("part-00000", 1, "succeeded"),
        ("part-00001", 1, INTERRUPTED),
        ("part-00001", 2, INTERRUPTED),
        ("part-00001", 3, "succeeded"),
        ("part-00002", 1, "succeeded"),
    ]
    assert [r.step for r in records if r.capacity == "LAMBDA"] == ["admit"]
    cost = outcome.status["cost"]
    assert cost == total_cost(records, default_prices("us-east-1", "x86_64")).to_dict()
    assert (cost["attempts"], cost["retries"], cost["interruptions"]) == (8, 2, 2)
    assert cost["batchVcpuSeconds"] > 0 and cost["lambdaRequests"] == 1
    assert outcome.job_events[0]["cost"]["attempts"] >= 7  # the merge's own, up to its commit
