"""The Lambda adapter: every event the stack sends the function, in, protocol steps, out.

- S3 notifications (``fast/``): a user's upload (``start``), or one of our parts, whose key
  names its job and attempt.
- EventBridge "Object Created" for ``normal/``, ``urgent/`` and ``auto/`` uploads: ``admit``
  begins the job and submits its manager job (an ``auto/`` upload: on the path the planner
  chooses, priced here or split into fast parts when that is the fast path).
- EventBridge "Batch Job State Change" (FAILED) for this stack's queues: the part, merge or
  manager that failed, by the fence in its environment, ends its attempt ``failed``.
- SQS records from the failure queues: Lambda's record of an invocation that failed on every
  attempt (its payload says which attempt of which job), and events EventBridge could not
  deliver; each ends what it is about ``failed``, or resumes a crashed merge.
- Commands (``jobs cancel``, ``jobs retry``): ``{"source": "mc-pricing.command", ...}``.
- Scheduled runs (EventBridge Scheduler): ``{"source": "mc-pricing.schedule", ...}``.

Every invocation is an actor of the job it works for: it measures itself and leaves one
usage record (``runtime.protocol.costs``); the on-failure route records the attempts that
died without one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from runtime import logs
from runtime.adapters import batch_events
from runtime.adapters.batch_job import job_steps
from runtime.core import keys
from runtime.core.manifest import Manifest
from runtime.environment import LAMBDA_MB_PER_VCPU, RuntimeConfig
from runtime.planning.meter import MeterContext, StepMeter, process_age_seconds
from runtime.planning.usage import FAILED, LAMBDA, TIMED_OUT, UsageRecord
from runtime.planning.usage import batch_attempts as usage_attempts
from runtime.protocol import costs
from runtime.protocol.lifecycle import Fence
from runtime.protocol.steps import Action, JobSteps, PartLost, StepOutcome

log = logging.getLogger(__name__)

# A failure record still failing after this many receives is recorded without resuming.
_LAST_RECEIVE = 3
COMMAND_SOURCE = "mc-pricing.command"
SCHEDULE_SOURCE = "mc-pricing.schedule"
COMMANDS = ("cancel", "retry")


def s3_records(event: dict[str, Any]) -> list[tuple[str, str, str | None, str | None]]:
    """(bucket, key, version id, sequencer) of each record of an S3 notification; keys
    arrive URL-encoded, and the version id is absent in an unversioned bucket."""
    objects = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        if not str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
            continue
        found = s3["object"]
        objects.append(
            (
                s3["bucket"]["name"],
                unquote_plus(found["key"]),
                found.get("versionId"),
                found.get("sequencer"),
            )
        )
    return objects


def object_created(event: dict[str, Any]) -> tuple[str, str, str | None, str | None] | None:
    """(bucket, key, version id, sequencer) of an EventBridge "Object Created" event. Its
    key is the object's key as it is: unlike S3's own notifications, EventBridge's are not
    URL-encoded (a key with "+" or ":" arrives as written), so it is never decoded."""
    if event.get("source") != "aws.s3":
        return None
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    found = detail.get("object") or {}
    if not bucket or not found.get("key"):
        return None
    return bucket, found["key"], found.get("version-id"), found.get("sequencer")


@cache
def _steps() -> JobSteps:
    # Built once per container, so warm invocations reuse the clients and engine.
    config = RuntimeConfig.from_env()
    logs.configure(config.log_level)
    return job_steps(config)


# -- S3 notifications: the fast lane ------------------------------------------------------


def handle_object(
    steps: JobSteps,
    bucket: str,
    key: str,
    request_id: str | None = None,
    version: str | None = None,
    sequencer: str | None = None,
) -> StepOutcome:
    """One S3 object under ``fast/``: a user's upload or one of our parts.

    ``request_id`` names this delivery of the event: Lambda keeps the request id when it
    retries an invocation, while a duplicate S3 event gets a new one. So a retry of a merge
    that crashed resumes it, and a duplicate of the last part's event cannot merge twice.
    """
    actor = request_id or uuid.uuid4().hex
    if not keys.is_fast_part(key):
        return steps.start(bucket, key, actor, version, sequencer)
    found = _waiting_part(steps, key)
    if isinstance(found, StepOutcome):
        return found
    manifest, fence, index = found
    claimant = _claimant(index, actor)
    try:
        return steps.price_part(manifest, fence, index, claimant, merge=True)
    except PartLost as exc:
        return steps.part_failed(manifest, fence, index, str(exc), final=True, actor=claimant)
    except Exception as exc:
        # Lambda retries this invocation; the status shows the failure meanwhile, and the
        # on-failure queue makes it final once the retries are spent.
        error = f"{type(exc).__name__}: {exc}"
        steps.part_failed(manifest, fence, index, error, final=False, actor=claimant)
        raise


def _waiting_part(steps: JobSteps, key: str) -> tuple[Manifest, Fence, int] | StepOutcome:
    """(manifest, fence, part index) of a fast part key a job waits for, else why not."""
    try:
        token, attempt, index = keys.parse_fast_part_key(key)
    except keys.NotAJobKey:
        return StepOutcome(Action.IGNORED, f"{key}: not a part key the pipeline writes")
    manifest = steps.load_manifest(keys.FAST, token)
    if manifest is None:
        steps.recount_cost(keys.FAST, token)  # a retry of a part that died while recording
        return StepOutcome(Action.IGNORED, f"{key}: no job is waiting for this part")
    logs.annotate(token=token, inputKey=manifest.input_key)
    return manifest, Fence(token, attempt), index


def _claimant(index: int, actor: str) -> str:
    return f"fast-{keys.part_name(index)}-{actor}"


# -- failure routes -----------------------------------------------------------------------


def handle_exhausted(steps: JobSteps, record: dict, last_receive: bool) -> list[StepOutcome]:
    """Lambda's on-failure record: the original event failed on every attempt."""
    request = record.get("requestContext", {})
    request_id = str(request.get("requestId") or uuid.uuid4().hex)
    response = record.get("responsePayload") or {}
    error = (
        f"{response.get('errorType', 'error')}: {response.get('errorMessage', '')}".strip(": ")
        if isinstance(response, dict)
        else str(response)
    )
    reason = f"failed on all {request.get('approximateInvokeCount', '?')} attempts: {error}"
    payload = record.get("requestPayload") or {}
    if not isinstance(payload, dict):
        return [StepOutcome(Action.IGNORED, "an on-failure record without a payload")]
    costs.play("on-failure")
    outcomes = _exhausted(steps, record, payload, reason, request_id, last_receive)
    actor = costs.current_actor()
    if actor is not None and actor.token:  # the job the steps acted for: a late record
        _record_lost(steps, record, costs.JobOf(actor.input_key, actor.token, actor.runner))
    return outcomes


