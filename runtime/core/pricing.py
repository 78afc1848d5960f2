"""Pricing a table: the one function every path (local, Lambda, Batch) calls."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.core.csvio import Row, Table, parse_rows, result_header, result_records, write_csv
from runtime.core.options import Quote
from runtime.engines import Engine

Progress = Callable[[int], None]

# With a progress bar, up to this many updates per file, but batches of at least
# _MIN_BATCH options, so vectorised and multi-process engines still see real batches.
_PROGRESS_STEPS = 50
_MIN_BATCH = 32


def price_rows(
    rows: Sequence[Row], engine: Engine, progress: Progress | None = None
) -> list[Quote | None]:
    """Quote every valid row in batches; rows with errors get None. Order is kept."""
    valid = [i for i, row in enumerate(rows) if row.option is not None]
    quotes: list[Quote | None] = [None] * len(rows)
    if progress and len(valid) < len(rows):
        progress(len(rows) - len(valid))
    if progress is None:
        batch = max(1, len(valid))  # one call: the engine sees the whole table
    else:
        batch = max(_MIN_BATCH, math.ceil(len(valid) / _PROGRESS_STEPS))
    for start in range(0, len(valid), batch):
        chunk = valid[start : start + batch]
        options = [rows[i].option for i in chunk]
        for i, quote in zip(chunk, engine(options), strict=True):  # type: ignore[arg-type]
            quotes[i] = quote
        if progress:
            progress(len(chunk))
    return quotes


@dataclass(frozen=True)
class PricedTable:
    csv: bytes  # input columns, then price, stdError, error
    rows: int
    errors: int


def price_table(table: Table, engine: Engine, progress: Progress | None = None) -> PricedTable:
    """Price every row of ``table`` into a result CSV, counting the rows with errors."""
    rows = parse_rows(table)
    records = result_records(rows, price_rows(rows, engine, progress))
    errors = sum(1 for record in records if record[-1])
    return PricedTable(write_csv(result_header(table.header), records), len(rows), errors)
