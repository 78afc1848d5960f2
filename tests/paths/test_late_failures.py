"""Late failure reports, crash windows and odd keys (found by a hostile review): a failure
is about one attempt of one upload, and nothing a stopped job wrote stays published."""

from __future__ import annotations

import contextlib

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.protocol.lifecycle import Publish
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.helpers import (
    FAST_KEY,
    NORMAL_KEY,
    admit,
    all_keys,
    batch_failure,
    exhausted,
    fast_parts,
    fence_of,
    first_rows,
    lambda_on_failure,
    object_created,
    price_parts,
    priced,
    read,
    recorded_jobs,
    run_manager,
    s3_notification,
    sqs_event,
    status_of,
    upload,
    version_of,
    versions_of,
)


class Killed(Exception):
    """The merging process dies here (a timeout, an S3 error, the host went away)."""


def merge_killed_before_its_status(steps, manifest, fence, before_result=None, after_result=None):
    """The merge writes its result, then dies before it can end its job's status;
    ``before_result`` and ``after_result`` happen around its result's write."""
    real_put, real_apply = steps.store.put, steps.ledger.apply

    def put(bucket, key, *args, **kwargs):
        if key != keys.result_key(manifest.input_key):
            return real_put(bucket, key, *args, **kwargs)
        steps.store.put = real_put
        if before_result:
            before_result()
        written = real_put(bucket, key, *args, **kwargs)
        if after_result:
            after_result()
        return written

    def apply(input_key, fact):
        if isinstance(fact, Publish):
            steps.ledger.apply = real_apply
            raise Killed("killed before the status")
        return real_apply(input_key, fact)

    steps.store.put, steps.ledger.apply = put, apply
    with contextlib.suppress(Killed):
        steps.merge(manifest, fence, "fast-part-00001-req-1")
    steps.store.put, steps.ledger.apply = real_put, real_apply


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
    run_manager(steps, s3, NORMAL_KEY)
    attributes = {"ERROR_CODE": {"stringValue": "THROTTLING", "dataType": "String"}}
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY, older)
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter, attributes=attributes)["Records"])
    assert status_of(s3, NORMAL_KEY)["state"] == "running" and events == []


def test_a_failed_manager_of_an_older_upload_leaves_the_newer_job_alone(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)  # A: its manager is stopped before it starts
    admit(steps, NORMAL_KEY)
    manager_a = recorded_jobs(s3, NORMAL_KEY)["manager"]
    upload(s3, NORMAL_KEY, sample_bytes)  # B
    run_manager(steps, s3, NORMAL_KEY)
    event = batch_failure(manager_a, "Essential container in task exited", "OutOfMemoryError")
    assert lambda_handler.handle_batch_event(steps, event, "req-a").action == "stopped"
    assert status_of(s3, NORMAL_KEY)["state"] == "running"
    # A manager of B's attempt that the status did not record (a duplicate) fails: ignored.
    manager_b = recorded_jobs(s3, NORMAL_KEY)["manager"]
    duplicate = batch_failure({**manager_b, "jobId": "manager-dup"}, "Job attempt timed out")
    assert lambda_handler.handle_batch_event(steps, duplicate, "req-d").action == "ignored"
    assert status_of(s3, NORMAL_KEY)["state"] == "running"
    # B's own manager failing does end B.
    lambda_handler.handle_batch_event(
        steps, batch_failure(manager_b, "Job attempt duration exceeded timeout"), "req-b"
    )
    assert status_of(s3, NORMAL_KEY)["state"] == "failed"
    assert [e["state"] for e in events] == ["superseded", "failed"]