def _record_lost(steps: JobSteps, record: dict, job: costs.JobOf, step: str = "") -> None:
    """Records of the invocation's attempts that left none (killed by the timeout or
    otherwise): up to Lambda's count of attempts, the slots their own records left free.
    An attempt killed by its timeout ran the function's timeout; one killed otherwise
    (out of memory, a crash of the runtime) ran for an unknown time, counted as none."""
    request = record.get("requestContext", {})
    request_id = str(request.get("requestId") or "")
    if not request_id:
        return
    response = record.get("responsePayload") or {}
    error = json.dumps(response).lower() if isinstance(response, dict) else str(response)
    timed_out = "sandbox.timedout" in error or "timed out" in error
    settings = steps.config.plan_settings()
    memory = steps.config.lambda_memory_mb or settings.lambda_memory_mb
    seconds = float(settings.lambda_timeout_seconds) if timed_out else 0.0
    try:
        count = max(1, int(request.get("approximateInvokeCount") or 1))
        for attempt in range(1, count + 1):
            lost = UsageRecord(
                step=step or _payload_step(record.get("requestPayload") or {}),
                capacity=LAMBDA,
                seconds=seconds,
                memory_mb=memory,
                vcpus=memory / LAMBDA_MB_PER_VCPU,
                attempt=attempt,
                outcome=TIMED_OUT if timed_out else FAILED,
            )
            steps.usage.add(job, f"lambda-{request_id}", lost, estimated=True)
    except Exception as exc:  # botocore's errors: metering never stops a failure route
        log.warning("lost invocations of %s not recorded: %s", request_id, exc)


