"""The status object users read, ``<input key>-status.json``: its fields and its states.

A job is ``running`` until it reaches exactly one terminal state:

    running -> done | failed | superseded | cancelled      (and failed -> running: retry)

Every change is a pure transition from the current document to the next (or None: leave
it), applied by the store's compare-and-swap, so concurrent writers never lose a state and
a terminal state is reached once. A transition records what it saw in ``seen``, so the
caller that made the change knows what it replaced (for the one job event it publishes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

RUNNING = "running"
DONE = "done"
FAILED = "failed"
SUPERSEDED = "superseded"
CANCELLED = "cancelled"
TERMINAL_STATES = (DONE, FAILED, SUPERSEDED, CANCELLED)
# The status lists at most this many missing parts: enough to act on, small to read.
MAX_LISTED_MISSING = 50


@dataclass
class JobStatus:
    """One upload's job, as ``<input key>-status.json`` shows it."""

    input: str  # s3://bucket/key of the upload
    token: str
    state: str
    path: str
    engine: str
    version: str = ""  # the upload's version id (or ETag) this job prices
    generation: int = 1  # grows by one with every newer upload of the same key
    rows: int = 0
    rows_with_errors: int = 0
    parts_total: int = 0
    parts_done: int = 0
    failed_parts: list[dict] = field(default_factory=list)
    missing_parts: list[int] = field(default_factory=list)
    error: str | None = None
    result: str | None = None  # s3:// URI of the published -result or -error object
    result_version: str | None = None
    supersedes: str | None = None  # token of the running job this one replaced
    batch_jobs: dict[str, str] = field(default_factory=dict)  # role -> Batch job id
    started_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def missing_parts(total: int, done: Sequence[int]) -> list[int]:
    present = set(done)
    return [i for i in range(total) if i not in present][:MAX_LISTED_MISSING]


Transition = Callable[[dict | None], dict | None]


class ConcurrentUpdateError(RuntimeError):
    """Too many writers raced for the status object; the caller's retry will try again."""


def begin(fresh: JobStatus, is_newer_than: Callable[[dict], bool], seen: dict) -> Transition:
    """Start ``fresh`` unless this upload already has a status, or a newer upload does.

    A running job of an older upload is superseded: ``seen["replaced"]`` holds its last
    document, for the superseded event. ``seen["current"]`` is what was found.
    """

    def update(current: dict | None) -> dict | None:
        seen.clear()
        seen["current"] = current
        if current is not None:
            if current.get("token") == fresh.token or not is_newer_than(current):
                return None
            if current.get("state") == RUNNING:
                seen["replaced"] = current
                fresh.supersedes = current.get("token")
            fresh.generation = int(current.get("generation", 1)) + 1
        return fresh.to_dict()

    return update


def _owned(current: dict | None, token: str, states: tuple[str, ...] = (RUNNING,)) -> bool:
    return current is not None and current.get("token") == token and current["state"] in states


def progress(token: str, now: float, **fields: object) -> Transition:
    """Update counters of a running job (parts done, failures, Batch job ids)."""

    def update(current: dict | None) -> dict | None:
        if not _owned(current, token):
            return None
        assert current is not None
        if all(current.get(name) == value for name, value in fields.items()):
            return None  # nothing new: spare a write
        current.update(fields, updated_at=now)
        return current

    return update


def count_parts(
    token: str, now: float, done: int, missing: list[int], failed: list[dict]
) -> Transition:
    """Record parts done and failed. Part results only accumulate while a job runs, so a
    count below the recorded one comes from a worker that looked earlier: it never wins."""

    def update(current: dict | None) -> dict | None:
        fields: dict[str, object] = {"failed_parts": failed}
        if current is not None and done >= int(current.get("parts_done", 0)):
            fields.update(parts_done=done, missing_parts=missing)
        return progress(token, now, **fields)(current)

    return update


def finish(token: str, state: str, now: float, seen: dict, **fields: object) -> Transition:
    """End a running job in ``state``; declined when it is not this job's or not running."""

    def update(current: dict | None) -> dict | None:
        seen.clear()
        seen["current"] = current
        if not _owned(current, token):
            return None
        assert current is not None
        current.update(fields, state=state, updated_at=now, finished_at=now)
        current["seconds"] = round(now - float(current.get("started_at") or now), 3)
        if state == DONE:
            current.update(missing_parts=[], failed_parts=[], error=None)
        return current

    return update


def cancel(token: str, now: float, seen: dict) -> Transition:
    return finish(token, CANCELLED, now, seen, error="cancelled by the user")


def reopen(token: str, now: float) -> Transition:
    """A failed job runs again (retry): its failures are cleared, its counters kept."""

    def update(current: dict | None) -> dict | None:
        if not _owned(current, token, (FAILED,)):
            return None
        assert current is not None
        current.update(
            state=RUNNING,
            error=None,
            failed_parts=[],
            result=None,
            result_version=None,
            finished_at=None,
            seconds=None,
            updated_at=now,
        )
        return current

    return update