def test_an_upload_deleted_after_its_start_died_ends_failed_on_the_retry(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    version = version_of(s3, FAST_KEY)
    real_manifest = steps._manifest

    def killed(*args, **kwargs):
        raise MemoryError("killed")

    steps._manifest = killed
    with contextlib.suppress(MemoryError):
        handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1", version)
    steps._manifest = real_manifest
    assert status_of(s3, FAST_KEY)["state"] == "running"
    s3.delete_object(Bucket=INPUT_BUCKET, Key=FAST_KEY)  # a delete marker
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1", version).action == "failed"
    assert "deleted before it could be priced" in status_of(s3, FAST_KEY)["error"]
    assert [e["state"] for e in events] == ["failed"]


def test_a_stale_merge_killed_between_its_result_and_its_status_takes_the_result_back(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    job_a = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    fence_a = fence_of(s3, FAST_KEY)
    price_parts(steps, job_a, fence_a)
    newer = first_rows(sample_bytes, 10)

    def b_arrives_after_the_check():
        upload(s3, FAST_KEY, newer)
        handle_object(make_steps(threshold=50), INPUT_BUCKET, FAST_KEY)

    # A's result lands after B's (B's job cannot know of it), then A dies.
    merge_killed_before_its_status(steps, job_a, fence_a, before_result=b_arrives_after_the_check)
    assert len(versions_of(s3, keys.result_key(FAST_KEY))) == 2
    assert steps.merge(job_a, fence_a, "fast-part-00001-req-1").action == "stopped"  # a retry
    assert read(s3, keys.result_key(FAST_KEY)) == priced(newer)
    assert len(versions_of(s3, keys.result_key(FAST_KEY))) == 1
    assert status_of(s3, FAST_KEY)["rows"] == 10
    assert [e["state"] for e in events] == ["superseded", "done"]


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
    # no key that long can exist in real S3: only the short marker that it was answered
    (marker,) = all_keys(s3, RESULT_BUCKET)
    assert marker.startswith("normal/_work/") and marker.endswith("/event-published")


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
    fence = fence_of(s3, FAST_KEY)
    price_parts(steps, manifest, fence, [1])  # a duplicate delivery priced part 1
    record = exhausted(INPUT_BUCKET, manifest.part_key(1, fence.attempt), "req-1")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    assert status_of(s3, FAST_KEY)["state"] == "running" and events == []


def test_a_cancelled_jobs_merge_killed_after_its_result_takes_it_back_on_the_retry(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    fence = fence_of(s3, FAST_KEY)
    price_parts(steps, manifest, fence)
    # The user cancels while the merge writes the result.
    merge_killed_before_its_status(
        steps, manifest, fence, after_result=lambda: steps.cancel(FAST_KEY, "cancel:1", "user")
    )
    assert steps.merge(manifest, fence, "fast-part-00001-req-1").action == "stopped"
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert versions_of(s3, keys.result_key(FAST_KEY)) == []
    assert [e["state"] for e in events] == ["cancelled"]
    # A duplicate merge of a job that is done keeps the result its status names.
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    fence = fence_of(s3, FAST_KEY)
    price_parts(steps, manifest, fence)
    assert steps.merge(manifest, fence, "fast-part-00001-req-2").action == "merged"
    assert steps.merge(manifest, fence, "fast-part-00001-req-2").action == "stopped"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)


def test_a_result_written_by_a_lost_attempt_is_taken_back_by_whoever_settles_next(
    make_steps, s3, sample_bytes, events
):
    """The merge died for good after its result's write: whoever touches the job next (here
    the user's cancel) removes the version the status never named."""
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    fence = fence_of(s3, FAST_KEY)
    price_parts(steps, manifest, fence)
    merge_killed_before_its_status(steps, manifest, fence)
    assert len(versions_of(s3, keys.result_key(FAST_KEY))) == 1  # the running attempt's
    assert steps.cancel(FAST_KEY, "cancel:2", "user", fence).action == "cancelled"
    assert versions_of(s3, keys.result_key(FAST_KEY)) == []
    assert [e["state"] for e in events] == ["cancelled"]


def test_an_upload_deleted_while_its_split_wrote_its_parts_ends_failed_on_the_retry(
    make_steps, s3, sample_bytes, events
):
    """The start died after the manifest and some parts; the user deleted the upload before
    Lambda's retry. The parts never written would never be priced: the job must end."""
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    version = version_of(s3, FAST_KEY)
    real_put = steps.store.put

    def killed_after_two_parts(bucket, key, *args, **kwargs):
        if keys.is_fast_part(key) and not key.endswith(("part-00000.csv", "part-00001.csv")):
            raise MemoryError("killed")
        return real_put(bucket, key, *args, **kwargs)

    steps.store.put = killed_after_two_parts
    with contextlib.suppress(MemoryError):
        handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1", version)
    steps.store.put = real_put
    token = fence_of(s3, FAST_KEY).token
    assert len(fast_parts(s3, token)) == 2  # of 4
    s3.delete_object(Bucket=INPUT_BUCKET, Key=FAST_KEY)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1", version).action == "failed"
    assert "deleted before it could be priced" in status_of(s3, FAST_KEY)["error"]
    assert [e["state"] for e in events] == ["failed"]


def test_an_upload_deleted_after_its_split_finished_carries_on_with_its_parts(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    version = version_of(s3, FAST_KEY)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1", version).action == "split"
    s3.delete_object(Bucket=INPUT_BUCKET, Key=FAST_KEY)
    # A duplicate of the upload's event: the parts are copies, the job goes on.
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-2", version).action == "duplicate"
    for part in fast_parts(s3, fence_of(s3, FAST_KEY).token):
        handle_object(steps, INPUT_BUCKET, part)
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert [e["state"] for e in events] == ["done"]
