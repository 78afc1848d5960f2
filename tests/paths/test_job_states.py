"""Every upload ends in one visible terminal state, with one job event (issue 11's findings),
through the real handlers against moto."""

from __future__ import annotations

import json

import boto3
import pytest

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.core.pricing import price_table
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET, job_environment
from tests.conftest import serialised
from tests.helpers import (
    aws_event,
    lambda_on_failure,
    object_created,
    read,
    s3_notification,
    sqs_event,
    status_of,
    upload,
)
from tests.paths.test_batch_path import KEY, MANAGER_ENV, run_job, submitted_jobs

FAST_KEY = "fast/20261124-0900/book.csv"
NORMAL_KEY = KEY  # the key run_job drives


def priced(data: bytes) -> bytes:
    return price_table(read_table(data), serialised()).csv


def first_rows(data: bytes, rows: int) -> bytes:
    return "".join(data.decode().splitlines(keepends=True)[: rows + 1]).encode()


def fast_parts(s3, token: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix=f"fast/_parts/{token}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def result_versions(s3, key: str) -> list[dict]:
    listed = s3.list_object_versions(Bucket=RESULT_BUCKET, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


# -- 1. a stale job never publishes over a newer upload --------------------------------


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
    assert [(e["token"], e["state"]) for e in events] == [
        (job_a.token, "superseded"),
        (status["token"], "done"),
    ]


def test_a_stale_merge_racing_a_newer_upload_takes_its_result_back(
    make_steps, s3, sample_bytes, events
):
    """A's merge passed its ownership check just before B took over: its result object lands
    after B's, and A, refused by the status, deletes exactly the version it wrote."""
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    job_a = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    for index in range(job_a.parts):
        steps.price_part(job_a, index, claimant=None)

    newer = first_rows(sample_bytes, 10)
    real_stopped = steps._stopped
    calls = []

    def b_arrives_after_the_check(job, **kwargs):
        answer = real_stopped(job, **kwargs)
        if not calls:
            calls.append(job)
            upload(s3, FAST_KEY, newer)
            assert (
                handle_object(make_steps(threshold=50), INPUT_BUCKET, FAST_KEY).action == "priced"
            )
        return answer

    steps._stopped = b_arrives_after_the_check
    assert steps.merge(job_a, "fast-part-00001-req-1").action == "superseded"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(newer)
    assert len(result_versions(s3, keys.result_key(FAST_KEY))) == 1
    assert status_of(s3, FAST_KEY)["state"] == "done"
    assert [e["state"] for e in events] == ["superseded", "done"]


def test_normal_a_superseded_job_stops_and_never_deletes_the_newer_error(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    # B is a broken file: its -error is the answer for this key now.
    upload(s3, NORMAL_KEY, b"id,strike\n1,2\n")
    assert run_job(steps, MANAGER_ENV).action == "rejected"
    error_b = read(s3, keys.error_key(NORMAL_KEY))
    for index in range(2):
        child = {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": str(index)}
        assert run_job(steps, child).action == "stopped"
    assert run_job(steps, job_environment(merge_job)).action == "stopped"
    assert read(s3, keys.error_key(NORMAL_KEY)) == error_b
    assert read(s3, keys.result_key(NORMAL_KEY)) is None
    assert status_of(s3, NORMAL_KEY)["state"] == "failed"
    assert [e["state"] for e in events] == ["superseded", "failed"]


def test_a_late_event_for_an_older_upload_starts_nothing(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)
    upload(s3, FAST_KEY, first_rows(sample_bytes, 5))
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "priced"  # the newest
    # The first upload's event arrives last: the current object is already priced.
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY).action == "duplicate"
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
    assert [e["state"] for e in events] == ["done", "failed", "done"]


# -- 2. a crashed merge is resumed -----------------------------------------------------


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


def test_a_crashed_merge_is_resumed_by_the_lambda_retry(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, last = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, first, "req-1")
    crash_after_claim(steps)
    with pytest.raises(MergeCrash):
        handle_object(steps, INPUT_BUCKET, last, "req-2")
    assert status_of(s3, FAST_KEY)["state"] == "running"
    # A duplicate S3 event (a new request id) cannot take the merge over; the retry can.
    assert handle_object(steps, INPUT_BUCKET, last, "req-3").action == "duplicate"
    assert handle_object(steps, INPUT_BUCKET, last, "req-2").action == "merged"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert [e["state"] for e in events] == ["done"]


def exhausted(bucket: str, key: str, request_id: str, error: str = "Task timed out") -> dict:
    return lambda_on_failure(s3_notification(bucket, key), request_id, error)


def test_a_crashed_merge_is_resumed_by_the_failure_path(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, last = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, first, "req-1")
    crash_after_claim(steps)
    with pytest.raises(MergeCrash):
        handle_object(steps, INPUT_BUCKET, last, "req-2")
    # Every attempt of req-2 failed: Lambda's on-failure record reaches the function.
    answer = lambda_handler.handle_sqs(
        steps, sqs_event(exhausted(INPUT_BUCKET, last, "req-2"))["Records"]
    )
    assert answer == {"batchItemFailures": []}
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert status_of(s3, FAST_KEY)["state"] == "done"
    assert [e["state"] for e in events] == ["done"]


# -- 3. failures reach a terminal state ------------------------------------------------


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
    assert [f["part"] for f in status["failed_parts"]] == [1]
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
    record = exhausted(INPUT_BUCKET, FAST_KEY, "req-1", "Task timed out after 900.00 seconds")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    status = status_of(s3, FAST_KEY)
    assert status["state"] == "failed" and "Task timed out" in status["error"]
    assert events.states() == [(FAST_KEY, "failed")]


def batch_failure(job: dict, reason: str, container_reason: str = "", index: int | None = None):
    array = {"index": index} if index is not None else {}
    if "arrayProperties" in job and index is None:
        array = {"size": job["arrayProperties"]["size"], "statusSummary": {}}
    environment = [{"name": name, "value": value} for name, value in job_environment(job).items()]
    return aws_event(
        "batch-job-state-change-failed",
        job_id=job["jobId"] + (f":{index}" if index is not None else ""),
        token=job_environment(job).get("JOB_TOKEN", ""),
        bucket=job["parameters"]["S3bucket"],
        key=job["parameters"]["S3key"],
        status_reason=reason,
        container_reason=container_reason,
        environment=environment,
        array_properties=array,
    )


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
    run_job(steps, MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    run_job(steps, {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": "0"})
    # Child 1 died without a word; Batch fails it, the array, then the merge (dependency).
    for event in (
        batch_failure(array_job, reason, container_reason, index=1),
        batch_failure(array_job, "Array Child Job failed"),
        batch_failure(merge_job, "Dependent Job failed"),
    ):
        lambda_handler.handle_batch_event(steps, event)
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed"
    assert status["error"].startswith("part-00001 failed: ")
    assert reason in status["error"] and container_reason in status["error"]
    assert [f["part"] for f in status["failed_parts"]] == [1]
    assert [e["state"] for e in events] == ["failed"]


def test_a_killed_merge_job_fails_the_job(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    for index in range(2):
        run_job(steps, {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": str(index)})
    event = batch_failure(merge_job, "Essential container in task exited", "OutOfMemoryError")
    assert lambda_handler.handle_batch_event(steps, event).action == "failed"
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and status["error"].startswith("the merge job ")
    assert "OutOfMemoryError" in status["error"] and [e["state"] for e in events] == ["failed"]


def test_a_manager_that_never_ran_or_died_ends_its_upload_failed(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    manager = {"jobId": "m-1", "parameters": {"S3bucket": INPUT_BUCKET, "S3key": NORMAL_KEY}}
    event = batch_failure(
        manager, "Job cancelled: RUNNABLE for longer than the queue allows (CAPACITY:INSUFFICIENT)"
    )
    assert lambda_handler.handle_batch_event(steps, event).action == "failed"
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and "RUNNABLE for longer" in status["error"]
    assert events.states() == [(NORMAL_KEY, "failed")]


def test_an_upload_eventbridge_could_not_submit_ends_failed(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY)
    attributes = {
        "ERROR_CODE": {"stringValue": "SDK_CLIENT_ERROR", "dataType": "String"},
        "ERROR_MESSAGE": {"stringValue": "Job definition is INACTIVE", "dataType": "String"},
    }
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter, attributes=attributes)["Records"])
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and "Job definition is INACTIVE" in status["error"]
    assert read(s3, keys.error_key(NORMAL_KEY)).startswith(b"could not start a Batch job")
    assert events.states() == [(NORMAL_KEY, "failed")]


def test_a_failure_record_that_keeps_failing_is_reported_alone(make_steps, s3, monkeypatch):
    steps = make_steps()
    good = object_created(INPUT_BUCKET, "normal/x/a.csv")
    batch = sqs_event(good, {"requestContext": {}, "requestPayload": "not an event"})
    monkeypatch.setattr(lambda_handler, "handle_exhausted", lambda *a, **k: 1 / 0)
    answer = lambda_handler.handle_sqs(steps, batch["Records"])
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}


# -- 4. reserved prefixes ---------------------------------------------------------------


def test_a_forged_part_never_reaches_the_victims_result(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, second = fast_parts(s3, manifest.token)
    forged = sample_bytes.replace(b",Put,", b",Call,")
    upload(s3, second, forged)  # the attacker writes over part 1, which triggers an event
    assert handle_object(steps, INPUT_BUCKET, second).action == "part-priced"
    assert handle_object(steps, INPUT_BUCKET, first).action == "merged"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    # Forged keys of parts that do not exist, or of jobs that do not exist, do nothing.
    for key in (
        f"fast/_parts/{manifest.token}/part-00007.csv",
        "fast/_parts/0123456789abcdef01234567/part-00000.csv",
        f"fast/_parts/{manifest.token}/part-00001.csv/x.csv",
    ):
        upload(s3, key, forged)
        assert handle_object(steps, INPUT_BUCKET, key).action == "ignored", key
    assert [e["state"] for e in events] == ["done"]


def test_uploads_into_reserved_segments_are_ignored_and_never_touch_a_job(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    results = keys.results_prefix("fast", manifest.token)
    for key in (
        f"{results}part-00000.csv",
        f"normal/_work/{manifest.token}/x.csv",
        "fast/a/_parts/b.csv",
    ):
        upload(s3, key, sample_bytes)
        outcome = handle_object(steps, INPUT_BUCKET, key)
        assert outcome.action == "ignored" and "reserved" in outcome.detail
    # And a stray object in the job's own work prefix is never counted as a part result.
    s3.put_object(Bucket=RESULT_BUCKET, Key=f"{results}part-00000.csv-result", Body=b"x")
    s3.put_object(Bucket=RESULT_BUCKET, Key=f"{results}part-00009.csv", Body=b"x")
    for part in fast_parts(s3, manifest.token):
        handle_object(steps, INPUT_BUCKET, part)
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)


# -- 5. no silence -----------------------------------------------------------------------


def test_upper_case_csv_is_an_upload(make_steps, s3, sample_bytes):
    key = "fast/20261124-0900/BOOK.CSV"
    upload(s3, key, sample_bytes)
    assert handle_object(make_steps(threshold=200), INPUT_BUCKET, key).action == "priced"
    assert read(s3, keys.result_key(key)) == priced(sample_bytes)


def test_an_upload_deleted_before_its_event_gets_a_failed_status(make_steps, s3, events):
    outcome = handle_object(make_steps(), INPUT_BUCKET, FAST_KEY)
    assert outcome.action == "failed"
    assert "deleted before it could be priced" in status_of(s3, FAST_KEY)["error"]
    assert events.states() == [(FAST_KEY, "failed")]


def test_a_key_too_long_for_its_result_keys_gets_a_failed_job_event(make_steps, s3, events):
    key = "fast/" + "x" * (keys.MAX_UPLOAD_KEY_BYTES - len("fast/.csv") + 1) + ".csv"
    assert len(key.encode()) <= 1024  # S3 accepts it; its -status.json could not exist
    upload(s3, key, b"id\n")
    outcome = handle_object(make_steps(), INPUT_BUCKET, key)
    assert outcome.action == "rejected" and "leave room for the result keys" in outcome.detail
    assert [(e["state"], e["inputKey"]) for e in events] == [("failed", key)]


def test_a_non_csv_upload_is_ignored_by_rule(make_steps, s3):
    upload(s3, "fast/notes/readme.txt", b"hello")
    outcome = handle_object(make_steps(), INPUT_BUCKET, "fast/notes/readme.txt")
    assert (outcome.action, outcome.detail) == ("ignored", "fast/notes/readme.txt: not a .csv file")


# -- 6. carriage returns inside quoted fields -------------------------------------------


@pytest.mark.parametrize("path", ["fast", "normal"])
def test_line_breaks_inside_quoted_fields_keep_rows_in_equal_rows_out(
    make_steps, s3, path, sample_bytes
):
    lines = sample_bytes.decode().splitlines()
    header = lines[0] + ",note"
    rows = [f'{line},"a\r{i}\r\nb\nc"' for i, line in enumerate(lines[1:21])]
    data = ("\r\n".join([header, *rows]) + "\r\n").encode()
    key = f"{path}/20261124-0900/notes.csv"
    upload(s3, key, data)
    steps = make_steps(threshold=3)
    if path == "fast":
        manifest = handle_object(steps, INPUT_BUCKET, key).manifest
        for part in fast_parts(s3, manifest.token):
            handle_object(steps, INPUT_BUCKET, part)
    else:
        run_job(steps, MANAGER_ENV, key)
        array_job, merge_job = submitted_jobs()
        for index in range(array_job["arrayProperties"]["size"]):
            run_job(
                steps, {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": str(index)}, key
            )
        run_job(steps, job_environment(merge_job), key)
    result = read_table(read(s3, keys.result_key(key)), is_result=True)
    assert len(result.records) == 20
    assert [r[9] for r in result.records] == [f"a\r{i}\r\nb\nc" for i in range(20)]
    assert status_of(s3, key)["rows"] == 20


# -- the job event and the log line -----------------------------------------------------


def test_the_job_event_carries_the_documented_fields(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=200, region="eu-west-1")
    upload(s3, FAST_KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, FAST_KEY)
    (event,) = events
    assert set(event) == {
        "input", "inputBucket", "inputKey", "token", "state", "path", "rows", "rowsWithErrors",
        "parts", "resultKey", "errorKey", "error", "failedParts", "failedPartsTotal", "startedAt", "finishedAt",
        "seconds", "engine", "region", "resultBucket",
    }  # fmt: skip
    assert (event["state"], event["rows"], event["parts"], event["region"]) == (
        "done",
        100,
        1,
        "eu-west-1",
    )
    assert event["resultKey"] == f"s3://{RESULT_BUCKET}/{keys.result_key(FAST_KEY)}"


def test_event_bridge_sink_publishes_one_entry_and_a_json_log_line(aws, caplog):
    from runtime.adapters.events import EventBridgeSink
    from runtime.logs import JsonFormatter

    events_client = boto3.client("events")
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="job-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events_client.put_rule(
        Name="jobs",
        EventPattern=json.dumps(
            {"source": ["mc-pricing"], "detail-type": ["Pricing Job State Change"]}
        ),
    )
    events_client.put_targets(Rule="jobs", Targets=[{"Id": "q", "Arn": arn}])
    detail = {"token": "t", "state": "failed", "rows": 3}
    with caplog.at_level("INFO"):
        EventBridgeSink(events_client).publish(detail)
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["detail"] == detail
    line = json.loads(JsonFormatter().format(caplog.records[0]))
    assert (line["event"], line["detail"]) == ("Pricing Job State Change", detail)


def test_a_normal_key_with_a_quote_or_backslash_ends_failed_with_the_rule(make_steps, s3, events):
    # The stack routes such uploads straight to the normal path's failure queue (no error
    # attributes): the input transformer would put the key into SubmitJob unescaped.
    key = 'normal/20261124-0900/say "hi" \\ bye.csv'
    upload(s3, key, b"id\n")
    dead_letter = object_created(INPUT_BUCKET, key)
    lambda_handler.handle_sqs(make_steps(), sqs_event(dead_letter)["Records"])
    status = status_of(s3, key)
    assert status["state"] == "failed" and 'keys with " or \\ cannot be passed' in status["error"]
    assert events.states() == [(key, "failed")]


def test_an_array_failure_that_arrives_first_names_the_parts_without_a_result(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    array_job, _ = submitted_jobs()
    for index in (0, 2, 3):
        run_job(steps, {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": str(index)})
    lambda_handler.handle_batch_event(steps, batch_failure(array_job, "Array Child Job failed"))
    status = status_of(s3, NORMAL_KEY)
    assert status["state"] == "failed" and status["error"].endswith("parts without a result: [1]")
    # The child's own event, arriving later, adds nothing: one terminal state, one event.
    late = batch_failure(array_job, "Essential container in task exited", "OutOfMemoryError", 1)
    lambda_handler.handle_batch_event(steps, late)
    assert [e["state"] for e in events] == ["failed"]


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
    assert steps.start(INPUT_BUCKET, FAST_KEY, max_parts=10).action == "superseded"
    steps.store.head = real_head
    status = status_of(s3, FAST_KEY)
    assert (status["rows"], status["state"], status["generation"]) == (3, "done", 1)
    assert [e["state"] for e in events] == ["done"]


def test_a_duplicate_manager_submits_nothing_and_a_retried_manager_resubmits(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    assert run_job(steps, {"AWS_BATCH_JOB_ID": "manager-1"}).action == "split"
    # A duplicate EventBridge event starts a second manager while the job runs.
    assert run_job(steps, {"AWS_BATCH_JOB_ID": "manager-2"}).action == "duplicate"
    assert len(submitted_jobs()) == 2
    assert status_of(s3, NORMAL_KEY)["batch_jobs"].keys() == {"manager", "array", "merge"}


def test_cancel_stops_remaining_parts_and_nothing_publishes(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    parts = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, parts[0])
    assert steps.cancel(FAST_KEY).action == "cancelled"
    assert {handle_object(steps, INPUT_BUCKET, p).action for p in parts[1:]} == {"stopped"}
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert status_of(s3, FAST_KEY)["state"] == "cancelled"
    assert steps.cancel(FAST_KEY).action == "duplicate"
    assert [e["state"] for e in events] == ["cancelled"]


def test_a_reopened_job_reprices_only_what_failed_and_merges_once(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=30)
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

    reopened = steps.reopen(FAST_KEY)
    assert reopened.action == "reopened" and reopened.manifest.token == manifest.token
    assert read(s3, keys.error_key(FAST_KEY)) is None
    assert handle_object(steps, INPUT_BUCKET, parts[-1], "req-10").action == "merged"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert [e["state"] for e in events] == ["failed", "done"]
    assert steps.reopen(FAST_KEY).action == "skipped"  # only a failed job can be retried


def test_a_dead_letter_for_a_key_that_is_no_csv_is_ignored(make_steps, s3, events):
    dead_letter = object_created(INPUT_BUCKET, 'normal/a"b.txt')
    lambda_handler.handle_sqs(make_steps(), sqs_event(dead_letter)["Records"])
    assert status_of(s3, 'normal/a"b.txt') is None and events == []


def test_greeks_on_a_split_job_and_a_greek_named_column_rejected_cleanly(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40, greeks=True)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    for part in fast_parts(s3, manifest.token):
        handle_object(steps, INPUT_BUCKET, part)
    result = read_table(read(s3, keys.result_key(FAST_KEY)), is_result=True)
    assert result.header[-7:] == ["stdError", "delta", "gamma", "vega", "theta", "rho", "error"]
    assert len(result.records) == 100 and all(r[-1] == "" for r in result.records)
    whole = price_table(read_table(sample_bytes), serialised(), greeks=True).csv
    assert read(s3, keys.result_key(FAST_KEY)) == whole  # the same with or without parts

    clash = sample_bytes.replace(b"maturityDate", b"maturityDate,delta", 1)
    upload(s3, "fast/x/clash.csv", clash)
    assert handle_object(steps, INPUT_BUCKET, "fast/x/clash.csv").action == "rejected"
    assert b"delta" in read(s3, keys.error_key("fast/x/clash.csv"))
    assert status_of(s3, "fast/x/clash.csv")["state"] == "failed"


def test_a_machine_failure_is_not_turned_into_row_errors(make_steps, s3, sample_bytes):
    def out_of_memory(options, greeks=False):
        raise MemoryError

    upload(s3, FAST_KEY, sample_bytes)
    with pytest.raises(MemoryError):  # Lambda retries; no result of 100 failed rows
        handle_object(make_steps(threshold=200, engine=out_of_memory), INPUT_BUCKET, FAST_KEY)
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert status_of(s3, FAST_KEY)["state"] == "running"


def test_a_newer_upload_that_never_started_still_supersedes_the_running_job(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    first = status_of(s3, NORMAL_KEY)["token"]
    upload(s3, NORMAL_KEY, sample_bytes)  # B: EventBridge could not submit its manager
    dead_letter = object_created(INPUT_BUCKET, NORMAL_KEY)
    lambda_handler.handle_sqs(steps, sqs_event(dead_letter)["Records"])
    assert [(e["token"] == first, e["state"]) for e in events] == [
        (True, "superseded"),
        (False, "failed"),
    ]
    assert status_of(s3, NORMAL_KEY)["supersedes"] == first


def test_a_batch_event_whose_handling_failed_every_time_is_handled_from_its_record(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    _, merge_job = submitted_jobs()
    batch_event = batch_failure(merge_job, "Essential container in task exited", "OutOfMemoryError")
    record = lambda_on_failure(batch_event, "req-1", "throttled", "ThrottlingException")
    lambda_handler.handle_sqs(steps, sqs_event(record)["Records"])
    assert status_of(s3, NORMAL_KEY)["state"] == "failed"
    assert [e["state"] for e in events] == ["failed"]


def test_a_retry_after_a_merge_that_failed_holding_its_claim_ends_done(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    for index in range(2):
        run_job(steps, {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": str(index)})
    s3.put_object(
        Bucket=RESULT_BUCKET,
        Key=keys.lock_key("normal", status_of(s3, NORMAL_KEY)["token"]),
        Body=b"batch-merge-JOB1",
    )
    lambda_handler.handle_batch_event(
        steps, batch_failure(merge_job, "Essential container in task exited")
    )
    assert steps.reopen(NORMAL_KEY).action == "reopened"
    retried = {**job_environment(merge_job), "AWS_BATCH_JOB_ID": "JOB2"}
    assert run_job(steps, retried).action == "merged"
    assert [e["state"] for e in events] == ["failed", "done"]


def test_every_log_line_of_a_job_carries_its_token(aws, monkeypatch, s3, sample_bytes):
    import logging

    from runtime.logs import JsonFormatter

    class Lines(logging.Handler):  # formats as each line is written, like Lambda's handler
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[dict] = []

        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("runtime"):
                self.lines.append(json.loads(JsonFormatter().format(record)))

    monkeypatch.setenv("RESULT_BUCKET", RESULT_BUCKET)
    monkeypatch.setenv("THRESHOLD", "50")
    lambda_handler._steps.cache_clear()
    capture = Lines()
    logging.getLogger().addHandler(capture)
    try:
        upload(s3, FAST_KEY, sample_bytes)
        lambda_handler.handler(s3_notification(INPUT_BUCKET, FAST_KEY))
        token = status_of(s3, FAST_KEY)["token"]
        for part in fast_parts(s3, token):
            lambda_handler.handler(s3_notification(INPUT_BUCKET, part))
    finally:
        logging.getLogger().removeHandler(capture)
        lambda_handler._steps.cache_clear()
    assert len(capture.lines) >= 4 and status_of(s3, FAST_KEY)["state"] == "done"
    assert {(line.get("token"), line.get("inputKey")) for line in capture.lines} == {
        (token, FAST_KEY)
    }
