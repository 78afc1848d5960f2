"""Helpers shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.core import keys
from runtime.tools import aws_events
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET


def upload(s3, key: str, data: bytes) -> None:
    s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=data)


def read(s3, key: str, bucket: str = RESULT_BUCKET) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def status_of(s3, input_key: str) -> dict | None:
    body = read(s3, keys.status_key(input_key))
    return json.loads(body) if body else None


def all_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


EVENTS = Path(__file__).resolve().parent / "events"


def aws_event(name: str, **values: object) -> dict:
    """A real-format AWS event from tests/events/<name>.json. ``${x}`` is replaced by
    values["x"]: strings are inserted as JSON string content, anything else as JSON."""
    text = (EVENTS / f"{name}.json").read_text()
    for field, value in values.items():
        if isinstance(value, str):
            text = text.replace("${" + field + "}", json.dumps(value)[1:-1])
        else:
            text = text.replace("${" + field + "}", json.dumps(value))
    return json.loads(text)


# The events below come from the one builder the emulator uses (runtime/tools/aws_events.py);
# tests/tools/test_aws_events.py keeps its shapes equal to the real ones in tests/events.
# Each carries its fixture's sequencer: all events a test builds for one key then have the
# same one, so the key's versions, not the order the test builds them in, tell which upload
# is newer (a test about sequencers passes its own to the steps).
S3_SEQUENCER = "0055AED6DCD90281E5"
EVENTBRIDGE_SEQUENCER = "00617F08299329D189"
FAILURES_QUEUE = "mc-pricing-us-east-1-fast-failures"


def s3_notification(bucket: str, key: str, version: str | None = None) -> dict:
    """An S3 notification as Lambda receives it: the key URL-encoded, as S3 sends it; the
    version id as a versioned bucket sends it (None: left out, as an unversioned one)."""
    return aws_events.s3_event(bucket, key, version, S3_SEQUENCER)


def sqs_event(*bodies: dict, receive_count: int = 1, attributes: dict | None = None) -> dict:
    """An SQS batch as the event source mapping delivers it, one record per body."""
    return {
        "Records": [
            aws_events.sqs_record(body, f"message-{i}", receive_count, FAILURES_QUEUE, attributes)
            for i, body in enumerate(bodies)
        ]
    }


def object_created(bucket: str, key: str, version: str | None = None) -> dict:
    """EventBridge's "Object Created" event for an S3 upload (None: no version id)."""
    return aws_events.object_created_event(bucket, key, version, EVENTBRIDGE_SEQUENCER)


def lambda_on_failure(
    payload: dict,
    request_id: str,
    error_message: str = "Task timed out",
    error_type: str = "Sandbox.Timedout",
) -> dict:
    """Lambda's on-failure destination record for an asynchronous invocation of ``payload``
    whose every attempt failed."""
    error = {"errorMessage": error_message, "errorType": error_type}
    return aws_events.on_failure_record(payload, request_id, error, 3)
