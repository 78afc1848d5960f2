"""A file and a stack's settings in; per path, parts, wall time and USD out.

``plan_file`` reads an upload's bytes (no upload, nothing sent anywhere), ``plan_options``
takes rows the caller already parsed (the splitter, the auto lane). ``part_sizing`` is
what the splitter asks: rows per part on a path for the rows in hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runtime.core.csvio import Row, parse_rows, read_table
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
    prices = prices or price_table(settings.region, settings.architecture, settings.price_table)
    engine = model.engine(settings.engine)
    pricing = model.row_seconds(options, settings.engine, settings.greeks)
    row_seconds = pricing + model.io_per_row
    paths = {
        FAST: fast_path(row_seconds, settings, prices, model, latencies),
        NORMAL: batch_path(row_seconds, settings, prices, model, latencies),
        URGENT: batch_path(row_seconds, settings, prices, model, latencies, urgent=True),
    }
    auto_path, auto_reason = choose_path(paths, settings.auto_fast_seconds)
    return Plan(
        rows=len(options),
        options=sum(1 for spec in options if spec is not None),
        engine=settings.engine,
        greeks=settings.greeks,
        cpu_seconds=engine.price_fixed + float(np.sum(row_seconds)),
        paths=paths,
        auto_path=auto_path,
        auto_reason=auto_reason,
        budget={name: over_budget(paths, name, settings.max_job_usd) for name in paths},
        model_current=model.is_current(settings.engine),
        calibrated=str(model.document.get("calibrated", "")),
    )


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
