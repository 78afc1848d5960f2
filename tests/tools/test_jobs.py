"""The job commands against moto in this process (a deployed stack's view), and their
errors; submit --wait's terminal states."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from runtime.adapters import batch_job
from runtime.cli import CommandError
from runtime.core import keys
from runtime.environment import BatchContext
from runtime.tools import jobs as jobs_module
from runtime.tools.cli import main as tools_main
from runtime.tools.jobs import Jobs, Target
from runtime.tools.local_cloud import (
    INPUT_BUCKET,
    JOB_DEFINITION,
    JOB_QUEUE,
    RESULT_BUCKET,
    submitted_jobs,
)
from tests.helpers import read, status_of, upload

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
    def __init__(self) -> None:
        self.invocations: list[dict] = []

    def invoke(self, **request) -> dict:
        self.invocations.append(request)
        return {"StatusCode": 202}


class FakeBatch:
    """Describes jobs in the states given; records cancel and terminate calls."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.calls: list[tuple[str, str]] = []

    def describe_jobs(self, jobs: list[str]) -> dict:
        return {"jobs": [{"jobId": j, "status": self.states[j]} for j in jobs if j in self.states]}

    def cancel_job(self, jobId: str, reason: str) -> None:
        self.calls.append(("cancel", jobId))

    def terminate_job(self, jobId: str, reason: str) -> None:
        self.calls.append(("terminate", jobId))


@pytest.fixture
def jobs(aws, make_steps):
    lines: list[str] = []
    commands = Jobs(STACK, lines.append)
    commands.lines = lines  # type: ignore[attr-defined]
    return commands


def start(make_steps, s3, key: str, data: bytes, threshold: int = 40):
    upload(s3, key, data)
    return make_steps(threshold=threshold).start(INPUT_BUCKET, key, max_parts=100)


def test_list_and_show_a_running_and_a_failed_job(jobs, make_steps, s3, sample_bytes):
    steps = make_steps(threshold=40)
    manifest = start(make_steps, s3, FAST_KEY, sample_bytes).manifest
    steps.price_part(manifest, 0, claimant=None)
    start(make_steps, s3, NORMAL_KEY, b"id,strike\n1,2\n")  # rejected: failed at once

    assert jobs.list(None, 10) == 0
    header, *rows = jobs.lines
    assert header.split() == ["STATE", "PARTS", "AGE", "KEY"]
    listed = {row.split()[-1]: row.split()[:2] for row in rows}
    assert listed == {FAST_KEY: ["running", "1/3"], NORMAL_KEY: ["failed", "0/0"]}
    jobs.lines.clear()
    jobs.list("failed", 10)
    assert [row.split()[-1] for row in jobs.lines[1:]] == [NORMAL_KEY]

    jobs.lines.clear()
    jobs.show(f"s3://{INPUT_BUCKET}/{NORMAL_KEY}")
    shown = "\n".join(jobs.lines)
    assert "state    failed" in shown and "missing required column(s)" in shown
    assert f"s3://{RESULT_BUCKET}/{keys.error_key(NORMAL_KEY)}" in shown
    jobs.lines.clear()
    jobs.show(keys.status_key(FAST_KEY), as_json=True)
    assert json.loads("\n".join(jobs.lines))["missing_parts"] == [1, 2]


