"""The fast path's real handler against moto: split, parallel parts, last-finisher merge."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtime.adapters.lambda_handler import handle_object, s3_records
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.pricing import price_table
from runtime.tools import aws_events
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.conftest import serialised
from tests.helpers import all_keys, as_lambda, fence_of, price_parts, read, status_of, upload

KEY = "fast/20261124-0900/portfolio.csv"


def fast_part_keys(s3) -> list[str]:
    return [k for k in all_keys(s3, INPUT_BUCKET) if keys.is_fast_part(k)]


def run_parts(steps, keys, threads: int = 4) -> list[str]:
    """Deliver one S3 event per part, concurrently, as S3 and Lambda would."""

    def deliver(key: str):
        request_id = uuid.uuid4().hex
        return as_lambda(lambda: handle_object(steps, INPUT_BUCKET, key, request_id))

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(deliver, keys))
    return [o.action for o in outcomes]


def result_writes(steps, input_key: str) -> list[str]:
    """Every write of the key's -result by these steps, as it happens."""
    writes: list[str] = []
    real_put = steps.store.put

    def put(bucket, key, *args, **kwargs):
        if key == keys.result_key(input_key):
            writes.append(key)
        return real_put(bucket, key, *args, **kwargs)

    steps.store.put = put
    return writes


def whole_file_result(data: bytes) -> bytes:
    return price_table(read_table(data), serialised()).csv


def test_large_file_splits_prices_parts_in_parallel_and_merges_in_order(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=10)
    upload(s3, KEY, sample_bytes)

    outcome = handle_object(steps, INPUT_BUCKET, KEY)
    assert (outcome.action, outcome.detail) == ("split", "10 parts")
    parts = fast_part_keys(s3)
    token = outcome.fence.token
    assert parts == [keys.fast_part_key(token, 1, index) for index in range(10)]
    assert status_of(s3, KEY)["state"] == "running"

    actions = run_parts(steps, parts)
    assert actions.count("merged") == 1
    assert read(s3, keys.result_key(KEY)) == whole_file_result(sample_bytes)
    status = status_of(s3, KEY)
    assert (status["state"], status["partsDone"], status["partsTotal"]) == ("done", 10, 10)
    # Temporary objects are gone; the user's input is untouched.
    assert fast_part_keys(s3) == []
    assert all_keys(s3, RESULT_BUCKET) == sorted([keys.result_key(KEY), keys.status_key(KEY)])
    assert read(s3, KEY, bucket=INPUT_BUCKET) == sample_bytes


def test_uneven_split_and_small_file_give_the_same_rows(make_steps, s3, sample_bytes):
    upload(s3, KEY, sample_bytes)
    steps = make_steps(threshold=7)
    assert handle_object(steps, INPUT_BUCKET, KEY).detail == "15 parts"
    run_parts(steps, fast_part_keys(s3))
    split_result = read(s3, keys.result_key(KEY))

    other = "fast/20261124-0901/portfolio.csv"
    upload(s3, other, sample_bytes)
    assert handle_object(make_steps(threshold=100), INPUT_BUCKET, other).action == "priced"
    assert read(s3, keys.result_key(other)) == split_result


def test_duplicate_events_give_exactly_one_result(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=25)
    upload(s3, KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, KEY)
    # A duplicate upload event while running re-writes identical parts.
    assert handle_object(steps, INPUT_BUCKET, KEY).action == "split"
    parts = fast_part_keys(s3)
    assert len(parts) == 4
    writes = result_writes(steps, KEY)
    actions = run_parts(steps, parts + parts)  # every part event delivered twice
    # One merge wrote one result (the merger may report "merged", or, had it to wait for
    # another actor delivering its event, its retry finds the job done).
    assert len(writes) == 1 and actions.count("merged") <= 1, actions
    assert events.states() == [(KEY, "done")]
    result = read(s3, keys.result_key(KEY))
    assert result == whole_file_result(sample_bytes)
    # Late duplicates after the merge change nothing.
    assert handle_object(steps, INPUT_BUCKET, KEY).action == "duplicate"
    assert {o for o in run_parts(steps, parts)} == {"ignored"}
    assert read(s3, keys.result_key(KEY)) == result


def test_reupload_of_the_same_key_gives_a_fresh_result(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=50)
    upload(s3, KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, KEY)
    run_parts(steps, fast_part_keys(s3))
    first_token = status_of(s3, KEY)["token"]

    lines = sample_bytes.decode().splitlines(keepends=True)
    changed = "".join(lines[:61]).encode()  # header and 60 rows
    upload(s3, KEY, changed)
    assert handle_object(steps, INPUT_BUCKET, KEY).action == "split"
    run_parts(steps, fast_part_keys(s3))
    status = status_of(s3, KEY)
    assert status["token"] != first_token and status["rows"] == 60
    assert read(s3, keys.result_key(KEY)) == whole_file_result(changed)


def test_parts_finishing_at_the_same_instant_merge_exactly_once(make_steps, s3, sample_bytes):
    for attempt in range(15):
        key = f"fast/race-{attempt}/portfolio.csv"
        upload(s3, key, sample_bytes)
        steps = make_steps(threshold=20)
        split = handle_object(steps, INPUT_BUCKET, key)
        manifest, fence = split.manifest, split.fence
        price_parts(steps, manifest, fence)
        barrier = threading.Barrier(manifest.parts)

        def finish(index: int, barrier=barrier, steps=steps, manifest=manifest, fence=fence):
            barrier.wait()
            return as_lambda(lambda: steps.merge(manifest, fence, f"fast-part-{index}")).action

        writes = result_writes(steps, key)
        with ThreadPoolExecutor(manifest.parts) as pool:
            actions = list(pool.map(finish, range(manifest.parts)))
        assert len(writes) == 1 and actions.count("merged") <= 1, actions
        assert set(actions) <= {"merged", "duplicate", "stopped"}, actions
        assert read(s3, keys.result_key(key)) == whole_file_result(sample_bytes)


