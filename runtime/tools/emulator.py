"""What AWS does next, per the stack, on this machine: the emulator ``simulate`` and the
job commands drive against the embedded AWS (``runtime.tools.local_cloud``).

Only the cloud's plumbing is emulated here, never the handlers' logic (the runtime never
sleeps or polls; this emulator loops over its own work queue):

- Lambda: S3 notifications of new ``fast/**.csv`` objects become asynchronous invocations,
  run by warm worker processes (containers) with a context carrying ``aws_request_id``.
  An invocation that raised, or whose container died, is retried twice (3 attempts) with
  the same request id; after the last one the on-failure destination gets Lambda's record,
  which the event source mapping delivers to the same function as an SQS batch, again
  (ApproximateReceiveCount + 1) while it reports the record failed, 5 receives at most.
- EventBridge: an upload under ``normal/`` or ``urgent/`` becomes an "Object Created"
  event for the function (which submits the manager job); every FAILED Batch job becomes a
  "Batch Job State Change" event for the function, both invoked asynchronously (so Lambda's
  retries and on-failure queue apply to them too).
- Batch: submitted jobs (moto records them) run as processes, array children with their
  index, dependants only after their dependencies succeeded; the job definition's retry
  strategy retries host failures ("Host EC2*") up to 3 attempts and nothing else; a job
  whose dependency failed fails without running ("Dependent Job failed"); a job the runtime
  terminated (moto keeps the reason) fails without running, with that reason.
- Job events: the runtime's PutEvents reach a queue through a rule (see local_cloud); the
  emulator reads it after every step and shows each event in the timeline.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from runtime.environment import AWS_BATCH_JOB_ARRAY_INDEX, BatchContext
from runtime.tools.faults import (
    BATCH_ATTEMPTS,
    MERGE_KILL,
    PART_ERROR,
    PART_KILL,
    SPOT,
    Fault,
    happened,
)
from runtime.tools.local_cloud import (
    FUNCTION_NAME,
    INPUT_BUCKET,
    JOB_DEFINITION,
    JOB_QUEUE,
    REGION,
    RESULT_BUCKET,
    LocalCloud,
    job_environment,
    submitted_jobs,
)

# Lambda's asynchronous invocation config in the stack: 2 retries.
LAMBDA_ATTEMPTS = 3
# The failure queues' redrive policy: a record still failing after 5 receives is parked.
MAX_RECEIVES = 5
ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
# The job definition's retry strategy: these status reasons are retried, anything else exits.
RETRY_STATUS_REASONS = ("Host EC2*", "Your Spot Task was interrupted*")
RETRY_STRATEGY = {
    "attempts": BATCH_ATTEMPTS,
    "evaluateOnExit": [
        *({"onStatusReason": reason, "action": "retry"} for reason in RETRY_STATUS_REASONS),
        {"onReason": "*", "action": "exit"},
    ],
}
_KILLED_EXIT_CODE = 137  # what Batch reports for a container killed by SIGKILL


def runtime_environment(
    cloud: LocalCloud, threshold: int | None, engine: str, greeks: bool = False
) -> dict[str, str]:
    """The environment the Pulumi program gives Lambda and the job definition (what is
    not set here has the runtime's defaults, which are the stacks')."""
    environment = {
        **cloud.environment,
        "RESULT_BUCKET": RESULT_BUCKET,
        "ENGINE": engine,
        "GREEKS": "true" if greeks else "false",
        "JOB_QUEUE": JOB_QUEUE,
        "JOB_DEFINITION": JOB_DEFINITION,
        "AWS_REGION": REGION,
        # Each simulated invocation or job prices on one core, as a 1-vCPU container would;
        # the concurrency comes from running several of them.
        "PRICING_WORKERS": "1",
    }
    if threshold is not None:
        environment["THRESHOLD"] = str(threshold)
    return environment


# -- the timeline -----------------------------------------------------------------------


@dataclass
class Timeline:
    """What happened when, relative to the upload."""

    started: float = field(default_factory=time.perf_counter)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    def add(self, actor: str, message: str) -> None:
        entry = (time.perf_counter() - self.started, actor, message)
        self.events.append(entry)
        if self.echo:
            self.echo(format_event(entry))

    def count(self, actor_prefix: str) -> int:
        return sum(1 for _, actor, _ in self.events if actor.startswith(actor_prefix))

    def messages(self, actor_prefix: str = "") -> list[str]:
        return [message for _, actor, message in self.events if actor.startswith(actor_prefix)]


def format_event(entry: tuple[float, str, str]) -> str:
    seconds, actor, message = entry
    return f"{seconds:8.2f}s  {actor:<14} {message}"


# -- events as AWS delivers them --------------------------------------------------------


_SEQUENCER = iter(range(1, 2**62))


def sequencer() -> str:
    """S3's event sequencer: hexadecimal, growing with every write of a key."""
    return f"{next(_SEQUENCER):016X}"


