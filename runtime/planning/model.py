"""CPU seconds per row, from what the file says: the engine cost model.

Every row falls in a class the engine treats differently (``row_classes``):

- ``expired``: maturity on or before the evaluation date, worth 0 without any work (the
  CSV contract refuses such rows, so only a caller's own options can be; costed as closed);
- ``closed``: priced by a closed form. ``lsm``: European exercise, or American where early
  exercise is never optimal (calls with q <= 0 and r >= 0, puts with r <= 0 and q >= 0);
  ``mc`` and ``qdfp``: European exercise (QuantLib's analytic engine); ``fd``: none;
- ``early``: American options that need the engine's real work.

An ``early`` row's cost comes from a table of measured CPU seconds per row, indexed by the
bins of a few features (the engine's own axes, chosen by the calibration):

- ``years``: settlement to maturity (Actual/365);
- ``scale``: strike x volatility x sqrt(years), the price scale of the payoff's spread; a
  Monte Carlo with an absolute standard-error target (mc, today's lsm) needs more paths for
  a larger one;
- ``moneyness``: ln(spot / strike), signed so that positive is in the money;
- ``spread``: volatility x sqrt(years), what sets ``fd``'s grid size.

The table, per-row overheads (parse, check, write) and fixed costs (process start, a cold
Lambda's imports, S3 requests per step) live in ``coefficients.json`` beside this module,
written by ``python -m benchmarks.calibrate_planner`` from measurements (one core, CPU
time). Re-run it when an engine changes: ``model_is_current`` tells whether the engine's
source is the one the table was measured on.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.core.options import OptionSpec

COEFFICIENTS = Path(__file__).resolve().parent / "coefficients.json"
ENGINE_SOURCES = {
    "lsm": "lsm.py",
    "mc": "quantlib_engines.py",
    "qdfp": "quantlib_engines.py",
    "fd": "quantlib_engines.py",
}
CLASSES = ("expired", "closed", "early")
FEATURES = ("years", "scale", "moneyness", "spread")
LOG_FEATURES = ("years", "scale", "spread")  # positive, spanning decades


class ModelError(ValueError):
    """The coefficient table is missing, malformed or lacks an engine."""


def engine_fingerprint(engine: str) -> str:
    """The first 12 hex digits of the SHA-256 of the engine's source file."""
    source = Path(__file__).resolve().parents[1] / "engines" / ENGINE_SOURCES[engine]
    return hashlib.sha256(source.read_bytes()).hexdigest()[:12]


def row_classes(options: Sequence[OptionSpec | None], engine: str) -> np.ndarray:
    """Each row's class for ``engine`` (``invalid`` for rows that are not options)."""
    out = np.empty(len(options), dtype=object)
    for i, spec in enumerate(options):
        out[i] = _row_class(spec, engine)
    return out


def _row_class(spec: OptionSpec | None, engine: str) -> str:
    if spec is None:
        return "invalid"
    if spec.maturity <= spec.today:
        return "expired"
    if not spec.american:
        return "early" if engine == "fd" else "closed"
    if engine == "lsm":
        r, q = spec.rate, spec.dividend_yield
        never_early = (spec.is_call and q <= 0.0 and r >= 0.0) or (
            not spec.is_call and r <= 0.0 and q >= 0.0
        )
        if never_early or spec.volatility == 0.0 or spec.spot == 0.0:
            return "closed"
    return "early"


def features(options: Sequence[OptionSpec]) -> dict[str, np.ndarray]:
    """The table's features for rows that are options (see the module's docstring)."""
    years = np.array([max((s.maturity - s.settlement).days, 0) / 365.0 for s in options])
    vol = np.array([s.volatility for s in options], dtype=np.float64)
    strike = np.array([s.strike for s in options], dtype=np.float64)
    spot = np.array([s.spot for s in options], dtype=np.float64)
    sign = np.array([1.0 if s.is_call else -1.0 for s in options])
    root = np.sqrt(years)
    with np.errstate(divide="ignore", invalid="ignore"):
        moneyness = sign * np.log(np.maximum(spot, 1e-300) / strike)
    return {
        "years": years,
        "scale": strike * vol * root,
        "moneyness": moneyness,
        "spread": vol * root,
    }


