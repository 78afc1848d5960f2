"""What AWS does next, per the stack, on this machine: the emulator ``simulate`` and the
job commands drive against the embedded AWS (``runtime.tools.local_cloud``).

Only the cloud's plumbing is emulated, never the handlers' logic (the runtime never sleeps
or polls; the emulator loops over its own work). This module composes the services:

- S3 → events: every new version of a ``.csv`` object under ``fast/`` becomes an S3
  notification for the function; under ``normal/``, ``urgent/`` or ``auto/``, EventBridge's
  "Object Created" event for it (the function admits the upload and submits its manager
  job, or, for an ``auto/`` upload the planner sends to the fast path, prices it). Both
  are asynchronous invocations (``runtime.tools.aws_events`` builds every event).
- Lambda (``runtime.tools.emulated_lambda``): warm containers running the real handler,
  Lambda's retries (3 attempts, same request id), the on-failure record delivered back to
  the function as SQS records until handled or parked.
- Batch (``runtime.tools.emulated_batch``): submitted jobs run as processes in ``capacity``
  slots, started in the order Batch's scheduler would (``runtime.tools.batch_scheduler``:
  queue priority, FIFO or fair share), with dependencies, terminated jobs and the retry
  strategy; every FAILED job or child becomes a "Batch Job State Change" event for the
  function, invoked asynchronously too.
- The run loop: Lambda's queue is emptied first; then Batch starts what it can, and between
  Batch completions the emulator notices new uploads and runs their invocations, so an
  upload made while Batch jobs run is admitted and its manager competes for the next free
  slot. ``on_started(emulator, task)`` is called when a Batch unit starts (a test can upload
  a file at that moment), ``on_invoked(emulator, invocation, kind, payload)`` after each
  Lambda invocation.
- Job events: the runtime's PutEvents reach a queue through a rule (see local_cloud); the
  emulator reads it after every step and shows each event in the timeline
  (``runtime.tools.timeline``, which every service writes to).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from runtime.core import keys
from runtime.planning.decide import usd_text
from runtime.tools.aws_events import (
    batch_state_change,
    object_created_event,
    on_failure_record,
    s3_event,
    sqs_batch,
)
from runtime.tools.emulated_batch import EmulatedBatch, JobContainers, Task
from runtime.tools.emulated_lambda import (
    LAMBDA_ATTEMPTS,
    MAX_RECEIVES,
    ContainerSpec,
    Invocation,
    LambdaService,
    after_invocation,
)
from runtime.tools.faults import BATCH_ATTEMPTS, Fault
from runtime.tools.local_cloud import (
    INPUT_BUCKET,
    JOB_DEFINITION,
    JOB_QUEUE,
    REGION,
    RESULT_BUCKET,
    RETRY_STATUS_REASONS,
    URGENT_JOB_QUEUE,
    LocalCloud,
)
from runtime.tools.timeline import Timeline, format_event

# What other code reads from here, the services' names included: the stack's retry settings
# (tests compare them with components/), the invocation, and the event builders.
__all__ = [
    "BATCH_ATTEMPTS",
    "LAMBDA_ATTEMPTS",
    "MAX_RECEIVES",
    "RETRY_STATUS_REASONS",
    "Emulator",
    "Invocation",
    "Task",
    "Timeline",
    "batch_state_change",
    "describe",
    "format_event",
    "on_failure_record",
    "runtime_environment",
    "s3_event",
    "sqs_batch",
]

# The lanes whose uploads are events for the function (components/shared.py).
_LANES = (keys.FAST, keys.NORMAL, keys.URGENT, keys.AUTO)


def runtime_environment(
    cloud: LocalCloud,
    threshold: int | None,
    engine: str,
    greeks: bool = False,
    teams: tuple[str, ...] = (),
    bounds: bool = False,
) -> dict[str, str]:
    """The environment the Pulumi program gives Lambda and the job definition (what is
    not set here has the runtime's defaults, which are the stacks'): both lanes' queues,
    and with ``teams`` fair share (FAIR_SHARE lists them; the share ``default`` is implied)."""
    environment = {
        **cloud.environment,
        "RESULT_BUCKET": RESULT_BUCKET,
        "ENGINE": engine,
        "GREEKS": "true" if greeks else "false",
        "BOUNDS": "true" if bounds else "false",
        "JOB_QUEUE": JOB_QUEUE,
        "URGENT_JOB_QUEUE": URGENT_JOB_QUEUE,
        "JOB_DEFINITION": JOB_DEFINITION,
        "AWS_REGION": REGION,
        # Each simulated invocation or job prices on one core, as a 1-vCPU container would;
        # the concurrency comes from running several of them.
        "PRICING_WORKERS": "1",
    }
    if threshold is not None:
        environment["THRESHOLD"] = str(threshold)
    listed = [team for team in teams if team != "default"]
    if listed:
        environment["FAIR_SHARE"] = ",".join(listed)
    return environment


# -- the emulator -----------------------------------------------------------------------


class Emulator:
    def __init__(
        self,
        cloud: LocalCloud,
        environment: dict[str, str],
        timeline: Timeline,
        workers: int = 4,
        faults: list[Fault] | None = None,
        watch: set[str] | None = None,
        on_invoked: Callable[[Emulator, Invocation, str, Any], None] | None = None,
        logs: Path | None = None,
        *,
        capacity: int | None = None,
        fair_share: Mapping[str, float] | None = None,
        on_started: Callable[[Emulator, Task], None] | None = None,
    ) -> None:
        """``workers`` warm Lambda containers; ``capacity`` Batch slots (default: as many
        as ``workers``); ``fair_share`` the teams' weights (None: FIFO queues)."""
        self.cloud = cloud
        self.environment = environment
        self.timeline = timeline
        self.workers = workers
        self.capacity = capacity or workers
        self.faults = list(faults or [])
        self.watch = watch  # input keys whose job events to show (None: all)
        self.on_invoked = on_invoked
        self.on_started = on_started
        self.s3 = cloud.client("s3")
        self.sqs = cloud.client("sqs")
        self._work = tempfile.TemporaryDirectory(prefix="mc-simulate-")
        self.state_dir = Path(self._work.name) / "faults"
        self.state_dir.mkdir()
        # Every container's and job's JSON log lines, as CloudWatch Logs would keep them.
        self.log_dir = logs or Path(self._work.name) / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.events_queue = cloud.job_events_queue()
        self.job_events: list[dict] = []
        self.lambda_service = LambdaService(
            ContainerSpec(environment, self.faults, self.state_dir, self.log_dir),
            workers,
            on_invoked=self._invoked,
        )
        self.invocations = 0
        # Every PUT is an S3 event, a re-upload or an overwrite too: versions, not keys.
        # Uploads made before this emulator started are not its to notice (the caller
        # passes the event of the one it means: ``upload_event``).
        self.seen_versions: set[tuple[str, str]] = set(self._upload_versions())
        self.drain_job_events(show=False)  # events of earlier runs are not this run's
        # Jobs submitted before this emulator started are not its to run either.
        self.batch_service = EmulatedBatch(
            cloud.client("batch"),
            JobContainers(environment, self.faults, self.state_dir, self.log_dir, timeline),
            timeline,
            self.capacity,
            fair_share,
            on_started=self._started,
            on_failed=self._job_failed,
        )

    def close(self) -> None:
        self.batch_service.close()
        self.lambda_service.close()
        self._work.cleanup()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _step(self, what: str) -> None:
        self.drain_job_events()

    def _invoked(self, invocation: Invocation, kind: str, payload: Any) -> None:
        if self.on_invoked is not None:
            self.on_invoked(self, invocation, kind, payload)

    def _started(self, task: Task) -> None:
        if self.on_started is not None:
            self.on_started(self, task)

    # -- job events ---------------------------------------------------------------------

    def drain_job_events(self, show: bool = True) -> list[dict]:
        found = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.events_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                event = json.loads(message["Body"])
                self.sqs.delete_message(
                    QueueUrl=self.events_queue, ReceiptHandle=message["ReceiptHandle"]
                )
                detail = event.get("detail", {})
                if show and (self.watch is None or detail.get("inputKey") in self.watch):
                    found.append(detail)
                    self.timeline.add("event", f"{event.get('detail-type')}: {describe(detail)}")
        self.job_events.extend(found)
        return found

    # -- the run loop -------------------------------------------------------------------

    def run(self, invocations: list[Invocation]) -> None:
        """Run invocations and everything they cause (new uploads' events, Batch jobs and
        their failure events) until nothing is left to run."""
        self.run_lambda(invocations)
        batch = self.batch_service
        while True:
            batch.discover()
            batch.dispatch()
            if batch.idle:
                # Nothing runs: done, unless a failure's handling submitted jobs or wrote
                # uploads meanwhile.
                if self.run_lambda([]) or batch.discover():
                    continue
                return
            batch.wait()  # until a unit finishes: then what happened meanwhile
            self._step("batch")
            self.run_lambda([])

    # -- uploads and Lambda -------------------------------------------------------------

    def upload_event(self, key: str) -> Invocation:
        """The event the stack sends the function for the upload at ``key``: an S3
        notification (``fast/``) or EventBridge's Object Created (the Batch lanes)."""
        versions = [v for v in self._upload_versions() if v[0] == key]
        self.seen_versions |= set(versions)
        version = versions[-1][1] if versions else None
        return self._event_for(key, version)

    def _event_for(self, key: str, version: str | None) -> Invocation:
        label = key.rsplit("/", 1)[-1]
        if key.startswith(f"{keys.FAST}/"):
            return Invocation("s3", s3_event(INPUT_BUCKET, key, version), label)
        return Invocation("eventbridge", object_created_event(INPUT_BUCKET, key, version), label)

    def run_lambda(self, invocations: list[Invocation]) -> bool:
        """Run invocations and everything they cause, new uploads' events included, until
        Lambda's queue is empty; whether anything ran."""
        pending: dict[Future, tuple[int, Invocation]] = {}

        def start(invocation: Invocation) -> None:
            self.invocations += 1
            pending[self.lambda_service.submit(invocation)] = (self.invocations, invocation)

        for invocation in invocations:
            start(invocation)
        self._new_uploads(start)
        ran = bool(pending)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            # Those that finished together go into the timeline in the order they started.
            for future in sorted(finished, key=lambda f: pending[f][0]):
                _, invocation = pending.pop(future)
                kind, payload = future.result()
                follow_up = self._after_invocation(invocation, kind, payload)
                if follow_up is not None:
                    start(follow_up)
                self._step(invocation.kind)
            self._new_uploads(start)
        return ran

    def _new_uploads(self, start: Callable[[Invocation], None]) -> None:
        for key, version in self._upload_versions():
            if (key, version) not in self.seen_versions:
                self.seen_versions.add((key, version))
                start(self._event_for(key, version))

    def _after_invocation(
        self, invocation: Invocation, kind: str, payload: Any
    ) -> Invocation | None:
        return after_invocation(self.timeline, invocation, kind, payload)

    def _upload_versions(self) -> list[tuple[str, str]]:
        """(key, version id) of every .csv object written under a lane's prefix so far
        (the input bucket is versioned, as the stack's), oldest first per key: each is an
        event for the function (the notification and the rules match .csv in any case)."""
        found = []
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=INPUT_BUCKET)
        for page in pages:
            found.extend(
                (item["Key"], item["VersionId"])
                for item in reversed(page.get("Versions", []))
                if keys.is_csv(item["Key"]) and item["Key"].split("/", 1)[0] in _LANES
            )
        return sorted(found, key=lambda kv: kv[0])

    # -- Batch's failures reach the function ----------------------------------------------

    def _job_failed(
        self, description: dict, reason: str, attempts: list[dict], index: int | None = None
    ) -> None:
        """EventBridge's rule on FAILED jobs of the stack's queues invokes the function."""
        event = batch_state_change(description, reason, attempts, index)
        label = (
            "batch-event " + description["jobId"][:8] + (f":{index}" if index is not None else "")
        )
        # EventBridge invokes asynchronously: Lambda's retries and on-failure queue apply.
        invocation: Invocation | None = Invocation("batch-event", event, label)
        while invocation is not None:
            self.invocations += 1
            kind, payload = self.lambda_service.submit(invocation).result()
            invocation = self._after_invocation(invocation, kind, payload)
        self._step("batch-event")


def describe(detail: dict) -> str:
    """One line for a job event."""
    state = detail.get("state")
    text = f"{state} {detail.get('inputKey')}"
    if state == "done":
        text += f": {detail.get('rows')} rows ({detail.get('rowsWithErrors')} with errors)"
        text += f", {detail.get('parts')} part(s), {detail.get('seconds')} s"
        if detail.get("cost"):
            text += f", {usd_text(float(detail['cost'].get('usd', 0.0)))} estimated"
    elif detail.get("error"):
        text += f": {detail['error']}"
    return text
