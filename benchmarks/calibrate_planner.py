"""``python -m benchmarks.calibrate_planner``: measure the engines and write the planner's
cost model (runtime/planning/coefficients.json).

What it measures, all as CPU time of one core (``time.process_time`` in this process, or
``getrusage`` of a child), never wall time, so other work on a shared machine does not
leak into the model:

- per engine, the cost of an ``early`` row in each cell of the engine's table (a batch of
  rows drawn inside the cell, priced in one call, as a part is), of ``closed`` and
  ``expired`` rows, without and with Greeks (runtime/planning/model.py says what the
  classes and features are);
- per row: reading, parsing, checking and writing (``price_table`` with an engine that does
  nothing), splitting into parts, merging part results;
- fixed: a one-row ``python -m runtime price`` run per engine, and the start of a Lambda
  or Batch process (handler or job module imports, the engine's first call);
- S3 requests per protocol step (start, part, merge), counted on the real steps against
  moto in this process.

The rows are drawn from their own seeds; the books ``python -m benchmarks.bench_planner``
checks the model on are generated differently, so the model is never checked on what it
was fitted to. Re-run after any engine change (``--engines lsm`` took 9 minutes on the
shared development machine, ``mc`` 35):

    python -m benchmarks.calibrate_planner [--engines lsm,qdfp,fd,mc] [--out FILE]

Engines not measured keep their previous entries. Progress on stderr.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one core means one thread: before numpy loads

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from runtime.core.csvio import read_table, write_csv  # noqa: E402
from runtime.core.manifest import merge_results, plan_parts  # noqa: E402
from runtime.core.options import OptionSpec, Quote  # noqa: E402
from runtime.engines import ENGINE_NAMES, get_engine  # noqa: E402
from runtime.planning.model import (  # noqa: E402
    COEFFICIENTS,
    engine_fingerprint,
    features,
    parse_model,
    row_classes,
)
from runtime.pricing import price_table  # noqa: E402
from runtime.tools.generate import generate_portfolio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2024, 3, 1)
SETTLEMENT = TODAY + dt.timedelta(days=2)


@dataclass(frozen=True)
class Design:
    """How one engine is measured: its table's axes and the rows drawn per cell."""

    axes: dict[str, tuple[float, ...]]
    rows: int  # rows per cell without Greeks
    greeks_rows: int
    ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    repeats: int = 3  # each cell timed this often, the least kept (see cpu_per_row)


