"""The normal path's real code against moto (S3, and Batch without Docker): the function
admits the upload and submits its manager, which splits and submits the array and merge."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.adapters import batch_job, lambda_handler
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.pricing import price_table
from runtime.tools.local_cloud import INPUT_BUCKET, JOB_QUEUE, RESULT_BUCKET, job_environment
from tests.conftest import serialised
from tests.helpers import (
    admit,
    all_keys,
    fence_of,
    job_env,
    object_created,
    read,
    recorded_jobs,
    run_children,
    run_job,
    run_manager,
    status_of,
    submitted_jobs,
    upload,
    version_of,
)

KEY = "normal/20261124-0900/portfolio.csv"


def overrides(job: dict) -> dict[str, str]:
    """The runtime's environment overrides of a submitted job (moto adds Batch's own)."""
    return {n: v for n, v in job_environment(job).items() if not n.startswith("AWS_BATCH_")}


def run_submitted(steps, s3, key: str = KEY, attempt: int = 1) -> list[str]:
    """Run the array children and then the merge job, as Batch would after submission."""
    jobs = recorded_jobs(s3, key)
    outcomes = run_children(steps, jobs["array"], key, attempt=attempt)
    return [*outcomes, run_job(steps, job_env(jobs["merge"]), key).action]


def test_the_function_admits_an_upload_by_submitting_its_manager_with_the_fence(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=10)
    upload(s3, KEY, sample_bytes)
    outcome = admit(steps, KEY)
    assert outcome.action == "submitted"
    (manager,) = submitted_jobs()
    fence = fence_of(s3, KEY)
    assert (fence.attempt, status_of(s3, KEY)["state"]) == (1, "running")
    # The manager's id is in the status before it runs; it carries the attempt's fence.
    assert status_of(s3, KEY)["batchJobs"] == {"manager": manager["jobId"]}
    assert overrides(manager) == {"BATCH_ROLE": "manager", "JOB_FENCE": str(fence)}
    assert manager["parameters"] == {"S3bucket": INPUT_BUCKET, "S3key": KEY}
    assert manager["jobQueue"].endswith(JOB_QUEUE)
    assert status_of(s3, KEY)["plan"]["runner"] == "normal"
    # A duplicate Object Created event submits nothing more.
    assert admit(steps, KEY, "another-request").action == "duplicate"
    assert len(submitted_jobs()) == 1


def test_manager_submits_one_array_job_and_a_dependent_merge_then_exits(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=10)
    upload(s3, KEY, sample_bytes)

    outcome = run_manager(steps, s3, KEY)
    assert outcome.action == "split" and "10 parts" in outcome.detail
    jobs = recorded_jobs(s3, KEY)
    array_job, merge_job = jobs["array"], jobs["merge"]
    assert array_job["arrayProperties"]["size"] == 10
    assert merge_job["dependsOn"] == [{"jobId": array_job["jobId"]}]
    assert array_job["parameters"] == {"S3bucket": INPUT_BUCKET, "S3key": KEY}
    fence = str(fence_of(s3, KEY))
    assert overrides(array_job) == {"BATCH_ROLE": "child", "JOB_FENCE": fence}
    assert overrides(merge_job) == {"BATCH_ROLE": "merge", "JOB_FENCE": fence}
    token = fence_of(s3, KEY).token
    # Parts are outside the input bucket's normal/ prefix, so they start no jobs.
    assert [k for k in all_keys(s3, INPUT_BUCKET) if k != KEY] == []
    assert len([k for k in all_keys(s3, RESULT_BUCKET) if "/parts/" in k]) == 10

    outcomes = run_submitted(steps, s3)
    assert outcomes == ["part-priced"] * 10 + ["merged"]
    expected = price_table(read_table(sample_bytes), serialised()).csv
    assert read(s3, keys.result_key(KEY)) == expected
    assert status_of(s3, KEY)["state"] == "done"
    assert all_keys(s3, RESULT_BUCKET) == sorted([keys.result_key(KEY), keys.status_key(KEY)])
    assert not [k for k in all_keys(s3, RESULT_BUCKET) if token in k]


def test_a_single_part_file_is_priced_by_the_manager_itself(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=100)
    upload(s3, KEY, sample_bytes)
    assert run_manager(steps, s3, KEY).action == "priced"
    assert [job_environment(j)["BATCH_ROLE"] for j in submitted_jobs()] == ["manager"]
    assert read(s3, keys.result_key(KEY)).count(b"\n") == 101


def test_retried_children_and_duplicate_jobs_give_one_identical_result(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=30)
    upload(s3, KEY, sample_bytes)
    run_manager(steps, s3, KEY)
    jobs = recorded_jobs(s3, KEY)
    run_children(steps, jobs["array"], KEY, [0])
    run_children(steps, jobs["array"], KEY, [0], attempt=2)
    outcomes = run_submitted(steps, s3)
    assert outcomes[-1] == "merged"
    result = read(s3, keys.result_key(KEY))
    # Duplicate jobs, a duplicate manager and a duplicate Object Created event change
    # nothing: the job is done and its work area is gone.
    assert set(run_children(steps, jobs["array"], KEY)) == {"stopped"}
    assert run_job(steps, job_env(jobs["merge"]), KEY).action == "stopped"
    assert run_job(steps, job_env(jobs["manager"]), KEY).action == "stopped"
    assert admit(steps, KEY, "a-duplicate-event").action == "duplicate"
    assert read(s3, keys.result_key(KEY)) == result
    assert len(submitted_jobs()) == 3


def test_a_child_application_error_fails_the_job_at_once_and_names_the_part(
    make_steps, s3, sample_bytes, events
):
    # The job definition retries only host failures (Spot), so an application error is
    # final on the attempt it happens: the child must say so before Batch fails the merge.
    def broken(options, greeks=False):
        raise OSError(28, "No space left on device")

    upload(s3, KEY, sample_bytes)
    run_manager(make_steps(threshold=50), s3, KEY)
    jobs = recorded_jobs(s3, KEY)
    failing = make_steps(threshold=50, engine=broken)

    with pytest.raises(batch_job.BatchJobError, match="part-00001 failed, attempt 1"):
        run_children(failing, jobs["array"], KEY, [1])
    status = status_of(s3, KEY)
    assert status["state"] == "failed"
    assert status["error"].startswith("part-00001 failed: attempt 1: OSError: [Errno 28]")
    assert [(f["part"], f["final"]) for f in status["failedParts"]] == [(1, True)]
    assert read(s3, keys.result_key(KEY)) is None
    assert b"No space left on device" in read(s3, keys.error_key(KEY))
    assert events.states() == [(KEY, "failed")]
    assert status["outbox"] == []  # the event and the stop of the job's Batch jobs
    # The other child stops without pricing; a merge job Batch runs anyway publishes nothing.
    assert run_children(make_steps(threshold=50), jobs["array"], KEY, [0]) == ["stopped"]
    assert run_job(make_steps(threshold=50), job_env(jobs["merge"]), KEY).action == "stopped"
    assert events.states() == [(KEY, "failed")]


def test_a_merge_job_with_missing_parts_fails_and_names_them(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=50)
    upload(s3, KEY, sample_bytes)
    run_manager(steps, s3, KEY)
    merge_job = recorded_jobs(s3, KEY)["merge"]
    with pytest.raises(
        batch_job.BatchJobError, match=r"cannot merge: parts \[0, 1\] have no result"
    ):
        run_job(steps, job_env(merge_job), KEY)
    status = status_of(s3, KEY)
    assert status["state"] == "failed" and status["missingParts"] == [0, 1]


def test_more_parts_than_batch_allows_grow_the_part_size(make_steps, s3, monkeypatch):
    from runtime.protocol import uploads
    from runtime.tools.generate import generate_portfolio

    # Batch's array limit is 10,000; a limit of 10 makes the same case with 21 rows.
    monkeypatch.setattr(uploads, "BATCH_MAX_ARRAY_SIZE", 10)
    steps = make_steps(threshold=1)
    upload(s3, KEY, generate_portfolio(21))
    outcome = run_manager(steps, s3, KEY)
    assert "7 parts" in outcome.detail  # 21 parts of 1 row would exceed 10: 3 rows each
    assert recorded_jobs(s3, KEY)["array"]["arrayProperties"]["size"] == 7


def test_batch_main_reports_bad_arguments_and_settings_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("RESULT_BUCKET", "b")
    assert batch_job.main(["only-one"]) == 2
    monkeypatch.setenv("THRESHOLD", "many")
    assert batch_job.main(["b", "normal/x.csv"]) == 1
    assert "THRESHOLD='many' is not a whole number" in capsys.readouterr().err


def test_a_job_without_its_attempts_fence_refuses_to_run(make_steps, s3, sample_bytes):
    upload(s3, KEY, sample_bytes)
    for fence in ("", "not-a-fence", "token.0"):
        with pytest.raises(batch_job.BatchJobError, match="JOB_FENCE"):
            run_job(make_steps(), {"BATCH_ROLE": "manager", "JOB_FENCE": fence}, KEY)
    assert status_of(s3, KEY) is None


def test_an_eventbridge_key_is_taken_as_written_never_decoded(make_steps, s3, sample_bytes, events):
    """EventBridge's keys are not URL-encoded: "a+b.csv" is that key, even once it is gone
    (it must end failed under its own key, never under "a b.csv", a key nobody uploaded)."""
    key = "normal/my job/a+b book.csv"
    upload(s3, key, sample_bytes)
    steps = make_steps(threshold=100)
    lambda_handler.handle(steps, object_created(INPUT_BUCKET, key), "req-1")
    manager = recorded_jobs(s3, key)["manager"]
    assert manager["parameters"]["S3key"] == key
    assert run_job(steps, job_env(manager), key).action == "priced"
    assert read(s3, keys.result_key(key)) is not None

    gone = "normal/x/a+b.csv"
    upload(s3, gone, sample_bytes)
    version = version_of(s3, gone)
    s3.delete_object(Bucket=INPUT_BUCKET, Key=gone)
    lambda_handler.handle(steps, object_created(INPUT_BUCKET, gone, version), "req-2")
    assert status_of(s3, "normal/x/a b.csv") is None
    assert status_of(s3, gone)["state"] == "failed"


class ManagerKilled(Exception):
    pass


def test_a_duplicate_manager_submits_nothing_and_a_retried_manager_resubmits(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=50)
    upload(s3, KEY, sample_bytes)
    assert admit(steps, KEY).action == "submitted"
    manager = recorded_jobs(s3, KEY)["manager"]
    # The manager's host is reclaimed after it split, before it submitted anything.
    real_submit = steps.batch.submit_parts

    def killed(*args, **kwargs):
        steps.batch.submit_parts = real_submit
        raise ManagerKilled("Host EC2 (instance i-0abc) terminated.")

    steps.batch.submit_parts = killed
    with pytest.raises(ManagerKilled):
        run_job(steps, job_env(manager), KEY)
    # Batch's retry of the same job (same id) finds the manifest and submits once.
    assert run_job(steps, job_env(manager, attempt=2), KEY).action == "split"
    assert run_job(steps, job_env(manager, attempt=3), KEY).action == "duplicate"
    # A manager the status did not record (not the admitted one) does nothing.
    other = {**job_env(manager), "AWS_BATCH_JOB_ID": "manager-2"}
    assert run_job(steps, other, KEY).action == "duplicate"
    assert len(submitted_jobs()) == 3
    assert status_of(s3, KEY)["batchJobs"].keys() == {"manager", "array", "merge"}


def test_the_urgent_lane_runs_on_its_own_queue_and_fails_by_rule_when_off(
    make_steps, s3, sample_bytes, events
):
    key = "urgent/20261124-0900/portfolio.csv"
    upload(s3, key, sample_bytes)
    off = make_steps(threshold=50)  # the stack's default: no urgent queue
    assert admit(off, key).action == "failed"
    assert (
        status_of(s3, key)["error"] == "the urgent lane is off in this stack (urgentMaxVcpus = 0)"
    )
    assert submitted_jobs() == [] and events.states() == [(key, "failed")]

    upload(s3, key, sample_bytes)  # the lane is on: its jobs go to the urgent queue
    on = make_steps(threshold=50, job_queue="pricing-normal", urgent_job_queue=JOB_QUEUE)
    assert run_manager(on, s3, key).action == "split"
    assert status_of(s3, key)["plan"]["queue"] == JOB_QUEUE
    assert {job["jobQueue"].rpartition("/")[2] for job in submitted_jobs()} == {JOB_QUEUE}
    jobs = recorded_jobs(s3, key)
    run_children(on, jobs["array"], key)
    assert run_job(on, job_env(jobs["merge"]), key).action == "merged"
    assert events.states() == [(key, "failed"), (key, "done")]


def test_an_upload_takes_its_teams_fair_share_and_keeps_it_for_every_job(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=50, fair_share=("desk-a", "desk-b"))
    client = steps.batch.client
    requests: list[dict] = []
    real_submit = client.submit_job

    def submit_job(**request):
        requests.append(request)
        return real_submit(**{k: v for k, v in request.items() if k != "shareIdentifier"})

    client.submit_job = submit_job  # moto's queue has no scheduling policy
    s3.put_object(Bucket=INPUT_BUCKET, Key=KEY, Body=sample_bytes, Metadata={"team": "desk-b"})
    run_manager(steps, s3, KEY)
    assert status_of(s3, KEY)["plan"]["share"] == "desk-b"
    roles = [
        job_environment({"container": r["containerOverrides"]})["BATCH_ROLE"] for r in requests
    ]
    assert roles == ["manager", "child", "merge"]
    assert {request.get("shareIdentifier") for request in requests} == {"desk-b"}
    other = "normal/20261124-0900/other.csv"
    s3.put_object(Bucket=INPUT_BUCKET, Key=other, Body=sample_bytes, Metadata={"team": "x"})
    admit(steps, other)
    assert status_of(s3, other)["plan"]["share"] == "default"  # a team the stack does not know


def test_urgent_jobs_are_metered_on_the_urgent_lanes_on_demand_capacity(aws):
    """The job definition says the normal lane's capacity (CAPACITY, e.g. SPOT); the urgent
    lane's jobs run on demand, so the runtime tells them so in their overrides."""
    import boto3

    from runtime.adapters.batch_queue import BatchQueue
    from runtime.environment import RuntimeConfig
    from runtime.protocol.lifecycle import Fence, Plan
    from runtime.tools.local_cloud import JOB_DEFINITION, URGENT_JOB_QUEUE

    config = RuntimeConfig(
        result_bucket=RESULT_BUCKET,
        job_queue=JOB_QUEUE,
        urgent_job_queue=URGENT_JOB_QUEUE,
        job_definition=JOB_DEFINITION,
        capacity="SPOT",
        planning=(("useSpot", True),),
    )
    assert batch_job.job_steps(config).batch.capacities == {URGENT_JOB_QUEUE: "EC2"}
    queue = BatchQueue(
        JOB_DEFINITION, JOB_QUEUE, boto3.client("batch"), capacities={URGENT_JOB_QUEUE: "EC2"}
    )
    plan = Plan(engine="lsm", threshold=200, max_parts=200, runner="normal")
    urgent = queue.submit_manager(
        Fence("t"),
        INPUT_BUCKET,
        "urgent/a/b.csv",
        dataclasses.replace(plan, queue=URGENT_JOB_QUEUE),
    )
    normal = queue.submit_manager(
        Fence("u"), INPUT_BUCKET, "normal/a/b.csv", dataclasses.replace(plan, queue=JOB_QUEUE)
    )
    described = {
        job["jobId"]: job_environment(job)
        for job in boto3.client("batch").describe_jobs(jobs=[urgent, normal])["jobs"]
    }
    assert described[urgent]["CAPACITY"] == "EC2" and "CAPACITY" not in described[normal]


