"""Where the job protocol keeps things: S3 keys and upload tokens, pure and I/O-free.

Both paths (Lambda fan-out and Batch array jobs) and the tests share this one definition
of where things live.
"""

from __future__ import annotations

import hashlib

FAST = "fast"
NORMAL = "normal"
PATHS = (FAST, NORMAL)
FAST_PARTS_PREFIX = f"{FAST}/_parts/"


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
    """Batch parts live in the result bucket's work area, so they start no keys."""
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
