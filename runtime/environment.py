"""The one reader of the environment: every variable the image reads, named once, typed.

Defaults equal the stacks' defaults (``Pulumi.yaml``), so a process run without the stack's
environment (``simulate``, tests) behaves like a deployed stack. Which component sets which
variable is checked by ``tests/project/test_contract.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.engines import DEFAULT_ENGINE, get_engine

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
# Set by the stack on the job definition only.
PRICING_WORKERS = "PRICING_WORKERS"
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
        }
    )
    | SUBMISSION_VARIABLES
)

# The stacks' defaults (Pulumi.yaml); tests/project/test_contract.py keeps them equal.
DEFAULT_THRESHOLD = 200
DEFAULT_MAX_ROWS = 500_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PARTS = 200
DEFAULT_LOG_LEVEL = "INFO"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