def _payload_step(payload: dict) -> str:
    """The step an invocation of ``payload`` was (a usage record's ``step``)."""
    if payload.get("source") == COMMAND_SOURCE:
        return str(payload.get("command") or "command")
    if payload.get("source") == SCHEDULE_SOURCE:
        return "schedule"
    if payload.get("source") == "aws.batch":
        return "batch-event"
    if object_created(payload) is not None:
        return "admit"
    return "start"


def _exhausted(
    steps: JobSteps,
    record: dict,
    payload: dict,
    reason: str,
    request_id: str,
    last_receive: bool,
) -> list[StepOutcome]:
    if payload.get("source") == "aws.batch":
        # EventBridge invokes the function asynchronously too: a Batch failure event whose
        # handling failed every time is handled once more here (it is idempotent).
        return [handle_batch_event(steps, payload, request_id)]
    if payload.get("source") == COMMAND_SOURCE:
        return [_command_failed(steps, payload, reason, request_id)]
    if payload.get("source") == SCHEDULE_SOURCE:
        return [_schedule(steps, payload, request_id, failed=reason)]
    uploaded = object_created(payload)
    if uploaded is not None:
        bucket, key, version, sequencer = uploaded
        return [
            steps.fail_upload(bucket, key, f"the upload {reason}", request_id, version, sequencer)
        ]
    outcomes = []
    for bucket, key, version, sequencer in s3_records(payload):
        if not keys.is_fast_part(key):
            outcomes.append(
                steps.fail_upload(
                    bucket, key, f"the upload {reason}", request_id, version, sequencer
                )
            )
            continue
        found = _waiting_part(steps, key)
        if isinstance(found, StepOutcome):
            outcomes.append(found)
            continue
        manifest, fence, index = found
        claimant = _claimant(index, request_id)
        # Before the part's failure ends the job, so that its cost counts them.
        job = costs.JobOf(manifest.input_key, fence.token, manifest.runner)
        _record_lost(steps, record, job, keys.part_name(index))
        done = steps.finished_parts(manifest)
        if len(done) == manifest.parts and not last_receive:
            # Every part is priced: the failure was the merge (or what came after it).
            # Resume it as the claimant that crashed (same request id), which no one else
            # can take over; a merge that ended settles what it left.
            outcome = steps.merge(manifest, fence, claimant)
            if outcome.action is not Action.INCOMPLETE:
                outcomes.append(outcome)
                continue
        if index in done and len(done) < manifest.parts:
            # A duplicate event priced it meanwhile: this failure is not the part's.
            steps.settle(manifest.input_key, claimant)
            outcomes.append(StepOutcome(Action.PART_PRICED, f"{keys.part_name(index)}: priced"))
            continue
        outcomes.append(
            steps.part_failed(manifest, fence, index, reason, final=True, actor=claimant)
        )
    return outcomes


def _command_failed(steps: JobSteps, command: dict, reason: str, actor: str) -> StepOutcome:
    """A command that failed on every attempt. A retry that reopened its job but could not
    run it ends that attempt ``failed``, saying so; a cancel that did not get through
    changed nothing, and says so in the log."""
    key = str(command.get("inputKey", ""))
    status = steps.status(key) if key else None
    step = _command_step(command)
    if command.get("command") != "retry" or status is None or step not in status.get("steps", []):
        return StepOutcome(Action.IGNORED, f"{key}: the {command.get('command')} {reason}")
    fence = Fence.of(status)
    return steps.fail_fence(key, fence, f"the retry {reason}", actor)


def handle_dead_letter(
    steps: JobSteps, event: dict, attributes: dict, actor: str
) -> list[StepOutcome]:
    """An EventBridge event its rule could not deliver to the function."""
    costs.play("dead-letter")
    if event.get("source") == "aws.batch":
        return [handle_batch_event(steps, event, actor)]
    if event.get("source") == SCHEDULE_SOURCE:  # a run Scheduler could not deliver
        message = _attribute(attributes, "ERROR_MESSAGE") or _attribute(attributes, "ERROR_CODE")
        reason = "could not be started by EventBridge Scheduler" + (
            f": {message}" if message else ""
        )
        return [_schedule(steps, event, actor, failed=reason)]
    uploaded = object_created(event)
    if uploaded is None:
        return [StepOutcome(Action.IGNORED, "a dead letter that is not an S3 event")]
    bucket, key, version, sequencer = uploaded
    if not keys.is_csv(key):
        return [StepOutcome(Action.IGNORED, f"{key}: not a .csv file")]
    message = _attribute(attributes, "ERROR_MESSAGE") or _attribute(attributes, "ERROR_CODE")
    reason = "could not start a job for this upload" + (f": {message}" if message else "")
    return [steps.fail_upload(bucket, key, reason, actor, version, sequencer)]


