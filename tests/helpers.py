"""Helpers shared by the tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3

from runtime.core import keys
from runtime.environment import BatchContext
from runtime.protocol.lifecycle import Fence
from runtime.tools import aws_events, local_cloud
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


def all_keys(s3, bucket: str, usage: bool = False) -> list[str]:
    """Every key of ``bucket``; a job's usage records (kept after its work area is cleaned
    up, see runtime/protocol/costs.py) only with ``usage``."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    found = sorted(item["Key"] for page in pages for item in page.get("Contents", []))
    return found if usage else [key for key in found if not _is_usage(key)]


def _is_usage(key: str) -> bool:
    rest = key.partition("/_work/")[2]
    return bool(rest) and rest.split("/")[1:2] == ["usage"]


def usage_records(s3, input_key: str) -> list[dict]:
    """The usage record documents of the key's current job (every actor and attempt)."""
    status = status_of(s3, input_key)
    assert status is not None, f"{input_key} has no status"
    prefix = keys.usage_prefix(status["plan"]["runner"], status["token"])
    return [
        json.loads(read(s3, key))
        for key in all_keys(s3, RESULT_BUCKET, True)
        if key.startswith(prefix)
    ]


EVENTS = Path(__file__).resolve().parent / "events"


def aws_event(name: str, **values: object) -> dict:
    """A real AWS event sample from tests/events/<name>.json, for what must hold of the
    events AWS sends: the builder's shapes (tests/tools/test_aws_events.py) and the stack's
    rules (tests/infra). Every event a test feeds the code comes from the builder below.
    ``${x}`` is replaced by values["x"]: strings are inserted as JSON string content,
    anything else as JSON."""
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


# -- the job protocol's view ----------------------------------------------------------------


def fence_of(s3, input_key: str) -> Fence:
    """The attempt the key's status describes now."""
    status = status_of(s3, input_key)
    assert status is not None, f"{input_key} has no status"
    return Fence.of(status)


def version_of(s3, key: str, bucket: str = INPUT_BUCKET) -> str:
    """The current version id of an object (the input bucket is versioned)."""
    return s3.head_object(Bucket=bucket, Key=key)["VersionId"]


def versions_of(s3, key: str, bucket: str = RESULT_BUCKET) -> list[dict]:
    """Every version of exactly ``key``, newest first."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def fast_parts(s3, token: str, attempt: int | None = None) -> list[str]:
    """The fast parts written for a job (of one attempt, if given), in part order."""
    prefix = keys.fast_parts_prefix(token) + (f"{attempt}/" if attempt else "")
    listed = s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def price_parts(steps, manifest, fence: Fence, indexes=None, actor: str = "worker") -> list[str]:
    """Price parts (all by default) without merging, as workers that finish first do."""
    chosen = range(manifest.parts) if indexes is None else indexes
    return [
        steps.price_part(manifest, fence, index, f"{actor}-{index}", merge=False).action
        for index in chosen
    ]


# -- the Batch lanes --------------------------------------------------------------------------


def submitted_jobs() -> list[dict]:
    """Every Batch job submitted so far, described, oldest first."""
    return local_cloud.submitted_jobs(boto3.client("batch"))


def job_env(job: dict, index: int | None = None, attempt: int = 1) -> dict[str, str]:
    """The environment Batch gives a submitted job's container (an array child's with its
    index): the runtime's overrides and Batch's own variables."""
    environment = {
        **local_cloud.job_environment(job),
        "AWS_BATCH_JOB_ID": job["jobId"] + (f":{index}" if index is not None else ""),
        "AWS_BATCH_JOB_ATTEMPT": str(attempt),
    }
    if index is not None:
        environment["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    return environment


def run_job(steps, env: dict, key: str):
    """One Batch job of the normal path, with the environment Batch would give it."""
    from runtime.adapters import batch_job

    return batch_job.run(steps, INPUT_BUCKET, key, BatchContext.from_env(env))


def admit(steps, key: str, actor: str = "admit-request"):
    """What the function does with EventBridge's Object Created event for the upload at
    ``key``: begin its job and submit its manager job."""
    version = steps.store.head(INPUT_BUCKET, key)
    return steps.admit(INPUT_BUCKET, key, actor, version.version if version else None)


def recorded_jobs(s3, key: str) -> dict[str, dict]:
    """The Batch jobs the key's status recorded, by role, as Batch describes them."""
    ids = status_of(s3, key)["batchJobs"]
    found = boto3.client("batch").describe_jobs(jobs=list(ids.values()))["jobs"]
    described = {job["jobId"]: job for job in found}
    return {role: described[job_id] for role, job_id in ids.items()}


def run_manager(steps, s3, key: str):
    """Admit the upload, then run the manager job the function submitted."""
    admitted = admit(steps, key)
    assert admitted.action in ("submitted", "duplicate"), admitted
    return run_job(steps, job_env(recorded_jobs(s3, key)["manager"]), key)


def children(job: dict) -> list[int]:
    """The array indexes of a pricing job (a single part is one plain job)."""
    size = (job.get("arrayProperties") or {}).get("size")
    return list(range(size)) if size else [None]  # type: ignore[list-item]


def run_children(steps, job: dict, key: str, indexes=None, attempt: int = 1) -> list[str]:
    """Run a pricing job's children (all by default), as Batch would."""
    chosen = children(job) if indexes is None else indexes
    return [run_job(steps, job_env(job, index, attempt), key).action for index in chosen]


def run_batch_job(steps, s3, key: str) -> list[str]:
    """The whole normal path of an upload: admit, manager, children, merge."""
    outcome = run_manager(steps, s3, key)
    if outcome.action != "split":
        return [outcome.action]
    jobs = recorded_jobs(s3, key)
    actions = run_children(steps, jobs["array"], key)
    return [*actions, run_job(steps, job_env(jobs["merge"]), key).action]


def batch_failure(job: dict, reason: str, container_reason: str = "", index: int | None = None):
    """EventBridge's "Batch Job State Change" FAILED event for a described job (an array
    child's with ``index``; the array's parent's when the job is an array without one)."""
    attempt = aws_events.batch_attempt(time.time(), 137, reason, container_reason or None)
    return aws_events.batch_state_change(job, reason, [attempt], index)


def exhausted(
    bucket: str,
    key: str,
    request_id: str,
    error: str = "Task timed out",
    version: str | None = None,
) -> dict:
    """Lambda's on-failure record for an S3 notification whose every attempt failed."""
    return lambda_on_failure(s3_notification(bucket, key, version), request_id, error)


# -- the keys and files most path tests use ---------------------------------------------------

FAST_KEY = "fast/20261124-0900/book.csv"
NORMAL_KEY = "normal/20261124-0900/book.csv"


def priced(data: bytes) -> bytes:
    """The result of pricing ``data`` as one file."""
    from runtime.core.csvio import read_table
    from runtime.pricing import price_table
    from tests.conftest import serialised

    return price_table(read_table(data), serialised()).csv


def first_rows(data: bytes, rows: int) -> bytes:
    """The header and the first ``rows`` rows of a file."""
    return "".join(data.decode().splitlines(keepends=True)[: rows + 1]).encode()


def as_lambda(call, attempts: int = 3):
    """Run one invocation's ``call`` as Lambda runs an asynchronous invocation: when it fails
    because another actor holds the job's outbox (OutboxBusy), Lambda retries it (same
    request id) once that actor delivered."""
    from runtime.protocol.ledger import OutboxBusy

    for attempt in range(1, attempts + 1):
        try:
            return call()
        except OutboxBusy:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")
