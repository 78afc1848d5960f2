"""Failures reach a terminal state: Lambda's on-failure records, Batch's state-change events
and EventBridge's dead letters each end the attempt they are about ``failed``, naming the
part or job and the reason, with exactly one job event."""

from __future__ import annotations

import pytest

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.helpers import (
    FAST_KEY,
    NORMAL_KEY,
    admit,
    batch_failure,
    exhausted,
    fast_parts,
    lambda_on_failure,
    object_created,
    read,
    recorded_jobs,
    run_children,
    run_manager,
    sqs_event,
    status_of,
    upload,
    version_of,
)


def test_a_fast_part_failing_on_every_attempt_fails_the_job_naming_it(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, second = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, first, "req-1")
    record = exhausted(INPUT_BUCKET, second, "req-2", "Runtime exited with error: signal: killed")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    status = status_of(s3, FAST_KEY)
    assert status["state"] == "failed"
    assert status["error"].startswith("part-00001 failed: failed on all 3 attempts")
    assert "signal: killed" in status["error"]
    assert [(f["part"], f["final"]) for f in status["failedParts"]] == [(1, True)]
    assert read(s3, keys.error_key(FAST_KEY)).startswith(b"part-00001 failed")
    assert read(s3, keys.result_key(FAST_KEY)) is None
    # The same failure record delivered again changes nothing.
    lambda_handler.handle_sqs(steps, sqs_event(record, receive_count=2)["Records"])
    assert [(e["state"], e["failedParts"][0]["part"]) for e in events] == [("failed", 1)]


