"""An in-memory S3 with the semantics the job protocol relies on, for long explorer runs.

It answers the boto3 client calls ``ObjectStore`` and the explorer make (head, get, put,
delete, list, list versions), with versioned buckets, conditional writes (``If-Match``,
``If-None-Match: *``), version-pinned reads and deletes, delete markers, and S3's error
codes. It exists only for speed: the explorer runs the same handlers against moto in CI,
and ``tests/explorer/test_memory_s3.py`` checks this double against moto call by call.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


@dataclass
class _Version:
    version_id: str
    body: bytes | None  # None: a delete marker
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = "binary/octet-stream"

    @property
    def etag(self) -> str:
        return f'"{hashlib.md5(self.body or b"").hexdigest()}"'


def _error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class _Paginator:
    def __init__(self, call: Any) -> None:
        self.call = call

    def paginate(self, **arguments: Any) -> list[dict]:
        return [self.call(**arguments)]


class MemoryS3:
    """The S3 client subset the protocol uses; every bucket is versioned."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, list[_Version]]] = {}
        self._ids = itertools.count(1)
        self.calls = 0

    def create_bucket(self, Bucket: str, **_: Any) -> dict:
        self.buckets.setdefault(Bucket, {})
        return {}

    def _versions(self, bucket: str, key: str) -> list[_Version]:
        if bucket not in self.buckets:
            raise _error("NoSuchBucket", 404, "Access")
        return self.buckets[bucket].setdefault(key, [])

    def _find(self, bucket: str, key: str, version: str | None, operation: str) -> _Version:
        versions = self._versions(bucket, key)
        if version is not None:
            for found in versions:
                if found.version_id == version:
                    if found.body is None:
                        raise _error("MethodNotAllowed", 405, operation)
                    return found
            raise _error("NoSuchVersion" if operation != "HeadObject" else "404", 404, operation)
        if not versions or versions[-1].body is None:
            raise _error("NoSuchKey" if operation != "HeadObject" else "404", 404, operation)
        return versions[-1]

    # -- objects --------------------------------------------------------------------------

    def head_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict:
        self.calls += 1
        found = self._find(Bucket, Key, VersionId, "HeadObject")
        return {
            "ContentLength": len(found.body or b""),
            "ETag": found.etag,
            "VersionId": found.version_id,
            "Metadata": dict(found.metadata),
            "ContentType": found.content_type,
        }

    def get_object(
        self,
        Bucket: str,
        Key: str,
        VersionId: str | None = None,
        IfMatch: str | None = None,
    ) -> dict:
        self.calls += 1
        found = self._find(Bucket, Key, VersionId, "GetObject")
        if IfMatch is not None and IfMatch.strip('"') != found.etag.strip('"'):
            raise _error("PreconditionFailed", 412, "GetObject")
        return {
            "Body": io.BytesIO(found.body or b""),
            "ETag": found.etag,
            "VersionId": found.version_id,
            "Metadata": dict(found.metadata),
            "ContentLength": len(found.body or b""),
        }

    def put_object(
        self,
        Bucket: str,
        Key: str,
        Body: bytes = b"",
        ContentType: str = "binary/octet-stream",
        Metadata: dict[str, str] | None = None,
        IfMatch: str | None = None,
        IfNoneMatch: str | None = None,
    ) -> dict:
        self.calls += 1
        versions = self._versions(Bucket, Key)
        current = versions[-1] if versions and versions[-1].body is not None else None
        if IfNoneMatch == "*" and current is not None:
            raise _error("PreconditionFailed", 412, "PutObject")
        if IfMatch is not None:
            if current is None:
                raise _error("NoSuchKey", 404, "PutObject")
            if IfMatch.strip('"') != current.etag.strip('"'):
                raise _error("PreconditionFailed", 412, "PutObject")
        body = Body if isinstance(Body, bytes) else bytes(Body)
        written = _Version(self._new_id(), body, dict(Metadata or {}), ContentType)
        versions.append(written)
        return {"ETag": written.etag, "VersionId": written.version_id}

    def delete_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict:
        self.calls += 1
        versions = self._versions(Bucket, Key)
        if VersionId is None:
            marker = _Version(self._new_id(), None)
            versions.append(marker)
            return {"DeleteMarker": True, "VersionId": marker.version_id}
        kept = [v for v in versions if v.version_id != VersionId]
        self.buckets[Bucket][Key] = kept
        return {"VersionId": VersionId}

    def delete_objects(self, Bucket: str, Delete: dict) -> dict:
        for item in Delete["Objects"]:
            self.delete_object(Bucket=Bucket, Key=item["Key"], VersionId=item.get("VersionId"))
        return {}

    # -- listings -------------------------------------------------------------------------

    def get_paginator(self, name: str) -> _Paginator:
        return _Paginator(
            {"list_objects_v2": self._list, "list_object_versions": self._list_versions}[name]
        )

    def _list(self, Bucket: str, Prefix: str = "") -> dict:
        self.calls += 1
        contents = [
            {"Key": key, "Size": len(versions[-1].body or b""), "ETag": versions[-1].etag}
            for key, versions in sorted(self.buckets[Bucket].items())
            if key.startswith(Prefix) and versions and versions[-1].body is not None
        ]
        return {"Contents": contents} if contents else {}

    def _list_versions(self, Bucket: str, Prefix: str = "") -> dict:
        self.calls += 1
        found: list[dict] = []
        markers: list[dict] = []
        for key, versions in sorted(self.buckets[Bucket].items()):
            if not key.startswith(Prefix):
                continue
            for position, version in enumerate(reversed(versions)):  # newest first
                item = {"Key": key, "VersionId": version.version_id, "IsLatest": position == 0}
                (markers if version.body is None else found).append(item)
        page: dict = {}
        if found:
            page["Versions"] = found
        if markers:
            page["DeleteMarkers"] = markers
        return page

    def _new_id(self) -> str:
        return f"v{next(self._ids):08d}"
