"""What a step used, and what it costs: usage records in, ``cost`` documents out.

A ``UsageRecord`` is one attempt of one step (the start or split, a part, the merge, the
Batch manager) on one capacity: a Lambda invocation, or a Batch job attempt on EC2, Spot,
Fargate or Fargate Spot. A retry or a Spot interruption is another record (``attempt`` 2,
``outcome`` interrupted...), so what every attempt used is counted. Records become a
``Cost`` through a price table; costs add (parts + merge + manager = job) because every
charge is linear in the records: each billing minimum (Lambda's 1 ms, Fargate's minute)
applies to one attempt, never to a sum.

What is measured and what is estimated (docs/cost.md): the records carry measured seconds,
memory, vCPUs and request counts; USD is those quantities times the price table, an
estimate of the bill (list prices, no free tier, EC2 shared by the jobs an instance holds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from runtime.planning.prices import PriceTable

LAMBDA = "LAMBDA"
EC2 = "EC2"
SPOT = "SPOT"
FARGATE = "FARGATE"
FARGATE_SPOT = "FARGATE_SPOT"
BATCH_CAPACITIES = (EC2, SPOT, FARGATE, FARGATE_SPOT)
CAPACITIES = (LAMBDA, *BATCH_CAPACITIES)

SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"  # Spot reclaimed the capacity, or the host went away
TIMED_OUT = "timedOut"
OUTCOMES = (SUCCEEDED, FAILED, INTERRUPTED, TIMED_OUT)

FARGATE_MINIMUM_SECONDS = 60  # Fargate bills per second with a one-minute minimum
MIB_PER_GB = 1024  # Lambda and Fargate bill memory in GB of 1,024 MB (MiB)
# Batch's retry strategy retries these (components: BatchArrayPath): the capacity vanished
INTERRUPTION_REASONS = ("Host EC2", "Your Spot Task was interrupted")


class UsageError(ValueError):
    """A usage record that cannot be costed; the message says which field."""


@dataclass(frozen=True)
class UsageRecord:
    """One attempt of one step: what it ran on and what it used."""

    step: str  # "start", "part-00003", "merge", "manager"
    capacity: str  # LAMBDA | EC2 | SPOT | FARGATE | FARGATE_SPOT
    seconds: float  # wall time of the attempt (what Lambda and Batch bill)
    memory_mb: int  # Lambda: the function's memory; Batch: the job's
    vcpus: float = 0.0  # Batch: the job's vCPUs (Lambda: memory / 1,769, informational)
    attempt: int = 1
    outcome: str = SUCCEEDED
    cpu_seconds: float = 0.0  # measured CPU time of the process (informational)
    init_seconds: float = 0.0  # Lambda: the cold start's INIT phase, billed like the rest
    s3_put_requests: int = 0  # PUT, COPY, POST, LIST
    s3_get_requests: int = 0  # GET, HEAD and the rest; DELETE is free and not counted
    events_published: int = 0  # EventBridge PutEvents entries
    sqs_requests: int = 0

    def __post_init__(self) -> None:
        if self.capacity not in CAPACITIES:
            raise UsageError(f"capacity {self.capacity!r} is not one of {', '.join(CAPACITIES)}")
        if self.outcome not in OUTCOMES:
            raise UsageError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        for name in ("seconds", "vcpus", "cpu_seconds", "init_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("memory_mb", "attempt", *_COUNTS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.capacity != LAMBDA and self.vcpus <= 0:
            raise UsageError(f"a Batch attempt needs its vCPUs, got {self.vcpus}")

    def to_dict(self) -> dict[str, Any]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> UsageRecord:
        """A record from ``to_dict``'s document (a status object keeps them this way)."""
        known = {_camel(f.name): f.name for f in fields(cls)}
        unknown = sorted(set(document) - set(known))
        if unknown:
            raise UsageError(f"unknown usage field(s): {', '.join(unknown)}")
        try:
            return cls(**{known[key]: value for key, value in document.items()})
        except TypeError as exc:  # a required field is missing
            raise UsageError(f"incomplete usage record: {exc}") from None


_COUNTS = ("s3_put_requests", "s3_get_requests", "events_published", "sqs_requests")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def lambda_billed_ms(seconds: float) -> int:
    """Lambda's billed duration: rounded up to the next millisecond (no minimum)."""
    return max(0, math.ceil(round(seconds * 1000.0, 6)))


def fargate_billed_seconds(seconds: float) -> int:
    """Fargate's billed time of one task: whole seconds, at least one minute."""
    return max(FARGATE_MINIMUM_SECONDS, math.ceil(round(seconds, 6)))