# Axes: what drives each engine's cost (runtime/planning/model.py). mc runs to an absolute
# tolerance (scale), fd's grid grows with vol sqrt(T) (spread); QD+ barely varies.
DESIGNS = {
    "lsm": Design(
        axes={
            # from a week: lsm's time steps grow with the maturity, and a row shorter than the
            # first point is charged that point's cost (the contract allows days)
            "years": (1 / 52, 1 / 12, 0.25, 0.5, 1.0, 2.0),
            "scale": (0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
            "moneyness": (-0.1, 0.1, 0.3),
        },
        # Rows per cell priced in one call, about a default part (threshold 200): lsm
        # vectorises a batch, so a small one would charge every row the batch's fixed cost.
        rows=216,
        greeks_rows=108,
        repeats=1,
    ),
    # an option of scale 200 takes mc minutes (paths grow with the scale squared): the outer
    # bin is drawn up to 130, so a recalibration stays near a quarter of an hour
    "mc": Design(
        axes={"years": (0.25, 1.0), "scale": (1.0, 10.0, 100.0)},
        rows=2,
        greeks_rows=1,
        ranges={"scale": (0.03, 130.0)},
        repeats=1,
    ),
    "qdfp": Design(axes={"years": (0.25, 1.0)}, rows=60, greeks_rows=30),
    "fd": Design(axes={"spread": (0.5, 1.0, 2.0)}, rows=8, greeks_rows=4),
}
# Sampling range of each feature's outer bins (the table's edges bound the inner ones).
RANGES = {
    "years": (2 / 365, 6.0),
    "scale": (0.03, 200.0),
    "moneyness": (-0.6, 0.6),
    "spread": (0.02, 3.0),
}
_LOG_FEATURES = ("years", "scale", "spread")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _draw(rng: np.random.Generator, low: float, high: float, log: bool) -> float:
    if log:
        return float(np.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def _bounds(
    name: str, edges: Sequence[float], index: int, ranges: dict[str, tuple[float, float]]
) -> tuple[float, float]:
    low, high = ranges.get(name, RANGES[name])
    points = [low, *edges, high]
    return points[index], points[index + 1]


def bin_centres(
    name: str, edges: Sequence[float], ranges: dict[str, tuple[float, float]]
) -> list[float]:
    """Where each bin's rows are drawn around: the geometric middle of its range for the
    log-drawn features, the middle for moneyness. The model interpolates between them."""
    centres = []
    for index in range(len(edges) + 1):
        low, high = _bounds(name, edges, index, ranges)
        centres.append(math.sqrt(low * high) if name in _LOG_FEATURES else (low + high) / 2)
    return [round(c, 6) for c in centres]


def cell_options(
    engine: str,
    axes: dict[str, tuple[float, ...]],
    cell: tuple[int, ...],
    count: int,
    rng: np.random.Generator,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> list[OptionSpec]:
    """``count`` American options the engine treats as ``early``, inside ``cell``.

    Features with an axis are drawn inside the cell's bin (log-uniform for years, scale
    and spread); the others from a broad book: 2 days to 6 years, volatility 5-90 %,
    strikes 1-300, moneyness +-0.5, rates -1 % to 9 %, half with a dividend yield up to 6 %,
    a third calls."""
    cells = zip(axes.items(), cell, strict=True)
    wanted = {name: _bounds(name, edges, i, ranges or {}) for (name, edges), i in cells}
    options: list[OptionSpec] = []
    for _ in range(count * 2000):
        if len(options) == count:
            break
        years = _draw(rng, *wanted.get("years", (2 / 365, 6.0)), log=True)
        days = max(1, round(years * 365))
        years = days / 365
        if "spread" in wanted:
            vol = _draw(rng, *wanted["spread"], log=True) / math.sqrt(years)
        else:
            vol = _draw(rng, 0.05, 0.9, log=True)
        if not 0.02 <= vol <= 3.0:
            continue
        if "scale" in wanted:
            strike = _draw(rng, *wanted["scale"], log=True) / (vol * math.sqrt(years))
        else:
            strike = _draw(rng, 1.0, 300.0, log=True)
        if not 0.5 <= strike <= 1e6:
            continue
        call = bool(rng.random() < 0.35)
        moneyness = _draw(rng, *wanted.get("moneyness", (-0.5, 0.5)), log=False)
        spot = strike * math.exp(moneyness if call else -moneyness)
        rate = float(rng.uniform(-0.01, 0.09))
        dividend = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.06))
        spec = OptionSpec(
            TODAY,
            SETTLEMENT,
            SETTLEMENT + dt.timedelta(days=days),
            call,
            round(spot, 4),
            round(strike, 4),
            round(rate, 4),
            round(vol, 4),
            dividend_yield=round(dividend, 4),
        )
        if row_classes([spec], engine)[0] != "early" or not _inside(spec, axes, cell):
            continue
        options.append(spec)
    return options


def _inside(spec: OptionSpec, axes: dict[str, tuple[float, ...]], cell: tuple[int, ...]) -> bool:
    values = features([spec])
    return all(
        int(np.searchsorted(np.asarray(edges), values[name], side="right")[0]) == index
        for (name, edges), index in zip(axes.items(), cell, strict=True)
    )


def cpu_per_row(
    engine: Callable, options: Sequence[OptionSpec], greeks: bool, repeats: int = 1
) -> float:
    """CPU seconds per row of one call of ``engine`` on ``options`` (after a warm-up), the
    least of ``repeats`` calls: on a shared machine (hyperthreads, caches) other work only
    ever adds CPU time, never takes it away."""
    if not options:
        return float("nan")
    extra = {"greeks": True} if greeks else {}
    engine(list(options[:1]), **extra)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.process_time()
        engine(list(options), **extra)
        best = min(best, time.process_time() - start)
    return best / len(options)


def _fill_missing(cells: np.ndarray) -> np.ndarray:
    """Cells no row could be drawn for (NaN) take the mean of the measured ones."""
    if np.isnan(cells).any():
        cells = np.where(np.isnan(cells), np.nanmean(cells), cells)
    return cells


def measure_engine(name: str, design: Design, seed: int) -> dict:
    """The engine's entry of the coefficient table."""
    engine = get_engine(name)
    rng = np.random.default_rng(seed)
    shape = tuple(len(edges) + 1 for edges in design.axes.values())
    tables = {}
    for kind, greeks, count in (
        ("price", False, design.rows),
        ("greeks", True, design.greeks_rows),
    ):
        cells = np.full(shape, np.nan)
        for number, cell in enumerate(itertools.product(*(range(n) for n in shape)), start=1):
            options = cell_options(name, design.axes, cell, count, rng, design.ranges)
            cells[cell] = cpu_per_row(engine, options, greeks, design.repeats)
            if count <= 3:  # slow engines: say where they are
                _log(f"[{name}] {kind} cell {number}/{cells.size}: {cells[cell]:.2f} s/row")
        tables[kind] = _fill_missing(cells)
        _log(f"[{name}] early rows, {kind}: {np.mean(tables[kind]) * 1000:.2f} ms/row on average")
    closed = _closed_rows(name, rng)
    return {
        "axes": {axis: list(edges) for axis, edges in design.axes.items()},
        "centres": {
            axis: bin_centres(axis, edges, design.ranges) for axis, edges in design.axes.items()
        },
        "early": {kind: _rounded(cells).tolist() for kind, cells in tables.items()},
        "closed": [_rounded(cpu_per_row(engine, closed, g, 3)) for g in (False, True)]
        if closed
        else [0.0, 0.0],
        "priceFixed": _rounded(price_command_seconds(name)),
        "lambdaCold": _rounded(cold_start_seconds(name, "runtime.adapters.lambda_handler")),
        "batchCold": _rounded(cold_start_seconds(name, "runtime.adapters.batch_job")),
        "fingerprint": engine_fingerprint(name),
        "rowsPerCell": [design.rows, design.greeks_rows],
    }


def _rounded(value):
    return np.round(value, 9) if isinstance(value, np.ndarray) else round(float(value), 9)


def _closed_rows(name: str, rng: np.random.Generator) -> list[OptionSpec]:
    """200 rows the engine settles by a closed form (none for fd)."""
    closed: list[OptionSpec] = []
    for _ in range(10_000):
        if len(closed) == 200:
            break
        strike = float(rng.uniform(10, 200))
        spec = OptionSpec(
            TODAY,
            SETTLEMENT,
            SETTLEMENT + dt.timedelta(days=int(rng.integers(7, 730))),
            bool(rng.random() < 0.5),
            round(strike * float(rng.uniform(0.7, 1.3)), 2),
            round(strike, 1),
            round(float(rng.uniform(0.0, 0.08)), 3),
            round(float(rng.uniform(0.1, 0.6)), 2),
            american=bool(rng.random() < 0.5),
        )
        if row_classes([spec], name)[0] == "closed":
            closed.append(spec)
    return closed


def _child_cpu(command: Sequence[str], runs: int = 5, env: dict | None = None) -> float:
    """The least CPU seconds (user + system) of ``runs`` child processes running
    ``command`` (other work on the machine only adds)."""
    samples = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(samples)


def _one_core_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PRICING_WORKERS="1",
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


# One European put: every engine prices it in well under a millisecond, so a run on it is
# the fixed cost (interpreter, imports, the engine's first call).
_ONE_ROW = (
    "todaysDate,settlementDate,optionType,underlying,strike,riskFreeRate,volatility,"
    "maturityDate,exerciseType\n03/01/2024,03/01/2024,Put,36,40,0.06,0.2,03/01/2025,European\n"
)


def price_command_seconds(engine: str) -> float:
    """CPU of ``python -m runtime price`` on one European row: everything but the rows."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "one.csv"
        path.write_text(_ONE_ROW)
        command = [
            sys.executable,
            "-m",
            "runtime",
            "price",
            str(path),
            "--engine",
            engine,
            "-o",
            str(path) + "-result",
        ]
        return _child_cpu(command, env=_one_core_env())


_COLD = """
import {module}
from runtime.core.csvio import read_table
from runtime.pricing import price_table
from runtime.engines.parallel import parallel_engine
price_table(read_table({row!r}.encode()), parallel_engine({engine!r}))
"""


def cold_start_seconds(engine: str, module: str) -> float:
    """CPU of a fresh process that imports ``module`` and prices one row with ``engine``:
    what a cold Lambda or Batch container spends before its first row (the platform's own
    start is not measurable here; docs/cost.md)."""
    code = _COLD.format(module=module, engine=engine, row=_ONE_ROW)
    return _child_cpu([sys.executable, "-c", code], env=_one_core_env())


class _NoEngine:
    def __call__(self, options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
        return [Quote(price=1.0, std_error=0.0)] * len(options)


def measure_overheads(rows: int = 20_000) -> dict:
    """Per-row CPU of the work around the engine: I/O, split and merge."""
    data = generate_portfolio(rows, seed=424242)
    io = float("inf")
    for _ in range(3):  # the least of three, as everywhere here
        start = time.process_time()
        priced = price_table(read_table(data), _NoEngine())
        io = min(io, (time.process_time() - start) / rows)
    start = time.process_time()
    table = read_table(data)
    parts = [
        write_csv(table.header, table.records[r.start : r.stop])
        for r in plan_parts(rows, 200, 10_000)
    ]
    split = (time.process_time() - start) / rows
    header, _, _ = priced.csv.partition(b"\n")
    results = [header + b"\n" + priced.csv.split(b"\n", 1)[1]] * max(1, len(parts) // 10)
    start = time.process_time()
    merge_results(header + b"\n", results)
    merge = (time.process_time() - start) / (rows * len(results))
    _log(
        f"[overheads] io {io * 1e6:.1f} us/row, split {split * 1e6:.1f}, merge {merge * 1e9:.0f} ns"
    )
    return {
        "ioPerRow": _rounded(io),
        "splitPerRow": _rounded(split),
        "mergePerRow": _rounded(merge),
        "inputBytesPerRow": round(len(data) / rows, 1),
        "resultBytesPerRow": round(len(priced.csv) / rows, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.cli import HelpFormatter  # defaults shown once

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibrate_planner",
        description="Measure each engine's CPU time per row on a grid of options and write "
        "the planner's coefficients (runtime/planning/coefficients.json; docs/cost.md).",
        formatter_class=HelpFormatter,
        epilog="example: python -m benchmarks.calibrate_planner --engines lsm --skip-requests",
    )
    parser.add_argument("--engines", default=",".join(DESIGNS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=COEFFICIENTS)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument(
        "--skip-requests", action="store_true", help="keep the S3 request counts already there"
    )
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for name in engines:
        if name not in ENGINE_NAMES or name not in DESIGNS:
            parser.error(f"unknown engine {name!r}: choose from {', '.join(DESIGNS)}")
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    started = time.perf_counter()
    document = {
        "version": 1,
        "calibrated": dt.date.today().isoformat(),
        "command": "python -m benchmarks.calibrate_planner " + " ".join(argv or sys.argv[1:]),
        "machine": _machine(),
        "units": "CPU seconds on one core of the machine above",
        "engines": dict(previous.get("engines", {})),
    }
    for offset, name in enumerate(engines):
        _log(f"[{name}] measuring (CPU time, one core)")
        document["engines"][name] = measure_engine(name, DESIGNS[name], args.seed + offset)
    document["overheads"] = measure_overheads()
    if args.skip_requests and "requests" in previous:
        document["requests"] = previous["requests"]
    else:
        from benchmarks.protocol_requests import measure_requests

        document["requests"] = measure_requests()
    parse_model(document)  # never write a table the planner cannot read
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    _log(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


def _machine() -> str:
    import QuantLib as ql

    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"QuantLib {ql.__version__}"
    )


if __name__ == "__main__":
    sys.exit(main())