def s3_event(bucket: str, key: str, version: str | None = None, order: str | None = None) -> dict:
    """An S3 notification as Lambda receives it (keys URL-encoded, as S3 sends them, the
    version id of the object written and its sequencer)."""
    found: dict[str, str] = {"key": quote_plus(key, safe="/"), "sequencer": order or sequencer()}
    if version:
        found["versionId"] = version
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": _iso(time.time()),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "fast-path",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": found,
                },
            }
        ]
    }


def object_created_event(
    bucket: str, key: str, version: str | None = None, order: str | None = None
) -> dict:
    """EventBridge's "Object Created" event for an upload (the stack's rule sends those of
    the Batch lanes to the function)."""
    found: dict[str, str] = {"key": key, "sequencer": order or sequencer()}
    if version:
        found["version-id"] = version
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": _iso(time.time()),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": found,
            "reason": "PutObject",
        },
    }


def on_failure_record(event: dict, request_id: str, error: dict, attempts: int) -> dict:
    """Lambda's on-failure destination record for an invocation whose retries ran out."""
    return {
        "version": "1.0",
        "timestamp": _iso(time.time()),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{FUNCTION_ARN}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {**error, "requestId": request_id, "stackTrace": []},
    }


def sqs_batch(body: dict, message_id: str, receive_count: int, queue_name: str) -> dict:
    """One SQS record as the event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"{message_id}-{receive_count}",
                "body": json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}",
                "awsRegion": REGION,
            }
        ]
    }


def _iso(seconds: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{int(seconds % 1 * 1000):03d}Z"
    )


# -- Lambda: warm containers ------------------------------------------------------------


class _Context:
    """The part of Lambda's context object the handler reads."""

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id
        self.function_name = FUNCTION_NAME
        self.invoked_function_arn = FUNCTION_ARN


def _lambda_container(
    connection: Any, environment: dict[str, str], faults: list[Fault], state_dir: str, log: str
) -> None:
    """One warm Lambda container: the real handler, invocation after invocation."""
    stream = open(log, "a", buffering=1)  # noqa: SIM115 - the container's log stream
    os.dup2(stream.fileno(), 2)
    sys.stderr = stream
    os.environ.update(environment)
    from runtime.tools.faults import install

    install(faults, Path(state_dir))
    from runtime.adapters.lambda_handler import handler

    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        event, request_id = message
        try:
            result = handler(event, _Context(request_id))
        except Exception as exc:  # Lambda reports it as the invocation's error
            connection.send(("error", {"errorType": type(exc).__name__, "errorMessage": str(exc)}))
        else:
            connection.send(("ok", result))


class _Container:
    def __init__(self, emulator: Emulator) -> None:
        context = get_context("spawn")
        self.connection, child = context.Pipe()
        log = emulator.log_dir / f"lambda-{uuid.uuid4().hex[:8]}.log"
        self.process = context.Process(
            target=_lambda_container,
            args=(child, emulator.environment, emulator.faults, str(emulator.state_dir), str(log)),
            daemon=True,
        )
        self.process.start()
        child.close()

    def invoke(self, event: dict, request_id: str) -> tuple[str, Any]:
        try:
            self.connection.send((event, request_id))
            return self.connection.recv()
        except (EOFError, OSError):
            self.process.join(10)
            code = self.process.exitcode
            status = "signal: killed" if code == -9 else f"exit status {code}"
            message = f"RequestId: {request_id} Error: Runtime exited with error: {status}"
            return "died", {"errorType": "Runtime.ExitError", "errorMessage": message}

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


