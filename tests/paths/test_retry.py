"""The user's retry (``jobs retry``: a command for the function): a failed attempt runs again
as the next attempt, which re-prices only what is missing; late failures of the earlier
attempt never fail it, and each attempt ends with its own job event."""

from __future__ import annotations

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import command, handle_command, handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.helpers import (
    FAST_KEY,
    NORMAL_KEY,
    admit,
    batch_failure,
    exhausted,
    fast_parts,
    fence_of,
    job_env,
    lambda_on_failure,
    object_created,
    priced,
    read,
    recorded_jobs,
    run_children,
    run_job,
    run_manager,
    sqs_event,
    status_of,
    upload,
    version_of,
    versions_of,
)


def retry(steps, key: str, fence=None, actor: str = "req-retry", force: bool = False):
    payload = command("retry", key, str(fence) if fence else None, force)
    return handle_command(steps, payload, actor)


def fail_last_part(steps, s3, sample_bytes) -> tuple[list[str], dict]:
    """A four-part fast job whose last part failed on every attempt."""
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    parts = fast_parts(s3, manifest.token)
    for part in parts[:-1]:
        handle_object(steps, INPUT_BUCKET, part)
    record = exhausted(
        INPUT_BUCKET, parts[-1], "req-9", "Runtime exited with error: signal: killed"
    )
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    assert status_of(s3, FAST_KEY)["state"] == "failed"
    return parts, record