def test_an_upload_whose_start_failed_on_every_attempt_ends_failed(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    version = version_of(s3, FAST_KEY)
    record = exhausted(INPUT_BUCKET, FAST_KEY, "req-1", "Task timed out after 900.00 s", version)
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    status = status_of(s3, FAST_KEY)
    assert status["state"] == "failed" and "Task timed out" in status["error"]
    assert status["version"] == version
    assert events.states() == [(FAST_KEY, "failed")]


def test_an_upload_whose_admission_failed_on_every_attempt_ends_failed(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    event = object_created(INPUT_BUCKET, NORMAL_KEY, version_of(s3, NORMAL_KEY))
    record = lambda_on_failure(event, "req-1", "Rate exceeded", "ClientException")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed"
    assert status["error"] == "the upload failed on all 3 attempts: ClientException: Rate exceeded"
    assert events.states() == [(NORMAL_KEY, "failed")]


@pytest.mark.parametrize(
    ("reason", "container_reason"),
    [
        (
            "Essential container in task exited",
            "OutOfMemoryError: Container killed due to memory usage",
        ),
        ("Job attempt duration exceeded timeout", ""),
        ("Host EC2 (instance i-0abc) terminated.", ""),  # Spot, three times
    ],
)
def test_a_batch_child_killed_by_its_host_fails_the_job_naming_part_and_reason(
    make_steps, s3, sample_bytes, events, reason, container_reason
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    jobs = recorded_jobs(s3, NORMAL_KEY)
    run_children(steps, jobs["array"], NORMAL_KEY, [0])
    # Child 1 died without a word; Batch fails it, the array, then the merge (dependency).
    for event in (
        batch_failure(jobs["array"], reason, container_reason, index=1),
        batch_failure(jobs["array"], "Array Child Job failed"),
        batch_failure(jobs["merge"], "Dependent Job failed"),
    ):
        lambda_handler.handle_batch_event(steps, event, "req-event")
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed"
    assert status["error"].startswith("part-00001 failed: ")
    assert reason in status["error"] and container_reason in status["error"]
    assert [f["part"] for f in status["failedParts"]] == [1]
    assert [e["state"] for e in events] == ["failed"]


def test_a_killed_merge_job_fails_the_job(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    jobs = recorded_jobs(s3, NORMAL_KEY)
    run_children(steps, jobs["array"], NORMAL_KEY)
    event = batch_failure(jobs["merge"], "Essential container in task exited", "OutOfMemoryError")
    assert lambda_handler.handle_batch_event(steps, event, "req-event").action == "failed"
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and status["error"].startswith("the merge job ")
    assert "OutOfMemoryError" in status["error"] and [e["state"] for e in events] == ["failed"]


def test_a_manager_that_never_ran_or_died_ends_its_upload_failed(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    assert admit(steps, NORMAL_KEY).action == "submitted"
    manager = recorded_jobs(s3, NORMAL_KEY)["manager"]
    event = batch_failure(
        manager, "Job cancelled: RUNNABLE for longer than the queue allows (CAPACITY:INSUFFICIENT)"
    )
    assert lambda_handler.handle_batch_event(steps, event, "req-event").action == "failed"
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and "RUNNABLE for longer" in status["error"]
    assert events.states() == [(NORMAL_KEY, "failed")]


def test_a_batch_job_submitted_without_a_fence_is_not_ours(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    foreign = {"jobId": "m-1", "parameters": {"S3bucket": INPUT_BUCKET, "S3key": NORMAL_KEY}}
    event = batch_failure(foreign, "Essential container in task exited")
    assert lambda_handler.handle_batch_event(steps, event, "req-event").action == "ignored"
    assert status_of(s3, NORMAL_KEY) is None and events == []


def test_an_upload_eventbridge_could_not_deliver_ends_failed(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY)
    attributes = {
        "ERROR_CODE": {"stringValue": "SDK_CLIENT_ERROR", "dataType": "String"},
        "ERROR_MESSAGE": {"stringValue": "Function is INACTIVE", "dataType": "String"},
    }
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter, attributes=attributes)["Records"])
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and "Function is INACTIVE" in status["error"]
    error = read(s3, keys.error_key(NORMAL_KEY))
    assert error == b"could not start a job for this upload: Function is INACTIVE\n"
    assert events.states() == [(NORMAL_KEY, "failed")]


def test_a_failure_record_that_keeps_failing_is_reported_alone(make_steps, s3, monkeypatch):
    steps = make_steps()
    good = object_created(INPUT_BUCKET, "normal/x/a.csv")
    batch = sqs_event(good, {"requestContext": {}, "requestPayload": "not an event"})
    monkeypatch.setattr(lambda_handler, "handle_exhausted", lambda *a, **k: 1 / 0)
    answer = lambda_handler.handle_sqs(steps, batch["Records"])
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}


def test_an_array_failure_that_arrives_first_names_the_parts_without_a_result(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    array_job = recorded_jobs(s3, NORMAL_KEY)["array"]
    run_children(steps, array_job, NORMAL_KEY, [0, 2, 3])
    failure = batch_failure(array_job, "Array Child Job failed")
    lambda_handler.handle_batch_event(steps, failure, "req-event-1")
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and status["error"].endswith("parts without a result: [1]")
    # The child's own event, arriving later, adds nothing: one terminal state, one event.
    late = batch_failure(array_job, "Essential container in task exited", "OutOfMemoryError", 1)
    lambda_handler.handle_batch_event(steps, late, "req-event-2")
    assert [e["state"] for e in events] == ["failed"]


def test_a_batch_event_whose_handling_failed_every_time_is_handled_from_its_record(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    merge_job = recorded_jobs(s3, NORMAL_KEY)["merge"]
    batch_event = batch_failure(merge_job, "Essential container in task exited", "OutOfMemoryError")
    record = lambda_on_failure(batch_event, "req-1", "throttled", "ThrottlingException")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    assert status_of(s3, NORMAL_KEY)["state"] == "failed"
    assert [e["state"] for e in events] == ["failed"]


def test_a_dead_letter_for_a_key_that_is_no_csv_is_ignored(make_steps, s3, events):
    dead_letter = object_created(INPUT_BUCKET, 'normal/a"b.txt')
    lambda_handler.handle_sqs(make_steps(), sqs_event(dead_letter)["Records"])
    assert status_of(s3, 'normal/a"b.txt') is None and events == []