@dataclass(frozen=True)
class Cost:
    """Quantities and USD of some attempts; ``+`` adds them (a job's cost is a sum)."""

    usd: float = 0.0
    lambda_usd: float = 0.0
    batch_usd: float = 0.0
    s3_usd: float = 0.0
    events_usd: float = 0.0
    lambda_gb_seconds: float = 0.0
    lambda_requests: int = 0
    batch_vcpu_seconds: float = 0.0
    batch_gb_seconds: float = 0.0
    s3_put_requests: int = 0
    s3_get_requests: int = 0
    events_published: int = 0
    sqs_requests: int = 0
    attempts: int = 0
    retries: int = 0  # attempts after the first of their step
    interruptions: int = 0
    seconds: float = 0.0  # billed seconds, all attempts (not the job's wall time)
    # Batch capacity -> vCPU-seconds and USD on it
    by_capacity: dict[str, dict[str, float]] = field(default_factory=dict)

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        merged = {name: dict(values) for name, values in self.by_capacity.items()}
        for name, values in other.by_capacity.items():
            target = merged.setdefault(name, {"vcpuSeconds": 0.0, "usd": 0.0})
            for key, value in values.items():
                target[key] = target.get(key, 0.0) + value
        sums = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)
            if f.name != "by_capacity"
        }
        return Cost(**sums, by_capacity=merged)

    @property
    def requests(self) -> int:
        """Every billed request: Lambda invocations, S3, EventBridge entries and SQS."""
        return (
            self.lambda_requests
            + self.s3_put_requests
            + self.s3_get_requests
            + self.events_published
            + self.sqs_requests
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``cost`` document of a status object and a job event (docs/cost.md)."""
        return {
            "usd": _usd(self.usd),
            "estimated": True,
            "lambdaGbSeconds": round(self.lambda_gb_seconds, 6),
            "lambdaRequests": self.lambda_requests,
            "batchVcpuSeconds": round(self.batch_vcpu_seconds, 3),
            "batchGbSeconds": round(self.batch_gb_seconds, 3),
            "requests": self.requests,
            "s3Requests": self.s3_put_requests + self.s3_get_requests,
            "s3PutRequests": self.s3_put_requests,
            "s3GetRequests": self.s3_get_requests,
            "eventsPublished": self.events_published,
            "sqsRequests": self.sqs_requests,
            "attempts": self.attempts,
            "retries": self.retries,
            "interruptions": self.interruptions,
            "billedSeconds": round(self.seconds, 3),
            "usdBy": {
                "lambda": _usd(self.lambda_usd),
                "batch": _usd(self.batch_usd),
                "s3": _usd(self.s3_usd),
                "events": _usd(self.events_usd),
            },
            "byCapacity": {
                name: {"vcpuSeconds": round(v["vcpuSeconds"], 3), "usd": _usd(v["usd"])}
                for name, v in sorted(self.by_capacity.items())
            },
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Cost:
        """A cost from ``to_dict``'s document, so stored part costs can be added up."""
        usd_by = document.get("usdBy") or {}
        return cls(
            usd=float(document.get("usd", 0.0)),
            lambda_usd=float(usd_by.get("lambda", 0.0)),
            batch_usd=float(usd_by.get("batch", 0.0)),
            s3_usd=float(usd_by.get("s3", 0.0)),
            events_usd=float(usd_by.get("events", 0.0)),
            lambda_gb_seconds=float(document.get("lambdaGbSeconds", 0.0)),
            lambda_requests=int(document.get("lambdaRequests", 0)),
            batch_vcpu_seconds=float(document.get("batchVcpuSeconds", 0.0)),
            batch_gb_seconds=float(document.get("batchGbSeconds", 0.0)),
            s3_put_requests=int(document.get("s3PutRequests", 0)),
            s3_get_requests=int(document.get("s3GetRequests", 0)),
            events_published=int(document.get("eventsPublished", 0)),
            sqs_requests=int(document.get("sqsRequests", 0)),
            attempts=int(document.get("attempts", 0)),
            retries=int(document.get("retries", 0)),
            interruptions=int(document.get("interruptions", 0)),
            seconds=float(document.get("billedSeconds", 0.0)),
            by_capacity={
                name: {"vcpuSeconds": float(v["vcpuSeconds"]), "usd": float(v["usd"])}
                for name, v in (document.get("byCapacity") or {}).items()
            },
        )


def _usd(value: float) -> float:
    return round(value, 10)  # a part can cost a millionth of a cent


def record_cost(record: UsageRecord, prices: PriceTable) -> Cost:
    """What one attempt costs at ``prices``."""
    s3_usd = (
        record.s3_put_requests * prices.s3_usd_per_thousand_put
        + record.s3_get_requests * prices.s3_usd_per_thousand_get
    ) / 1000.0
    events_usd = record.events_published * prices.events_usd_per_million / 1e6
    events_usd += record.sqs_requests * prices.sqs_usd_per_million / 1e6
    common = {
        "s3_usd": s3_usd,
        "events_usd": events_usd,
        "s3_put_requests": record.s3_put_requests,
        "s3_get_requests": record.s3_get_requests,
        "events_published": record.events_published,
        "sqs_requests": record.sqs_requests,
        "attempts": 1,
        "retries": 1 if record.attempt > 1 else 0,
        "interruptions": 1 if record.outcome == INTERRUPTED else 0,
    }
    if record.capacity == LAMBDA:
        # INIT is billed since 2025-08-01 for every package type (container images before)
        billed = lambda_billed_ms(record.seconds + record.init_seconds) / 1000.0
        gb_seconds = billed * record.memory_mb / MIB_PER_GB
        lambda_usd = gb_seconds * prices.lambda_usd_per_gb_second
        lambda_usd += prices.lambda_usd_per_million_requests / 1e6
        return Cost(
            usd=lambda_usd + s3_usd + events_usd,
            lambda_usd=lambda_usd,
            lambda_gb_seconds=gb_seconds,
            lambda_requests=1,
            seconds=billed,
            **common,
        )
    gb = record.memory_mb / MIB_PER_GB
    if record.capacity in (FARGATE, FARGATE_SPOT):
        billed = float(fargate_billed_seconds(record.seconds))
        hourly = record.vcpus * prices.fargate_usd_per_vcpu_hour
        hourly += gb * prices.fargate_usd_per_gb_hour
        if record.capacity == FARGATE_SPOT:
            hourly *= 1.0 - prices.fargate_spot_discount
    else:
        # per-second instance billing shared by the jobs an instance holds: the job's
        # vCPU share of the instance for as long as it ran
        billed = float(record.seconds)
        hourly = record.vcpus * prices.ec2_usd_per_vcpu_hour
        if record.capacity == SPOT:
            hourly *= 1.0 - prices.ec2_spot_discount
    batch_usd = billed * hourly / 3600.0
    vcpu_seconds = billed * record.vcpus
    return Cost(
        usd=batch_usd + s3_usd + events_usd,
        batch_usd=batch_usd,
        batch_vcpu_seconds=vcpu_seconds,
        batch_gb_seconds=billed * gb,
        seconds=billed,
        by_capacity={record.capacity: {"vcpuSeconds": vcpu_seconds, "usd": batch_usd}},
        **common,
    )


def total_cost(records: Iterable[UsageRecord], prices: PriceTable) -> Cost:
    """The sum of every record's cost (an empty job costs nothing)."""
    total = Cost()
    for record in records:
        total = total + record_cost(record, prices)
    return total


def batch_attempts(
    detail: Mapping[str, Any], step: str, capacity: str, fallback_vcpus: float = 1.0
) -> list[UsageRecord]:
    """One record per attempt of a Batch job, from its DescribeJobs description or the
    detail of its "Batch Job State Change" event (``attempts`` with ``startedAt`` and
    ``stoppedAt`` in epoch milliseconds).

    An interrupted or failed attempt never records itself (its container was stopped), so
    this is how retries and Spot interruptions are counted. ``capacity`` is the compute
    environment's (EC2, SPOT, FARGATE, FARGATE_SPOT): the event does not say Spot.
    """
    if capacity not in BATCH_CAPACITIES:
        raise UsageError(f"capacity {capacity!r} is not a Batch capacity")
    vcpus, memory = fallback_vcpus, 0
    for requirement in (detail.get("container") or {}).get("resourceRequirements") or []:
        if requirement.get("type") == "VCPU":
            vcpus = float(requirement.get("value", vcpus))
        elif requirement.get("type") == "MEMORY":
            memory = int(float(requirement.get("value", 0)))
    attempts = list(detail.get("attempts") or [])
    records = []
    for number, attempt in enumerate(attempts, start=1):
        started, stopped = attempt.get("startedAt"), attempt.get("stoppedAt")
        if not started or not stopped:
            continue  # never started: nothing billed
        reason = str(attempt.get("statusReason") or "")
        last = number == len(attempts)
        if reason.startswith(INTERRUPTION_REASONS):
            outcome = INTERRUPTED
        elif "timeout" in reason.lower() or "timed out" in reason.lower():
            outcome = TIMED_OUT
        elif last and detail.get("status") == "SUCCEEDED":
            outcome = SUCCEEDED
        else:
            outcome = FAILED
        records.append(
            UsageRecord(
                step=step,
                capacity=capacity,
                seconds=max(0.0, (float(stopped) - float(started)) / 1000.0),
                memory_mb=memory,
                vcpus=vcpus,
                attempt=number,
                outcome=outcome,
            )
        )
    return records
