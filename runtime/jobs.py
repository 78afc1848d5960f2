"""The job protocol's pure half: keys, tokens, part plans, manifests, merging, status.

Everything here is deterministic and free of I/O, so both paths (Lambda fan-out and
Batch array jobs) and the tests share one definition of where things live.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

FAST = "fast"
NORMAL = "normal"
PATHS = (FAST, NORMAL)
FAST_PARTS_PREFIX = f"{FAST}/_parts/"

# AWS Batch refuses array jobs larger than this; the part size grows instead.
BATCH_MAX_ARRAY_SIZE = 10_000


class NotAJobKey(ValueError):
    """An S3 key that is not where the protocol puts uploads or parts."""


def path_of(input_key: str) -> str:
    """``fast`` or ``normal``, from the first segment of an input key."""
    first = input_key.split("/", 1)[0]
    if first not in PATHS:
        raise NotAJobKey(f"key {input_key!r} is not under fast/ or normal/")
    return first


def is_fast_part(input_key: str) -> bool:
    return input_key.startswith(FAST_PARTS_PREFIX)


def job_token(bucket: str, key: str, version: str) -> str:
    """Identity of one upload: the same object gives the same token, a re-upload a new one."""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()
    return digest[:24]


def result_key(input_key: str) -> str:
    return f"{input_key}-result"


def error_key(input_key: str) -> str:
    return f"{input_key}-error"


def status_key(input_key: str) -> str:
    return f"{input_key}-status.json"


def work_prefix(path: str, token: str) -> str:
    return f"{path}/_work/{token}/"


def manifest_key(path: str, token: str) -> str:
    return work_prefix(path, token) + "manifest.json"


def lock_key(path: str, token: str) -> str:
    return work_prefix(path, token) + "merge.lock"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def results_prefix(path: str, token: str) -> str:
    return work_prefix(path, token) + "results/"


def part_result_key(path: str, token: str, index: int) -> str:
    return results_prefix(path, token) + f"{part_name(index)}.csv"


def failures_prefix(path: str, token: str) -> str:
    return work_prefix(path, token) + "failed/"


def part_failure_key(path: str, token: str, index: int) -> str:
    return failures_prefix(path, token) + f"{part_name(index)}.json"


def fast_part_key(token: str, index: int) -> str:
    """Fast parts live under ``fast/`` in the input bucket so each starts its own Lambda."""
    return f"{FAST_PARTS_PREFIX}{token}/{part_name(index)}.csv"


def batch_part_key(token: str, index: int) -> str:
    """Batch parts live in the result bucket's work area, so they start no jobs."""
    return work_prefix(NORMAL, token) + f"parts/{part_name(index)}.csv"


def parse_fast_part_key(key: str) -> tuple[str, int]:
    """(token, index) from a key written by ``fast_part_key``; ValueError otherwise."""
    rest = key.removeprefix(FAST_PARTS_PREFIX)
    token, _, name = rest.partition("/")
    number = name.removeprefix("part-").removesuffix(".csv")
    if not token or not name.startswith("part-") or not number.isdigit():
        raise NotAJobKey(f"{key!r} is not a part key")
    return token, int(number)


def part_index_of(key: str) -> int:
    """The part number in any part or part-result key."""
    name = key.rsplit("/", 1)[-1]
    return int(name.split(".", 1)[0].removeprefix("part-"))


def plan_parts(rows: int, threshold: int, max_parts: int) -> list[range]:
    """Row ranges of consecutive parts of at most ``threshold`` rows each.

    When that would take more than ``max_parts`` parts, the part size grows instead, so a
    huge file still runs (with bigger parts) rather than failing.
    """
    if threshold < 1 or max_parts < 1:
        raise ValueError("threshold and max_parts must be at least 1")
    size = max(threshold, math.ceil(rows / max_parts))
    return [range(start, min(start + size, rows)) for start in range(0, rows, size)]


@dataclass
class Manifest:
    """What a split job expects; written before any part so every worker can find it."""

    token: str
    path: str
    input_bucket: str
    input_key: str
    version: str
    engine: str
    rows: int
    part_rows: list[int]
    part_keys: list[str]
    result_header: list[str]
    started_at: float

    @property
    def parts(self) -> int:
        return len(self.part_rows)


def merge_results(header: bytes, part_results: Sequence[bytes]) -> bytes:
    """One result from part results in part order; each starts with the same header line."""
    body = [header]
    for index, part in enumerate(part_results):
        if not part.startswith(header):
            raise ValueError(f"{part_name(index)} result does not start with the job's header")
        body.append(part[len(header) :])
    return b"".join(body)


@dataclass
class Status:
    """The status object users read: ``<input key>-status.json`` in the result bucket."""

    input: str
    token: str
    state: str  # running | done | failed
    path: str
    engine: str
    rows: int = 0
    parts_total: int = 0
    parts_done: int = 0
    failed_parts: list[dict] = field(default_factory=list)
    missing_parts: list[int] = field(default_factory=list)
    error: str | None = None
    started_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


TERMINAL_STATES = ("done", "failed")
# The status lists at most this many missing parts: enough to act on, small to read.
MAX_LISTED_MISSING = 50


def missing_parts(total: int, done: Sequence[int]) -> list[int]:
    present = set(done)
    return [i for i in range(total) if i not in present][:MAX_LISTED_MISSING]
