"""The world the explorer plays: AWS as the stack wires it, around the real handlers.

Everything the runtime does runs for real: ``lambda_handler.handle`` for every Lambda
invocation, ``batch_job.run`` for every Batch job, against S3 (moto, or the in-memory double
for long runs). What AWS would do next is modelled here, and the explorer chooses the order:

- S3 notifications for every object written under ``fast/`` (parts included), EventBridge
  "Object Created" events for uploads to the Batch lanes and ``auto/``, job commands, Batch
  state-change
  events: each an asynchronous invocation with Lambda's 3 attempts (same request id), then
  an on-failure record in an SQS queue, delivered again while it fails, 5 receives at most;
- Batch: submitted jobs with their dependencies, array children, the retry strategy (host
  failures retried 3 times, anything else final), terminated jobs failing without running,
  jobs the queue gives up on, and a FAILED event for every job that failed;
- faults inside any actor: killed after any S3 call, a conditional write whose response is
  lost after it committed (the SDK's retry then gets 412), EventBridge refusing PutEvents.

``check_always`` holds after every step; ``check_settled`` once every delivery drained.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from runtime.adapters import batch_job, lambda_handler
from runtime.adapters.batch_queue import BatchQueue
from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.core.csvio import FileError, read_table
from runtime.engines import get_engine
from runtime.environment import BatchContext, RuntimeConfig, parse_part_indexes
from runtime.planning.usage import Cost
from runtime.pricing import price_table
from runtime.protocol import lifecycle
from runtime.protocol.events import EventDeliveryError
from runtime.protocol.steps import JobSteps
from runtime.tools.aws_events import (
    batch_state_change,
    object_created_event,
    on_failure_record,
    receive_again,
    s3_event,
    sqs_batch,
)

INPUT = "explorer-input"
RESULT = "explorer-result"
QUEUE = "explorer-normal"
URGENT_QUEUE = "explorer-urgent"
DEFINITION = "explorer-pricing"
LAMBDA_ATTEMPTS = 3
# Lambda retries a failed asynchronous invocation after about 1 and then 2 minutes.
RETRY_DELAYS = (60.0, 120.0)
MAX_RECEIVES = 5
# The failure queues' visibility timeout: 6 x the function's timeout (components/shared.py).
VISIBILITY_SECONDS = 6 * 900.0
BATCH_ATTEMPTS = 3
_LANE_PREFIXES = ("fast/", "normal/", "urgent/", "auto/")


class Killed(BaseException):
    """The process running an actor died here (BaseException: no handler catches it)."""


@dataclass(frozen=True)
class Faults:
    """What goes wrong inside one execution of an actor."""

    kill_after: int | None = None  # the process dies right after its Nth S3 call
    lose_response: int | None = None  # its Nth conditional write commits, then reads 412
    # By name, for scenarios: dies right after writing a key ending so; loses the response
    # of its first conditional write of a key ending so.
    kill_after_writing: str | None = None
    lose_response_writing: str | None = None


class FaultyS3:
    """An S3 client that counts the calls of one execution and injects its faults."""

    _CALLS = ("head_object", "get_object", "put_object", "delete_object", "delete_objects")

    def __init__(self, base: Any, faults: Faults, world: World, gate: Any = None) -> None:
        self.base, self.faults, self.world = base, faults, world
        self.gate = gate  # an Actor: the call waits until the explorer lets it run
        self.calls = 0
        self.conditional_writes = 0
        self.lost_named = False

    def __getattr__(self, name: str) -> Any:
        if name not in self._CALLS:
            return getattr(self.base, name)
        method = getattr(self.base, name)

        def call(**arguments: Any) -> Any:
            self._before()
            answer = method(**arguments)
            key = str(arguments.get("Key", ""))
            if name == "put_object":
                self.world.observe_put(arguments, answer)
            lost = False
            if name == "put_object" and ("IfMatch" in arguments or "IfNoneMatch" in arguments):
                self.conditional_writes += 1
                lost = self.conditional_writes == self.faults.lose_response
                named = self.faults.lose_response_writing
                if named and key.endswith(named) and not self.lost_named:
                    lost = self.lost_named = True
            self._tick()
            named = self.faults.kill_after_writing
            if name == "put_object" and named and key.endswith(named):
                raise Killed(f"killed after writing {key}")
            if lost:
                raise ClientError(
                    {"Error": {"Code": "PreconditionFailed", "Message": "lost response"}},
                    "PutObject",
                )
            return answer

        return call

    def get_paginator(self, name: str) -> Any:
        paginator = self.base.get_paginator(name)
        outer = self

        class Counted:
            def paginate(self, **arguments: Any) -> list[dict]:
                outer._before()
                pages = list(paginator.paginate(**arguments))
                outer._tick()
                return pages

        return Counted()

    def _before(self) -> None:
        if self.gate is not None:
            self.gate.wait_turn()

    def _tick(self) -> None:
        self.calls += 1
        if self.calls == self.faults.kill_after:
            raise Killed(f"killed after S3 call {self.calls}")


def check_own_attempt(document: dict) -> None:
    """I6: an attempt ends only by an actor of that attempt (its publish step names the
    fence it acted for): a late result or failure of another attempt never ends it."""
    last = (document.get("steps") or [""])[-1]
    if document["state"] in (lifecycle.DONE, lifecycle.FAILED) and last.startswith("publish:"):
        acted_for = last.split(":")[1]
        ended = str(lifecycle.Fence.of(document))
        assert acted_for == ended, f"I6: attempt {ended} ended by an actor of {acted_for}"


class Actor:
    """One execution of a handler in its own thread, paused before every S3 call until the
    explorer lets it go on: so two actors' calls interleave in any order the explorer picks
    (one thread runs at a time, so a run is deterministic). Killed while paused, it dies
    there, as a process does."""

    def __init__(self, work: Any) -> None:
        self._work = work
        self._turn = threading.Condition()
        self.allowed = 0
        self.paused = False
        self.done = False
        self.kill = False
        self.outcome: tuple[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            outcome: tuple[str, Any] = ("ok", self._work(self))
        except Killed as exc:
            outcome = ("killed", exc)
        except Exception as exc:
            outcome = ("error", exc)
        with self._turn:
            self.outcome, self.done = outcome, True
            self._turn.notify_all()

    def wait_turn(self) -> None:
        """In the actor's thread, before an S3 call."""
        with self._turn:
            while self.allowed == 0 and not self.kill:
                self.paused = True
                self._turn.notify_all()
                self._turn.wait()
            self.paused = False
            if self.kill:
                raise Killed("killed while waiting for S3")
            self.allowed -= 1

    def advance(self, calls: int | None) -> None:
        """Let it make ``calls`` more S3 calls (None: run to the end), and wait until it
        pauses again or ends."""
        with self._turn:
            self.allowed = 10**9 if calls is None else calls
            if not self._thread.is_alive() and not self.done:
                self._thread.start()
            self._turn.notify_all()
            while not (self.done or (self.paused and self.allowed == 0)):
                self._turn.wait()

    def stop(self) -> None:
        """Kill it where it waits."""
        with self._turn:
            self.kill = True
            if not self._thread.is_alive() and not self.done:
                self._thread.start()
            self._turn.notify_all()
            while not self.done:
                self._turn.wait()