def handle_batch_event(steps: JobSteps, event: dict, actor: str) -> StepOutcome:
    """A Batch job of ours failed: its fence says which attempt. A failure counts only if
    the job is the one the status recorded for its role (a duplicate manager's, or an
    orphan submission's, does not)."""
    costs.play("batch-event")
    failure = batch_events.parse(event)
    if failure is None or failure.fence is None:
        return StepOutcome(Action.IGNORED, "not a failed job of this pipeline")
    fence = failure.fence
    logs.annotate(token=fence.token, inputKey=failure.input_key)
    _record_attempts(steps, failure)
    status = steps.status(failure.input_key)
    role = batch_events.ARRAY if failure.role == batch_events.CHILD else failure.role
    recorded = ((status or {}).get("batchJobs") or {}).get(role)
    same_attempt = status is not None and Fence.of(status) == fence
    if same_attempt and recorded and recorded != failure.submitted_as:
        steps.settle(failure.input_key, actor)
        return StepOutcome(Action.IGNORED, f"{failure.job_id} is not the job's {role} job")
    manifest = steps.load_manifest(keys.NORMAL, fence.token)
    if failure.role == batch_events.CHILD and failure.index is not None and manifest:
        return steps.part_failed(
            manifest, fence, failure.index, failure.reason, final=True, actor=actor
        )
    reason = failure.reason
    if failure.role == batch_events.ARRAY and manifest:
        # The array fails with its first failed child, whose own event may come later.
        missing = sorted(set(range(manifest.parts)) - steps.finished_parts(manifest))
        reason = f"{reason}; parts without a result: {missing[:20]}"
    return steps.fail_fence(failure.input_key, fence, reason, actor)


def _record_attempts(steps: JobSteps, failure: batch_events.BatchFailure) -> None:
    """Records of the failed job's attempts, which its containers could not write (killed:
    out of memory, Spot, timeout), from the event's measured start and stop: before its
    failure ends the job, so that the job's cost counts them. Written once; an attempt
    that recorded itself keeps its own record, an estimated one is replaced."""
    if failure.fence is None or failure.role == batch_events.ARRAY:
        return  # the array's own event has no attempts: its children report theirs
    step = keys.part_name(failure.index) if failure.index is not None else failure.role
    capacity = failure.capacity or steps.config.capacity
    job = costs.JobOf(failure.input_key, failure.fence.token, keys.NORMAL)
    try:
        attempts = usage_attempts(failure.detail, step, capacity, steps.config.job_vcpus)
        for attempt in attempts:
            if not attempt.memory_mb:
                attempt = replace(attempt, memory_mb=steps.config.batch_memory_mb)
            steps.usage.add(job, f"batch-{failure.job_id}", attempt)
    except Exception as exc:  # botocore's errors: metering never stops a failure route
        log.warning("attempts of %s not recorded: %s", failure.job_id, exc)


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
    actor = f"sqs-{record.get('messageId', uuid.uuid4().hex)}"
    if "requestContext" in body:
        outcomes = handle_exhausted(steps, body, last_receive=receives >= _LAST_RECEIVE)
    else:
        outcomes = handle_dead_letter(steps, body, record.get("messageAttributes", {}), actor)
    for outcome in outcomes:
        log.info("failure route %s: %s", outcome.action, outcome.detail)


# -- commands -----------------------------------------------------------------------------


def command(name: str, input_key: str, fence: str | None = None, force: bool = False) -> dict:
    """The payload of a job command for the function (``jobs cancel|retry``)."""
    return {
        "source": COMMAND_SOURCE,
        "command": name,
        "inputKey": input_key,
        "fence": fence,
        "force": force,
        "requestId": uuid.uuid4().hex,
    }


def _command_step(payload: dict) -> str:
    return f"{payload.get('command')}:{payload.get('requestId')}"