@dataclass
class Invocation:
    """One asynchronous invocation of the function, as Lambda's queue holds it."""

    kind: str  # s3 | eventbridge | command | on-failure | batch-event
    event: dict
    label: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempt: int = 1
    receive: int = 1


class LambdaService:
    """Warm containers (started on first use), ``workers`` of them at a time."""

    def __init__(self, emulator: Emulator, workers: int) -> None:
        self.emulator = emulator
        self.workers = workers
        self.idle: queue.Queue[_Container] = queue.Queue()
        self.started = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def _container(self) -> _Container:
        with self.lock:
            if self.idle.empty() and self.started < self.workers:
                self.started += 1
                return _Container(self.emulator)
        return self.idle.get()

    def _call(self, invocation: Invocation) -> tuple[str, Any]:
        container = self._container()
        kind, payload = container.invoke(invocation.event, invocation.request_id)
        if kind == "died":  # Lambda replaces a crashed container
            container.stop()
            container = _Container(self.emulator)
        if self.emulator.on_invoked is not None:
            self.emulator.on_invoked(self.emulator, invocation, kind, payload)
        self.idle.put(container)
        return kind, payload

    def submit(self, invocation: Invocation) -> Future:
        return self.pool.submit(self._call, invocation)

    def close(self) -> None:
        self.pool.shutdown()
        while not self.idle.empty():
            self.idle.get().stop()


# -- the emulator -----------------------------------------------------------------------


