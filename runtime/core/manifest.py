"""A split job's plan: part ranges, the manifest every worker reads, and the merge."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from runtime.core.keys import part_name

# AWS Batch refuses array jobs larger than this; the part size grows instead.
BATCH_MAX_ARRAY_SIZE = 10_000


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
    generation: int = 1
    greeks: bool = False
    bounds: bool = False  # priceLow, priceHigh in every part's result (issue 19)
    # The SHA-256 of each part as the splitter wrote it: workers price exactly that
    # content, so an object written over a part later can never change a result.
    part_sha256: list[str] = field(default_factory=list)

    @property
    def parts(self) -> int:
        return len(self.part_rows)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict) -> Manifest:
        return cls(
            **{name: document[name] for name in cls.__dataclass_fields__ if name in document}
        )


def merge_results(header: bytes, part_results: Sequence[bytes]) -> bytes:
    """One result from part results in part order; each starts with the same header line."""
    body = [header]
    for index, part in enumerate(part_results):
        if not part.startswith(header):
            raise ValueError(f"{part_name(index)} result does not start with the job's header")
        body.append(part[len(header) :])
    return b"".join(body)