@dataclass(frozen=True)
class EngineTable:
    """One engine's measured costs (seconds per row, one core) without and with Greeks."""

    closed: tuple[float, float]
    axes: dict[str, tuple[float, ...]]  # feature -> bin edges (bins = edges + 1)
    early: tuple[np.ndarray, np.ndarray]  # cells, shape (len(edges) + 1 for each axis)
    price_fixed: float  # CPU of a one-row ``price`` run: interpreter, imports, first call
    lambda_cold: float  # a cold Lambda's own start: handler imports, engine's first call
    batch_cold: float  # a Batch container's own start: job module imports, first call
    fingerprint: str

    centres: dict[str, tuple[float, ...]] = field(default_factory=dict)  # per axis, per bin

    def early_seconds(self, values: Mapping[str, np.ndarray], greeks: bool) -> np.ndarray:
        """Each row's cell; with ``centres``, interpolated between the cells' centres.

        Costs grow like a power of the scale or the maturity inside a bin (a Monte Carlo to
        an absolute error: paths grow with the scale squared), so the logarithm of the cost
        is interpolated, linearly in the logarithm of years, scale and spread and linearly
        in moneyness, and held constant beyond the outer centres."""
        table = self.early[1 if greeks else 0]
        rows = len(values["years"])
        if not self.axes:
            return np.full(rows, float(table))
        if not self.centres:
            index = tuple(
                np.searchsorted(np.asarray(edges), values[name], side="right")
                for name, edges in self.axes.items()
            )
            return table[index]
        logs = np.log(np.maximum(table, 1e-12))
        corners: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for name in self.axes:
            centres = np.asarray(self.centres[name])
            x = np.asarray(values[name], dtype=np.float64)
            if name in LOG_FEATURES:
                centres, x = np.log(centres), np.log(np.maximum(x, 1e-12))
            if len(centres) == 1:
                corners.append([(np.zeros(rows, dtype=int), np.ones(rows))])
                continue
            low = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, len(centres) - 2)
            t = np.clip((x - centres[low]) / (centres[low + 1] - centres[low]), 0.0, 1.0)
            corners.append([(low, 1.0 - t), (low + 1, t)])
        result = np.zeros(rows)
        for choice in itertools.product(*corners):
            weight = np.prod([w for _, w in choice], axis=0)
            result += weight * logs[tuple(i for i, _ in choice)]
        return np.exp(result)


@dataclass(frozen=True)
class CostModel:
    """Everything ``coefficients.json`` says, ready to use."""

    engines: dict[str, EngineTable]
    io_per_row: float  # read, parse, check and write one row (price_table, no engine)
    split_per_row: float  # read the upload and write it as parts
    merge_per_row: float  # join part results
    requests: dict[str, dict[str, float]]  # step -> {"get", "put", "getPerPart", ...}
    document: dict[str, Any]

    def engine(self, name: str) -> EngineTable:
        try:
            return self.engines[name]
        except KeyError:
            raise ModelError(
                f"no cost model for engine {name!r}: run python -m runtime.tools."
                f"calibrate_planner --engines {name}"
            ) from None

    def row_seconds(
        self, options: Sequence[OptionSpec | None], engine: str, greeks: bool
    ) -> np.ndarray:
        """Pricing CPU seconds of each row on one core (0 for rows that are not options)."""
        table = self.engine(engine)
        classes = row_classes(options, engine)
        seconds = np.zeros(len(options))
        g = 1 if greeks else 0
        seconds[(classes == "closed") | (classes == "expired")] = table.closed[g]
        early = np.flatnonzero(classes == "early")
        if len(early):
            values = features([options[i] for i in early])  # type: ignore[misc]
            seconds[early] = table.early_seconds(values, greeks)
        return seconds

    def is_current(self, engine: str) -> bool:
        """Whether the engine's source is the one this table was measured on."""
        return self.engine(engine).fingerprint == engine_fingerprint(engine)


def parse_model(document: Mapping[str, Any]) -> CostModel:
    """A ``CostModel`` from the coefficient document (ModelError naming what is wrong)."""
    try:
        engines = {}
        for name, raw in document["engines"].items():
            axes = {axis: tuple(float(e) for e in edges) for axis, edges in raw["axes"].items()}
            unknown = set(axes) - set(FEATURES)
            if unknown:
                raise ModelError(f"engine {name}: unknown axes {sorted(unknown)}")
            shape = tuple(len(edges) + 1 for edges in axes.values())
            early = tuple(
                np.asarray(raw["early"][kind], dtype=np.float64) for kind in ("price", "greeks")
            )
            for cells in early:
                if cells.shape != shape or not np.all(np.isfinite(cells)) or np.any(cells < 0):
                    raise ModelError(f"engine {name}: early cells must be {shape}, finite, >= 0")
            engines[name] = EngineTable(
                closed=tuple(float(v) for v in raw["closed"]),  # type: ignore[arg-type]
                axes=axes,
                early=early,  # type: ignore[arg-type]
                price_fixed=float(raw["priceFixed"]),
                lambda_cold=float(raw["lambdaCold"]),
                batch_cold=float(raw["batchCold"]),
                fingerprint=str(raw.get("fingerprint", "")),
                centres=_centres(name, raw.get("centres"), axes),
            )
        overheads = document["overheads"]
        return CostModel(
            engines=engines,
            io_per_row=float(overheads["ioPerRow"]),
            split_per_row=float(overheads["splitPerRow"]),
            merge_per_row=float(overheads["mergePerRow"]),
            requests={
                step: {k: float(v) for k, v in counts.items()}
                for step, counts in document["requests"].items()
            },
            document=dict(document),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"coefficient table is malformed: {type(exc).__name__}: {exc}") from None


def _centres(
    name: str, raw: Mapping[str, Sequence[float]] | None, axes: Mapping[str, tuple[float, ...]]
) -> dict[str, tuple[float, ...]]:
    if not raw:
        return {}
    centres = {axis: tuple(float(c) for c in raw[axis]) for axis in axes}
    for axis, points in centres.items():
        if len(points) != len(axes[axis]) + 1 or list(points) != sorted(points):
            raise ModelError(f"engine {name}: {axis} needs one increasing centre per bin")
        if axis in LOG_FEATURES and min(points) <= 0:
            raise ModelError(f"engine {name}: {axis} centres must be positive")
    return centres


@functools.cache
def load_model(path: Path = COEFFICIENTS) -> CostModel:
    """The checked-in model (cached: it is read once per process)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the cost model {path}: {exc}") from None
    return parse_model(document)
