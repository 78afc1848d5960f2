"""Where the job protocol keeps things: S3 keys and upload tokens, pure and I/O-free.

Both paths (Lambda fan-out and Batch array jobs) and the tests share this one definition
of where things live, and of which keys are uploads at all (``upload_problem``).
"""

from __future__ import annotations

import hashlib
import re

FAST = "fast"
NORMAL = "normal"
URGENT = "urgent"
AUTO = "auto"
# The lanes an upload can take (its key's first segment).
PATHS = (FAST, NORMAL, URGENT, AUTO)
# Where a job's parts run: on Lambda (FAST) or on AWS Batch (NORMAL), whatever its lane;
# each runner keeps its temporary objects under its own prefix.
RUNNERS = (FAST, NORMAL)
BATCH_LANES = (NORMAL, URGENT)
# Standing books that schedules copy into jobs; never a job by themselves.
BOOKS = "books"
FAST_PARTS_PREFIX = f"{FAST}/_parts/"
# Path segments the protocol keeps for itself: an upload may not use them anywhere.
RESERVED_SEGMENTS = ("_parts", "_work")
STATUS_SUFFIX = "-status.json"
# S3 keys are at most 1,024 bytes; the longest key derived from an upload adds the suffix.
MAX_UPLOAD_KEY_BYTES = 1024 - len(STATUS_SUFFIX)

_PART_NAME = re.compile(r"part-(\d{5,})")


class NotAJobKey(ValueError):
    """An S3 key that is not where the protocol puts uploads or parts."""


def path_of(input_key: str) -> str:
    """The lane (``fast``, ``normal``, ``urgent`` or ``auto``): an input key's first segment."""
    first = input_key.split("/", 1)[0]
    if first not in PATHS:
        lanes = ", ".join(f"{lane}/" for lane in PATHS)
        raise NotAJobKey(f"key {input_key!r} is not under {lanes}")
    return first


def is_csv(key: str) -> bool:
    return key.lower().endswith(".csv")


def is_fast_part(input_key: str) -> bool:
    return input_key.startswith(FAST_PARTS_PREFIX)


def upload_problem(key: str) -> str | None:
    """Why ``key`` cannot be a user's upload, or None when it is one.

    The rules README states: under one of the lanes' prefixes; the name ends in ``.csv`` in
    any case; no path segment is ``_parts`` or ``_work``; at most MAX_UPLOAD_KEY_BYTES.
    """
    path_of(key)
    if not is_csv(key):
        return "not a .csv file"
    reserved = [s for s in key.split("/")[1:-1] if s in RESERVED_SEGMENTS]
    if reserved:
        return f"the path segment {reserved[0]!r} is reserved for the pipeline's own objects"
    if len(key.encode()) > MAX_UPLOAD_KEY_BYTES:
        return (
            f"the key is {len(key.encode())} bytes: at most {MAX_UPLOAD_KEY_BYTES} leave room "
            f"for the result keys (S3 allows 1,024)"
        )
    return None


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def scheduled_key(path: str, schedule: str, book: str, scheduled_time: str) -> str:
    """Where a schedule's run of ``books/<book>`` goes: an ordinary upload of ``path``,
    under a job id made of the schedule's name and its scheduled time (UTC, to the minute),
    so every run of a schedule has its own key and a repeated delivery of one run the same.
    NotAJobKey for anything that cannot make such a key."""
    if path not in (FAST, NORMAL, URGENT):
        raise NotAJobKey(f"a schedule's path is fast, normal or urgent, not {path!r}")
    if not _SAFE_NAME.fullmatch(schedule):
        raise NotAJobKey(f"schedule name {schedule!r}: letters, digits, '.', '_' and '-'")
    segments = book.split("/")
    if not is_csv(book) or any(s in ("", ".", "..", *RESERVED_SEGMENTS) for s in segments):
        raise NotAJobKey(f"book {book!r} is not a .csv key under books/")
    digits = re.sub(r"[^0-9]", "", scheduled_time)
    if len(digits) < 12:
        raise NotAJobKey(f"scheduled time {scheduled_time!r} is not an ISO 8601 time")
    stamp = f"{digits[:8]}T{digits[8:12]}Z"
    return f"{path}/{schedule}-{stamp}/{segments[-1]}"