@dataclass
class BatchJob:
    """A submitted Batch job as the emulator runs it (moto only records submissions)."""

    description: dict
    state: str = "SUBMITTED"

    @property
    def job_id(self) -> str:
        return self.description["jobId"]


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
    ) -> None:
        self.cloud = cloud
        self.environment = environment
        self.timeline = timeline
        self.workers = workers
        self.faults = list(faults or [])
        self.watch = watch  # input keys whose job events to show (None: all)
        # Called after each Lambda invocation, before its container takes the next one.
        self.on_invoked = on_invoked
        self.s3 = cloud.client("s3")
        self.batch = cloud.client("batch")
        self.sqs = cloud.client("sqs")
        self._work = tempfile.TemporaryDirectory(prefix="mc-simulate-")
        self.state_dir = Path(self._work.name) / "faults"
        self.state_dir.mkdir()
        # Every container's and job's JSON log lines, as CloudWatch Logs would keep them.
        self.log_dir = logs or Path(self._work.name) / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.events_queue = cloud.job_events_queue()
        self.job_events: list[dict] = []
        self.lambda_service = LambdaService(self, workers)
        self.invocations = 0
        # Every PUT is an S3 event, a re-upload or an overwrite too: versions, not keys.
        self.seen_versions: set[tuple[str, str]] = set()
        self.jobs: dict[str, BatchJob] = {}
        self.drain_job_events(show=False)  # events of earlier runs are not this run's
        for job in self._discover():  # nor are jobs submitted before this emulator started
            job.state = "PAST"

    def close(self) -> None:
        self.lambda_service.close()
        self._work.cleanup()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _step(self, what: str) -> None:
        self.drain_job_events()

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

    # -- Lambda -------------------------------------------------------------------------

    def upload_event(self, key: str) -> Invocation:
        """The event the stack sends the function for the upload at ``key``: an S3
        notification (``fast/``) or EventBridge's Object Created (the Batch lanes)."""
        versions = [v for v in self._upload_versions() if v[0] == key]
        self.seen_versions |= set(versions)
        version = versions[-1][1] if versions else None
        return self._event_for(key, version)

    def _event_for(self, key: str, version: str | None) -> Invocation:
        label = key.rsplit("/", 1)[-1]
        if key.startswith("fast/"):
            return Invocation("s3", s3_event(INPUT_BUCKET, key, version), label)
        return Invocation("eventbridge", object_created_event(INPUT_BUCKET, key, version), label)

    def run(self, invocations: list[Invocation]) -> None:
        """Run invocations and everything they cause (new uploads' events, Batch jobs and
        their failure events) until nothing is left to run."""
        self.run_lambda(invocations)
        while self.run_batch():
            self.run_lambda([])

    def run_lambda(self, invocations: list[Invocation]) -> None:
        """Run invocations and everything they cause, until Lambda's queue is empty."""
        self.seen_versions |= set(self._upload_versions())
        pending: dict[Future, tuple[int, Invocation]] = {}

        def start(invocation: Invocation) -> None:
            self.invocations += 1
            pending[self.lambda_service.submit(invocation)] = (self.invocations, invocation)

        for invocation in invocations:
            start(invocation)
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
            for key, version in self._upload_versions():
                if (key, version) not in self.seen_versions:
                    self.seen_versions.add((key, version))
                    start(self._event_for(key, version))

    def _after_invocation(
        self, invocation: Invocation, kind: str, payload: Any
    ) -> Invocation | None:
        actor = f"lambda {invocation.label}"
        tries = (
            f" (attempt {invocation.attempt}/{LAMBDA_ATTEMPTS})" if invocation.attempt > 1 else ""
        )
        if invocation.kind == "on-failure":
            failed = kind != "ok" or payload.get("batchItemFailures")
            receive = f"receive {invocation.receive}"
            if not failed:
                self.timeline.add(actor, f"on-failure record handled ({receive})")
                return None
            self.timeline.add(actor, f"on-failure record FAILED ({receive}): {_error(payload)}")
            if invocation.receive >= MAX_RECEIVES:
                self.timeline.add(
                    "sqs", f"{invocation.label}: parked after {MAX_RECEIVES} receives"
                )
                return None
            invocation.receive += 1  # the message becomes visible again: one more receive
            for record in invocation.event["Records"]:
                record["attributes"]["ApproximateReceiveCount"] = str(invocation.receive)
            return invocation
        if kind == "ok":
            for outcome in payload.get("outcomes", []):
                self.timeline.add(actor, f"{outcome['action']}: {outcome['detail']}{tries}")
            return None
        self.timeline.add(actor, f"FAILED{tries}: {_error(payload)}")
        if invocation.attempt < LAMBDA_ATTEMPTS:
            invocation.attempt += 1  # same event, same request id
            return invocation
        self.timeline.add(
            "lambda", f"{invocation.label}: retries exhausted, to the on-failure queue"
        )
        record = on_failure_record(
            invocation.event, invocation.request_id, payload, invocation.attempt
        )
        return Invocation(
            "on-failure",
            sqs_batch(record, str(uuid.uuid4()), 1, "pricing-local-fast-failures"),
            invocation.label,
        )

    def _upload_versions(self) -> list[tuple[str, str]]:
        """(key, version id) of every .csv object written under a lane's prefix so far
        (the input bucket is versioned, as the stack's), oldest first per key: each is an
        event for the function (the notification and the rule match .csv in any case)."""
        found = []
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=INPUT_BUCKET)
        for page in pages:
            found.extend(
                (item["Key"], item["VersionId"])
                for item in reversed(page.get("Versions", []))
                if item["Key"].lower().endswith(".csv")
                and item["Key"].split("/", 1)[0] in ("fast", "normal", "urgent")
            )
        return sorted(found, key=lambda kv: kv[0])

    # -- Batch --------------------------------------------------------------------------

    def run_batch(self) -> bool:
        """Run every submitted job not run yet, in submission order, until none is left;
        False if there was none."""
        ran = False
        while True:
            todo = [job for job in self._discover() if job.state == "SUBMITTED"]
            if not todo:
                return ran
            ran = True
            for job in todo:
                self._run_job(job)

    def _discover(self) -> list[BatchJob]:
        for description in submitted_jobs(self.batch):
            if description["jobId"] not in self.jobs:
                self.jobs[description["jobId"]] = BatchJob(description)
        return list(self.jobs.values())

    def _terminated(self, job: BatchJob) -> str | None:
        """The reason the runtime gave when it terminated ``job`` (moto keeps it)."""
        found = self.batch.describe_jobs(jobs=[job.job_id]).get("jobs", [])
        return found[0].get("statusReason") if found else None

    def _run_job(self, job: BatchJob) -> None:
        if job.state != "SUBMITTED":
            return  # run already, as another job's dependency
        description = job.description
        role = job_environment(description).get("BATCH_ROLE") or "manager"
        terminated = self._terminated(job)
        if terminated:
            job.state = "FAILED"
            self.timeline.add(f"batch {role}", f"FAILED without running: {terminated}")
            self._job_failed(description, terminated, attempts=[])
            return
        for dependency in description.get("dependsOn") or []:
            other = self.jobs.get(dependency["jobId"])
            if other is not None:
                self._run_job(other)
            if other is None or other.state != "SUCCEEDED":
                job.state = "FAILED"
                reason = f"Dependent Job failed: {dependency['jobId']}"
                self.timeline.add(f"batch {role}", f"FAILED without running: {reason}")
                self._job_failed(description, reason, attempts=[])
                return
        size = (description.get("arrayProperties") or {}).get("size")
        if size:
            self.timeline.add("batch", f"array job of {size} children, {self.workers} at a time")
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(lambda i: self._run_attempts(description, i), range(size)))
            failed = [i for i, ok in enumerate(results) if not ok]
            job.state = "FAILED" if failed else "SUCCEEDED"
            if failed:
                reason = f"Array Child Job failed: children {failed}"
                self.timeline.add("batch", f"array job FAILED: {reason}")
                self._job_failed(description, reason, attempts=[])
            self._step("array")
            return
        job.state = "SUCCEEDED" if self._run_attempts(description, None) else "FAILED"
        self._step(role)

    def _run_attempts(self, description: dict, index: int | None) -> bool:
        """One job (or array child) under the retry strategy; True if it succeeded."""
        environment = job_environment(description)
        role = environment.get("BATCH_ROLE") or "manager"
        part = _part_of(environment, index)
        actor = f"batch {role}" + (f" {index}" if index is not None else "")
        attempts: list[dict] = []
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            faults = self._faults_for(role, part, attempt)
            merge_kills = happened(self.state_dir, MERGE_KILL)
            started = time.time()
            done = self._run_process(description, index, attempt, faults)
            tries = f" (attempt {attempt}/{BATCH_ATTEMPTS})" if attempt > 1 else ""
            if done.returncode == 0:
                self.timeline.add(actor, _last_message(done) + tries)
                return True
            host_failure = any(f.kind == SPOT for f in faults) or (
                role == "merge" and happened(self.state_dir, MERGE_KILL) > merge_kills
            )
            code = _KILLED_EXIT_CODE if done.returncode < 0 else done.returncode
            if host_failure:
                reason = f"Host EC2 (instance i-0{uuid.uuid4().hex[:16]}) terminated."
                container_reason = None
            else:
                reason = "Essential container in task exited"
                container_reason = (
                    "OutOfMemoryError: Container killed" if done.returncode < 0 else None
                )
            attempts.append(_attempt(started, code, reason, container_reason))
            message = _last_message(done) if done.returncode > 0 else "killed"
            self.timeline.add(actor, f"FAILED{tries}: {message}, exit code {code}: {reason}")
            if not any(fnmatch.fnmatchcase(reason, r) for r in RETRY_STATUS_REASONS):
                break  # the retry strategy: anything but a host failure exits
        self._job_failed(description, attempts[-1]["statusReason"], attempts, index)
        return False

    def _faults_for(self, role: str, part: int | None, attempt: int) -> list[Fault]:
        active = []
        for fault in self.faults:
            if fault.kind in (PART_ERROR, PART_KILL) and role == "child" and fault.part == part:
                active.append(fault)
            elif fault.kind == SPOT and role == "child" and fault.part == part:
                if attempt <= fault.times:
                    active.append(fault)
            elif fault.kind == MERGE_KILL and role == "merge":
                active.append(fault)
        return active

    def _run_process(
        self, description: dict, index: int | None, attempt: int, faults: list[Fault]
    ) -> subprocess.CompletedProcess:
        job_id = description["jobId"] + (f":{index}" if index is not None else "")
        process_env = {
            **os.environ,
            **self.environment,
            **job_environment(description),
            "AWS_BATCH_JOB_ID": job_id,
            "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        }
        if index is not None:
            process_env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        parameters = description.get("parameters", {})
        args = [parameters.get("S3bucket", ""), parameters.get("S3key", "")]
        command = [sys.executable, "-m", "runtime.entrypoint", *args]
        if faults:
            fault_args = [f"--fault={fault}" for fault in faults]
            command = [
                sys.executable,
                "-m",
                "runtime.tools.faulty_job",
                *fault_args,
                f"--state-dir={self.state_dir}",
                "--",
                *args,
            ]
        done = subprocess.run(command, env=process_env, capture_output=True, text=True, check=False)
        log = self.log_dir / f"batch-{job_id.replace(':', '-')}-{attempt}.log"
        log.write_text(done.stderr or "")
        return done

    def _job_failed(
        self, description: dict, reason: str, attempts: list[dict], index: int | None = None
    ) -> None:
        """EventBridge's rule on FAILED jobs of the stack's queue invokes the function."""
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


def batch_state_change(
    description: dict, reason: str, attempts: list[dict], index: int | None = None
) -> dict:
    """A "Batch Job State Change" FAILED event for a described job (or one array child)."""
    job_id = description["jobId"] + (f":{index}" if index is not None else "")
    arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"
    array = description.get("arrayProperties") or {}
    if index is not None:
        array_properties: dict | None = {"index": index}
    elif array.get("size"):
        array_properties = {"size": array["size"], "statusSummary": {}}
    else:
        array_properties = None
    container = dict(description.get("container") or {})
    container["environment"] = [
        {"name": name, "value": value} for name, value in job_environment(description).items()
    ]
    last = (attempts[-1].get("container") or {}) if attempts else {}
    if "exitCode" in last:
        container["exitCode"] = last["exitCode"]
    if last.get("reason"):
        container["reason"] = last["reason"]
    now = int(time.time() * 1000)
    detail = {
        "jobArn": arn,
        "jobName": description.get("jobName", ""),
        "jobId": job_id,
        "jobQueue": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{JOB_QUEUE}",
        "status": "FAILED",
        "attempts": attempts,
        "statusReason": reason,
        "createdAt": description.get("createdAt", now),
        "retryStrategy": RETRY_STRATEGY,
        "stoppedAt": now,
        "dependsOn": description.get("dependsOn") or [],
        "jobDefinition": description.get("jobDefinition", ""),
        "parameters": description.get("parameters") or {},
        "container": container,
        "tags": {},
        "propagateTags": False,
        "platformCapabilities": ["EC2"],
    }
    if attempts:  # a job failed by its dependency never started
        detail["startedAt"] = attempts[0]["startedAt"]
    if array_properties is not None:
        detail["arrayProperties"] = array_properties
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": ACCOUNT,
        "time": _iso(time.time()),
        "region": REGION,
        "resources": [arn],
        "detail": detail,
    }


