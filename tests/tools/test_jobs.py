"""The job commands against moto in this process (a deployed stack's view), and their
errors; submit --wait's terminal states."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from runtime.adapters.lambda_handler import command, handle_command, handle_object
from runtime.cli import CommandError
from runtime.core import keys
from runtime.protocol.events import EventDeliveryError
from runtime.tools import jobs as jobs_module
from runtime.tools.cli import main as tools_main
from runtime.tools.jobs import Jobs, Target
from runtime.tools.local_cloud import INPUT_BUCKET, JOB_DEFINITION, JOB_QUEUE, RESULT_BUCKET
from tests.helpers import (
    fast_parts,
    fence_of,
    job_env,
    price_parts,
    read,
    recorded_jobs,
    run_children,
    run_job,
    run_manager,
    status_of,
    submitted_jobs,
    upload,
)

FAST_KEY = "fast/20261124-0900/book.csv"
NORMAL_KEY = "normal/20261124-0900/book.csv"
STACK = Target(
    INPUT_BUCKET,
    RESULT_BUCKET,
    function_name="mc-pricing-us-east-1-fast",
    job_queue=JOB_QUEUE,
    job_definition=JOB_DEFINITION,
    region="us-east-1",
)


class FakeLambda:
    """The stack's function, invoked asynchronously: records each invocation, and (given
    steps) handles the command as the function would, before the invoke returns."""

    def __init__(self, steps=None) -> None:
        self.invocations: list[dict] = []
        self.steps = steps

    def invoke(self, **request) -> dict:
        self.invocations.append(request)
        if self.steps is not None:
            handle_command(self.steps, json.loads(request["Payload"]), "function-request")
        return {"StatusCode": 202}

    def commands(self) -> list[dict]:
        return [json.loads(call["Payload"]) for call in self.invocations]


@pytest.fixture
def jobs(aws, make_steps):
    lines: list[str] = []
    commands = Jobs(STACK, lines.append)
    commands.lines = lines  # type: ignore[attr-defined]
    return commands


def start(make_steps, s3, key: str, data: bytes, threshold: int = 40):
    """The upload's job begun as the stack begins it: the fast lane's start, or the Batch
    lanes' admission and manager."""
    upload(s3, key, data)
    steps = make_steps(threshold=threshold)
    if keys.path_of(key) == keys.FAST:
        return steps.start(INPUT_BUCKET, key, "req-start")
    return run_manager(steps, s3, key)


def fail_part(steps, s3, key: str, index: int, error: str) -> None:
    """Part ``index`` of the key's running job failed for good."""
    fence = fence_of(s3, key)
    manifest = steps.load_manifest(status_of(s3, key)["plan"]["runner"], fence.token)
    steps.part_failed(manifest, fence, index, error, final=True, actor="failure-route")


def test_list_and_show_a_running_and_a_failed_job(jobs, make_steps, s3, sample_bytes):
    steps = make_steps(threshold=40)
    split = start(make_steps, s3, FAST_KEY, sample_bytes)
    price_parts(steps, split.manifest, split.fence, [0])
    start(make_steps, s3, NORMAL_KEY, b"id,strike\n1,2\n")  # rejected: failed at once

    assert jobs.list(None, 10) == 0
    header, *rows = jobs.lines
    assert header.split() == ["STATE", "PARTS", "AGE", "COST", "KEY"]
    listed = {row.split()[-1]: row.split()[:2] for row in rows}
    assert listed == {FAST_KEY: ["running", "1/3"], NORMAL_KEY: ["failed", "0/0"]}
    jobs.lines.clear()
    jobs.list("failed", 10)
    assert [row.split()[-1] for row in jobs.lines[1:]] == [NORMAL_KEY]

    jobs.lines.clear()
    jobs.show(f"s3://{INPUT_BUCKET}/{NORMAL_KEY}")
    shown = "\n".join(jobs.lines)
    assert "state    failed (attempt 1)" in shown and "missing required column(s)" in shown
    assert f"s3://{RESULT_BUCKET}/{keys.error_key(NORMAL_KEY)}" in shown
    jobs.lines.clear()
    jobs.show(keys.status_key(FAST_KEY), as_json=True)
    assert json.loads("\n".join(jobs.lines))["missingParts"] == [1, 2]


def test_list_shows_the_jobs_of_every_lane(jobs, make_steps, s3, sample_bytes):
    urgent = "urgent/20261124-0900/book.csv"
    upload(s3, urgent, sample_bytes)
    make_steps(threshold=40).fail_upload(INPUT_BUCKET, urgent, "the upload failed", "req-1")
    start(make_steps, s3, FAST_KEY, sample_bytes)
    assert jobs.list(None, 10) == 0
    assert sorted(row.split()[-1] for row in jobs.lines[1:]) == [FAST_KEY, urgent]


