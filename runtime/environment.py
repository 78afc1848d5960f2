"""The one reader of the environment: every variable the image reads, named once, typed.

Defaults equal the stacks' defaults (``Pulumi.yaml``), so a process run without the stack's
environment (``simulate``, tests) behaves like a deployed stack. Which component sets which
variable is checked by ``tests/project/test_contract.py``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from runtime.engines import DEFAULT_ENGINE, get_engine
from runtime.planning import prices as price_tables
from runtime.planning import settings as planning

log = logging.getLogger(__name__)

# Set by the stack on the Lambda function and on the job definition.
RESULT_BUCKET = "RESULT_BUCKET"
THRESHOLD = "THRESHOLD"
ENGINE = "ENGINE"
MAX_ROWS = "MAX_ROWS"
MAX_BYTES = "MAX_BYTES"
MAX_PARTS = "MAX_PARTS"
GREEKS = "GREEKS"
BOUNDS = "BOUNDS"
LOG_LEVEL = "LOG_LEVEL"
# Set by the stack on the Lambda function and on the job definition: where Batch jobs go
# (the function admits uploads and scheduled runs, the manager submits its array and merge):
# the normal lane's queue ARN, the urgent lane's ("" when the lane is off), the job definition
# without a revision (its latest ACTIVE one), the fair-share teams (comma-separated share
# identifiers, "" = FIFO queues: submit without a share identifier; else every job carries
# the upload's team when listed, or "default"), and the stack's name, the value of the job tag
# "mc-pricing:stack" every SubmitJob must carry (the roles may terminate only such jobs).
# Batch drops empty variables from the job definition: absent reads as empty.
JOB_QUEUE = "JOB_QUEUE"
URGENT_JOB_QUEUE = "URGENT_JOB_QUEUE"
JOB_DEFINITION = "JOB_DEFINITION"
FAIR_SHARE = "FAIR_SHARE"
STACK_NAME = "STACK_NAME"
# Set by the stack on the Lambda function and on the job definition: what the planner
# needs inside the image (the auto lane, the budget guard, part sizing) and what prices a
# job's usage. AUTO_FAST_SECONDS and MAX_JOB_USD are the stack settings autoFastSeconds and
# maxJobUsd; PRICE_TABLE the priceTable override (JSON, "{}" = the defaults); PLAN_SETTINGS
# a JSON object of the other planning settings (PLAN_SETTING_NAMES) that have no variable
# of their own, by their Pulumi names (architecture, lambdaMemoryMb, maxVcpus, useSpot...).
AUTO_FAST_SECONDS = "AUTO_FAST_SECONDS"
MAX_JOB_USD = "MAX_JOB_USD"
PRICE_TABLE = price_tables.PRICE_TABLE
PLAN_SETTINGS = planning.PLAN_SETTINGS
# Set by the stack on the job definition only: pricing workers per job, and what a job is
# billed for, which a container cannot see (its vCPUs, its memory in MiB, the compute
# environment's capacity type: EC2, SPOT, FARGATE or FARGATE_SPOT). The runtime overrides
# CAPACITY on the urgent lane's jobs (its capacity is on demand).
PRICING_WORKERS = "PRICING_WORKERS"
JOB_VCPUS = "JOB_VCPUS"
JOB_MEMORY_MB = "JOB_MEMORY_MB"
CAPACITY = "CAPACITY"
# Set by the runtime on every Batch job it submits: its role, and the fence of the job's
# attempt (the upload's token and the attempt number, "token.attempt"), which Batch's
# state-change events carry back; JOB_SHARE, the job's fair-share identifier (only with fair
# share: the shareIdentifier it was submitted with, which the job's environment keeps where
# tools and metrics can read it); PART_INDEXES on a retry's child that re-prices only some
# parts (array index i prices part PART_INDEXES[i]).
BATCH_ROLE = "BATCH_ROLE"
JOB_FENCE = "JOB_FENCE"
JOB_SHARE = "JOB_SHARE"
PART_INDEXES = "PART_INDEXES"
# Set by AWS (and, on Batch on EC2, where ECS does not, by the stack: AWS_REGION).
AWS_REGION = "AWS_REGION"
AWS_LAMBDA_RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
AWS_LAMBDA_FUNCTION_MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
AWS_LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
AWS_BATCH_JOB_ID = "AWS_BATCH_JOB_ID"
AWS_BATCH_JOB_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
AWS_BATCH_JOB_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"

# What each deployed path must be given by the stack: the contract with components/.
SUBMISSION_VARIABLES = frozenset(
    {JOB_QUEUE, URGENT_JOB_QUEUE, JOB_DEFINITION, FAIR_SHARE, STACK_NAME}
)
PLANNING_VARIABLES = frozenset({AUTO_FAST_SECONDS, MAX_JOB_USD, PRICE_TABLE, PLAN_SETTINGS})
LAMBDA_VARIABLES = (
    frozenset(
        {
            RESULT_BUCKET,
            THRESHOLD,
            ENGINE,
            MAX_ROWS,
            MAX_BYTES,
            MAX_PARTS,
            GREEKS,
            BOUNDS,
            LOG_LEVEL,
        }
    )
    | SUBMISSION_VARIABLES
    | PLANNING_VARIABLES
)
BATCH_VARIABLES = (
    frozenset(
        {
            RESULT_BUCKET,
            THRESHOLD,
            ENGINE,
            MAX_ROWS,
            MAX_BYTES,
            GREEKS,
            BOUNDS,
            LOG_LEVEL,
            PRICING_WORKERS,
            AWS_REGION,
            JOB_VCPUS,
            JOB_MEMORY_MB,
            CAPACITY,
        }
    )
    | SUBMISSION_VARIABLES
    | PLANNING_VARIABLES
)
# Settings that travel in a variable of their own, never in PLAN_SETTINGS.
OWN_VARIABLE_SETTINGS = frozenset(
    {"threshold", "maxParts", "engine", "greeks", "region", "autoFastSeconds", "maxJobUsd"}
    | {"priceTable"}
)

# The stacks' defaults (Pulumi.yaml); tests/project/test_contract.py keeps them equal.
DEFAULT_THRESHOLD = 200
DEFAULT_MAX_ROWS = 500_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PARTS = 200
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_AUTO_FAST_SECONDS = 60
DEFAULT_MAX_JOB_USD = 0.0
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CAPACITIES = ("EC2", "SPOT", "FARGATE", "FARGATE_SPOT")
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1,769 MB


class SettingsError(ValueError):
    """A variable in the environment is missing or malformed."""


@dataclass(frozen=True)
class RuntimeConfig:
    """What the stack tells the image (both paths)."""

    result_bucket: str
    threshold: int = DEFAULT_THRESHOLD
    engine: str = DEFAULT_ENGINE
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_parts: int = DEFAULT_MAX_PARTS
    greeks: bool = False
    bounds: bool = False
    # (Lambda memory in MB, PRICING_WORKERS): CPU limits a container cannot see.
    cpu_limits: tuple[int | None, int | None] = (None, None)
    log_level: str = DEFAULT_LOG_LEVEL
    job_queue: str = ""
    job_definition: str = ""
    region: str = ""
    urgent_job_queue: str = ""  # "" = no urgent lane
    fair_share: tuple[str, ...] = ()  # the teams' share identifiers; () = FIFO
    stack_name: str = ""  # the job tag's value
    auto_fast_seconds: int = DEFAULT_AUTO_FAST_SECONDS
    max_job_usd: float = DEFAULT_MAX_JOB_USD  # 0 = no budget guard
    price_table: str = ""  # the priceTable override (JSON); "" = the defaults
    # PLAN_SETTINGS: (Pulumi name, value) of the planning settings without a variable
    planning: tuple[tuple[str, object], ...] = ()
    # What this process is billed for: a Batch job's capacity type, vCPUs and memory (MiB;
    # 0 = the stack's automatic size), and Lambda's memory (0 = not in Lambda)
    capacity: str = "EC2"
    job_vcpus: float = 1.0
    job_memory_mb: int = 0
    lambda_memory_mb: int = 0

    def plan_settings(self) -> planning.PlanSettings:
        """The stack's planning settings as this process was given them: PLAN_SETTINGS,
        then the settings that have their own variable."""
        base = planning.PlanSettings().with_values(dict(self.planning))
        return replace(
            base,
            region=self.region or base.region,
            engine=self.engine,
            greeks=self.greeks,
            threshold=self.threshold,
            max_parts=self.max_parts,
            auto_fast_seconds=self.auto_fast_seconds,
            max_job_usd=self.max_job_usd,
            price_table=self.price_table,
        )

    def prices(self) -> price_tables.PriceTable:
        """The price table usage is costed with: the region's and architecture's defaults
        with the priceTable override. A region without defaults whose override does not give
        every price is priced at us-east-1's list prices (logged): a job's cost is an
        estimate, and no setting may stop the pipeline."""
        settings = self.plan_settings()
        try:
            return price_tables.price_table(
                settings.region, settings.architecture, settings.price_table
            )
        except price_tables.PriceTableError as exc:
            log.warning("%s: pricing at %s's list prices", exc, price_tables.DEFAULT_REGION)
            table = price_tables.price_table(
                price_tables.DEFAULT_REGION, settings.architecture, settings.price_table
            )
            return replace(table, region=settings.region)

    @property
    def batch_memory_mb(self) -> int:
        """A Batch job's memory: JOB_MEMORY_MB, or the automatic size for its capacity."""
        if self.job_memory_mb:
            return self.job_memory_mb
        fargate = self.capacity.startswith("FARGATE")
        per_vcpu = (
            planning.FARGATE_AUTO_MEMORY_PER_VCPU if fargate else planning.EC2_AUTO_MEMORY_PER_VCPU
        )
        return int(per_vcpu * self.job_vcpus)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RuntimeConfig:
        bucket = _text(environ, RESULT_BUCKET)
        if not bucket:
            raise SettingsError(f"{RESULT_BUCKET} is not set: the result bucket's name is required")
        engine = _text(environ, ENGINE) or DEFAULT_ENGINE
        try:
            get_engine(engine)
        except ValueError as exc:
            raise SettingsError(f"{ENGINE}: {exc}") from exc
        log_level = (_text(environ, LOG_LEVEL) or DEFAULT_LOG_LEVEL).upper()
        if log_level not in _LOG_LEVELS:
            raise SettingsError(f"{LOG_LEVEL}={log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
        return cls(
            result_bucket=bucket,
            threshold=_positive_int(environ, THRESHOLD, DEFAULT_THRESHOLD),
            engine=engine,
            max_rows=_positive_int(environ, MAX_ROWS, DEFAULT_MAX_ROWS),
            max_bytes=_positive_int(environ, MAX_BYTES, DEFAULT_MAX_BYTES),
            max_parts=_positive_int(environ, MAX_PARTS, DEFAULT_MAX_PARTS),
            greeks=_boolean(environ, GREEKS),
            bounds=_boolean(environ, BOUNDS),
            cpu_limits=cpu_limits(environ),
            log_level=log_level,
            job_queue=_text(environ, JOB_QUEUE),
            job_definition=_text(environ, JOB_DEFINITION),
            region=_text(environ, AWS_REGION),
            urgent_job_queue=_text(environ, URGENT_JOB_QUEUE),
            fair_share=tuple(t.strip() for t in _text(environ, FAIR_SHARE).split(",") if t.strip()),
            stack_name=_text(environ, STACK_NAME),
            **_planning(environ, engine),
        )


@dataclass(frozen=True)
class BatchContext:
    """What AWS Batch and the manager tell one Batch job about itself."""

    job_id: str
    role: str  # manager | child | merge
    fence: str  # "token.attempt", as the runtime submitted the job
    array_index: int | None
    attempt: int
    part_indexes: tuple[int, ...] = ()

    @property
    def part_index(self) -> int | None:
        """The part a child prices: its array index, or the one PART_INDEXES maps it to."""
        if not self.part_indexes:
            return self.array_index
        position = self.array_index or 0
        return self.part_indexes[position] if position < len(self.part_indexes) else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BatchContext:
        index = _text(environ, AWS_BATCH_JOB_ARRAY_INDEX)
        if index and not index.isdigit():
            raise SettingsError(f"{AWS_BATCH_JOB_ARRAY_INDEX}={index!r} is not a whole number")
        try:
            indexes = parse_part_indexes(_text(environ, PART_INDEXES))
        except ValueError:
            raise SettingsError(
                f"{PART_INDEXES}={_text(environ, PART_INDEXES)!r} is not a list of parts "
                "such as 3,7-9"
            ) from None
        return cls(
            job_id=_text(environ, AWS_BATCH_JOB_ID),
            role=_text(environ, BATCH_ROLE),
            fence=_text(environ, JOB_FENCE),
            array_index=int(index) if index else None,
            attempt=_positive_int(environ, AWS_BATCH_JOB_ATTEMPT, 1),
            part_indexes=indexes,
        )


def _planning(environ: Mapping[str, str], engine: str) -> dict[str, object]:
    """The planning and metering fields of RuntimeConfig, checked as the planner checks
    them (a bad value names its variable)."""
    auto_fast = _text(environ, AUTO_FAST_SECONDS)
    try:
        auto_fast_seconds = int(auto_fast) if auto_fast else DEFAULT_AUTO_FAST_SECONDS
    except ValueError:
        raise SettingsError(f"{AUTO_FAST_SECONDS}={auto_fast!r} is not a whole number") from None
    if auto_fast_seconds < 0:
        raise SettingsError(f"{AUTO_FAST_SECONDS}={auto_fast_seconds} must not be negative")
    max_job_usd = _number(environ, MAX_JOB_USD, DEFAULT_MAX_JOB_USD)
    if max_job_usd < 0:
        raise SettingsError(f"{MAX_JOB_USD}={max_job_usd} must be 0 (off) or more")
    override = _text(environ, PRICE_TABLE)
    try:
        price_tables.parse_price_table(override)
    except price_tables.PriceTableError as exc:
        raise SettingsError(str(exc)) from None
    raw = _text(environ, PLAN_SETTINGS)
    try:
        document = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{PLAN_SETTINGS} is not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{PLAN_SETTINGS} must be a JSON object of settings")
    unknown = sorted(set(document) - set(planning.PLAN_SETTING_NAMES))
    if unknown:
        raise SettingsError(f"{PLAN_SETTINGS}: unknown setting(s) {', '.join(unknown)}")
    own = {name: value for name, value in document.items() if name not in OWN_VARIABLE_SETTINGS}
    try:
        planning.PlanSettings(engine=engine).with_values(own)
    except planning.SettingsError as exc:
        raise SettingsError(f"{PLAN_SETTINGS}: {exc}") from None
    capacity = (_text(environ, CAPACITY) or "EC2").upper()
    if capacity not in CAPACITIES:
        raise SettingsError(f"{CAPACITY}={capacity!r} is not one of {', '.join(CAPACITIES)}")
    job_vcpus = _number(environ, JOB_VCPUS, 1.0)
    if job_vcpus <= 0:
        raise SettingsError(f"{JOB_VCPUS}={job_vcpus} must be more than 0")
    in_lambda = bool(
        _text(environ, AWS_LAMBDA_RUNTIME_API) or _text(environ, AWS_LAMBDA_FUNCTION_NAME)
    )
    lambda_memory = _optional_int(environ, AWS_LAMBDA_FUNCTION_MEMORY_SIZE) if in_lambda else None
    return {
        "auto_fast_seconds": auto_fast_seconds,
        "max_job_usd": max_job_usd,
        "price_table": override if override not in ("{}",) else "",
        "planning": tuple(sorted(own.items())),
        "capacity": capacity,
        "job_vcpus": job_vcpus,
        "job_memory_mb": _optional_int(environ, JOB_MEMORY_MB) or 0,
        "lambda_memory_mb": lambda_memory or 0,
    }


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = _text(environ, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} is not a finite number")
    return value


def format_part_indexes(indexes: list[int]) -> str:
    """PART_INDEXES for sorted part numbers, runs written as ranges ("0-4999,5003"), so a
    retry of thousands of parts stays far inside SubmitJob's limits on overrides."""
    runs: list[list[int]] = []
    for index in indexes:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_part_indexes(text: str) -> tuple[int, ...]:
    """The part numbers ``format_part_indexes`` wrote; ValueError for anything else."""
    found: list[int] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        first, _, last = item.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(item)
        found.extend(range(int(first), int(last or first) + 1))
    return tuple(found)


def runtime_mode(environ: Mapping[str, str] = os.environ) -> str:
    """``lambda``, ``batch`` or ``cli``: what started this process."""
    if _text(environ, AWS_LAMBDA_RUNTIME_API):
        return "lambda"
    if _text(environ, AWS_BATCH_JOB_ID):
        return "batch"
    return "cli"


def cpu_limits(environ: Mapping[str, str] = os.environ) -> tuple[int | None, int | None]:
    """(Lambda memory in MB, explicit worker cap): limits on CPUs the kernel does not show.

    The memory counts only inside Lambda, where it sets the CPU share."""
    in_lambda = bool(
        _text(environ, AWS_LAMBDA_RUNTIME_API) or _text(environ, AWS_LAMBDA_FUNCTION_NAME)
    )
    memory = _optional_int(environ, AWS_LAMBDA_FUNCTION_MEMORY_SIZE) if in_lambda else None
    return memory, _optional_int(environ, PRICING_WORKERS)


def _text(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _optional_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = _text(environ, name)
    try:
        return int(raw) if raw else None
    except ValueError:
        return None  # a limit we cannot read is no limit; other limits still apply


def _boolean(environ: Mapping[str, str], name: str) -> bool:
    raw = _text(environ, name).lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name}={raw!r} is not true or false")


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(environ, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={value} must be at least 1")
    return value
