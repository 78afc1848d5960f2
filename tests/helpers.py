"""Helpers shared by the tests."""

from __future__ import annotations

import json

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
