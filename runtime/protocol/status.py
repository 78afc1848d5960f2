"""The status object users read, ``<input key>-status.json``: its fields and states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class JobStatus:
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
