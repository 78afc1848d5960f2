"""The normal path's Batch adapter: manager, array child and merge job in one image.

The manager splits an upload and submits one array job plus one merge job that
``dependsOn`` it, then exits; nothing waits for anything. Roles come from the
environment the manager sets on the jobs it submits (see docs/protocol.md).

An application error is final at once: the job definition's retry strategy retries only
host failures (Spot reclaims), so a child records its failure as final before it exits.
What kills a job without a word (out of memory, timeout, SIGKILL, a cancelled queue wait)
reaches the job's status through the "Batch Job State Change" events the Lambda handles.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import unquote_plus

import boto3

from runtime import logs
from runtime.adapters.events import EventBridgeSink
from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.core.manifest import BATCH_MAX_ARRAY_SIZE, Manifest
from runtime.environment import (
    BATCH_ROLE,
    JOB_TOKEN,
    PART_INDEXES,
    BatchContext,
    RuntimeConfig,
    SettingsError,
    format_part_indexes,
)
from runtime.protocol import status as states
from runtime.protocol.steps import JobSteps, Outcome

log = logging.getLogger(__name__)

ROLE_CHILD = "child"
ROLE_MERGE = "merge"


class BatchJobError(RuntimeError):
    """The job cannot do its work; Batch marks it failed and the status says why."""


def _overrides(manifest: Manifest, role: str, parts: list[int] | None = None) -> dict:
    """The container overrides that tell a submitted job its role and job (and, for a
    retry's child, which parts it prices)."""
    environment = [
        {"name": BATCH_ROLE, "value": role},
        {"name": JOB_TOKEN, "value": manifest.token},
    ]
    if parts is not None:
        environment.append({"name": PART_INDEXES, "value": format_part_indexes(parts)})
    return {"environment": environment}


def _parameters(manifest: Manifest) -> dict[str, str]:
    return {"S3bucket": manifest.input_bucket, "S3key": manifest.input_key}


def submit_merge(
    batch: Any, queue: str, definition: str, manifest: Manifest, after: str | None = None
) -> str:
    """Submit the merge job (depending on the pricing job ``after``, if any); its id."""
    depends = {"dependsOn": [{"jobId": after}]} if after else {}
    merge = batch.submit_job(
        jobName=f"merge-{manifest.token}",
        jobQueue=queue,
        jobDefinition=definition,
        parameters=_parameters(manifest),
        containerOverrides=_overrides(manifest, ROLE_MERGE),
        **depends,
    )
    return merge["jobId"]


def submit_array_and_merge(
    batch: Any,
    queue: str,
    definition: str,
    manifest: Manifest,
    parts: list[int] | None = None,
) -> dict[str, str]:
    """Submit the pricing job(s) and the merge job that depends on them; return their ids.

    ``parts`` (the retry command) prices only those parts: child i prices parts[i]. AWS
    Batch refuses an array of size 1, so a single part is one plain job.
    """
    indexes = sorted(parts) if parts is not None else list(range(manifest.parts))
    pricing: dict[str, Any] = {
        "jobName": f"price-{manifest.token}",
        "jobQueue": queue,
        "jobDefinition": definition,
        "parameters": _parameters(manifest),
        "containerOverrides": _overrides(
            manifest, ROLE_CHILD, indexes if parts is not None else None
        ),
    }
    if len(indexes) > 1:
        pricing["arrayProperties"] = {"size": len(indexes)}
    array = batch.submit_job(**pricing)["jobId"]
    return {"array": array, "merge": submit_merge(batch, queue, definition, manifest, array)}


def run(steps: JobSteps, bucket: str, key: str, job: BatchContext, batch: Any = None) -> Outcome:
    """Do whatever this Batch job is for; raise BatchJobError to fail the job."""
    if not job.role:
        return _manage(steps, bucket, _existing_key(steps, bucket, key), job, batch)
    if not job.token:
        raise BatchJobError("JOB_TOKEN is not set in the job's environment")
    manifest = steps.load_manifest(keys.NORMAL, job.token)
    if manifest is None:
        return Outcome("skipped", "no manifest: the job was already merged and cleaned up")
    logs.annotate(inputKey=manifest.input_key)
    if job.role == ROLE_CHILD:
        index = job.part_index
        if index is None:
            raise BatchJobError("a child needs AWS_BATCH_JOB_ARRAY_INDEX or PART_INDEXES")
        try:
            return steps.price_part(manifest, index, claimant=None)
        except Exception as exc:
            error = f"attempt {job.attempt}: {type(exc).__name__}: {exc}"
            steps.record_part_failure(manifest, index, error, final=True)
            raise BatchJobError(f"{keys.part_name(index)} failed, {error}") from exc
    if job.role == ROLE_MERGE:
        # Batch keeps the job id across attempts: a retried merge resumes its own claim.
        outcome = steps.merge(manifest, claimant=f"batch-merge-{job.job_id or 'local'}")
        if outcome.action == "incomplete":
            # dependsOn guarantees every child succeeded; a gap means parts were lost.
            steps.fail_job(
                manifest.input_key, job.token, f"cannot merge: {outcome.detail}", keys.NORMAL
            )
            raise BatchJobError(f"cannot merge: {outcome.detail}")
        return outcome
    raise BatchJobError(f"BATCH_ROLE={job.role!r} is not one of {ROLE_CHILD}, {ROLE_MERGE}")


def _manage(steps: JobSteps, bucket: str, key: str, job: BatchContext, batch: Any) -> Outcome:
    manager = {"manager": job.job_id} if job.job_id else None
    outcome = steps.start(bucket, key, max_parts=BATCH_MAX_ARRAY_SIZE, batch_jobs=manager)
    manifest = outcome.manifest
    if manifest is None:
        return outcome
    config = steps.config
    if not config.job_queue or not config.job_definition:
        raise BatchJobError("JOB_QUEUE and JOB_DEFINITION must be set for the manager")
    # One manager submits: a duplicate event's manager (or its retry) must not add jobs.
    claimant = (job.job_id or "local").encode()
    lock = keys.submit_lock_key(manifest.token)
    claimed = steps.store.put_if_absent(steps.bucket, lock, claimant)
    if not claimed and steps.store.get(steps.bucket, lock) != claimant:
        return Outcome("duplicate", f"{manifest.parts} parts: jobs already submitted")
    submitted = submit_array_and_merge(
        batch or boto3.client("batch"), config.job_queue, config.job_definition, manifest
    )
    steps.store.update_json(
        steps.bucket,
        keys.status_key(manifest.input_key),
        states.progress(manifest.token, steps.clock(), batch_jobs={**(manager or {}), **submitted}),
    )
    return Outcome(
        "split",
        f"{outcome.detail}: array job {submitted['array']}, merge job {submitted['merge']}",
        manifest,
    )


def _existing_key(steps: JobSteps, bucket: str, key: str) -> str:
    """EventBridge passes S3 keys as they are; should one arrive URL-encoded the way S3's
    own notifications encode them, use the decoded key that exists."""
    decoded = unquote_plus(key)
    if decoded != key and steps.store.head(bucket, key) is None:
        return decoded
    return key


def main(argv: list[str]) -> int:
    """Batch entry point: argv is ``S3bucket S3key`` from the job definition's command."""
    try:
        config = RuntimeConfig.from_env()
        job = BatchContext.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logs.configure(config.log_level)
    if len(argv) != 2:
        log.error("expected two arguments, S3bucket and S3key; got %r", argv)
        return 2
    bucket, key = argv
    steps = JobSteps(ObjectStore(), config, events=EventBridgeSink())
    with logs.job_context(token=job.token, inputKey=key):
        try:
            outcome = run(steps, bucket, key, job)
        except (BatchJobError, ValueError) as exc:
            log.error("%s", exc)
            return 1
        log.info("%s s3://%s/%s: %s", outcome.action, bucket, key, outcome.detail)
    return 0