def test_retry_of_a_failed_fast_job_invokes_only_the_missing_parts(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    manifest = start(make_steps, s3, FAST_KEY, sample_bytes).manifest
    steps.price_part(manifest, 0, claimant=None)
    steps.record_part_failure(manifest, 1, "failed on all 3 attempts: boom", final=True)
    fake = FakeLambda()
    jobs.clients["lambda"] = fake

    assert jobs.retry(FAST_KEY) == 0
    assert status_of(s3, FAST_KEY)["state"] == "running"
    assert read(s3, keys.error_key(FAST_KEY)) is None
    assert [call["InvocationType"] for call in fake.invocations] == ["Event", "Event"]
    assert {call["FunctionName"] for call in fake.invocations} == {STACK.function_name}
    invoked = [
        json.loads(call["Payload"])["Records"][0]["s3"]["object"]["key"]
        for call in fake.invocations
    ]
    assert invoked == [manifest.part_keys[1], manifest.part_keys[2]]
    # What Lambda then does with those events: the job ends done.
    from runtime.adapters.lambda_handler import handle_object

    actions = [handle_object(steps, INPUT_BUCKET, key).action for key in invoked]
    assert actions == ["part-priced", "merged"]
    assert status_of(s3, FAST_KEY)["state"] == "done"


def test_retry_of_an_unsplit_fast_job_invokes_the_upload_event(jobs, make_steps, s3):
    upload(s3, FAST_KEY, b"id,strike\n1,2\n")
    make_steps().fail_upload(INPUT_BUCKET, FAST_KEY, "the upload failed on all 3 attempts")
    jobs.clients["lambda"] = fake = FakeLambda()
    jobs.retry(FAST_KEY)
    (call,) = fake.invocations
    assert json.loads(call["Payload"])["Records"][0]["s3"]["object"]["key"] == FAST_KEY


def test_retry_of_a_failed_normal_job_submits_only_the_failed_parts(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    upload(s3, NORMAL_KEY, sample_bytes)
    batch_job.run(steps, INPUT_BUCKET, NORMAL_KEY, BatchContext.from_env({}))
    manifest = steps.load_manifest(keys.NORMAL, status_of(s3, NORMAL_KEY)["token"])
    steps.price_part(manifest, 0, claimant=None)
    steps.price_part(manifest, 2, claimant=None)
    steps.record_part_failure(manifest, 1, "attempt 1: OSError: disk full", final=True)
    before = {job["jobId"] for job in submitted_jobs(boto3.client("batch"))}

    assert jobs.retry(NORMAL_KEY) == 0
    new = [j for j in submitted_jobs(boto3.client("batch")) if j["jobId"] not in before]
    pricing, merge = new
    environment = {e["name"]: e["value"] for e in pricing["container"]["environment"]}
    assert environment["PART_INDEXES"] == "1" and "arrayProperties" not in pricing
    assert status_of(s3, NORMAL_KEY)["batch_jobs"] == {
        "array": pricing["jobId"],
        "merge": merge["jobId"],
    }
    # Batch then runs them: the job ends done.
    child = BatchContext.from_env({**environment, "AWS_BATCH_JOB_ID": pricing["jobId"]})
    batch_job.run(steps, INPUT_BUCKET, NORMAL_KEY, child)
    merge_env = {e["name"]: e["value"] for e in merge["container"]["environment"]}
    merged = batch_job.run(steps, INPUT_BUCKET, NORMAL_KEY, BatchContext.from_env(merge_env))
    assert merged.action == "merged" and status_of(s3, NORMAL_KEY)["state"] == "done"


def test_retry_after_a_failed_merge_submits_only_a_merge_that_can_claim(
    jobs, make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40)
    upload(s3, NORMAL_KEY, sample_bytes)
    batch_job.run(steps, INPUT_BUCKET, NORMAL_KEY, BatchContext.from_env({}))
    token = status_of(s3, NORMAL_KEY)["token"]
    manifest = steps.load_manifest(keys.NORMAL, token)
    for index in range(manifest.parts):
        steps.price_part(manifest, index, claimant=None)
    # The merge job claimed the lock, then was killed (out of memory: Batch does not retry).
    steps.store.put_if_absent(RESULT_BUCKET, keys.lock_key(keys.NORMAL, token), b"batch-merge-1")
    steps.fail_job(NORMAL_KEY, token, "the merge job 1 failed: OutOfMemoryError", keys.NORMAL)
    before = {job["jobId"] for job in submitted_jobs(boto3.client("batch"))}

    jobs.retry(NORMAL_KEY)
    (merge,) = [j for j in submitted_jobs(boto3.client("batch")) if j["jobId"] not in before]
    environment = {e["name"]: e["value"] for e in merge["container"]["environment"]}
    assert (environment["BATCH_ROLE"], environment["JOB_TOKEN"]) == ("merge", token)
    context = BatchContext.from_env({**environment, "AWS_BATCH_JOB_ID": merge["jobId"]})
    assert batch_job.run(steps, INPUT_BUCKET, NORMAL_KEY, context).action == "merged"
    assert status_of(s3, NORMAL_KEY)["state"] == "done"


def test_cancel_of_a_normal_job_cancels_queued_and_terminates_started_batch_jobs(
    jobs, make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=40)
    upload(s3, NORMAL_KEY, sample_bytes)
    batch_job.run(steps, INPUT_BUCKET, NORMAL_KEY, BatchContext.from_env({}))
    submitted = status_of(s3, NORMAL_KEY)["batch_jobs"]
    fake = FakeBatch({submitted["array"]: "RUNNING", submitted["merge"]: "PENDING"})
    jobs.clients["batch"] = fake

    assert jobs.cancel(NORMAL_KEY) == 0
    assert sorted(fake.calls) == [("cancel", submitted["merge"]), ("terminate", submitted["array"])]
    assert status_of(s3, NORMAL_KEY)["state"] == "cancelled"
    assert jobs.lines[0].startswith(f"cancelled {NORMAL_KEY}")
    # The children still running stop without pricing; nothing publishes.
    manifest = steps.load_manifest(keys.NORMAL, status_of(s3, NORMAL_KEY)["token"])
    assert steps.price_part(manifest, 0, claimant=None).action == "stopped"
    assert read(s3, keys.result_key(NORMAL_KEY)) is None


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["show", "fast/nope.csv"], "no job for fast/nope.csv"),
        (["show", "elsewhere/x.csv"], "is not under fast/ or normal/"),
        (["cancel", FAST_KEY], f"{FAST_KEY} is not running: the job is failed"),
        (["retry", NORMAL_KEY], f"only a failed job can be retried: {NORMAL_KEY} is running"),
    ],
)
def test_job_command_errors_are_one_line(
    aws, make_steps, s3, sample_bytes, capsys, command, message
):
    upload(s3, FAST_KEY, b"id\n1\n")
    make_steps().start(INPUT_BUCKET, FAST_KEY, max_parts=10)  # rejected: failed
    start(make_steps, s3, NORMAL_KEY, sample_bytes)  # split: running
    flags = ["--input-bucket", INPUT_BUCKET, "--result-bucket", RESULT_BUCKET]
    assert tools_main(["jobs", *command, *flags, "--region", "us-east-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {err.removeprefix('error: ')}" and message in err
    assert "\n" not in err


def test_retry_of_a_fast_job_without_the_function_says_what_is_missing(
    aws, make_steps, s3, sample_bytes, capsys
):
    manifest = start(make_steps, s3, FAST_KEY, sample_bytes).manifest
    make_steps().record_part_failure(manifest, 0, "boom", final=True)
    flags = ["--result-bucket", RESULT_BUCKET, "--region", "us-east-1"]
    assert tools_main(["jobs", "retry", FAST_KEY, *flags]) == 1
    assert "needs the function: --function-name or --stack" in capsys.readouterr().err
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

    running = {"state": "running", "parts_total": 3, "parts_done": 1}
    store = Statuses({}, running, {**running, "parts_done": 2}, {**running, **final})
    with pytest.raises(CommandError, match=message):
        wait_for_result(store, "b", FAST_KEY, Path(tmp_path / "out"), 60, poll_seconds=0)
    assert not (tmp_path / "out").exists()


def test_submit_wait_downloads_a_done_job_with_plain_progress_lines(tmp_path, capsys):
    from runtime.tools.submit import wait_for_result

    running = {"state": "running", "parts_total": 3, "parts_done": 1}
    store = Statuses(running, {**running, "state": "done", "parts_done": 3, "seconds": 1.5})
    store.get = lambda bucket, key: b"id,price,stdError,error\n1,2.5,0.01,\n"
    wait_for_result(store, "b", FAST_KEY, Path(tmp_path / "out"), 60, poll_seconds=0)
    err = capsys.readouterr().err
    assert "progress: 3 of 3 parts" in err  # plain lines off a terminal
    assert "done in 1.5 s: 1 rows" in err
