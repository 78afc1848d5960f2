"""A newer upload of a key supersedes its running job: the stale job never publishes over
the newer upload, the result is always the latest upload's, and each job says how it ended
(through the real handlers against moto)."""

from __future__ import annotations

import boto3

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.helpers import (
    FAST_KEY,
    NORMAL_KEY,
    fast_parts,
    fence_of,
    first_rows,
    job_env,
    object_created,
    price_parts,
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


def test_fast_a_superseded_job_never_publishes_and_says_so(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    job_a = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    parts_a = fast_parts(s3, job_a.token)
    for part in parts_a[:-1]:
        handle_object(steps, INPUT_BUCKET, part)

    newer = first_rows(sample_bytes, 20)  # B: small enough to be priced at once
    upload(s3, FAST_KEY, newer)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "priced"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(newer)

    # A's last part arrives late: it must neither merge nor touch B's objects.
    assert handle_object(steps, INPUT_BUCKET, parts_a[-1]).action == "stopped"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(newer)
    status = status_of(s3, FAST_KEY)
    assert (status["state"], status["generation"], status["supersedes"]) == ("done", 2, job_a.token)
    assert [(e["token"], e["state"], e["generation"]) for e in events] == [
        (job_a.token, "superseded", 1),
        (status["token"], "done", 2),
    ]


def test_a_stale_merge_racing_a_newer_upload_takes_its_result_back(
    make_steps, s3, sample_bytes, events
):
    """A's merge passed its ownership check just before B took over: its result object lands
    after B's, and A, refused by the status, deletes exactly the version it wrote."""
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    job_a = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    fence_a = fence_of(s3, FAST_KEY)
    price_parts(steps, job_a, fence_a)

    newer = first_rows(sample_bytes, 10)
    real_put = steps.store.put

    def b_arrives_after_the_check(bucket, key, *args, **kwargs):
        if key == keys.result_key(FAST_KEY):
            steps.store.put = real_put
            upload(s3, FAST_KEY, newer)
            b = handle_object(make_steps(threshold=50), INPUT_BUCKET, FAST_KEY)
            assert b.action == "priced"
        return real_put(bucket, key, *args, **kwargs)

    steps.store.put = b_arrives_after_the_check
    assert steps.merge(job_a, fence_a, "fast-part-00001-req-1").action == "stopped"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(newer)
    assert len(versions_of(s3, keys.result_key(FAST_KEY))) == 1
    assert status_of(s3, FAST_KEY)["state"] == "done"
    assert [e["state"] for e in events] == ["superseded", "done"]


def test_normal_a_superseded_job_stops_and_never_deletes_the_newer_error(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    jobs_a = recorded_jobs(s3, NORMAL_KEY)
    fence_a = fence_of(s3, NORMAL_KEY)
    # B is a broken file: its -error is the answer for this key now.
    upload(s3, NORMAL_KEY, b"id,strike\n1,2\n")
    assert run_manager(steps, s3, NORMAL_KEY).action == "rejected"
    error_b = read(s3, keys.error_key(NORMAL_KEY))
    # Superseding A stopped its Batch jobs (Batch would fail them without running).
    stopped = boto3.client("batch").describe_jobs(jobs=[j["jobId"] for j in jobs_a.values()])
    assert {job["statusReason"] for job in stopped["jobs"]} == {f"job {fence_a} is superseded"}
    assert run_children(steps, jobs_a["array"], NORMAL_KEY) == ["stopped", "stopped"]
    assert run_job(steps, job_env(jobs_a["merge"]), NORMAL_KEY).action == "stopped"
    assert read(s3, keys.error_key(NORMAL_KEY)) == error_b
    assert read(s3, keys.result_key(NORMAL_KEY)) is None
    assert status_of(s3, NORMAL_KEY)["state"] == "failed"
    assert [e["state"] for e in events] == ["superseded", "failed"]


def test_a_late_event_for_an_older_upload_starts_nothing(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)
    first = version_of(s3, FAST_KEY)
    upload(s3, FAST_KEY, first_rows(sample_bytes, 5))
    latest = version_of(s3, FAST_KEY)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-2", latest).action == "priced"
    # The first upload's event arrives last: the current object is already priced.
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1", first).action == "duplicate"
    assert status_of(s3, FAST_KEY)["rows"] == 5 and len(events) == 1


def test_a_result_of_the_previous_upload_is_removed_when_the_new_one_fails(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, FAST_KEY)
    upload(s3, FAST_KEY, b"")
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "rejected"
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert read(s3, keys.error_key(FAST_KEY)).startswith(b"file is empty")
    upload(s3, FAST_KEY, sample_bytes)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "priced"
    assert read(s3, keys.error_key(FAST_KEY)) is None
    assert versions_of(s3, keys.error_key(FAST_KEY)) == []
    assert [e["state"] for e in events] == ["done", "failed", "done"]


def test_a_newer_upload_removes_the_older_result_as_soon_as_its_job_begins(
    make_steps, s3, sample_bytes, events
):
    """The result is always the latest upload's: while B's job runs, A's result is gone."""
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "split"
    for part in fast_parts(s3, fence_of(s3, FAST_KEY).token):
        handle_object(steps, INPUT_BUCKET, part)
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    upload(s3, FAST_KEY, first_rows(sample_bytes, 40))
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "split"
    assert status_of(s3, FAST_KEY)["state"] == "running"
    assert versions_of(s3, keys.result_key(FAST_KEY)) == []
    assert [e["state"] for e in events] == ["done"]  # A ended done: nothing superseded


def test_a_start_that_read_an_older_version_never_supersedes_the_newer_job(
    make_steps, s3, sample_bytes, events
):
    """Two starts race: A's start read the key before B was uploaded, but reaches the status
    after B's start. S3's version order decides: A's start stands down."""
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)
    info_a = steps.store.head(INPUT_BUCKET, FAST_KEY)
    upload(s3, FAST_KEY, first_rows(sample_bytes, 3))
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "priced"  # B

    real_head = steps.store.head
    steps.store.head = lambda bucket, key, version=None: (
        info_a if key == FAST_KEY and version is None else real_head(bucket, key, version)
    )
    outcome = steps.start(INPUT_BUCKET, FAST_KEY, "req-A", info_a.version)
    steps.store.head = real_head
    assert outcome.action == "superseded"
    status = status_of(s3, FAST_KEY)
    assert (status["rows"], status["state"], status["generation"]) == (3, "done", 1)
    assert [e["state"] for e in events] == ["done"]


def test_an_event_with_an_older_sequencer_never_supersedes_the_newer_job(
    make_steps, s3, sample_bytes, events
):
    """S3's event sequencers order two uploads of a key, whatever the versions say."""
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)
    info_a = steps.store.head(INPUT_BUCKET, FAST_KEY)
    upload(s3, FAST_KEY, first_rows(sample_bytes, 3))
    b = version_of(s3, FAST_KEY)
    newer, older = "0055AED6DCD90281E6", "0055AED6DCD90281E5"
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-B", b, newer).action == "priced"
    real_head = steps.store.head
    steps.store.head = lambda bucket, key, version=None: (
        info_a if key == FAST_KEY and version is None else real_head(bucket, key, version)
    )
    outcome = steps.start(INPUT_BUCKET, FAST_KEY, "req-A", info_a.version, older)
    steps.store.head = real_head
    assert outcome.action == "superseded"
    assert status_of(s3, FAST_KEY)["sequencer"] == newer
    assert [e["state"] for e in events] == ["done"]


def test_a_newer_upload_that_never_started_still_supersedes_the_running_job(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    first = status_of(s3, NORMAL_KEY)["token"]
    upload(s3, NORMAL_KEY, sample_bytes)  # B: EventBridge could not invoke the function
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY, version_of(s3, NORMAL_KEY))
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter)["Records"])
    assert [(e["token"] == first, e["state"]) for e in events] == [
        (True, "superseded"),
        (False, "failed"),
    ]
    assert status_of(s3, NORMAL_KEY)["supersedes"] == first
