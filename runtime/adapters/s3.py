"""Thin S3 adapter: the few object operations the job protocol needs, nothing more.

boto3 honours ``AWS_ENDPOINT_URL`` itself, which is how ``simulate`` and the tests point
the very same code at a local S3.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    version: str | None
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore:
    """The job protocol's view of S3."""

    def __init__(self, client: Any | None = None) -> None:
        # Standard retry mode backs off on throttling (503 SlowDown) during large fan-outs.
        self.client = client or boto3.client(
            "s3", config=Config(retries={"max_attempts": 8, "mode": "standard"})
        )

    def head(self, bucket: str, key: str, version: str | None = None) -> ObjectInfo | None:
        pin = {"VersionId": version} if version else {}
        try:
            response = self.client.head_object(Bucket=bucket, Key=key, **pin)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise
        return _info(response)

    def get_with_metadata(self, bucket: str, key: str) -> tuple[bytes, dict[str, str]] | None:
        found = self._get_object(bucket, key)
        return (found["Body"].read(), found.get("Metadata", {})) if found else None

    def get(self, bucket: str, key: str, version: str | None = None) -> bytes | None:
        """The object's bytes (of ``version`` if given), or None if it does not exist."""
        found = self._get_object(bucket, key, **({"VersionId": version} if version else {}))
        return found["Body"].read() if found else None

    def get_exact(self, bucket: str, key: str, info: ObjectInfo) -> bytes | None:
        """The bytes of exactly the object ``info`` describes (None if it is gone)."""
        pin = {"VersionId": info.version} if info.version else {"IfMatch": f'"{info.etag}"'}
        found = self._get_object(bucket, key, **pin)
        return found["Body"].read() if found else None

    def _get_object(self, bucket: str, key: str, **conditions: str) -> dict | None:
        try:
            return self.client.get_object(Bucket=bucket, Key=key, **conditions)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES | _PRECONDITION_CODES:
                return None
            raise

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str = "text/csv",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        response = self.client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {}
        )
        return ObjectInfo(len(body), response["ETag"].strip('"'), response.get("VersionId"))

    def put_if_absent(
        self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None
    ) -> bool:
        """Create the object unless it exists (S3 conditional write); True if we created it.
        False also for a write whose answer was lost: compare the content if it matters."""
        try:
            self.client.put_object(
                Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", Metadata=metadata or {}
            )
        except ClientError as exc:
            if _code(exc) in _PRECONDITION_CODES:
                return False
            raise
        return True

    def get_json(self, bucket: str, key: str) -> dict | None:
        found = self._get_object(bucket, key)
        return json.loads(found["Body"].read()) if found else None

    def put_json(self, bucket: str, key: str, document: dict) -> None:
        self.put(bucket, key, _json_bytes(document), "application/json")

    def get_json_tagged(self, bucket: str, key: str) -> tuple[dict | None, str | None]:
        """A JSON object and its ETag (None, None when it does not exist)."""
        found = self._get_object(bucket, key)
        if found is None:
            return None, None
        return json.loads(found["Body"].read()), found["ETag"]

    def put_json_if(self, bucket: str, key: str, document: dict, etag: str | None) -> bool:
        """Write ``document`` only over the version with ``etag`` (None: only if the object
        does not exist): S3's conditional writes. False when the condition failed, which
        is also what a writer sees whose write committed but whose response was lost (the
        SDK's retry of the same request then fails the condition)."""
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=_json_bytes(document),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            if _code(exc) in _PRECONDITION_CODES | _MISSING_CODES:
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

    def list_etags(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        """(key, ETag) of every object under ``prefix``: what changed since a listing."""
        found: list[tuple[str, str]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            found.extend((item["Key"], item.get("ETag", "")) for item in page.get("Contents", []))
        return found

    def versions(self, bucket: str, key: str) -> list[str]:
        """Version ids of exactly ``key``, newest first (S3 lists them in that order)."""
        found: list[str] = []
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=key
        ):
            found.extend(v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key)
        return found

    def delete(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    def delete_version(self, bucket: str, key: str, version: str | None) -> None:
        """Remove exactly one version, so a newer one of the same key is never touched.
        Without a version id (an unversioned bucket) nothing can be removed safely."""
        if version is None:
            log.warning("s3://%s/%s has no version id: left in place", bucket, key)
            return
        try:
            self.client.delete_object(Bucket=bucket, Key=key, VersionId=version)
        except ClientError as exc:
            if _code(exc) not in _MISSING_CODES:  # gone already: what we wanted
                raise


def _info(response: dict) -> ObjectInfo:
    return ObjectInfo(
        size=response["ContentLength"],
        etag=response["ETag"].strip('"'),
        version=response.get("VersionId"),
        metadata=response.get("Metadata", {}),
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _json_bytes(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()