@dataclass
class InFlight:
    """An invocation or a Batch job attempt that started and has not ended."""

    actor: Actor
    item: Pending | None = None  # a Lambda invocation
    job: BatchRecord | None = None  # a Batch job attempt
    host_failure: bool = False

    @property
    def label(self) -> str:
        if self.item is not None:
            return f"{self.item.kind} {self.item.request_id} attempt {self.item.attempt}"
        assert self.job is not None
        return f"batch {self.job.job_id} {self.job.environment.get('BATCH_ROLE')}"


class RecordingEvents:
    """EventBridge's PutEvents, refusing while ``refusing`` is set."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.refusing = False

    def publish(self, detail: dict) -> None:
        if self.refusing:
            raise EventDeliveryError("EventBridge is refusing PutEvents (explorer)")
        if any(d["eventId"] == detail["eventId"] for d in self.world.delivered):
            # A repeat is allowed in one window only: EventBridge took it before, and the
            # actor that delivered it has not cleared it from the outbox (it died or stalled
            # past the lease, and the next actor took the outbox over).
            status = self.world.status(detail["inputKey"]) or {}
            outbox = {e.get("detail", {}).get("eventId") for e in status.get("outbox", [])}
            if detail["eventId"] in outbox:
                self.world.may_repeat.add(detail["eventId"])
        self.world.delivered.append(detail)


@dataclass
class BatchRecord:
    job_id: str
    request: dict
    state: str = "SUBMITTED"  # SUBMITTED | SUCCEEDED | FAILED
    attempt: int = 1
    terminated: str | None = None
    attempts: list[dict] = field(default_factory=list)  # as DescribeJobs lists them

    @property
    def environment(self) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.request["containerOverrides"]["environment"]}

    def description(self) -> dict:
        """As DescribeJobs shows it, for the state-change event."""
        size = (self.request.get("arrayProperties") or {}).get("size")
        parent = self.job_id.partition(":")[0]
        return {
            "jobId": parent,
            "jobName": self.request["jobName"],
            "parameters": self.request["parameters"],
            "container": {"environment": self.request["containerOverrides"]["environment"]},
            "arrayProperties": {"size": size} if size else {},
            "dependsOn": self.request.get("dependsOn") or [],
        }


class FakeBatch:
    """The Batch API the runtime calls: submissions are recorded, and the explorer runs them."""

    def __init__(self) -> None:
        self.jobs: dict[str, BatchRecord] = {}
        self._ids = itertools.count(1)

    def submit_job(self, **request: Any) -> dict:
        job_id = f"job-{next(self._ids):05d}"
        size = (request.get("arrayProperties") or {}).get("size")
        if size:
            self.jobs[job_id] = BatchRecord(job_id, request, state="ARRAY")
            for index in range(size):
                self.jobs[f"{job_id}:{index}"] = BatchRecord(f"{job_id}:{index}", request)
        else:
            self.jobs[job_id] = BatchRecord(job_id, request)
        return {"jobId": job_id}

    def terminate_job(self, jobId: str, reason: str) -> dict:
        for job_id, record in self.jobs.items():
            if job_id.partition(":")[0] == jobId and record.state in (
                "SUBMITTED",
                "ARRAY",
                "RUNNING",
            ):
                record.terminated = reason
        return {}


@dataclass
class Pending:
    """An asynchronous invocation (or an SQS delivery) waiting for the function."""

    kind: str  # s3 | eventbridge | batch-event | command | schedule | sqs
    event: dict
    request_id: str
    attempt: int = 1
    receive: int = 1
    due: float = 0.0  # not before: Lambda's retry delays, SQS's visibility timeout


@dataclass
class Upload:
    key: str
    version: str
    body: bytes


@dataclass
class World:
    s3: Any  # the base client (moto or MemoryS3)
    threshold: int = 3
    greeks: bool = False
    urgent: bool = True
    auto_fast_seconds: int = 60  # the auto lane's line (0: every auto/ upload goes normal)
    max_job_usd: float = 0.0  # the budget guard (0: off)
    price_table: str = ""  # the priceTable override (a deploy may change prices)
    # The engine jobs are planned for (the world prices with qdfp whatever it is called, so
    # results stay comparable), and other planning settings (PLAN_SETTINGS' names).
    engine_name: str = "qdfp"
    planning: dict = field(default_factory=dict)
    clock: float = 1_800_000_000.0
    pending: list[Pending] = field(default_factory=list)
    parked: list[Pending] = field(default_factory=list)
    delivered_events: list[Pending] = field(default_factory=list)  # for duplicates
    uploads: list[Upload] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    delivered: list[dict] = field(default_factory=list)  # job events EventBridge took
    may_repeat: set[str] = field(default_factory=set)
    terminal_states: set[str] = field(default_factory=set)  # event ids a status reached
    in_flight: list[InFlight] = field(default_factory=list)
    scheduled_runs: set[str] = field(default_factory=set)  # the keys of runs fired
    steps_run: int = 0
    costs_seen: dict = field(default_factory=dict)  # (key, token) -> attempts last counted

    def __post_init__(self) -> None:
        self.batch = FakeBatch()
        self.events = RecordingEvents(self)
        self.engine = get_engine("qdfp")
        self._requests = itertools.count(1)
        self._sequencers = itertools.count(1)
        for bucket in (INPUT, RESULT):
            self.s3.create_bucket(Bucket=bucket)
            with contextlib.suppress(Exception):  # MemoryS3 is always versioned
                self.s3.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                )

    # -- what the runtime is given ---------------------------------------------------------

    def config(self) -> RuntimeConfig:
        return RuntimeConfig(
            result_bucket=RESULT,
            threshold=self.threshold,
            engine=self.engine_name,
            max_parts=4,
            greeks=self.greeks,
            job_queue=QUEUE,
            urgent_job_queue=URGENT_QUEUE if self.urgent else "",
            job_definition=DEFINITION,
            region="us-east-1",
            auto_fast_seconds=self.auto_fast_seconds,
            max_job_usd=self.max_job_usd,
            price_table=self.price_table,
            planning=tuple(sorted(self.planning.items())),
        )

    def steps(self, faults: Faults, actor: Actor | None = None) -> JobSteps:
        """A container: the current settings (a deploy changes them for new containers)."""
        steps = JobSteps(
            ObjectStore(FaultyS3(self.s3, faults, self, actor)),
            self.config(),
            engine=self.engine,
            events=self.events,
            batch=BatchQueue(DEFINITION, QUEUE, self.batch),
            clock=lambda: self.clock,
            sleep=lambda seconds: None,
        )
        steps.upload_threads = 1  # one S3 call at a time: the faults hit the same call
        return steps

    def request_id(self) -> str:
        return f"request-{next(self._requests):06d}"

    # -- the user ---------------------------------------------------------------------------

    def upload(self, key: str, body: bytes) -> None:
        written = self.s3.put_object(Bucket=INPUT, Key=key, Body=body)
        self.uploads.append(Upload(key, written["VersionId"], body))
        self.deleted.discard(key)
        self._notify(key, written["VersionId"])

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=INPUT, Key=key)
        self.deleted.add(key)

    def fire_schedule(self, name: str, book: str, path: str, at: str) -> None:
        """EventBridge Scheduler invokes the function for one run of a schedule."""
        payload = {
            "source": "mc-pricing.schedule",
            "schedule": name,
            "book": book,
            "path": path,
            "inputBucket": INPUT,
            "scheduledTime": at,
        }
        self.scheduled_runs.add(keys.scheduled_key(path, name, book, at))
        self.pending.append(Pending("schedule", payload, self.request_id()))

    def command(self, name: str, key: str, force: bool = False) -> bool:
        status = self.status(key)
        wanted = lifecycle.RUNNING if name == "cancel" else lifecycle.FAILED
        if status is None or status["state"] != wanted:
            return False
        payload = lambda_handler.command(name, key, str(lifecycle.Fence.of(status)), force)
        payload["requestId"] = self.request_id()
        self.pending.append(Pending("command", payload, self.request_id()))
        return True

    # -- what S3 and EventBridge send -------------------------------------------------------

    def _notify(self, key: str, version: str) -> None:
        if not key.lower().endswith(".csv") or not key.startswith(_LANE_PREFIXES):
            return
        order = f"{next(self._sequencers):020X}"
        if key.startswith("fast/"):
            event = s3_event(INPUT, key, version, order)
            self.pending.append(Pending("s3", event, self.request_id()))
        else:
            event = object_created_event(INPUT, key, version, order)
            self.pending.append(Pending("eventbridge", event, self.request_id()))

    def observe_put(self, arguments: dict, answer: dict) -> None:
        """Every object the runtime writes: parts under ``fast/`` start invocations, and
        every status written tells which terminal states were reached."""
        key, bucket = arguments["Key"], arguments["Bucket"]
        if bucket == INPUT:
            if not keys.is_fast_part(key):  # a scheduled run's copy: an upload like any
                self.uploads.append(Upload(key, answer["VersionId"], bytes(arguments["Body"])))
            self._notify(key, answer["VersionId"])
        elif key.endswith(keys.STATUS_SUFFIX):
            document = json.loads(arguments["Body"])
            check_own_attempt(document)
            if document["state"] in lifecycle.TERMINAL_STATES:
                fence = lifecycle.Fence.of(document)
                self.terminal_states.add(f"{fence}:{document['state']}")
            for entry in document.get("outbox", []):
                if entry["kind"] == "event":  # a superseded job's event: its own state
                    self.terminal_states.add(entry["detail"]["eventId"])

    # -- running the function ---------------------------------------------------------------

    def invoke(self, index: int, faults: Faults) -> None:
        """Run one pending invocation to its end; what it causes is queued."""
        self.finish(self.begin(index, faults))

    def begin(self, index: int, faults: Faults) -> int:
        """Start one pending invocation, paused before its first S3 call: its index among
        the executions in flight."""
        item = self.pending.pop(index % len(self.pending))
        self.clock = max(self.clock, item.due)  # running it means its time came
        self.steps_run += 1
        if item.kind != "sqs":
            self.delivered_events.append(item)
        settings = self.config()  # the container's, when it started

        def work(actor: Actor) -> dict:
            steps = self.steps(faults, actor)
            steps.config = settings
            return lambda_handler.handle(steps, item.event, item.request_id)

        return self._start(InFlight(Actor(work), item=item))

    def _start(self, flight: InFlight) -> int:
        self.in_flight.append(flight)
        self._advance(flight, 0)
        if flight.actor.done:
            self._end(flight)
            return -1
        return len(self.in_flight) - 1

    def _advance(self, flight: InFlight, calls: int | None) -> None:
        flight.actor.advance(calls)

    def advance(self, index: int, calls: int | None) -> bool:
        """Let an execution in flight make ``calls`` more S3 calls (None: to its end)."""
        if not self.in_flight:
            return False
        flight = self.in_flight[index % len(self.in_flight)]
        job = flight.job
        if job is not None and job.terminated:  # Batch's TerminateJob kills a running job
            flight.actor.stop()
        else:
            self._advance(flight, calls)
        if flight.actor.done:
            self._end(flight)
        return True

    def finish(self, index: int) -> None:
        if index >= 0:
            self.advance(index, None)

    def kill(self, index: int) -> bool:
        """The process of an execution in flight dies where it waits."""
        if not self.in_flight:
            return False
        flight = self.in_flight[index % len(self.in_flight)]
        flight.actor.stop()
        self._end(flight)
        return True

    def close(self) -> None:
        """Stop every thread still waiting (a run that ended early)."""
        for flight in list(self.in_flight):
            flight.actor.stop()
        self.in_flight.clear()

    def _end(self, flight: InFlight) -> None:
        self.in_flight.remove(flight)
        kind, value = flight.actor.outcome or ("killed", None)
        if flight.job is not None:
            self._job_ended(flight, kind, value)
            return
        item = flight.item
        assert item is not None
        failed: dict | None = None
        answer: dict = {}
        if kind == "ok":
            answer = value
        elif kind == "killed":
            failed = {"errorType": "Runtime.ExitError", "errorMessage": str(value)}
        else:
            failed = {"errorType": type(value).__name__, "errorMessage": str(value)}
        if item.kind == "sqs":
            if failed or answer.get("batchItemFailures"):
                self._receive_again(item)
            return
        if failed is None:
            return
        if item.attempt < LAMBDA_ATTEMPTS:
            due = self.clock + RETRY_DELAYS[item.attempt - 1]
            self.pending.append(
                Pending(item.kind, item.event, item.request_id, item.attempt + 1, due=due)
            )
            return
        record = on_failure_record(item.event, item.request_id, failed, item.attempt)
        batch = sqs_batch(record, self.request_id(), 1, "explorer-fast-failures")
        self.pending.append(Pending("sqs", batch, self.request_id()))

    def _receive_again(self, item: Pending) -> None:
        if item.receive >= MAX_RECEIVES:
            self.parked.append(item)
            return
        receive = item.receive + 1
        receive_again(item.event, receive)
        due = self.clock + VISIBILITY_SECONDS
        self.pending.append(Pending("sqs", item.event, item.request_id, receive=receive, due=due))

    def dead_letter(self, index: int) -> bool:
        """EventBridge could not invoke the function (throttled for a day): the event goes
        to the rule's dead-letter queue, whose mapping delivers it to the function."""
        candidates = [
            i for i, p in enumerate(self.pending) if p.kind in ("eventbridge", "batch-event")
        ]
        if not candidates:
            return False
        item = self.pending.pop(candidates[index % len(candidates)])
        attributes = {"ERROR_CODE": {"stringValue": "THROTTLING", "dataType": "String"}}
        batch = sqs_batch(item.event, self.request_id(), 1, "explorer-dead-letters", attributes)
        self.pending.append(Pending("sqs", batch, self.request_id()))
        return True

    def duplicate(self, index: int) -> bool:
        """A delivered event arrives again (S3 and EventBridge deliver at least once)."""
        if not self.delivered_events:
            return False
        item = self.delivered_events[index % len(self.delivered_events)]
        self.pending.append(Pending(item.kind, item.event, self.request_id()))
        return True

    # -- running Batch ----------------------------------------------------------------------

    def runnable(self) -> list[BatchRecord]:
        return [
            job
            for job in self.batch.jobs.values()
            if job.state == "SUBMITTED" and self._dependencies(job) != "waiting"
        ]

    def _dependencies(self, job: BatchRecord) -> str:
        states = [
            self._job_state(dependency["jobId"])
            for dependency in job.request.get("dependsOn") or []
        ]
        if "FAILED" in states:
            return "failed"
        return "waiting" if any(s != "SUCCEEDED" for s in states) else "ready"

    def _job_state(self, job_id: str) -> str:
        record = self.batch.jobs[job_id]
        if record.state != "ARRAY":
            return record.state
        children = [j for i, j in self.batch.jobs.items() if i.startswith(f"{job_id}:")]
        if any(c.state == "FAILED" for c in children):
            return "FAILED"
        return "SUCCEEDED" if all(c.state == "SUCCEEDED" for c in children) else "SUBMITTED"

    def run_batch(self, index: int, faults: Faults, host_failure: bool) -> bool:
        """Batch places one runnable job and it runs to its end."""
        started = self.begin_batch(index, faults, host_failure)
        if started is None:
            return False
        self.finish(started)
        return True

    def begin_batch(self, index: int, faults: Faults, host_failure: bool) -> int | None:
        """Batch places one runnable job (or fails one that cannot run): its index among
        the executions in flight (-1: it ended at once; None: nothing was runnable).
        ``host_failure``: if the process is killed, its host was reclaimed (retried)."""
        runnable = self.runnable()
        if not runnable:
            return None
        job = runnable[index % len(runnable)]
        self.steps_run += 1
        if job.terminated or self._dependencies(job) == "failed":
            reason = job.terminated or "Dependent Job failed"
            self._failed(job, reason, attempts=[])
            return -1
        environment = job.environment
        _, _, index_text = job.job_id.partition(":")
        context = BatchContext(
            job_id=job.job_id,
            role=environment.get("BATCH_ROLE", ""),
            fence=environment.get("JOB_FENCE", ""),
            array_index=int(index_text) if index_text else None,
            attempt=job.attempt,
            part_indexes=parse_part_indexes(environment.get("PART_INDEXES", "")),
        )
        parameters = job.request["parameters"]
        settings = self.config()
        job.state = "RUNNING"

        def work(actor: Actor) -> None:
            steps = self.steps(faults, actor)
            steps.config = settings
            batch_job.run(steps, parameters["S3bucket"], parameters["S3key"], context)

        return self._start(InFlight(Actor(work), job=job, host_failure=host_failure))

    def _job_ended(self, flight: InFlight, kind: str, value: Any) -> None:
        job = flight.job
        assert job is not None
        if job.terminated and kind == "killed":
            self._failed(job, job.terminated, attempts=[])
            return
        failure = None
        if kind == "error":
            failure = f"Essential container in task exited: {type(value).__name__}"
        if kind == "killed":
            failure = (
                "Host EC2 (instance i-0explorer) terminated."
                if flight.host_failure
                else "OutOfMemoryError: Container killed due to memory usage"
            )
        if failure is not None:
            # Batch's record of the attempt (each ran a minute of the world's clock): the
            # job's cost counts the attempts that failed too
            stopped = int(self.clock * 1000)
            job.attempts.append(
                {
                    "statusReason": failure,
                    "container": {"exitCode": 137 if kind == "killed" else 1},
                    "startedAt": stopped - 60_000,
                    "stoppedAt": stopped,
                }
            )
        if kind == "killed" and flight.host_failure and job.attempt < BATCH_ATTEMPTS:
            job.attempt += 1  # the retry strategy retries a host failure
            job.state = "SUBMITTED"
            return
        if failure is None:
            job.state = "SUCCEEDED"
            return
        self._failed(job, failure, attempts=list(job.attempts))

    def give_up(self, index: int) -> bool:
        """The queue's time limit cancels a job that waited too long (RUNNABLE)."""
        runnable = self.runnable()
        if not runnable:
            return False
        self._failed(runnable[index % len(runnable)], "Job cancelled: RUNNABLE timeout", [])
        return True

    def _failed(self, job: BatchRecord, reason: str, attempts: list[dict]) -> None:
        """Batch marks the job FAILED and EventBridge invokes the function with it."""
        job.state = "FAILED"
        _, _, index_text = job.job_id.partition(":")
        event = batch_state_change(
            job.description(), reason, attempts, int(index_text) if index_text else None
        )
        self.pending.append(Pending("batch-event", event, self.request_id()))
        parent = job.job_id.partition(":")[0]
        if index_text and self._job_state(parent) == "FAILED":
            array = self.batch.jobs[parent]
            if array.state == "ARRAY":
                array.state = "FAILED"  # the array fails with its first failed child
                event = batch_state_change(
                    array.description(), f"Array Child Job failed: {reason}", []
                )
                self.pending.append(Pending("batch-event", event, self.request_id()))

    # -- what users see -----------------------------------------------------------------------

    def status(self, key: str) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=RESULT, Key=keys.status_key(key))["Body"].read()
        except ClientError:
            return None
        return json.loads(body)

    def current(self, key: str) -> tuple[bytes, dict, str] | None:
        """The current object at ``key`` in the result bucket: (body, metadata, version)."""
        try:
            found = self.s3.get_object(Bucket=RESULT, Key=key)
        except ClientError:
            return None
        return found["Body"].read(), found.get("Metadata", {}), found["VersionId"]

    def versions(self, key: str) -> list[str]:
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=RESULT, Prefix=key)
        return [
            v["VersionId"] for page in pages for v in page.get("Versions", []) if v["Key"] == key
        ]

    def job_cost(self, status: dict) -> Cost:
        """What the job's usage records add up to (read as an operator would)."""
        steps = self.steps(Faults())
        return steps.usage.cost(lifecycle.plan_of(status).runner, status["token"])

    def keys_uploaded(self) -> list[str]:
        return sorted({u.key for u in self.uploads})

    def expected(self, upload: Upload, greeks: bool) -> bytes | None:
        """The result of an upload, priced whole (None: the file cannot be priced)."""
        try:
            table = read_table(upload.body, greeks=greeks)
        except FileError:
            return None
        return price_table(table, self.engine, greeks=greeks).csv

    def quiet(self) -> bool:
        return not self.pending and not self.runnable() and not self.parked and not self.in_flight
