"""A file and a stack's settings in; per path, parts, wall time and USD out.

``plan_file`` reads an upload's bytes (no upload, nothing sent anywhere), ``plan_options``
takes rows the caller already parsed, ``plan_table`` a table the caller read but did not
parse (the splitter, the auto lane and the budget guard, which plan from a sample).
``part_sizing`` is rows per part on a path for the rows in hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runtime.core.csvio import Row, Table, parse_rows, read_table
from runtime.core.options import OptionSpec
from runtime.planning.decide import choose_path, over_budget
from runtime.planning.model import CostModel, load_model
from runtime.planning.paths import (
    DEFAULT_LATENCIES,
    FAST,
    NORMAL,
    URGENT,
    Latencies,
    PartSizing,
    PathPlan,
    batch_path,
    batch_sizing,
    fast_path,
    fast_sizing,
)
from runtime.planning.prices import PriceTable, price_table
from runtime.planning.settings import PlanSettings

PATH_NAMES = (FAST, NORMAL, URGENT)
# Rows a job's start parses to plan it. Parsing is what a plan costs: every row of a
# 500,000-row file takes 17 s here (csvio.parse_rows), more than reading and splitting the
# file; 4,000 rows spread evenly through it take about 0.1 s, and each stands for the rows
# up to the next one (docs/cost.md, "Parts that fit").
SAMPLE_ROWS = 4_000
# A sampled row's estimate is the mean of this many neighbouring samples: one heavy row
# (mc's cost per row spans two orders of magnitude) must not stand for a whole stretch of
# the file, while a slow stretch that spans several samples stays slow.
SAMPLE_WINDOW = 5


@dataclass
class Plan:
    """The estimate for one file under one stack's settings."""

    rows: int
    options: int  # rows that are options (the others are row errors: parsed, not priced)
    engine: str
    greeks: bool
    cpu_seconds: float  # a one-core ``python -m runtime price`` run of the file
    paths: dict[str, PathPlan]
    auto_path: str
    auto_reason: str
    budget: dict[str, str | None] = field(default_factory=dict)  # path -> guard's reason
    model_current: bool = True
    calibrated: str = ""

    def to_dict(self) -> dict:
        """``{"rows", "cpuSeconds", "paths": {path: {"wallSeconds", "usd", ...}}}``."""
        paths = {}
        for name, path in self.paths.items():
            entry = path.to_dict()
            if not path.available:
                entry = {"wallSeconds": None, "usd": None, **entry}
            entry["auto"] = name == self.auto_path
            if entry["auto"]:
                entry["autoReason"] = self.auto_reason
            entry["overBudget"] = self.budget.get(name)
            paths[name] = entry
        return {"rows": self.rows, "cpuSeconds": round(self.cpu_seconds, 3), "paths": paths}


def plan_options(
    options: Sequence[OptionSpec | None],
    settings: PlanSettings,
    model: CostModel | None = None,
    prices: PriceTable | None = None,
    latencies: Latencies = DEFAULT_LATENCIES,
) -> Plan:
    """The plan for rows already parsed (None for a row that is not an option)."""
    model = model or load_model()
    pricing = model.row_seconds(options, settings.engine, settings.greeks)
    counted = sum(1 for spec in options if spec is not None)
    return plan_seconds(pricing + model.io_per_row, counted, settings, model, prices, latencies)


def plan_seconds(
    row_seconds: np.ndarray,
    options: int,
    settings: PlanSettings,
    model: CostModel | None = None,
    prices: PriceTable | None = None,
    latencies: Latencies = DEFAULT_LATENCIES,
    paths: Sequence[str] = PATH_NAMES,
) -> Plan:
    """The plan for each row's one-core seconds (pricing and I/O), on ``paths`` only (the
    auto lane's choice needs fast and normal; a splitter asks for its own path)."""
    model = model or load_model()
    prices = prices or price_table(settings.region, settings.architecture, settings.price_table)
    engine = model.engine(settings.engine)
    builders = {
        FAST: lambda: fast_path(row_seconds, settings, prices, model, latencies),
        NORMAL: lambda: batch_path(row_seconds, settings, prices, model, latencies),
        URGENT: lambda: batch_path(row_seconds, settings, prices, model, latencies, urgent=True),
    }
    planned = {name: builders[name]() for name in PATH_NAMES if name in paths}
    auto_path, auto_reason = "", ""
    if FAST in planned and NORMAL in planned:
        auto_path, auto_reason = choose_path(planned, settings.auto_fast_seconds)
    return Plan(
        rows=len(row_seconds),
        options=options,
        engine=settings.engine,
        greeks=settings.greeks,
        cpu_seconds=engine.price_fixed + float(np.sum(row_seconds)),
        paths=planned,
        auto_path=auto_path,
        auto_reason=auto_reason,
        budget={name: over_budget(planned, name, settings.max_job_usd) for name in planned},
        model_current=model.is_current(settings.engine),
        calibrated=str(model.document.get("calibrated", "")),
    )


