"""Thin S3 adapter: the few object operations the job protocol needs, nothing more.

boto3 honours ``AWS_ENDPOINT_URL`` itself, which is how ``simulate`` and the tests point
the very same code at a local S3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    version: str | None


class ObjectStore:
    """The job protocol's view of S3."""

    def __init__(self, client: Any | None = None) -> None:
        # Standard retry mode backs off on throttling (503 SlowDown) during large fan-outs.
        self.client = client or boto3.client(
            "s3", config=Config(retries={"max_attempts": 8, "mode": "standard"})
        )

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise
        return ObjectInfo(
            size=response["ContentLength"],
            etag=response["ETag"].strip('"'),
            version=response.get("VersionId"),
        )

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        response = self._get_object(bucket, key)
        return response["Body"].read() if response else None

    def get_version(self, bucket: str, key: str, info: ObjectInfo) -> bytes | None:
        """The bytes of exactly the version ``info`` describes (None if it is gone)."""
        pin = {"VersionId": info.version} if info.version else {"IfMatch": f'"{info.etag}"'}
        response = self._get_object(bucket, key, **pin)
        return response["Body"].read() if response else None

    def _get_object(self, bucket: str, key: str, **conditions: str) -> dict | None:
        """GetObject, with None for a missing object or a failed condition."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key, **conditions)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES | _PRECONDITION_CODES:
                return None
            raise

    def put(self, bucket: str, key: str, body: bytes, content_type: str = "text/csv") -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def put_json(self, bucket: str, key: str, document: dict) -> None:
        self.put(bucket, key, _json_bytes(document), "application/json")

    def get_json(self, bucket: str, key: str) -> tuple[dict, str] | None:
        """(document, etag), or None if absent."""
        response = self._get_object(bucket, key)
        if response is None:
            return None
        return json.loads(response["Body"].read()), response["ETag"].strip('"')

    def put_json_if(self, bucket: str, key: str, document: dict, etag: str | None) -> bool:
        """Compare-and-swap: write only if the object still has ``etag`` (None: is absent)."""
        condition = {"IfMatch": f'"{etag}"'} if etag else {"IfNoneMatch": "*"}
        return self._put_conditionally(bucket, key, _json_bytes(document), condition)

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Create the object unless it exists (S3 conditional write); True if we created it."""
        return self._put_conditionally(bucket, key, body, {"IfNoneMatch": "*"})

    def _put_conditionally(self, bucket: str, key: str, body: bytes, condition: dict) -> bool:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, **condition)
        except ClientError as exc:
            if _code(exc) in _PRECONDITION_CODES:
                return False
            raise
        return True

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def delete(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _json_bytes(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()
