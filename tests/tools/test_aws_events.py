"""The one builder of AWS event shapes (runtime/tools/aws_events.py) against the real events
in tests/events: every shape carries exactly the real one's keys, at every level, so the
emulator, the explorer and the tests' helpers cannot drift from AWS's format."""

from __future__ import annotations

import json

from runtime.adapters import batch_events, lambda_handler
from runtime.protocol.lifecycle import Fence
from runtime.tools import aws_events
from tests.helpers import aws_event

BUCKET = "pricing-input-local"
KEY = "normal/20261124-0900/a b+c.csv"


def keys_of(document: object, path: str = "") -> set[str]:
    """Every key path of a JSON document ("detail.attempts[].container.exitCode"); a
    list's elements are one shape together."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            found.add(f"{path}{key}")
            found |= keys_of(value, f"{path}{key}.")
    elif isinstance(document, list):
        for item in document:
            found |= keys_of(item, f"{path[:-1]}[].")
    return found


def test_the_s3_notification_has_the_real_shape_and_encodes_the_key():
    built = aws_events.s3_event(BUCKET, KEY, "v1")
    real = aws_event("s3-notification", bucket=BUCKET, key=KEY, version="v1")
    assert keys_of(built) == keys_of(real)
    found = built["Records"][0]["s3"]["object"]
    assert (found["key"], found["versionId"]) == ("normal/20261124-0900/a+b%2Bc.csv", "v1")
    # What the handler reads back is the key as uploaded.
    assert lambda_handler.s3_records(built) == [(BUCKET, KEY, "v1", found["sequencer"])]


def test_the_object_created_event_has_the_real_shape_and_keeps_the_key():
    built = aws_events.object_created_event(BUCKET, KEY, "v1")
    real = aws_event("eventbridge-s3-object-created", bucket=BUCKET, key=KEY, version="v1")
    assert keys_of(built) == keys_of(real)
    assert lambda_handler.object_created(built) == (
        BUCKET,
        KEY,
        "v1",
        built["detail"]["object"]["sequencer"],
    )


def test_an_unversioned_upload_has_no_version_id_and_sequencers_grow():
    first = aws_events.s3_event(BUCKET, KEY)["Records"][0]["s3"]["object"]
    second = aws_events.object_created_event(BUCKET, KEY)["detail"]["object"]
    assert "versionId" not in first and "version-id" not in second
    assert int(second["sequencer"], 16) > int(first["sequencer"], 16)
    given = aws_events.s3_event(BUCKET, KEY, None, "00A1")["Records"][0]["s3"]["object"]
    assert given["sequencer"] == "00A1"


def test_the_on_failure_record_and_its_sqs_delivery_have_the_real_shapes():
    request = aws_events.s3_event(BUCKET, "fast/_parts/t/1/part-00001.csv", "v1")
    error = {"errorMessage": "Task timed out", "errorType": "Sandbox.Timedout"}
    built = aws_events.on_failure_record(request, "req-1", error, 3)
    real = aws_event(
        "lambda-destination-on-failure",
        request_id="req-1",
        request_payload=request,
        error_message="Task timed out",
        error_type="Sandbox.Timedout",
    )
    assert keys_of(built) == keys_of(real)
    assert built["requestContext"]["approximateInvokeCount"] == 3
    message = aws_events.sqs_record(built, "m-1", 2, "pricing-local-fast-failures")
    real_message = aws_event(
        "sqs-record",
        message_id="m-1",
        body=json.dumps(built),
        receive_count="2",
        message_attributes={},
    )
    assert keys_of(message) == keys_of(real_message)
    assert json.loads(message["body"]) == built
    assert message["attributes"]["ApproximateReceiveCount"] == "2"
    batch = aws_events.sqs_batch(built, "m-1", 2, "q", {"ERROR_CODE": {"stringValue": "E"}})
    (record,) = batch["Records"]
    assert record["messageId"] == "m-1" and record["messageAttributes"]["ERROR_CODE"]
    aws_events.receive_again(batch, 3)
    assert set(record) == set(real_message)
    assert set(record["attributes"]) == set(real_message["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "3"


def described_child_job() -> dict:
    """An array job as DescribeJobs shows it (moto's server, the local stack)."""
    return {
        "jobId": "a1b2",
        "jobName": "price-t-1",
        "createdAt": 1795509990000,
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/pricing-local-urgent",
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/pricing-local:1",
        "parameters": {"S3bucket": BUCKET, "S3key": KEY},
        "container": {
            "environment": [
                {"name": "BATCH_ROLE", "value": "child"},
                {"name": "JOB_FENCE", "value": "t.1"},
                {"name": "JOB_SHARE", "value": "risk"},
            ]
        },
        "arrayProperties": {"size": 3, "statusSummary": {}},
        "dependsOn": [],
    }


def test_the_batch_state_change_has_the_real_shape_and_names_the_job():
    description = described_child_job()
    attempt = aws_events.batch_attempt(
        1795510000.0, 137, "Essential container in task exited", "OutOfMemoryError: killed"
    )
    built = aws_events.batch_state_change(
        description, "Essential container in task exited", [attempt], 1
    )
    real = aws_event(
        "batch-job-state-change-failed",
        job_id="a1b2:1",
        token="t",
        bucket=BUCKET,
        key=KEY,
        status_reason="Essential container in task exited",
        container_reason="OutOfMemoryError: killed",
        environment=description["container"]["environment"],
        array_properties={"index": 1},
    )
    assert keys_of(built) == keys_of(real)
    detail = built["detail"]
    assert (detail["jobId"], detail["arrayProperties"]) == ("a1b2:1", {"index": 1})
    assert detail["jobQueue"] == description["jobQueue"]  # the urgent lane's, as submitted
    failure = batch_events.parse(built)
    assert (failure.role, failure.index, failure.fence) == ("child", 1, Fence("t", 1))
    assert "OutOfMemoryError: killed" in failure.reason and "exit code 137" in failure.reason


def test_an_array_that_failed_and_a_job_that_never_ran_have_no_attempt():
    parent = aws_events.batch_state_change(described_child_job(), "Array Child Job failed", [])
    detail = parent["detail"]
    assert detail["arrayProperties"] == {"size": 3, "statusSummary": {}}
    assert detail["attempts"] == [] and "startedAt" not in detail
    assert batch_events.parse(parent).role == "array"
