"""The Lambda adapter: every event the stack sends the function, in, protocol steps, out.

- S3 notifications (``fast/``): a user's upload, or one of our parts.
- SQS records from the fast path's on-failure queue: Lambda's record of an invocation that
  failed on every attempt; the part's failure becomes final, or a crashed merge resumes.
- SQS records from the normal path's dead-letter queue: an upload EventBridge could not
  turn into a Batch job ends ``failed``.
- EventBridge "Batch Job State Change" (FAILED) for this stack's queue: the part, merge or
  manager that failed, and why, ends its job ``failed``.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from runtime import logs
from runtime.adapters import batch_events
from runtime.adapters.events import EventBridgeSink
from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.core.manifest import Manifest
from runtime.environment import RuntimeConfig
from runtime.protocol.steps import JobSteps, Outcome, PartLost

log = logging.getLogger(__name__)

# A failure record still failing after this many receives is recorded without resuming.
_LAST_RECEIVE = 3
# Characters the normal path's EventBridge target cannot carry in a key (docs/deploy.md).
UNSAFE_KEY_CHARACTERS = ('"', "\\")


def s3_records(event: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version id) of each record of an S3 notification; keys arrive
    URL-encoded, and the version id is absent in an unversioned bucket."""
    objects = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        if not str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
            continue
        found = s3["object"]
        objects.append((s3["bucket"]["name"], unquote_plus(found["key"]), found.get("versionId")))
    return objects


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of each record of an S3 notification."""
    return [(bucket, key) for bucket, key, _ in s3_records(event)]


@cache
def _steps() -> JobSteps:
    # Built once per container, so warm invocations reuse the S3 client and engine.
    config = RuntimeConfig.from_env()
    logs.configure(config.log_level)
    return JobSteps(ObjectStore(), config, events=EventBridgeSink())


def handle_object(
    steps: JobSteps, bucket: str, key: str, invocation_id: str | None = None
) -> Outcome:
    """One S3 object under ``fast/``: a user's upload or one of our parts.

    ``invocation_id`` names this delivery of the event: Lambda keeps the request id when it
    retries an invocation, while a duplicate S3 event gets a new one. So a retry of a merge
    that crashed resumes it, and a duplicate of the last part's event cannot merge twice.
    """
    if not keys.is_fast_part(key):
        return steps.start(bucket, key, max_parts=steps.config.max_parts)
    found = _waiting_part(steps, key)
    if isinstance(found, Outcome):
        return found
    manifest, index = found
    try:
        return steps.price_part(manifest, index, claimant=_claimant(index, invocation_id))
    except PartLost as exc:
        return steps.record_part_failure(manifest, index, str(exc), final=True)
    except Exception as exc:
        # Lambda retries this invocation; the status shows the failure meanwhile, and the
        # on-failure queue makes it final once the retries are spent.
        steps.record_part_failure(manifest, index, f"{type(exc).__name__}: {exc}", final=False)
        raise


def _waiting_part(steps: JobSteps, key: str) -> tuple[Manifest, int] | Outcome:
    """(manifest, part index) of a fast part key a job waits for, else why it is ignored."""
    try:
        token, index = keys.parse_fast_part_key(key)
    except keys.NotAJobKey:
        return Outcome("ignored", f"{key}: not a part key the pipeline writes")
    manifest = steps.load_manifest(keys.FAST, token)
    if manifest is None:
        return Outcome("ignored", f"{key}: no job is waiting for this part")
    logs.annotate(token=token, inputKey=manifest.input_key)
    return manifest, index


def _claimant(index: int, invocation_id: str | None) -> str:
    return f"fast-{keys.part_name(index)}-{invocation_id or uuid.uuid4().hex}"


def handle_exhausted(steps: JobSteps, record: dict, last_receive: bool) -> list[Outcome]:
    """Lambda's on-failure record: the original S3 event failed on every attempt."""
    request = record.get("requestContext", {})
    response = record.get("responsePayload") or {}
    error = (
        f"{response.get('errorType', 'error')}: {response.get('errorMessage', '')}".strip(": ")
        if isinstance(response, dict)
        else str(response)
    )
    reason = f"failed on all {request.get('approximateInvokeCount', '?')} attempts: {error}"
    payload = record.get("requestPayload") or {}
    if isinstance(payload, dict) and payload.get("source") == "aws.batch":
        # EventBridge invokes the function asynchronously too: a Batch failure event whose
        # handling failed every time is handled once more here (it is idempotent).
        return [handle_batch_event(steps, payload)]
    outcomes = []
    for bucket, key, version in s3_records(payload if isinstance(payload, dict) else {}):
        if not keys.is_fast_part(key):
            outcomes.append(steps.fail_upload(bucket, key, f"the upload {reason}", version))
            continue
        found = _waiting_part(steps, key)
        if isinstance(found, Outcome):
            outcomes.append(found)
            continue
        manifest, index = found
        done = steps.finished_parts(manifest)
        if index in done and len(done) < manifest.parts:
            # A duplicate event priced it meanwhile: this failure is not the part's.
            outcomes.append(Outcome("part-priced", f"{keys.part_name(index)}: priced"))
            continue
        if len(done) == manifest.parts and not last_receive:
            # Every part is priced: the failure was the merge. Resume it as the claimant
            # that crashed (same request id), which no one else can take over.
            claimant = _claimant(index, request.get("requestId"))
            outcome = steps.merge(manifest, claimant)
            if outcome.action in ("merged", "duplicate", "stopped", "superseded"):
                outcomes.append(outcome)
                continue
        outcomes.append(steps.record_part_failure(manifest, index, reason, final=True))
    return outcomes


