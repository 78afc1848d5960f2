"""A merge that crashed holding its claim is resumed by its own retry (Lambda keeps the
request id, Batch the job id), never taken over by a duplicate, and ends with exactly one
result and one job event."""

from __future__ import annotations

import pytest

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.helpers import (
    FAST_KEY,
    exhausted,
    fast_parts,
    priced,
    read,
    sqs_event,
    status_of,
    upload,
)


class MergeCrash(Exception):
    pass


def crash_after_claim(steps):
    """The merging invocation dies after claiming the lock, before anything is published."""
    real_put = steps.store.put

    def put(bucket, key, *args, **kwargs):
        if key.endswith("-result"):
            steps.store.put = real_put
            raise MergeCrash("killed while writing the result")
        return real_put(bucket, key, *args, **kwargs)

    steps.store.put = put


def split_and_crash_the_merge(steps, s3, sample_bytes) -> str:
    """A two-part job whose last part's invocation (request req-2) crashes in the merge."""
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, last = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, first, "req-1")
    crash_after_claim(steps)
    with pytest.raises(MergeCrash):
        handle_object(steps, INPUT_BUCKET, last, "req-2")
    assert status_of(s3, FAST_KEY)["state"] == "running"
    assert read(s3, keys.result_key(FAST_KEY)) is None
    return last


def test_a_crashed_merge_is_resumed_by_the_lambda_retry(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    last = split_and_crash_the_merge(steps, s3, sample_bytes)
    # A duplicate S3 event (a new request id) cannot take the merge over; the retry can.
    assert handle_object(steps, INPUT_BUCKET, last, "req-3").action == "duplicate"
    assert handle_object(steps, INPUT_BUCKET, last, "req-2").action == "merged"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert [e["state"] for e in events] == ["done"]


def test_a_crashed_merge_is_resumed_by_the_failure_path(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    last = split_and_crash_the_merge(steps, s3, sample_bytes)
    # Every attempt of req-2 failed: Lambda's on-failure record reaches the function.
    answer = lambda_handler.handle_sqs(
        steps, sqs_event(exhausted(INPUT_BUCKET, last, "req-2"))["Records"]
    )
    assert answer == {"batchItemFailures": []}
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert status_of(s3, FAST_KEY)["state"] == "done"
    assert [e["state"] for e in events] == ["done"]
    # The record delivered again changes nothing: one result, one event.
    lambda_handler.handle_sqs(
        steps, sqs_event(exhausted(INPUT_BUCKET, last, "req-2"), receive_count=2)["Records"]
    )
    assert [e["state"] for e in events] == ["done"]


def test_a_crashed_merge_whose_record_keeps_failing_ends_failed_on_its_last_receive(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    last = split_and_crash_the_merge(steps, s3, sample_bytes)
    record = exhausted(INPUT_BUCKET, last, "req-2", "Task timed out after 900.00 seconds")
    lambda_handler.handle_sqs(steps, sqs_event(record, receive_count=3)["Records"])
    status = status_of(s3, FAST_KEY)
    assert status["state"] == "failed" and "Task timed out" in status["error"]
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert [e["state"] for e in events] == ["failed"]
