"""The fast path's Lambda adapter: S3 notification records in, pipeline steps out."""

from __future__ import annotations

import logging
import os
import uuid
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.environment import RuntimeConfig
from runtime.protocol.steps import Outcome, Pipeline

log = logging.getLogger(__name__)


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of each record of an S3 notification; keys arrive URL-encoded."""
    objects = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        if not str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
            continue
        objects.append((s3["bucket"]["name"], unquote_plus(s3["object"]["key"])))
    return objects


@cache
def _pipeline() -> Pipeline:
    # Built once per container, so warm invocations reuse the S3 client and engine.
    return Pipeline(ObjectStore(), RuntimeConfig.from_env())


def handle_object(
    pipeline: Pipeline, bucket: str, key: str, invocation_id: str | None = None
) -> Outcome:
    """One S3 object under ``fast/``: a user's upload or one of our parts.

    ``invocation_id`` names this delivery of the event: Lambda keeps the request id when it
    retries an invocation, while a duplicate S3 event gets a new one. So a retry of a merge
    that crashed resumes it, and a duplicate of the last part's event cannot merge twice.
    """
    if not key.endswith(".csv"):
        return Outcome("skipped", f"{key} is not a .csv file")
    if not keys.is_fast_part(key):
        return pipeline.start(bucket, key, max_parts=pipeline.settings.max_parts)
    token, index = keys.parse_fast_part_key(key)
    manifest = pipeline.load_manifest(keys.FAST, token)
    if manifest is None:
        return Outcome("skipped", f"{key}: no job is waiting for this part (already merged?)")
    try:
        outcome = pipeline.price_part(manifest, index)
    except Exception as exc:
        # Lambda retries this invocation; the status shows the failure meanwhile.
        pipeline.record_failure(manifest, index, f"{type(exc).__name__}: {exc}", final=False)
        raise
    if outcome.action != "part-priced":
        return outcome
    claimant = f"fast-{keys.part_name(index)}-{invocation_id or uuid.uuid4().hex}"
    return pipeline.merge_if_complete(manifest, claimant=claimant)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (``runtime.adapters.lambda_handler.handler``)."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    pipeline = _pipeline()
    outcomes = []
    for bucket, key in s3_objects(event):
        try:
            outcome = handle_object(pipeline, bucket, key, getattr(context, "aws_request_id", None))
        except keys.NotAJobKey as exc:  # nothing to do for it, and a retry would not help
            outcome = Outcome("rejected", f"{key}: {exc}")
        log.info("%s s3://%s/%s: %s", outcome.action, bucket, key, outcome.detail)
        outcomes.append({"key": key, "action": outcome.action, "detail": outcome.detail})
    return {"outcomes": outcomes}
