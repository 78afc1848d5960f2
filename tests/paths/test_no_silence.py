"""No silence: every upload ends in a state the user can see, whatever its key, and an
object that is no upload is ignored by rule."""

from __future__ import annotations

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.helpers import (
    FAST_KEY,
    job_env,
    object_created,
    priced,
    read,
    recorded_jobs,
    run_job,
    sqs_event,
    status_of,
    upload,
)


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
    assert [(e["state"], e["inputKey"], e["attempt"]) for e in events] == [("failed", key, 1)]


def test_a_non_csv_upload_is_ignored_by_rule(make_steps, s3):
    upload(s3, "fast/notes/readme.txt", b"hello")
    outcome = handle_object(make_steps(), INPUT_BUCKET, "fast/notes/readme.txt")
    assert (outcome.action, outcome.detail) == ("ignored", "fast/notes/readme.txt: not a .csv file")


def test_a_normal_key_with_a_quote_or_backslash_is_admitted_like_any_other(
    make_steps, s3, sample_bytes, events, monkeypatch
):
    # The function reads EventBridge's event as JSON, and submits the key as a SubmitJob
    # parameter: no input template inserts it unescaped any more.
    key = 'normal/20261124-0900/say "hi" \\ bye.csv'
    upload(s3, key, sample_bytes)
    steps = make_steps(threshold=200)
    monkeypatch.setattr(lambda_handler, "_steps", lambda: steps)
    (outcome,) = lambda_handler.handler(object_created(INPUT_BUCKET, key))["outcomes"]
    assert outcome["action"] == "submitted"
    manager = recorded_jobs(s3, key)["manager"]
    assert manager["parameters"]["S3key"] == key
    assert run_job(steps, job_env(manager), key).action == "priced"
    assert read(s3, keys.result_key(key)) == priced(sample_bytes)
    assert events.states() == [(key, "done")]


def test_a_normal_key_in_the_failure_queue_without_a_reason_ends_failed(make_steps, s3, events):
    # Whatever sent it there without saying why (a rule straight to the queue), the upload
    # ends failed, and says it could not be started.
    key = 'normal/20261124-0900/say "hi" \\ bye.csv'
    upload(s3, key, b"id\n")
    dead_letter = object_created(INPUT_BUCKET, key)
    lambda_handler.handle_sqs(make_steps(), sqs_event(dead_letter)["Records"])
    status = status_of(s3, key)
    assert status["state"] == "failed"
    assert status["error"] == "could not start a job for this upload"
    assert events.states() == [(key, "failed")]