def sample_indexes(rows: int, limit: int = SAMPLE_ROWS) -> np.ndarray:
    """At most ``limit`` row indexes spread evenly over ``rows``, the first row included."""
    if rows <= limit:
        return np.arange(rows)
    return np.unique(np.linspace(0, rows - 1, limit).astype(np.int64))


def table_row_seconds(
    table: Table, settings: PlanSettings, model: CostModel | None = None, sample: int = SAMPLE_ROWS
) -> tuple[np.ndarray, int]:
    """Each record's one-core seconds (pricing and I/O), and how many are options, from a
    sample of at most ``sample`` records: a sampled record (averaged with its neighbours,
    ``SAMPLE_WINDOW``) stands for the records after it up to the next sampled one, so slow
    stretches of the file stay where they are (parts are cut in file order). With fewer
    records than ``sample``, exact."""
    model = model or load_model()
    rows = len(table.records)
    chosen = sample_indexes(rows, sample)
    parsed = parse_rows(Table(table.header, [table.records[i] for i in chosen]), settings.greeks)
    options = [row.option for row in parsed]
    seconds = model.row_seconds(options, settings.engine, settings.greeks) + model.io_per_row
    if len(chosen) == rows:
        return seconds, sum(1 for spec in options if spec is not None)
    window = min(SAMPLE_WINDOW, len(seconds))
    padded = np.pad(seconds, (window // 2, window - 1 - window // 2), mode="edge")
    smoothed = np.convolve(padded, np.full(window, 1.0 / window), mode="valid")
    spans = np.diff(np.append(chosen, rows))
    share = sum(1 for spec in options if spec is not None) / max(len(options), 1)
    return np.repeat(smoothed, spans), round(share * rows)


def plan_table(
    table: Table,
    settings: PlanSettings,
    paths: Sequence[str] = PATH_NAMES,
    model: CostModel | None = None,
    prices: PriceTable | None = None,
    sample: int = SAMPLE_ROWS,
) -> Plan:
    """The plan for a table read but not parsed (``csvio.read_table``), from a sample."""
    model = model or load_model()
    seconds, options = table_row_seconds(table, settings, model, sample)
    return plan_seconds(seconds, options, settings, model, prices, paths=paths)


def plan_rows(rows: Sequence[Row], settings: PlanSettings, **kwargs) -> Plan:
    """The plan for a parsed table's rows (``csvio.parse_rows``)."""
    return plan_options([row.option for row in rows], settings, **kwargs)


def plan_file(data: bytes, settings: PlanSettings, max_rows: int | None = None, **kwargs) -> Plan:
    """The plan for an upload's bytes; ``csvio.FileError`` when the file cannot be read."""
    table = read_table(data, max_rows=max_rows, greeks=settings.greeks)
    return plan_rows(parse_rows(table, settings.greeks), settings, **kwargs)


def part_sizing(
    options: Sequence[OptionSpec | None],
    settings: PlanSettings,
    path: str,
    model: CostModel | None = None,
    latencies: Latencies = DEFAULT_LATENCIES,
) -> PartSizing:
    """Rows per part for ``path`` (fast: Lambda's timeout and maxParts; normal or urgent:
    jobTimeoutSeconds and Batch's array limit), ``threshold`` being the ceiling. The
    splitter passes ``size`` to ``manifest.plan_parts`` as its threshold."""
    model = model or load_model()
    row_seconds = model.row_seconds(options, settings.engine, settings.greeks) + model.io_per_row
    if path == FAST:
        return fast_sizing(row_seconds, settings, model, latencies)
    return batch_sizing(row_seconds, settings, model, latencies)
