"""The normal path's Batch adapter: manager, array child and merge job in one image.

The manager splits an upload and submits one array job plus one merge job that
``dependsOn`` it, then exits; nothing waits for anything. Roles come from the
environment the manager sets on the jobs it submits (see docs/protocol.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import boto3

from runtime.core import keys
from runtime.core.manifest import BATCH_MAX_ARRAY_SIZE, Manifest
from runtime.protocol.steps import Outcome, Pipeline

log = logging.getLogger(__name__)

ROLE_CHILD = "child"
ROLE_MERGE = "merge"


class BatchJobError(RuntimeError):
    """The job cannot do its work; Batch marks it failed and the status says why."""


def submit_array_and_merge(
    batch: Any, queue: str, definition: str, manifest: Manifest
) -> tuple[str, str]:
    """Submit the pricing array job and the merge job that depends on it; return their ids."""
    parameters = {"S3bucket": manifest.input_bucket, "S3key": manifest.input_key}

    def overrides(role: str) -> dict:
        return {
            "environment": [
                {"name": "BATCH_ROLE", "value": role},
                {"name": "JOB_TOKEN", "value": manifest.token},
            ]
        }

    array = batch.submit_job(
        jobName=f"price-{manifest.token}",
        jobQueue=queue,
        jobDefinition=definition,
        arrayProperties={"size": manifest.parts},
        parameters=parameters,
        containerOverrides=overrides(ROLE_CHILD),
    )
    merge = batch.submit_job(
        jobName=f"merge-{manifest.token}",
        jobQueue=queue,
        jobDefinition=definition,
        dependsOn=[{"jobId": array["jobId"]}],
        parameters=parameters,
        containerOverrides=overrides(ROLE_MERGE),
    )
    return array["jobId"], merge["jobId"]


def run(
    pipeline: Pipeline, bucket: str, key: str, environ: Mapping[str, str], batch: Any = None
) -> Outcome:
    """Do whatever this Batch job is for; raise BatchJobError to fail the job."""
    role = environ.get("BATCH_ROLE", "")
    if not role:
        key = _existing_key(pipeline, bucket, key)
        outcome = pipeline.start(bucket, key, max_parts=BATCH_MAX_ARRAY_SIZE)
        if outcome.manifest is not None:
            queue, definition = (
                _required(environ, "JOB_QUEUE"),
                _required(environ, "JOB_DEFINITION"),
            )
            array_id, merge_id = submit_array_and_merge(
                batch or boto3.client("batch"), queue, definition, outcome.manifest
            )
            outcome = Outcome(
                "split", f"{outcome.detail}: array job {array_id}, merge job {merge_id}"
            )
        return outcome

    manifest = pipeline.load_manifest(keys.NORMAL, _required(environ, "JOB_TOKEN"))
    if manifest is None:
        return Outcome("skipped", "no manifest: the job was already merged and cleaned up")
    if role == ROLE_CHILD:
        index = int(_required(environ, "AWS_BATCH_JOB_ARRAY_INDEX"))
        attempt = int(environ.get("AWS_BATCH_JOB_ATTEMPT", "1"))
        final = attempt >= int(environ.get("BATCH_MAX_ATTEMPTS", "1"))
        try:
            outcome = pipeline.price_part(manifest, index)
        except Exception as exc:
            error = f"attempt {attempt}: {type(exc).__name__}: {exc}"
            pipeline.record_failure(manifest, index, error, final=final)
            raise BatchJobError(f"{keys.part_name(index)} failed, {error}") from exc
        pipeline.refresh_status(manifest)
        return outcome
    if role == ROLE_MERGE:
        # Batch keeps the job id across attempts: a retried merge resumes its own claim.
        claimant = f"batch-merge-{environ.get('AWS_BATCH_JOB_ID', 'local')}"
        outcome = pipeline.merge_if_complete(manifest, claimant=claimant)
        if outcome.action not in ("merged", "duplicate"):
            # dependsOn guarantees every child succeeded; a gap means parts were lost.
            message = f"cannot merge: only {outcome.detail}"
            pipeline.refresh_status(manifest, failure=message)
            raise BatchJobError(message)
        return outcome
    raise BatchJobError(f"BATCH_ROLE={role!r} is not one of {ROLE_CHILD}, {ROLE_MERGE}")


def _existing_key(pipeline: Pipeline, bucket: str, key: str) -> str:
    """EventBridge passes S3 keys as they are; should one arrive URL-encoded the way S3's
    own notifications encode them, use the decoded key that exists."""
    decoded = unquote_plus(key)
    if decoded != key and pipeline.store.head(bucket, key) is None:
        return decoded
    return key


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise BatchJobError(f"{name} is not set in the job's environment")
    return value


def main(argv: list[str], environ: Mapping[str, str] = os.environ) -> int:
    """Batch entry point: argv is ``S3bucket S3key`` from the job definition's command."""
    from runtime.adapters.s3 import ObjectStore
    from runtime.environment import RuntimeConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(argv) != 2:
        log.error("expected two arguments, S3bucket and S3key; got %r", argv)
        return 2
    bucket, key = argv
    try:
        pipeline = Pipeline(ObjectStore(), RuntimeConfig.from_env(environ))
        outcome = run(pipeline, bucket, key, environ)
    except (BatchJobError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    log.info("%s s3://%s/%s: %s", outcome.action, bucket, key, outcome.detail)
    return 0