def test_a_reopened_job_reprices_only_what_failed_and_merges_once(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
    fail_last_part(steps, s3, sample_bytes)
    token = fence_of(s3, FAST_KEY).token

    reopened = retry(steps, FAST_KEY, fence_of(s3, FAST_KEY))
    assert reopened.action == "reopened" and reopened.manifest.token == token
    status = status_of(s3, FAST_KEY)
    assert (status["state"], status["attempt"], status["failedParts"]) == ("running", 2, [])
    assert [(a["attempt"], a["state"]) for a in status["attempts"]] == [(1, "failed")]
    assert versions_of(s3, keys.error_key(FAST_KEY)) == []  # the failed attempt's -error went
    # Only the missing part is written again, for attempt 2; its event prices and merges.
    (again,) = fast_parts(s3, token, attempt=2)
    assert again == keys.fast_part_key(token, 2, 3)
    assert handle_object(steps, INPUT_BUCKET, again, "req-10").action == "merged"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert [(e["state"], e["attempt"]) for e in events] == [("failed", 1), ("done", 2)]
    assert retry(steps, FAST_KEY).action == "stopped"  # only a failed job can be retried


def test_late_failures_of_the_earlier_attempt_never_fail_the_next(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
    parts, record = fail_last_part(steps, s3, sample_bytes)
    retry(steps, FAST_KEY, fence_of(s3, FAST_KEY))
    # Attempt 1's failure record delivered again, and its part's late event: nothing changes.
    lambda_handler.handle_sqs(steps, sqs_event(record, receive_count=2)["Records"])
    assert handle_object(steps, INPUT_BUCKET, parts[-1], "req-late").action == "stopped"
    status = status_of(s3, FAST_KEY)
    assert (status["state"], status["attempt"]) == ("running", 2)
    assert [e["state"] for e in events] == ["failed"]
    (again,) = fast_parts(s3, status["token"], attempt=2)
    assert handle_object(steps, INPUT_BUCKET, again).action == "merged"
    assert [e["state"] for e in events] == ["failed", "done"]


def test_a_retry_meant_for_another_attempt_changes_nothing(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=30)
    fail_last_part(steps, s3, sample_bytes)
    seen = fence_of(s3, FAST_KEY)
    assert retry(steps, FAST_KEY, seen, actor="req-1").action == "reopened"
    # A second retry of what the user saw (attempt 1) does not reopen attempt 2 again.
    assert retry(steps, FAST_KEY, seen, actor="req-2").action == "stopped"
    assert status_of(s3, FAST_KEY)["attempt"] == 2


def test_a_retry_of_a_job_that_never_split_prices_the_upload_again(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)
    steps.fail_upload(INPUT_BUCKET, FAST_KEY, "the upload failed on all 3 attempts", "req-1")
    assert status_of(s3, FAST_KEY)["state"] == "failed"
    assert retry(steps, FAST_KEY, fence_of(s3, FAST_KEY)).action == "priced"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert read(s3, keys.error_key(FAST_KEY)) is None
    assert [(e["state"], e["attempt"]) for e in events] == [("failed", 1), ("done", 2)]


def test_a_retry_after_a_merge_that_failed_holding_its_claim_ends_done(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    jobs = recorded_jobs(s3, NORMAL_KEY)
    run_children(steps, jobs["array"], NORMAL_KEY)
    fence = fence_of(s3, NORMAL_KEY)
    s3.put_object(
        Bucket=RESULT_BUCKET,
        Key=keys.lock_key("normal", fence.token, fence.attempt),
        Body=b"batch-merge-JOB1",
    )
    lambda_handler.handle_batch_event(
        steps, batch_failure(jobs["merge"], "Essential container in task exited"), "req-event"
    )
    assert status_of(s3, NORMAL_KEY)["state"] == "failed"
    assert retry(steps, NORMAL_KEY, fence).action == "reopened"
    # Every part has its result: the next attempt is one merge job, with its own claim.
    retried = recorded_jobs(s3, NORMAL_KEY)
    assert set(retried) == {"merge"}
    assert run_job(steps, job_env(retried["merge"]), NORMAL_KEY).action == "merged"
    assert [e["state"] for e in events] == ["failed", "done"]
    # The first attempt's merge job, should it run late, changes nothing.
    assert run_job(steps, job_env(jobs["merge"]), NORMAL_KEY).action == "stopped"
    assert [e["state"] for e in events] == ["failed", "done"]


def test_a_retry_of_a_normal_job_submits_only_the_failed_parts(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    jobs = recorded_jobs(s3, NORMAL_KEY)
    run_children(steps, jobs["array"], NORMAL_KEY, [0, 2])
    for index in (1, 3):
        failure = batch_failure(jobs["array"], "Essential container in task exited", "OOM", index)
        lambda_handler.handle_batch_event(steps, failure, f"req-{index}")
    assert retry(steps, NORMAL_KEY, fence_of(s3, NORMAL_KEY)).action == "reopened"
    retried = recorded_jobs(s3, NORMAL_KEY)
    assert retried["array"]["arrayProperties"]["size"] == 2
    assert job_env(retried["array"])["PART_INDEXES"] == "1,3"
    assert job_env(retried["array"])["JOB_FENCE"] == str(fence_of(s3, NORMAL_KEY))
    assert run_children(steps, retried["array"], NORMAL_KEY) == ["part-priced"] * 2
    assert run_job(steps, job_env(retried["merge"]), NORMAL_KEY).action == "merged"
    assert read(s3, keys.result_key(NORMAL_KEY)) == priced(sample_bytes)
    assert [(e["state"], e["attempt"]) for e in events] == [("failed", 1), ("done", 2)]


def test_late_failures_of_an_upload_never_fail_its_retried_job(
    make_steps, s3, sample_bytes, events
):
    """The start's on-failure record, a dead letter and a Batch event of attempt 1, all
    delivered again after the retry began attempt 2, change nothing."""
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    version = version_of(s3, NORMAL_KEY)
    admit(steps, NORMAL_KEY)
    manager = recorded_jobs(s3, NORMAL_KEY)["manager"]
    killed = batch_failure(manager, "Essential container in task exited", "OutOfMemoryError")
    lambda_handler.handle_batch_event(steps, killed, "req-1")
    assert retry(steps, NORMAL_KEY, fence_of(s3, NORMAL_KEY)).action == "reopened"
    manager_2 = recorded_jobs(s3, NORMAL_KEY)["manager"]
    assert run_job(steps, job_env(manager_2), NORMAL_KEY).action == "split"
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY, version)
    record = lambda_on_failure(dead_letter, "req-2", "Rate exceeded", "ClientException")
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter, record)["Records"])
    assert lambda_handler.handle_batch_event(steps, killed, "req-3").action == "stopped"
    status = status_of(s3, NORMAL_KEY)
    assert (status["state"], status["attempt"]) == ("running", 2)
    assert [(e["state"], e["attempt"]) for e in events] == [("failed", 1)]
