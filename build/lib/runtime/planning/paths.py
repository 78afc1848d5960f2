"""Each path's parts, wall time and price for a file, from per-row CPU estimates.

- ``part_size``: rows per part so every part fits the path's time limit with a margin
  (``threshold`` is a ceiling, never a target);
- ``fast_path``: Lambda (a start invocation that prices or splits, one invocation per part,
  the last one merges);
- ``batch_path``: the normal path (Batch manager, array children, merge job) and, with
  ``urgent``, the urgent lane (the same on on-demand capacity, at most urgentMaxVcpus).

USD comes from the usage records a run would leave (``usage.record_cost``), so a plan and a
measured job are priced the same way. The platform's own latencies (a Lambda sandbox, Batch
scheduling, instance and Fargate start-up) cannot be measured here: they are the labelled
assumptions of ``Latencies``, from AWS's documentation (docs/cost.md cites them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runtime.core.manifest import BATCH_MAX_ARRAY_SIZE
from runtime.planning.model import CostModel
from runtime.planning.prices import PriceTable
from runtime.planning.settings import PlanSettings
from runtime.planning.usage import (
    FARGATE,
    FARGATE_SPOT,
    LAMBDA,
    Cost,
    UsageRecord,
    total_cost,
)

FAST = "fast"
NORMAL = "normal"
URGENT = "urgent"
LAMBDA_MB_PER_VCPU = 1769
# Below this many rows per worker the pricing stays in one process
# (runtime/engines/parallel.py MIN_OPTIONS_PER_WORKER).
MIN_ROWS_PER_WORKER = {"mc": 1, "fd": 4, "lsm": 64, "qdfp": 200}
# The account's default concurrency when the function has no reservation.
ACCOUNT_CONCURRENCY = 1000
PUT_THREADS = 16  # the splitter's parallel part uploads (runtime/protocol/steps.py)


@dataclass(frozen=True)
class Latencies:
    """Assumptions for what cannot be measured on this machine (seconds; docs/cost.md)."""

    lambda_sandbox: float = 1.0  # a new container-image sandbox before our process starts
    lambda_invoke: float = 0.5  # an S3 event to the asynchronous invocation
    s3_request: float = 0.03  # one small-object request within a region
    s3_bytes_per_second: float = 80e6
    batch_dispatch: float = 20.0  # a job from SUBMITTED (or its dependency's end) to STARTING
    ec2_start: float = 180.0  # instances from zero: launch, boot, ECS agent ("a few minutes")
    ec2_container_start: float = 5.0  # a container on a running instance (image cached)
    fargate_start: float = 40.0  # a Fargate task ("about 30 seconds") plus the image pull
    fargate_billed_start: float = 20.0  # the part of it Fargate bills (from the image pull)
    ec2_boot_billed: float = 60.0  # instance time billed before the first job runs
    ec2_idle: float = 300.0  # instance time after the last job, until Batch scales in
    worker_start: float = 0.1  # one pricing worker process (docs/performance.md: 0.2 s for 2)
    parallel_efficiency: float = 0.55  # speed-up of each extra worker (measured: 1.55x on 2)
    cpu_speed: float = 1.0  # a Lambda or Batch vCPU against this machine's core
    part_margin: float = 0.5  # a part's estimate may use this share of the time limit


DEFAULT_LATENCIES = Latencies()


@dataclass(frozen=True)
class PartSizing:
    """Rows per part for a file and a time limit."""

    size: int  # rows per part (the last part may have fewer)
    parts: int
    fits: bool  # every part's estimate within the budget
    worst_part_seconds: float  # the slowest part's estimate, start-up included
    budget_seconds: float  # limit x (1 - margin)
    limit_seconds: float
    reason: str = ""  # why it does not fit

    @property
    def margin(self) -> float:
        return 1.0 - self.budget_seconds / self.limit_seconds if self.limit_seconds else 0.0


def part_size(
    row_seconds: Sequence[float] | np.ndarray,
    limit_seconds: float,
    threshold: int,
    max_parts: int,
    fixed_seconds: float = 0.0,
    speed: float = 1.0,
    margin: float = DEFAULT_LATENCIES.part_margin,
) -> PartSizing:
    """The largest part size up to ``threshold`` whose every part, cut in file order as the
    splitter cuts them, is estimated to finish within ``limit_seconds x (1 - margin)``.

    ``row_seconds`` are one core's CPU seconds per row, ``speed`` the cores a part gets,
    ``fixed_seconds`` what every part spends besides its rows (start-up, S3). When that
    takes more than ``max_parts`` parts the splitter makes bigger ones
    (runtime/core/manifest.py ``plan_parts``): then they may not fit, and ``reason`` says so.
    """
    if threshold < 1 or max_parts < 1 or limit_seconds <= 0 or speed <= 0:
        raise ValueError("threshold, max_parts, limit_seconds and speed must be positive")
    if not 0 <= margin < 1:
        raise ValueError("margin must be in [0, 1)")
    seconds = np.asarray(row_seconds, dtype=np.float64) / speed
    rows = len(seconds)
    budget = limit_seconds * (1.0 - margin)
    cumulative = np.concatenate([[0.0], np.cumsum(seconds)])

    def worst(size: int) -> float:
        ends = np.minimum(np.arange(size, rows + size, size), rows)
        starts = np.arange(0, rows, size)
        return float(np.max(cumulative[ends] - cumulative[starts])) + fixed_seconds

    if rows == 0:
        return PartSizing(threshold, 0, True, fixed_seconds, budget, limit_seconds)
    size = min(threshold, rows)
    while size > 1 and worst(size) > budget:
        # jump close to the size that fits, then step down: parts cut in file order are
        # not monotone in their size, so every candidate is checked
        ratio = (budget - fixed_seconds) / max(worst(size) - fixed_seconds, 1e-12)
        size = max(1, min(size - 1, int(size * ratio) if ratio > 0 else 1))
    size = max(size, math.ceil(rows / max_parts))
    slowest = worst(size)
    parts = math.ceil(rows / size)
    reason = ""
    if slowest > budget:
        if size > 1 and parts >= max_parts:
            reason = (
                f"the file needs parts of fewer rows than {size} to finish within "
                f"{limit_seconds:g} s (with a {margin:.0%} margin), but at most {max_parts} "
                "parts are allowed"
            )
        else:
            reason = (
                f"one row is estimated at {slowest:.0f} s, over {budget:.0f} s "
                f"({1 - margin:.0%} of the {limit_seconds:g} s limit)"
            )
    return PartSizing(size, parts, slowest <= budget, slowest, budget, limit_seconds, reason)


@dataclass
class PathPlan:
    """One path's estimate for one file."""

    path: str
    available: bool = True
    reason: str = ""  # why the path is not available, or its parts do not fit
    capacity: str = ""
    parts: int = 0
    part_rows: int = 0
    concurrency: int = 0
    waves: int = 0
    fits: bool = True
    worst_part_seconds: float = 0.0
    limit_seconds: float = 0.0
    cpu_seconds: float = 0.0  # compute seconds of every step (one core's worth)
    wall_seconds: float = 0.0
    cost: Cost = field(default_factory=Cost)
    records: list[UsageRecord] = field(default_factory=list)

    @property
    def usd(self) -> float:
        return self.cost.usd

    def to_dict(self) -> dict:
        if not self.available:
            return {"available": False, "reason": self.reason}
        out = {
            "wallSeconds": round(self.wall_seconds, 1),
            "usd": round(self.usd, 8),
            "available": True,
            "capacity": self.capacity,
            "parts": self.parts,
            "partRows": self.part_rows,
            "concurrency": self.concurrency,
            "waves": self.waves,
            "fits": self.fits,
            "worstPartSeconds": round(self.worst_part_seconds, 1),
            "limitSeconds": self.limit_seconds,
            "cpuSeconds": round(self.cpu_seconds, 3),
            "cost": self.cost.to_dict(),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def part_speed(cores: float, rows: int, engine: str, lat: Latencies) -> float:
    """How many of this machine's cores a part of ``rows`` rows gets from ``cores`` vCPUs."""
    if cores < 1:
        return cores * lat.cpu_speed  # Lambda below 1,769 MB: a share of one vCPU
    workers = _workers(cores, rows, engine)
    return (1.0 + (workers - 1) * lat.parallel_efficiency) * lat.cpu_speed


def _workers(cores: float, rows: int, engine: str) -> int:
    """Pricing workers a part starts (runtime/engines/parallel.py): one per whole vCPU, but
    only as many as have enough rows."""
    return max(1, min(int(cores), rows // MIN_ROWS_PER_WORKER.get(engine, 8)))


def _requests(model: CostModel, step: str, parts: int = 0) -> tuple[int, int]:
    counts = model.requests.get(step, {})
    get = counts.get("get", 0.0) + counts.get("getPerPart", 0.0) * parts
    put = counts.get("put", 0.0) + counts.get("putPerPart", 0.0) * parts
    return round(get), round(put)


def _s3_seconds(get: int, put: int, size: float, lat: Latencies, parallel: int = 1) -> float:
    return math.ceil((get + put) / parallel) * lat.s3_request + size / lat.s3_bytes_per_second


def _bytes(model: CostModel, rows: int) -> tuple[float, float]:
    overheads = model.document.get("overheads", {})
    return (
        rows * float(overheads.get("inputBytesPerRow", 62.0)),
        rows * float(overheads.get("resultBytesPerRow", 106.0)),
    )


def fast_sizing(
    row_seconds: np.ndarray,
    settings: PlanSettings,
    model: CostModel,
    lat: Latencies = DEFAULT_LATENCIES,
) -> PartSizing:
    """Rows per part on Lambda: ``lambdaTimeoutSeconds`` with the margin, at most
    ``maxParts`` parts; a part's fixed time is a cold start and its S3 requests."""
    get, put = _requests(model, "fast.part")
    fixed = lat.lambda_sandbox + model.engine(settings.engine).lambda_cold
    cores = settings.lambda_memory_mb / LAMBDA_MB_PER_VCPU
    return part_size(
        row_seconds,
        settings.lambda_timeout_seconds,
        settings.threshold,
        settings.max_parts,
        fixed_seconds=fixed + _s3_seconds(get, put, 0.0, lat),
        speed=part_speed(cores, settings.threshold, settings.engine, lat),
        margin=lat.part_margin,
    )


def batch_sizing(
    row_seconds: np.ndarray,
    settings: PlanSettings,
    model: CostModel,
    lat: Latencies = DEFAULT_LATENCIES,
) -> PartSizing:
    """Rows per part on Batch: ``jobTimeoutSeconds`` with the margin, at most Batch's
    array size; a part's fixed time is the container's start and its S3 requests."""
    get, put = _requests(model, f"{NORMAL}.part")
    return part_size(
        row_seconds,
        settings.job_timeout_seconds,
        settings.threshold,
        BATCH_MAX_ARRAY_SIZE,
        fixed_seconds=model.engine(settings.engine).batch_cold + _s3_seconds(get, put, 0.0, lat),
        speed=part_speed(settings.job_vcpus, settings.threshold, settings.engine, lat),
        margin=lat.part_margin,
    )


def fast_path(
    row_seconds: np.ndarray,
    settings: PlanSettings,
    prices: PriceTable,
    model: CostModel,
    lat: Latencies = DEFAULT_LATENCIES,
) -> PathPlan:
    """The fast path: Lambda invocations at ``lambdaMemoryMb``."""
    plan = PathPlan(FAST, capacity=LAMBDA, limit_seconds=settings.lambda_timeout_seconds)
    if settings.lambda_reserved_concurrency == 0:
        plan.available, plan.reason = False, "lambdaReservedConcurrency is 0: fast path disabled"
        return plan
    rows = len(row_seconds)
    engine = model.engine(settings.engine)
    memory = settings.lambda_memory_mb
    cores = memory / LAMBDA_MB_PER_VCPU
    cold = engine.lambda_cold  # billed INIT; the sandbox before it is not billed
    part_get, part_put = _requests(model, "fast.part")
    in_bytes, out_bytes = _bytes(model, rows)
    per_row_bytes = (in_bytes + out_bytes) / max(rows, 1)
    sizing = fast_sizing(row_seconds, settings, model, lat)
    reserved = settings.lambda_reserved_concurrency
    limit = reserved if reserved > 0 else ACCOUNT_CONCURRENCY
    provisioned = settings.lambda_provisioned_concurrency
    records: list[UsageRecord] = []

    def invocation(
        step: str, seconds: float, is_cold: bool, get: int, put: int, part_rows: int, events=0
    ) -> float:
        workers = _workers(cores, part_rows, settings.engine)
        init = cold + (lat.worker_start * workers if workers > 1 else 0.0) if is_cold else 0.0
        sandbox = lat.lambda_sandbox if is_cold else 0.0
        records.append(
            UsageRecord(
                step=step,
                capacity=LAMBDA,
                seconds=seconds,
                memory_mb=memory,
                vcpus=cores,
                init_seconds=init,
                s3_get_requests=get,
                s3_put_requests=put,
                events_published=events,
            )
        )
        return sandbox + init + seconds

    events = round(model.requests.get("events", {}).get("perJob", 1.0))
    if rows <= sizing.size:
        get, put = _requests(model, "fast.single")
        speed = part_speed(cores, rows, settings.engine, lat)
        work = float(np.sum(row_seconds)) / speed
        seconds = work + _s3_seconds(get, put, in_bytes + out_bytes, lat)
        wall = lat.lambda_invoke + invocation(
            "start", seconds, provisioned < 1, get, put, rows, events
        )
        plan.parts, plan.part_rows, plan.concurrency, plan.waves = 1, rows, 1, 1
        plan.worst_part_seconds = wall - lat.lambda_invoke
        plan.fits = plan.worst_part_seconds <= sizing.budget_seconds
        plan.reason = "" if plan.fits else sizing.reason
        plan.cpu_seconds = float(np.sum(row_seconds)) + engine.lambda_cold
    else:
        parts = sizing.parts
        size = sizing.size
        get, put = _requests(model, "fast.start", parts)
        split = rows * model.split_per_row / lat.cpu_speed
        start_seconds = split + _s3_seconds(get, put, 2 * in_bytes, lat, PUT_THREADS)
        wall = lat.lambda_invoke + invocation("start", start_seconds, provisioned < 1, get, put, 0)
        concurrency = min(parts, limit)
        waves = math.ceil(parts / concurrency)
        speed = part_speed(cores, size, settings.engine, lat)
        cumulative = np.concatenate([[0.0], np.cumsum(row_seconds)])
        part_seconds = []
        for index in range(parts):
            lo, hi = index * size, min(rows, (index + 1) * size)
            work = (cumulative[hi] - cumulative[lo]) / speed
            s3 = _s3_seconds(part_get, part_put, (hi - lo) * per_row_bytes, lat)
            is_cold = index < concurrency and index >= provisioned
            step = f"part-{index:05d}"
            part_seconds.append(invocation(step, work + s3, is_cold, part_get, part_put, hi - lo))
        merge_get, merge_put = _requests(model, "fast.merge", parts)
        merge = rows * model.merge_per_row + _s3_seconds(
            merge_get, merge_put, in_bytes + 2 * out_bytes, lat
        )
        # the last part merges in its own invocation: one record, longer
        last = records[-1]
        records[-1] = UsageRecord(
            **{
                **_fields(last),
                "seconds": last.seconds + merge,
                "s3_get_requests": last.s3_get_requests + merge_get,
                "s3_put_requests": last.s3_put_requests + merge_put,
                "events_published": events,
            }
        )
        waves_time = sum(
            max(part_seconds[w * concurrency : (w + 1) * concurrency]) for w in range(waves)
        )
        wall += lat.lambda_invoke + waves_time + merge
        plan.parts, plan.part_rows, plan.concurrency, plan.waves = parts, size, concurrency, waves
        plan.worst_part_seconds = sizing.worst_part_seconds
        plan.fits, plan.reason = sizing.fits, sizing.reason
        plan.cpu_seconds = (
            float(np.sum(row_seconds))
            + rows * (model.split_per_row + model.merge_per_row)
            + engine.lambda_cold * min(parts + 1, concurrency + 1)
        )
    plan.wall_seconds = wall
    plan.records = records
    plan.cost = total_cost(records, prices)
    return plan


def _fields(record: UsageRecord) -> dict:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def batch_path(
    row_seconds: np.ndarray,
    settings: PlanSettings,
    prices: PriceTable,
    model: CostModel,
    lat: Latencies = DEFAULT_LATENCIES,
    urgent: bool = False,
) -> PathPlan:
    """The normal path (Batch on the stack's capacity), or with ``urgent`` the urgent lane
    (on-demand capacity of the same kind, at most ``urgentMaxVcpus``)."""
    name = URGENT if urgent else NORMAL
    capacity = settings.urgent_capacity if urgent else settings.batch_capacity
    max_vcpus = settings.urgent_max_vcpus if urgent else settings.max_vcpus
    plan = PathPlan(name, capacity=capacity, limit_seconds=settings.job_timeout_seconds)
    if max_vcpus < settings.job_vcpus:
        plan.available = False
        plan.reason = (
            "urgentMaxVcpus is 0: no urgent lane"
            if urgent and max_vcpus == 0
            else f"{'urgentMaxVcpus' if urgent else 'maxVcpus'} {max_vcpus} is below jobVcpus "
            f"{settings.job_vcpus}"
        )
        return plan
    rows = len(row_seconds)
    engine = model.engine(settings.engine)
    vcpus = settings.job_vcpus
    memory = settings.batch_memory_mb
    fargate = capacity in (FARGATE, FARGATE_SPOT)
    warm_vcpus = settings.min_vcpus
    # a container's start before our process runs, and the part of it that is billed
    container = lat.fargate_start if fargate else lat.ec2_container_start
    billed_start = lat.fargate_billed_start if fargate else 0.0
    first_start = container if fargate or warm_vcpus >= vcpus else lat.ec2_start
    in_bytes, out_bytes = _bytes(model, rows)
    per_row_bytes = (in_bytes + out_bytes) / max(rows, 1)
    part_get, part_put = _requests(model, f"{NORMAL}.part")
    sizing = batch_sizing(row_seconds, settings, model, lat)
    records: list[UsageRecord] = []

    def job(step: str, seconds: float, get: int, put: int, events: int = 0) -> float:
        records.append(
            UsageRecord(
                step=step,
                capacity=capacity,
                seconds=billed_start + engine.batch_cold + seconds,
                memory_mb=memory,
                vcpus=float(vcpus),
                s3_get_requests=get,
                s3_put_requests=put,
                events_published=events,
            )
        )
        return engine.batch_cold + seconds

    events = round(model.requests.get("events", {}).get("perJob", 1.0))
    wall = lat.batch_dispatch + first_start
    if rows <= sizing.size:
        get, put = _requests(model, f"{NORMAL}.single")
        work = float(np.sum(row_seconds)) / part_speed(vcpus, rows, settings.engine, lat)
        wall += job(
            "manager", work + _s3_seconds(get, put, in_bytes + out_bytes, lat), get, put, events
        )
        plan.parts, plan.part_rows, plan.concurrency, plan.waves = 1, rows, 1, 1
        plan.worst_part_seconds = records[-1].seconds
        plan.fits = plan.worst_part_seconds <= sizing.budget_seconds
        plan.reason = "" if plan.fits else sizing.reason
        plan.cpu_seconds = float(np.sum(row_seconds)) + engine.batch_cold
        peak_vcpus = vcpus
    else:
        parts, size = sizing.parts, sizing.size
        get, put = _requests(model, f"{NORMAL}.start", parts)
        split = rows * model.split_per_row / lat.cpu_speed
        wall += job(
            "manager", split + _s3_seconds(get, put, 2 * in_bytes, lat, PUT_THREADS), get, put
        )
        concurrency = max(1, min(parts, max_vcpus // vcpus))
        waves = math.ceil(parts / concurrency)
        peak_vcpus = concurrency * vcpus
        speed = part_speed(vcpus, size, settings.engine, lat)
        cumulative = np.concatenate([[0.0], np.cumsum(row_seconds)])
        child_seconds = []
        for index in range(parts):
            lo, hi = index * size, min(rows, (index + 1) * size)
            work = (cumulative[hi] - cumulative[lo]) / speed
            s3 = _s3_seconds(part_get, part_put, (hi - lo) * per_row_bytes, lat)
            child_seconds.append(job(f"part-{index:05d}", work + s3, part_get, part_put))
        # children need more capacity than the manager had: EC2 scales out again
        scale_out = container if fargate or warm_vcpus >= peak_vcpus else lat.ec2_start
        waves_time = 0.0
        for w in range(waves):
            start = scale_out if w == 0 else container
            waves_time += start + max(child_seconds[w * concurrency : (w + 1) * concurrency])
        merge_get, merge_put = _requests(model, f"{NORMAL}.merge", parts)
        merge = rows * model.merge_per_row + _s3_seconds(
            merge_get, merge_put, in_bytes + 2 * out_bytes, lat
        )
        wall += lat.batch_dispatch + waves_time + lat.batch_dispatch + container
        wall += job("merge", merge, merge_get, merge_put, events)
        plan.parts, plan.part_rows, plan.concurrency, plan.waves = parts, size, concurrency, waves
        plan.worst_part_seconds = sizing.worst_part_seconds
        plan.fits, plan.reason = sizing.fits, sizing.reason
        plan.cpu_seconds = (
            float(np.sum(row_seconds))
            + rows * (model.split_per_row + model.merge_per_row)
            + engine.batch_cold * (parts + 2)
        )
    if not fargate and warm_vcpus < peak_vcpus:
        # instances started for this job: billed from boot until Batch scales them in
        instance_vcpus = prices.ec2_instance_vcpus
        idle_vcpus = math.ceil((peak_vcpus - warm_vcpus) / instance_vcpus) * instance_vcpus
        records.append(
            UsageRecord(
                step="capacity",
                capacity=capacity,
                seconds=lat.ec2_boot_billed + lat.ec2_idle,
                memory_mb=0,
                vcpus=float(idle_vcpus),
            )
        )
    plan.wall_seconds = wall
    plan.records = records
    plan.cost = total_cost(records, prices)
    return plan