def handle_dead_letter(steps: JobSteps, event: dict, attributes: dict) -> list[Outcome]:
    """An EventBridge event its rule could not deliver (the normal path's dead letters)."""
    if event.get("source") == "aws.batch":
        return [handle_batch_event(steps, event)]
    detail = event.get("detail", {})
    bucket = detail.get("bucket", {}).get("name")
    key = detail.get("object", {}).get("key")
    version = detail.get("object", {}).get("version-id")
    if not bucket or not key:
        return [Outcome("ignored", "a dead letter that is not an S3 event")]
    if not keys.is_csv(key):  # the stack's unsafe-key rule matches any suffix
        return [Outcome("ignored", f"{key}: not a .csv file")]
    message = _attribute(attributes, "ERROR_MESSAGE") or _attribute(attributes, "ERROR_CODE")
    if not message and any(c in key for c in UNSAFE_KEY_CHARACTERS):
        # The stack's rule sends these straight here: EventBridge's input transformer would
        # insert such a key into the SubmitJob parameters unescaped (docs/deploy.md).
        message = 'keys with " or \\ cannot be passed to AWS Batch: rename the file'
    reason = "could not start a Batch job for this upload" + (f": {message}" if message else "")
    return [steps.fail_upload(bucket, key, reason, version)]


def handle_batch_event(steps: JobSteps, event: dict) -> Outcome:
    failure = batch_events.parse(event)
    if failure is None:
        return Outcome("ignored", "not a failed job of this pipeline")
    logs.annotate(token=failure.token, inputKey=failure.input_key)
    if failure.role == batch_events.MANAGER:
        return _manager_failed(steps, failure)
    manifest = steps.load_manifest(keys.NORMAL, failure.token)
    if failure.role == batch_events.CHILD and failure.index is not None and manifest:
        return steps.record_part_failure(manifest, failure.index, failure.reason, final=True)
    reason = failure.reason
    if failure.role == batch_events.ARRAY and manifest:
        # The array fails with its first failed child, whose own event may come later.
        missing = sorted(set(range(manifest.parts)) - steps.finished_parts(manifest))
        reason = f"{reason}; parts without a result: {missing[:20]}"
    return steps.fail_job(failure.input_key, failure.token, reason, keys.NORMAL)


def _manager_failed(steps: JobSteps, failure: batch_events.BatchFailure) -> Outcome:
    """A manager records its Batch job id in the status it begins, so its failure ends
    exactly that job; one that died before beginning any leaves the key without status."""
    current = steps.status(failure.input_key)
    if current is None:
        return steps.fail_upload(failure.input_bucket, failure.input_key, failure.reason)
    if current.get("batch_jobs", {}).get("manager") != failure.job_id:
        return Outcome("skipped", f"{failure.input_key}: the status is another job's")
    return steps.fail_job(failure.input_key, current["token"], failure.reason, keys.NORMAL)


def _attribute(attributes: dict, name: str) -> str:
    value = attributes.get(name, {})
    return str(value.get("stringValue", "")) if isinstance(value, dict) else str(value)


def handle_sqs(steps: JobSteps, records: list[dict]) -> dict[str, Any]:
    """SQS batches: one record's failure is reported alone, so the rest are not redone."""
    failures = []
    for record in records:
        try:
            with logs.job_context():
                _handle_record(steps, record)
        except Exception:
            log.exception("could not handle failure record %s", record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def _handle_record(steps: JobSteps, record: dict) -> None:
    body = json.loads(record.get("body") or "{}")
    receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    if "requestContext" in body:
        outcomes = handle_exhausted(steps, body, last_receive=receives >= _LAST_RECEIVE)
    else:
        outcomes = handle_dead_letter(steps, body, record.get("messageAttributes", {}))
    for outcome in outcomes:
        log.info("failure path %s: %s", outcome.action, outcome.detail)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (``runtime.adapters.lambda_handler.handler``)."""
    steps = _steps()
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return handle_sqs(steps, records)
    if event.get("source") == "aws.batch":
        with logs.job_context():
            outcome = handle_batch_event(steps, event)
            log.info("batch event %s: %s", outcome.action, outcome.detail)
        return {"outcomes": [{"action": outcome.action, "detail": outcome.detail}]}
    outcomes = []
    for bucket, key in s3_objects(event):
        with logs.job_context(inputKey=key):
            try:
                outcome = handle_object(
                    steps, bucket, key, getattr(context, "aws_request_id", None)
                )
            except keys.NotAJobKey as exc:  # nothing to do for it, and a retry would not help
                outcome = Outcome("ignored", f"{key}: {exc}")
            log.info("%s s3://%s/%s: %s", outcome.action, bucket, key, outcome.detail)
        outcomes.append({"key": key, "action": outcome.action, "detail": outcome.detail})
    return {"outcomes": outcomes}