def handle_command(steps: JobSteps, payload: dict, actor: str) -> StepOutcome:
    """``cancel`` or ``retry`` of the job of ``inputKey``; ``fence`` (the attempt the user
    saw) keeps a command from acting on an attempt it was not meant for."""
    name, key = payload.get("command"), str(payload.get("inputKey", ""))
    if name not in COMMANDS or not key:
        return StepOutcome(Action.IGNORED, f"not a command: {name!r} for {key!r}")
    try:
        fence = Fence.parse(payload["fence"]) if payload.get("fence") else None
    except ValueError as exc:
        return StepOutcome(Action.IGNORED, str(exc))
    logs.annotate(inputKey=key)
    costs.play(str(name))
    step = _command_step(payload)
    if name == "cancel":
        return steps.cancel(key, step, actor, fence)
    return steps.retry(key, step, actor, fence, force=bool(payload.get("force")))


def _schedule(steps: JobSteps, payload: dict, actor: str, failed: str | None = None) -> StepOutcome:
    """A scheduled run (``failed``: the reason it could not be started)."""
    costs.play("schedule")
    arguments = {
        name: str(payload.get(field) or "")
        for name, field in (
            ("bucket", "inputBucket"),
            ("schedule", "schedule"),
            ("book", "book"),
            ("path", "path"),
            ("scheduled_time", "scheduledTime"),
        )
    }
    if failed is not None:
        return steps.schedule_failed(**arguments, reason=failed, actor=actor)
    return steps.run_schedule(**arguments, actor=actor)


# -- the entry point ----------------------------------------------------------------------


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (``runtime.adapters.lambda_handler.handler``)."""
    request_id = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    # The process's age at its first invocation is the cold start's INIT, billed too.
    return handle(_steps(), event, request_id, age=process_age_seconds)


def handle(
    steps: JobSteps,
    event: dict[str, Any],
    request_id: str,
    age: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Route one invocation's event to its steps. ``request_id`` is Lambda's: the same on
    every retry of one invocation. The invocation is metered as one actor (``age``: the
    process's age, for the cold start; None outside Lambda, where there is none)."""
    config = steps.config
    memory = config.lambda_memory_mb or config.plan_settings().lambda_memory_mb
    meter = StepMeter(
        MeterContext(LAMBDA, memory, memory / LAMBDA_MB_PER_VCPU),
        steps.requests,
        age=age or (lambda: None),
    )
    with steps.metered(costs.Actor(f"lambda-{request_id}", meter)):
        return _handle(steps, event, request_id)


def _handle(steps: JobSteps, event: dict[str, Any], request_id: str) -> dict[str, Any]:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return handle_sqs(steps, records)
    outcomes = []
    # Each outcome is logged inside its job's context, so its line carries the job's token.
    with logs.job_context():
        if event.get("source") == "aws.batch":
            outcomes.append(_logged(handle_batch_event(steps, event, request_id)))
        elif event.get("source") == COMMAND_SOURCE:
            outcomes.append(_logged(handle_command(steps, event, request_id)))
        elif event.get("source") == SCHEDULE_SOURCE:
            outcomes.append(_logged(_schedule(steps, event, request_id)))
        elif (uploaded := object_created(event)) is not None:
            bucket, key, version, sequencer = uploaded
            logs.annotate(inputKey=key)
            outcomes.append(_logged(_admit(steps, bucket, key, request_id, version, sequencer)))
    for bucket, key, version, sequencer in s3_records(event):
        with logs.job_context(inputKey=key):
            try:
                outcome = handle_object(steps, bucket, key, request_id, version, sequencer)
            except keys.NotAJobKey as exc:  # nothing to do for it, and a retry would not help
                outcome = StepOutcome(Action.IGNORED, f"{key}: {exc}")
            outcomes.append(_logged(outcome))
    return {"outcomes": [{"action": str(o.action), "detail": o.detail} for o in outcomes]}


def _logged(outcome: StepOutcome) -> StepOutcome:
    log.info("%s: %s", outcome.action, outcome.detail)
    return outcome


def _admit(
    steps: JobSteps,
    bucket: str,
    key: str,
    actor: str,
    version: str | None,
    sequencer: str | None,
) -> StepOutcome:
    try:
        lane = keys.path_of(key)
    except keys.NotAJobKey as exc:
        return StepOutcome(Action.IGNORED, f"{key}: {exc}")
    if lane not in (*keys.BATCH_LANES, keys.AUTO):
        return StepOutcome(Action.IGNORED, f"{key}: the {lane} lane is not started by EventBridge")
    return steps.admit(bucket, key, actor, version, sequencer)
