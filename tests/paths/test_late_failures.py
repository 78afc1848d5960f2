"""Late failure reports, crash windows and odd keys (found by a hostile review): a failure
is about one upload, and nothing a stopped job wrote stays published."""

from __future__ import annotations

import contextlib

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.protocol.status import ConcurrentUpdateError
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.helpers import (
    all_keys,
    lambda_on_failure,
    object_created,
    read,
    s3_notification,
    sqs_event,
    status_of,
    upload,
)
from tests.paths.test_batch_path import MANAGER_ENV, run_job
from tests.paths.test_job_states import FAST_KEY, NORMAL_KEY, batch_failure, first_rows, priced


def version_of(s3, key: str) -> str:
    return s3.head_object(Bucket=INPUT_BUCKET, Key=key)["VersionId"]


def merge_killed_before_its_status(steps, manifest, meanwhile=lambda: None) -> None:
    """The merge writes its result; then ``meanwhile`` happens and the merge dies before it
    can end its job's status (a timeout, an S3 error, a lost race)."""
    real_update = steps.store.update_json

    def killed(bucket, key, update):
        steps.store.update_json = real_update
        meanwhile()
        raise ConcurrentUpdateError("killed here")

    steps.store.update_json = killed
    with contextlib.suppress(ConcurrentUpdateError):
        steps.merge(manifest, "fast-part-00001-req-1")


def test_a_late_on_failure_record_of_an_older_upload_leaves_the_newer_job_alone(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, b"the upload whose start was killed three times")
    older = version_of(s3, FAST_KEY)
    upload(s3, FAST_KEY, sample_bytes)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-B").action == "split"
    record = lambda_on_failure(s3_notification(INPUT_BUCKET, FAST_KEY, older), "req-A")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    assert status_of(s3, FAST_KEY)["state"] == "running" and events == []


def test_a_late_dead_letter_of_an_older_upload_leaves_the_newer_job_alone(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    older = version_of(s3, NORMAL_KEY)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    attributes = {"ERROR_CODE": {"stringValue": "THROTTLING", "dataType": "String"}}
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY, older)
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter, attributes=attributes)["Records"])
    assert status_of(s3, NORMAL_KEY)["state"] == "running" and events == []


def test_a_failed_manager_of_an_older_upload_leaves_the_newer_job_alone(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)  # A: its manager is killed before it starts
    upload(s3, NORMAL_KEY, sample_bytes)  # B
    run_job(steps, {"AWS_BATCH_JOB_ID": "manager-B"})
    manager_a = {
        "jobId": "manager-A",
        "parameters": {"S3bucket": INPUT_BUCKET, "S3key": NORMAL_KEY},
    }
    event = batch_failure(manager_a, "Essential container in task exited", "OutOfMemoryError")
    assert lambda_handler.handle_batch_event(steps, event).action == "skipped"
    assert status_of(s3, NORMAL_KEY)["state"] == "running"
    # B's own manager failing does end B.
    manager_b = {"jobId": "manager-B", "parameters": manager_a["parameters"]}
    lambda_handler.handle_batch_event(
        steps, batch_failure(manager_b, "Job attempt duration exceeded timeout")
    )
    assert status_of(s3, NORMAL_KEY)["state"] == "failed" and [e["state"] for e in events] == [
        "failed"
    ]


def test_an_upload_deleted_after_its_start_died_ends_failed_on_the_retry(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    real_split = steps._split

    def killed(*args, **kwargs):
        raise MemoryError("killed")

    steps._split = killed
    with contextlib.suppress(MemoryError):
        handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1")
    steps._split = real_split
    s3.delete_object(Bucket=INPUT_BUCKET, Key=FAST_KEY)  # a delete marker
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1").action == "failed"
    assert "deleted before it could be priced" in status_of(s3, FAST_KEY)["error"]
    assert [e["state"] for e in events] == ["failed"]


def test_a_stale_merge_killed_between_its_result_and_its_status_takes_the_result_back(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    job_a = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    for index in range(job_a.parts):
        steps.price_part(job_a, index, claimant=None)
    newer = first_rows(sample_bytes, 10)
    real_stopped = steps._stopped

    def b_arrives_after_the_check(job, **kwargs):
        answer = real_stopped(job, **kwargs)
        steps._stopped = real_stopped
        upload(s3, FAST_KEY, newer)
        handle_object(make_steps(threshold=50), INPUT_BUCKET, FAST_KEY)
        return answer

    steps._stopped = b_arrives_after_the_check
    merge_killed_before_its_status(steps, job_a)
    assert steps.merge(job_a, "fast-part-00001-req-1").action == "stopped"  # Lambda's retry
    assert read(s3, keys.result_key(FAST_KEY)) == priced(newer)
    assert status_of(s3, FAST_KEY)["rows"] == 10


def test_a_normal_key_too_long_and_with_a_quote_gets_a_failed_event(
    make_steps, s3, sample_bytes, events
):
    key = "normal/" + "a" * 1005 + '".csv'  # over 1,012 bytes, and holds a quote
    upload(s3, key, sample_bytes)
    answer = lambda_handler.handle_sqs(
        make_steps(), sqs_event(object_created(INPUT_BUCKET, key))["Records"]
    )
    assert answer == {"batchItemFailures": []}
    assert [(e["state"], e["inputKey"]) for e in events] == [("failed", key)]
    assert all_keys(s3, RESULT_BUCKET) == []  # no key that long can exist in real S3


def test_a_reserved_key_in_the_failure_queue_writes_nothing(make_steps, s3, sample_bytes, events):
    key = 'normal/_work/abc/x".csv'
    upload(s3, key, sample_bytes)
    lambda_handler.handle_sqs(make_steps(), sqs_event(object_created(INPUT_BUCKET, key))["Records"])
    assert all_keys(s3, RESULT_BUCKET) == [] and events == []


def test_a_part_a_duplicate_event_priced_is_not_failed_by_its_exhausted_twin(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=40)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    steps.price_part(manifest, 1, claimant=None)  # a duplicate delivery priced part 1
    record = lambda_on_failure(s3_notification(INPUT_BUCKET, manifest.part_keys[1]), "req-1")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    assert status_of(s3, FAST_KEY)["state"] == "running" and events == []


def test_a_cancelled_jobs_merge_killed_after_its_result_takes_it_back_on_the_retry(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    for index in range(manifest.parts):
        steps.price_part(manifest, index, claimant=None)
    # The user cancels while the merge writes the result.
    merge_killed_before_its_status(steps, manifest, lambda: steps.cancel(FAST_KEY))
    assert steps.merge(manifest, "fast-part-00001-req-1").action == "stopped"
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert [e["state"] for e in events] == ["cancelled"]
    # A duplicate merge of a job that is done keeps the result its status names.
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    for index in range(manifest.parts):
        steps.price_part(manifest, index, claimant=None)
    assert steps.merge(manifest, "fast-part-00001-req-2").action == "merged"
    assert steps.merge(manifest, "fast-part-00001-req-2").action == "stopped"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