def test_show_tells_the_attempt_its_earlier_attempts_and_what_is_still_owed(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    start(make_steps, s3, FAST_KEY, sample_bytes)
    fail_part(steps, s3, FAST_KEY, 1, "failed on all 3 attempts: boom")
    handle_command(steps, command("retry", FAST_KEY, str(fence_of(s3, FAST_KEY))), "req-1")

    class Refusing:
        def publish(self, detail: dict) -> None:
            raise EventDeliveryError("EventBridge refused it")

    steps.ledger.events = Refusing()
    with pytest.raises(EventDeliveryError):  # attempt 2 fails; its event cannot go out
        fail_part(steps, s3, FAST_KEY, 2, "failed on all 3 attempts: bang")
    jobs.show(FAST_KEY)
    shown = "\n".join(jobs.lines)
    assert "state    failed (attempt 2)" in shown
    assert "earlier  attempt 1 failed: part-00001 failed: failed on all 3 attempts: boom" in shown
    assert "failed   part-00002 (attempt 2): failed on all 3 attempts: bang" in shown
    assert "pending  1 job event(s) or stop(s) to deliver" in shown


def test_retry_of_a_failed_fast_job_rewrites_only_the_missing_parts(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    split = start(make_steps, s3, FAST_KEY, sample_bytes)
    price_parts(steps, split.manifest, split.fence, [0])
    fail_part(steps, s3, FAST_KEY, 1, "failed on all 3 attempts: boom")
    jobs.clients["lambda"] = fake = FakeLambda()

    assert jobs.retry(FAST_KEY, wait=0) == 0
    assert jobs.lines[-1] == f"retry of {FAST_KEY} requested"
    (call,) = fake.invocations
    assert (call["FunctionName"], call["InvocationType"]) == (STACK.function_name, "Event")
    (payload,) = fake.commands()
    assert (payload["source"], payload["command"], payload["inputKey"]) == (
        "mc-pricing.command",
        "retry",
        FAST_KEY,
    )
    assert (payload["fence"], payload["force"]) == (f"{split.fence.token}.1", False)
    assert status_of(s3, FAST_KEY)["state"] == "failed"  # the function has not run it yet
    # What the function then does with the command: attempt 2 writes only the parts without
    # a result, whose events price them and merge.
    assert handle_command(steps, payload, "req-1").action == "reopened"
    assert status_of(s3, FAST_KEY)["attempt"] == 2
    assert read(s3, keys.error_key(FAST_KEY)) is None
    again = fast_parts(s3, split.fence.token, attempt=2)
    assert again == [split.manifest.part_key(i, 2) for i in (1, 2)]
    actions = [handle_object(steps, INPUT_BUCKET, key).action for key in again]
    assert actions == ["part-priced", "merged"]
    assert status_of(s3, FAST_KEY)["state"] == "done"


def test_retry_of_an_unsplit_fast_job_prices_the_upload_again(jobs, make_steps, s3, sample_bytes):
    upload(s3, FAST_KEY, sample_bytes)
    steps = make_steps(threshold=200)
    steps.fail_upload(INPUT_BUCKET, FAST_KEY, "the upload failed on all 3 attempts", "req-1")
    jobs.clients["lambda"] = FakeLambda(steps)
    assert jobs.retry(FAST_KEY, force=True, wait=5) == 0
    assert jobs.lines[-1] == f"{FAST_KEY}: done (attempt 2)"
    status = status_of(s3, FAST_KEY)
    assert (status["state"], status["force"]) == ("done", True)
    assert read(s3, keys.result_key(FAST_KEY)) is not None


def test_retry_of_a_failed_normal_job_submits_only_the_failed_parts(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    start(make_steps, s3, NORMAL_KEY, sample_bytes)
    run_children(steps, recorded_jobs(s3, NORMAL_KEY)["array"], NORMAL_KEY, [0, 2])
    fail_part(steps, s3, NORMAL_KEY, 1, "attempt 1: OSError: disk full")
    before = {job["jobId"] for job in submitted_jobs()}
    jobs.clients["lambda"] = FakeLambda(steps)

    assert jobs.retry(NORMAL_KEY, wait=5) == 0
    new = [j for j in submitted_jobs() if j["jobId"] not in before]
    pricing, merge = sorted(new, key=lambda job: job_env(job)["BATCH_ROLE"])
    assert job_env(pricing)["PART_INDEXES"] == "1" and "arrayProperties" not in pricing
    assert status_of(s3, NORMAL_KEY)["batchJobs"] == {
        "array": pricing["jobId"],
        "merge": merge["jobId"],
    }
    # Batch then runs them: the job ends done.
    assert run_children(steps, pricing, NORMAL_KEY) == ["part-priced"]
    assert run_job(steps, job_env(merge), NORMAL_KEY).action == "merged"
    assert status_of(s3, NORMAL_KEY)["state"] == "done"


def test_retry_after_a_failed_merge_submits_only_a_merge_with_its_own_claim(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    start(make_steps, s3, NORMAL_KEY, sample_bytes)
    run_children(steps, recorded_jobs(s3, NORMAL_KEY)["array"], NORMAL_KEY)
    fence = fence_of(s3, NORMAL_KEY)
    # The merge job claimed the lock, then was killed (out of memory: Batch does not retry).
    steps.store.put_if_absent(RESULT_BUCKET, keys.lock_key(keys.NORMAL, fence.token, 1), b"m-1")
    steps.fail_fence(NORMAL_KEY, fence, "the merge job m-1 failed: OutOfMemoryError", "route")
    before = {job["jobId"] for job in submitted_jobs()}
    jobs.clients["lambda"] = FakeLambda(steps)

    jobs.retry(NORMAL_KEY, wait=5)
    (merge,) = [j for j in submitted_jobs() if j["jobId"] not in before]
    environment = job_env(merge)
    assert (environment["BATCH_ROLE"], environment["JOB_FENCE"]) == ("merge", f"{fence.token}.2")
    assert run_job(steps, environment, NORMAL_KEY).action == "merged"
    assert status_of(s3, NORMAL_KEY)["state"] == "done"


def test_cancel_of_a_normal_job_stops_its_batch_jobs(jobs, make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=40)
    start(make_steps, s3, NORMAL_KEY, sample_bytes)
    submitted = recorded_jobs(s3, NORMAL_KEY)
    fence = fence_of(s3, NORMAL_KEY)
    jobs.clients["lambda"] = fake = FakeLambda(steps)

    assert jobs.cancel(NORMAL_KEY, wait=5) == 0
    assert jobs.lines[0] == f"cancelled {NORMAL_KEY} (job {fence})"
    assert fake.commands()[0]["fence"] == str(fence)
    assert status_of(s3, NORMAL_KEY)["state"] == "cancelled"
    # TerminateJob for each of them: a queued job never starts, a running one is stopped.
    ids = [job["jobId"] for job in submitted.values()]
    stopped = boto3.client("batch").describe_jobs(jobs=ids)["jobs"]
    assert {job["statusReason"] for job in stopped} == {f"job {fence} is cancelled"}
    # The children still running stop without pricing; nothing publishes.
    manifest = steps.load_manifest(keys.NORMAL, fence.token)
    assert steps.price_part(manifest, fence, 0, "child", merge=False).action == "stopped"
    assert read(s3, keys.result_key(NORMAL_KEY)) is None
    assert [e["state"] for e in events] == ["cancelled"]


def test_a_cancel_the_function_has_not_run_yet_is_requested(jobs, make_steps, s3, sample_bytes):
    start(make_steps, s3, FAST_KEY, sample_bytes)
    jobs.clients["lambda"] = FakeLambda()
    assert jobs.cancel(FAST_KEY, wait=0) == 0
    fence = fence_of(s3, FAST_KEY)
    assert jobs.lines == [f"cancel of {FAST_KEY} (job {fence}) requested"]
    assert status_of(s3, FAST_KEY)["state"] == "running"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["show", "fast/nope.csv"], "no job for fast/nope.csv"),
        (["show", "elsewhere/x.csv"], "is not under fast/, normal/, urgent/, auto/"),
        (["cancel", FAST_KEY], f"{FAST_KEY} is not running: the job is failed"),
        (["retry", NORMAL_KEY], f"only a failed job can be retried: {NORMAL_KEY} is running"),
    ],
)
def test_job_command_errors_are_one_line(
    aws, make_steps, s3, sample_bytes, capsys, command, message
):
    start(make_steps, s3, FAST_KEY, b"id\n1\n")  # rejected: failed
    start(make_steps, s3, NORMAL_KEY, sample_bytes)  # split: running
    flags = ["--input-bucket", INPUT_BUCKET, "--result-bucket", RESULT_BUCKET]
    assert tools_main(["jobs", *command, *flags, "--region", "us-east-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {err.removeprefix('error: ')}" and message in err
    assert "\n" not in err


def test_a_job_command_without_the_function_says_what_is_missing(
    aws, make_steps, s3, sample_bytes, capsys
):
    start(make_steps, s3, FAST_KEY, sample_bytes)
    fail_part(make_steps(), s3, FAST_KEY, 0, "boom")
    flags = ["--result-bucket", RESULT_BUCKET, "--region", "us-east-1"]
    assert tools_main(["jobs", "retry", FAST_KEY, *flags]) == 1
    assert "need the function: --function-name or --stack" in capsys.readouterr().err
    assert status_of(s3, FAST_KEY)["state"] == "failed"  # nothing reopened


def test_without_credentials_or_pulumi_the_commands_say_so(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    flags = ["--result-bucket", "b", "--region", "us-east-1"]
    assert tools_main(["jobs", "list", *flags]) == 1
    assert capsys.readouterr().err.startswith("error: no AWS credentials")

    from runtime.tools import submit

    monkeypatch.setattr(submit.shutil, "which", lambda name: None)
    assert tools_main(["jobs", "list", "--stack", "us-east-1"]) == 1
    assert "pulumi CLI is not on PATH" in capsys.readouterr().err
    assert tools_main(["jobs", "list"]) == 1
    assert "give --stack NAME, --endpoint-url URL" in capsys.readouterr().err


def test_a_stack_names_everything_the_commands_need(monkeypatch):
    from runtime.tools import submit

    outputs = {
        "inputBucket": "in",
        "resultBucket": "out",
        "fastFunctionName": "fn",
        "jobQueueArn": "arn:queue",
        "jobDefinitionArn": "arn:definition",
        "region": "eu-west-1",
    }

    def fake_pulumi(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, json.dumps(outputs), "")

    monkeypatch.setattr(submit.shutil, "which", lambda name: "/usr/bin/pulumi")
    found = submit.stack_outputs("eu-west-1", run=fake_pulumi)
    args = jobs_module.argparse.Namespace(
        stack="eu-west-1",
        endpoint_url=None,
        input_bucket=None,
        result_bucket=None,
        function_name=None,
        job_queue=None,
        job_definition=None,
        region=None,
    )
    target = jobs_module.target_from_args(args, outputs=lambda stack: found)
    assert target == Target("in", "out", "fn", "arn:queue", "arn:definition", "eu-west-1")


class Statuses:
    """A store whose status object goes through the given documents."""

    def __init__(self, *documents: dict) -> None:
        self.documents = list(documents)

    def get_json(self, bucket: str, key: str) -> dict:
        return self.documents.pop(0) if len(self.documents) > 1 else self.documents[0]


@pytest.mark.parametrize(
    ("final", "message"),
    [
        ({"state": "failed", "error": "part-00001 failed: boom"}, "the job failed: part-00001"),
        ({"state": "cancelled", "error": "cancelled by the user"}, "the job was cancelled"),
        ({"state": "superseded", "error": "superseded by a newer upload (abc)"}, "superseded"),
    ],
)
def test_submit_wait_names_each_terminal_state(tmp_path, capsys, final, message):
    from runtime.tools.submit import wait_for_result

    running = {"state": "running", "partsTotal": 3, "partsDone": 1}
    store = Statuses({}, running, {**running, "partsDone": 2}, {**running, **final})
    with pytest.raises(CommandError, match=message):
        wait_for_result(store, "b", FAST_KEY, Path(tmp_path / "out"), 60, poll_seconds=0)
    assert not (tmp_path / "out").exists()


def test_submit_wait_downloads_a_done_job_with_plain_progress_lines(tmp_path, capsys):
    from runtime.tools.submit import wait_for_result

    running = {"state": "running", "partsTotal": 3, "partsDone": 1}
    store = Statuses(running, {**running, "state": "done", "partsDone": 3, "seconds": 1.5})
    store.get = lambda bucket, key, version=None: b"id,price,stdError,error\n1,2.5,0.01,\n"
    wait_for_result(store, "b", FAST_KEY, Path(tmp_path / "out"), 60, poll_seconds=0)
    err = capsys.readouterr().err
    assert "progress: 3 of 3 parts" in err  # plain lines off a terminal
    assert "done in 1.5 s: 1 rows" in err


def test_list_and_show_tell_a_jobs_estimated_cost_and_the_auto_lanes_route(
    jobs, make_steps, s3, sample_bytes
):
    from runtime.adapters import lambda_handler
    from runtime.planning.decide import usd_text
    from tests.helpers import object_created

    key = "auto/20261124-0900/book.csv"
    upload(s3, key, sample_bytes)
    lambda_handler.handle(make_steps(threshold=200), object_created(INPUT_BUCKET, key), "req-1")
    status = status_of(s3, key)
    cost = status["cost"]
    assert status["state"] == "done" and cost["attempts"] == 1  # priced where it was admitted

    assert jobs.list(None, 10) == 0
    header, row = jobs.lines
    assert header.split() == ["STATE", "PARTS", "AGE", "COST", "KEY"]
    assert row.split()[3:] == [usd_text(cost["usd"]), key]

    jobs.lines.clear()
    jobs.show(key)
    shown = "\n".join(jobs.lines)
    assert f"route    {status['route']['reason']}" in shown
    assert f"cost     {usd_text(cost['usd'])} estimated (Lambda " in shown
    assert (
        f"used     Lambda {cost['lambdaGbSeconds']:g} GB-s in 1 invocation(s); Batch 0 vCPU-s"
        in shown
    )
    assert "attempts 1 (0 retries, 0 interruptions)" in shown