class CrashOnce:
    """Fault injection: the engine dies the first time it sees a given option."""

    def __init__(self, strike: float) -> None:
        self.strike, self.crashed, self.engine = strike, False, serialised()

    def __call__(self, options):
        if not self.crashed and any(o.strike == self.strike for o in options):
            self.crashed = True
            raise MemoryError("worker killed mid-part")
        return self.engine(options)


def test_a_crashed_part_is_visible_then_its_retry_gives_an_identical_result(
    make_steps, s3, sample_bytes
):
    crash = CrashOnce(strike=57.0)  # row 3, in part 0
    steps = make_steps(threshold=10, engine=crash)
    upload(s3, KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, KEY)
    parts = fast_part_keys(s3)
    with pytest.raises(MemoryError):
        handle_object(steps, INPUT_BUCKET, parts[0])  # Lambda would retry this event
    status = status_of(s3, KEY)
    assert [(f["part"], f["final"], f["attempt"]) for f in status["failedParts"]] == [(0, False, 1)]
    assert "MemoryError" in status["failedParts"][0]["error"]

    run_parts(steps, parts[1:])
    assert 0 in status_of(s3, KEY)["missingParts"]
    assert read(s3, keys.result_key(KEY)) is None  # nothing partial is published
    assert handle_object(steps, INPUT_BUCKET, parts[0]).action == "merged"  # the retry
    assert read(s3, keys.result_key(KEY)) == whole_file_result(sample_bytes)
    assert status_of(s3, KEY)["failedParts"] == []


def test_a_part_that_never_finishes_publishes_nothing_and_is_named(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=10)
    upload(s3, KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, KEY)
    parts = fast_part_keys(s3)
    run_parts(steps, parts[:3] + parts[4:])
    status = status_of(s3, KEY)
    assert status["state"] == "running"
    assert (status["partsDone"], status["missingParts"]) == (9, [3])
    assert read(s3, keys.result_key(KEY)) is None


def test_fan_out_is_capped_by_growing_the_part_size(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=1, max_parts=8)
    upload(s3, KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, KEY).manifest
    assert manifest.parts == 8 and max(manifest.part_rows) == 13 and sum(manifest.part_rows) == 100
    assert len(fast_part_keys(s3)) == 8


def test_a_bad_file_leaves_an_error_object_and_the_input_untouched(make_steps, s3):
    steps = make_steps(threshold=10)
    upload(s3, KEY, b"id,strike\n1,2\n")
    assert handle_object(steps, INPUT_BUCKET, KEY).action == "rejected"
    error = read(s3, keys.error_key(KEY)).decode()
    assert "missing required column(s): todaysDate" in error
    assert status_of(s3, KEY)["state"] == "failed"
    assert read(s3, keys.result_key(KEY)) is None
    assert read(s3, KEY, bucket=INPUT_BUCKET) == b"id,strike\n1,2\n"
    assert fast_part_keys(s3) == []


def test_byte_ceiling_rejects_without_reading(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=10, max_bytes=1000)
    upload(s3, KEY, sample_bytes)
    assert handle_object(steps, INPUT_BUCKET, KEY).action == "rejected"
    assert "over the configured limit of 1000 bytes" in read(s3, keys.error_key(KEY)).decode()


def test_s3_event_keys_are_url_decoded():
    event = aws_events.s3_event("b", "fast/my job/a+b.csv", None, "00A1")
    assert event["Records"][0]["s3"]["object"]["key"] == "fast/my+job/a%2Bb.csv"  # as S3 sends
    assert s3_records(event) == [("b", "fast/my job/a+b.csv", None, "00A1")]


def test_a_stray_object_under_the_parts_prefix_is_ignored(make_steps, s3):
    for stray in ("fast/_parts/nosuchtoken/1/part-00000.csv", "fast/_parts/tok/part-00000.csv"):
        upload(s3, stray, b"x\n")
        outcome = handle_object(make_steps(), INPUT_BUCKET, stray)
        assert outcome.action == "ignored", stray
    assert all_keys(s3, RESULT_BUCKET) == []


def test_a_stray_key_is_reported_not_retried(aws, monkeypatch):
    from runtime.adapters import lambda_handler

    monkeypatch.setenv("RESULT_BUCKET", RESULT_BUCKET)
    lambda_handler._steps.cache_clear()
    event = aws_events.s3_event(INPUT_BUCKET, "fast/_parts/tok/part-x.csv")
    (outcome,) = lambda_handler.handler(event)["outcomes"]
    lambda_handler._steps.cache_clear()
    assert outcome["action"] == "ignored" and "not a part key" in outcome["detail"]


def test_a_merge_claimed_by_a_crashed_worker_is_resumed_only_by_its_retry(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=50)
    upload(s3, KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, KEY).manifest
    fence = fence_of(s3, KEY)
    price_parts(steps, manifest, fence)
    # The worker that claimed the merge died right after its conditional write.
    s3.put_object(
        Bucket=RESULT_BUCKET,
        Key=keys.lock_key("fast", manifest.token, fence.attempt),
        Body=b"fast-part-00001-req-1",
    )
    assert steps.merge(manifest, fence, "fast-part-00001-req-2").action == "duplicate"
    assert read(s3, keys.result_key(KEY)) is None
    assert steps.merge(manifest, fence, "fast-part-00001-req-1").action == "merged"
    assert read(s3, keys.result_key(KEY)) == whole_file_result(sample_bytes)