def _attempt(started: float, code: int, reason: str, container_reason: str | None) -> dict:
    container: dict = {
        "exitCode": code,
        "logStreamName": "pricing/default/local",
        "networkInterfaces": [],
    }
    if container_reason:
        container["reason"] = container_reason
    return {
        "container": container,
        "startedAt": int(started * 1000),
        "stoppedAt": int(time.time() * 1000),
        "statusReason": reason,
    }


def _part_of(environment: dict[str, str], index: int | None) -> int | None:
    """The part a child prices: its index, or the one PART_INDEXES maps it to."""
    array = {AWS_BATCH_JOB_ARRAY_INDEX: str(index)} if index is not None else {}
    return BatchContext.from_env({**environment, **array}).part_index


def _last_message(process: subprocess.CompletedProcess) -> str:
    """The job's last log line's message (the runtime logs JSON lines)."""
    lines = (process.stderr or process.stdout or "").strip().splitlines()
    for line in reversed(lines):
        try:
            message = json.loads(line).get("message")
        except (ValueError, AttributeError):
            continue
        if message:
            # "part-priced s3://bucket/key: detail": the timeline knows the upload already.
            return re.sub(r"^(\S+) s3://[^:]*: ", r"\1: ", str(message))
    return lines[-1] if lines else f"exit code {process.returncode}"


def _error(payload: Any) -> str:
    if isinstance(payload, dict) and "errorType" in payload:
        return f"{payload['errorType']}: {payload.get('errorMessage', '')}"
    if isinstance(payload, dict) and payload.get("batchItemFailures"):
        return "the function reported the record failed"
    return str(payload)


def describe(detail: dict) -> str:
    """One line for a job event."""
    state = detail.get("state")
    text = f"{state} {detail.get('inputKey')}"
    if state == "done":
        text += f": {detail.get('rows')} rows ({detail.get('rowsWithErrors')} with errors)"
        text += f", {detail.get('parts')} part(s), {detail.get('seconds')} s"
    elif detail.get("error"):
        text += f": {detail['error']}"
    return text
