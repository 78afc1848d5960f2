"""Helpers shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote_plus

from runtime.core import keys
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


def s3_notification(bucket: str, key: str, version: str | None = None) -> dict:
    """An S3 notification as Lambda receives it: the key URL-encoded, as S3 sends it; the
    version id as a versioned bucket sends it (None: left out, as an unversioned one)."""
    event = aws_event(
        "s3-notification", bucket=bucket, key=quote_plus(key, safe="/"), version=version or ""
    )
    if version is None:
        del event["Records"][0]["s3"]["object"]["versionId"]
    return event


def sqs_event(*bodies: dict, receive_count: int = 1, attributes: dict | None = None) -> dict:
    """An SQS batch as the event source mapping delivers it, one record per body."""
    return {
        "Records": [
            aws_event(
                "sqs-record",
                message_id=f"message-{i}",
                body=json.dumps(body),
                receive_count=str(receive_count),
                message_attributes=attributes or {},
            )
            for i, body in enumerate(bodies)
        ]
    }


def object_created(bucket: str, key: str, version: str | None = None) -> dict:
    """EventBridge's "Object Created" event for an S3 upload (None: no version id)."""
    event = aws_event(
        "eventbridge-s3-object-created", bucket=bucket, key=key, version=version or ""
    )
    if version is None:
        del event["detail"]["object"]["version-id"]
    return event


def lambda_on_failure(
    payload: dict,
    request_id: str,
    error_message: str = "Task timed out",
    error_type: str = "Sandbox.Timedout",
) -> dict:
    """Lambda's on-failure destination record for an asynchronous invocation of ``payload``
    whose every attempt failed."""
    return aws_event(
        "lambda-destination-on-failure",
        request_id=request_id,
        request_payload=payload,
        error_message=error_message,
        error_type=error_type,
    )
