"""Measuring one step of this process: wall and CPU time, and the AWS requests it sent.

``StepMeter`` turns a step (a Lambda invocation's work, a Batch job) into a
``UsageRecord``; ``RequestCounter`` counts the HTTP requests a boto3 client sends, by
service and operation, through botocore's ``before-send`` event, which fires once per HTTP
attempt (so SDK retries count, as S3 bills them). It is installed from outside on any
client, e.g. ``RequestCounter().install(store.client)`` for the job protocol's
``ObjectStore``, without changing the adapter.

What the stack must tell a Batch job (the image cannot see it): ``JOB_VCPUS``,
``JOB_MEMORY_MB`` and ``CAPACITY`` (EC2, SPOT, FARGATE or FARGATE_SPOT; named in
runtime/environment.py). Lambda's memory
comes from ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``. The mapping is passed in: this module
never reads ``os.environ`` itself (runtime/environment.py does).
"""

from __future__ import annotations

import collections
import os
import resource
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.environment import (
    AWS_BATCH_JOB_ATTEMPT,
    AWS_BATCH_JOB_ID,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    AWS_LAMBDA_FUNCTION_NAME,
    AWS_LAMBDA_RUNTIME_API,
    CAPACITY,
    JOB_MEMORY_MB,
    JOB_VCPUS,
    LAMBDA_MB_PER_VCPU,
)
from runtime.planning.usage import BATCH_CAPACITIES, LAMBDA, SUCCEEDED, UsageRecord

# S3 request classes (S3 pricing page): DELETE and CANCEL requests are free.
_S3_FREE = ("Delete", "AbortMultipartUpload")
_S3_PUT_CLASS = ("Put", "Copy", "Post", "List", "Create", "Upload", "Complete", "Restore")


def s3_request_class(operation: str) -> str | None:
    """``put`` (PUT, COPY, POST, LIST), ``get`` (GET, HEAD, everything else) or None (free)."""
    if operation.startswith(_S3_FREE):
        return None
    return "put" if operation.startswith(_S3_PUT_CLASS) else "get"


class RequestCounter:
    """HTTP requests sent by the clients it is installed on: "service.Operation" -> count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the splitter uploads parts from 16 threads
        self._counts: collections.Counter[str] = collections.Counter()

    def install(self, client: Any) -> Any:
        """Count ``client``'s requests from now on (installing twice counts once)."""
        client.meta.events.register(
            "before-send", self._count, unique_id=f"mc-pricing-request-counter-{id(self)}"
        )
        return client

    def _count(self, event_name: str = "", **_: Any) -> None:
        _, service, operation = [*event_name.split(".", 2), "", ""][:3]
        with self._lock:
            self._counts[f"{service}.{operation}"] += 1
        return None  # never a response: the request is sent as usual

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def request_totals(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """S3 PUT-class and GET-class requests, EventBridge entries and SQS requests sent
    between two snapshots (keys of ``UsageRecord``)."""
    totals = {"s3_put_requests": 0, "s3_get_requests": 0, "events_published": 0, "sqs_requests": 0}
    for key, count in after.items():
        sent = count - before.get(key, 0)
        if sent <= 0:
            continue
        service, _, operation = key.partition(".")
        if service == "s3":
            kind = s3_request_class(operation)
            if kind:
                totals[f"s3_{kind}_requests"] += sent
        elif service in ("eventbridge", "events") and operation == "PutEvents":
            totals["events_published"] += sent  # the protocol publishes one entry a call
        elif service == "sqs":
            totals["sqs_requests"] += sent
    return totals


@dataclass(frozen=True)
class MeterContext:
    """Where this process runs and what it is billed for."""

    capacity: str
    memory_mb: int
    vcpus: float
    attempt: int = 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> MeterContext | None:
        """From a process environment: Lambda's own variables, or the Batch job's
        (``CAPACITY``, ``JOB_VCPUS``, ``JOB_MEMORY_MB``, ``AWS_BATCH_JOB_ATTEMPT``).
        None on the command line, where nothing is billed. Unreadable values fall back
        to the stack defaults (1 vCPU, 1,792 MiB, EC2): metering never stops a job."""
        if environ.get(AWS_LAMBDA_RUNTIME_API) or environ.get(AWS_LAMBDA_FUNCTION_NAME):
            memory = _number(environ.get(AWS_LAMBDA_FUNCTION_MEMORY_SIZE), 1769)
            return cls(LAMBDA, int(memory), memory / LAMBDA_MB_PER_VCPU)
        if environ.get(AWS_BATCH_JOB_ID):
            capacity = (environ.get(CAPACITY) or "").strip().upper()
            vcpus = _number(environ.get(JOB_VCPUS), 1.0)
            memory = _number(environ.get(JOB_MEMORY_MB), 1792.0 * vcpus)
            attempt = _number(environ.get(AWS_BATCH_JOB_ATTEMPT), 1)
            return cls(
                capacity if capacity in BATCH_CAPACITIES else "EC2",
                int(memory),
                vcpus,
                max(1, int(attempt)),
            )
        return None


def _number(raw: str | None, default: float) -> float:
    try:
        value = float(raw) if raw not in (None, "") else default
    except ValueError:
        return default
    return value if value > 0 else default


def process_cpu_seconds() -> float:
    """User and system CPU of this process and of its children that have ended.

    Pricing workers stay up between batches (runtime/engines/parallel.py), so their CPU
    shows only once they exit: the record's ``cpuSeconds`` is informational, billing uses
    wall time and the allocation."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_age_seconds(
    stat: str = "/proc/self/stat", uptime: str = "/proc/uptime"
) -> float | None:
    """Seconds since this process started (Linux), or None where it cannot be read.

    On a Lambda cold start the first invocation arrives after the INIT phase: the process's
    age then is that phase's duration, which Lambda bills too."""
    try:
        with open(stat) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(uptime) as handle:
            up = float(handle.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, up - started)


class StepMeter:
    """Measures one step: ``start()``, the work, then ``finish(step)`` gives its record.

    The first step a Lambda process meters carries the cold start's INIT duration."""

    _cold = True  # class-wide: one cold start per process

    def __init__(
        self,
        context: MeterContext,
        counter: RequestCounter | None = None,
        clock: Callable[[], float] = time.perf_counter,
        cpu: Callable[[], float] = process_cpu_seconds,
        age: Callable[[], float | None] = process_age_seconds,
    ) -> None:
        self.context = context
        self.counter = counter
        self._clock, self._cpu, self._age = clock, cpu, age
        self._started: tuple[float, float, dict[str, int]] | None = None
        self._init = 0.0

    def start(self) -> StepMeter:
        if self.context.capacity == LAMBDA and StepMeter._cold:
            StepMeter._cold = False
            self._init = self._age() or 0.0
        snapshot = self.counter.snapshot() if self.counter else {}
        self._started = (self._clock(), self._cpu(), snapshot)
        return self

    def finish(self, step: str, outcome: str = SUCCEEDED) -> UsageRecord:
        if self._started is None:
            raise RuntimeError("StepMeter.finish before start")
        wall0, cpu0, before = self._started
        after = self.counter.snapshot() if self.counter else {}
        return UsageRecord(
            step=step,
            capacity=self.context.capacity,
            seconds=max(0.0, self._clock() - wall0),
            memory_mb=self.context.memory_mb,
            vcpus=self.context.vcpus,
            attempt=self.context.attempt,
            outcome=outcome,
            cpu_seconds=max(0.0, self._cpu() - cpu0),
            init_seconds=self._init,
            **request_totals(before, after),
        )