def test_a_failed_jobs_attempts_are_recorded_from_batchs_event(make_steps, s3, sample_bytes):
    """The manager's host was reclaimed twice, then it ran out of memory: no container could
    write its record, so the function records every attempt from the event's measured start
    and stop, before it ends the job (so the job's cost counts them)."""
    from runtime.planning.usage import FAILED, INTERRUPTED
    from runtime.tools.aws_events import batch_attempt, batch_state_change
    from tests.helpers import usage_records

    steps = make_steps(threshold=200)
    upload(s3, KEY, sample_bytes)
    admit(steps, KEY)
    manager = recorded_jobs(s3, KEY)["manager"]
    reasons = ["Host EC2 (instance i-1) terminated."] * 2 + ["Essential container in task exited"]
    attempts = []
    for n, reason in enumerate(reasons, start=1):
        attempt = batch_attempt(0.0, 137, reason)
        attempt["startedAt"], attempt["stoppedAt"] = 1_000_000 * n, 1_000_000 * n + 30_000
        attempts.append(attempt)
    event = batch_state_change(manager, "Essential container in task exited", attempts)
    lambda_handler.handle(steps, event, "req-1")
    status = status_of(s3, KEY)
    assert status["state"] == "failed" and "the manager job" in status["error"]
    found = sorted(
        (d["record"]["attempt"], d["record"]["outcome"], d["record"]["seconds"], d["estimated"])
        for d in usage_records(s3, KEY)
        if d["actor"].startswith("batch-")
    )
    assert found == [
        (1, INTERRUPTED, 30.0, False),
        (2, INTERRUPTED, 30.0, False),
        (3, FAILED, 30.0, False),
    ]
    cost = status["cost"]
    assert (cost["interruptions"], cost["retries"], cost["batchVcpuSeconds"]) == (2, 2, 90.0)