def job_token(bucket: str, key: str, version: str) -> str:
    """Identity of one upload: the same object gives the same token, a re-upload a new one."""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()
    return digest[:24]


def result_key(input_key: str) -> str:
    return f"{input_key}-result"


def error_key(input_key: str) -> str:
    return f"{input_key}-error"


def status_key(input_key: str) -> str:
    return f"{input_key}{STATUS_SUFFIX}"


def work_prefix(path: str, token: str) -> str:
    return f"{path}/_work/{token}/"


def manifest_key(path: str, token: str) -> str:
    return work_prefix(path, token) + "manifest.json"


def lock_key(path: str, token: str, attempt: int) -> str:
    """The merge claim of one attempt (a retry's merge is a new claimant)."""
    return work_prefix(path, token) + f"merge-{attempt}.lock"


def published_marker_key(path: str, token: str) -> str:
    """Written once the job event of an upload that has no status was published (a key too
    long for one): its duplicate deliveries publish nothing more."""
    return work_prefix(path, token) + "event-published"


def usage_prefix(path: str, token: str) -> str:
    """Where the job's actors keep their usage records (one per actor and attempt)."""
    return work_prefix(path, token) + "usage/"


def usage_key(path: str, token: str, actor: str, attempt: int) -> str:
    """One actor's record of one attempt: ``lambda-<request id>`` or ``batch-<job id>``."""
    return usage_prefix(path, token) + f"{actor}-{attempt}.json"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def results_prefix(path: str, token: str) -> str:
    return work_prefix(path, token) + "results/"


def part_result_key(path: str, token: str, index: int) -> str:
    return results_prefix(path, token) + f"{part_name(index)}.csv"


def fast_parts_prefix(token: str) -> str:
    return f"{FAST_PARTS_PREFIX}{token}/"


def fast_part_key(token: str, attempt: int, index: int) -> str:
    """Fast parts live under ``fast/`` in the input bucket so each starts its own Lambda;
    the attempt they are priced for is in the key, so every event about a part (and
    Lambda's record of its failure) names its attempt."""
    return f"{fast_parts_prefix(token)}{attempt}/{part_name(index)}.csv"


def batch_part_key(token: str, index: int) -> str:
    """Batch parts live in the result bucket's work area, so they start no jobs."""
    return work_prefix(NORMAL, token) + f"parts/{part_name(index)}.csv"


def parse_fast_part_key(key: str) -> tuple[str, int, int]:
    """(token, attempt, index) from a key written by ``fast_part_key``; NotAJobKey
    otherwise."""
    segments = key.removeprefix(FAST_PARTS_PREFIX).split("/")
    if not key.startswith(FAST_PARTS_PREFIX) or len(segments) != 3:
        raise NotAJobKey(f"{key!r} is not a part key")
    token, attempt, name = segments
    match = _PART_NAME.fullmatch(name.removesuffix(".csv")) if name.endswith(".csv") else None
    if not token or not attempt.isdigit() or int(attempt) < 1 or match is None:
        raise NotAJobKey(f"{key!r} is not a part key")
    return token, int(attempt), int(match.group(1))


def indexes_in(keys: list[str], prefix: str, suffix: str) -> set[int]:
    """Part numbers of exactly the keys ``<prefix>part-NNNNN<suffix>``; anything else that
    happens to sit under the prefix is ignored, so it can never count as a part."""
    found = set()
    for key in keys:
        name = key[len(prefix) :] if key.startswith(prefix) else ""
        match = _PART_NAME.fullmatch(name.removesuffix(suffix)) if name.endswith(suffix) else None
        if match:
            found.add(int(match.group(1)))
    return found
