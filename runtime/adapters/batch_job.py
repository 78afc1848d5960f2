"""The Batch adapter: one image runs a job's manager, its array children and its merge.

The function submits the manager with the job's fence; the manager prices the upload, or
splits it and submits one array job plus one merge job that ``dependsOn`` it, then exits.
Nothing waits for anything. Each job learns its role and attempt from its environment
(``BATCH_ROLE``, ``JOB_FENCE``; docs/protocol.md).

An application error is final at once: the job definition's retry strategy retries only
host failures (Spot reclaims), so a child records its failure as final before it exits.
What kills a job without a word (out of memory, timeout, SIGKILL, a cancelled queue wait)
reaches the job's status through the "Batch Job State Change" events the function handles.

Every attempt is an actor of its job: it measures itself and leaves one usage record
(``runtime.protocol.costs``); an attempt after the first also records the ones before it,
which the stack retries only after a host interruption, and which left none.
"""

from __future__ import annotations

import logging
import sys

from runtime import logs
from runtime.adapters.batch_queue import ROLE_CHILD, ROLE_MANAGER, ROLE_MERGE, BatchQueue
from runtime.adapters.events import EventBridgeSink
from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.environment import BatchContext, RuntimeConfig, SettingsError
from runtime.planning.meter import MeterContext, StepMeter
from runtime.protocol import costs
from runtime.protocol.lifecycle import Fence
from runtime.protocol.steps import Action, JobSteps, StepOutcome

log = logging.getLogger(__name__)


class BatchJobError(RuntimeError):
    """The job cannot do its work; Batch marks it failed and the status says why."""


def run(steps: JobSteps, bucket: str, key: str, job: BatchContext) -> StepOutcome:
    """Do whatever this Batch job is for; raise BatchJobError to fail the job. The attempt
    is metered as one actor of the job."""
    config = steps.config
    context = MeterContext(config.capacity, config.batch_memory_mb, config.job_vcpus, job.attempt)
    actor = costs.Actor(
        f"batch-{job.job_id or 'local'}",
        StepMeter(context, steps.requests),
        attempt=job.attempt,
        earlier_attempts=job.attempt - 1,
    )
    with steps.metered(actor):
        return _run(steps, bucket, key, job)


def _run(steps: JobSteps, bucket: str, key: str, job: BatchContext) -> StepOutcome:
    try:
        fence = Fence.parse(job.fence)
    except ValueError as exc:
        raise BatchJobError(f"JOB_FENCE: {exc}") from None
    actor = job.job_id or "local"
    if job.role in ("", ROLE_MANAGER):
        return steps.manage(fence, bucket, key, actor)
    manifest = steps.load_manifest(keys.NORMAL, fence.token)
    if manifest is None:
        steps.settle(key, actor)
        steps.recount_cost(keys.NORMAL, fence.token)  # a retried attempt that died recording
        return StepOutcome(Action.STOPPED, "no manifest: the job ended and was cleaned up")
    logs.annotate(inputKey=manifest.input_key)
    if job.role == ROLE_CHILD:
        index = job.part_index
        if index is None:
            raise BatchJobError("a child needs AWS_BATCH_JOB_ARRAY_INDEX or PART_INDEXES")
        try:
            return steps.price_part(manifest, fence, index, actor, merge=False)
        except Exception as exc:
            error = f"attempt {job.attempt}: {type(exc).__name__}: {exc}"
            steps.part_failed(manifest, fence, index, error, final=True, actor=actor)
            raise BatchJobError(f"{keys.part_name(index)} failed, {error}") from exc
    if job.role == ROLE_MERGE:
        # Batch keeps the job id across attempts: a retried merge resumes its own claim.
        outcome = steps.merge(manifest, fence, actor=f"batch-merge-{job.job_id or 'local'}")
        if outcome.action is Action.INCOMPLETE:
            # dependsOn guarantees every child succeeded; a gap means parts were lost.
            steps.fail_fence(manifest.input_key, fence, f"cannot merge: {outcome.detail}", actor)
            raise BatchJobError(f"cannot merge: {outcome.detail}")
        return outcome
    raise BatchJobError(
        f"BATCH_ROLE={job.role!r} is not one of {ROLE_MANAGER}, {ROLE_CHILD}, {ROLE_MERGE}"
    )


def job_steps(config: RuntimeConfig) -> JobSteps:
    """The steps as a Batch container (or the Lambda function) runs them in AWS."""
    # The urgent lane's jobs run on on-demand capacity: they are metered as such.
    urgent = {config.urgent_job_queue: config.plan_settings().urgent_capacity}
    return JobSteps(
        ObjectStore(),
        config,
        events=EventBridgeSink(stack=config.stack_name),
        batch=BatchQueue(
            config.job_definition,
            config.job_queue,
            stack_name=config.stack_name,
            capacities=urgent if config.urgent_job_queue else {},
        ),
    )


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
    steps = job_steps(config)
    with logs.job_context(token=job.fence.rpartition(".")[0], inputKey=key):
        try:
            outcome = run(steps, bucket, key, job)
        except (BatchJobError, ValueError) as exc:
            log.error("%s", exc)
            return 1
        log.info("%s s3://%s/%s: %s", outcome.action, bucket, key, outcome.detail)
    return 0
