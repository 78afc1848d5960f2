"""``python -m benchmarks.bench_planner``: the planner against measured CPU time, and what
books of 100, 10,000 and 500,000 rows cost on each path.

1. Books of different shape, each from its own seed, none of them drawn like the
   calibration's rows (benchmarks/calibrate_planner.py): short-dated (the workshop's
   kind, up to three months), long-dated (one to five years, dividends, a quarter
   European), a mixed book with Greeks, and a small mixed book on ``mc``. For each, the
   planner's ``cpuSeconds`` against the CPU time (user + system, ``getrusage`` of the child)
   of a one-core ``python -m runtime price`` run of the same file (PRICING_WORKERS=1),
   best of ``--runs``; the ratio should be within 0.7-1.3.
2. The cost table: the planner's estimates (not measurements) for generated books of 100,
   10,000 and 500,000 rows at the stacks' default settings, on each path.

Markdown on stdout, progress on stderr; docs/cost.md shows a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.core.csvio import write_csv
from runtime.planning.decide import seconds_text, usd_text
from runtime.planning.model import load_model
from runtime.planning.plan import plan_file
from runtime.planning.settings import PlanSettings
from runtime.tools.generate import HEADER, generate_portfolio

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.30
_COLUMNS = [*HEADER, "dividendYield", "exerciseType"]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mixed_book(
    rows: int,
    seed: int,
    years: tuple[float, float],
    strikes: tuple[float, float] = (20.0, 250.0),
    european: float = 0.25,
) -> bytes:
    """A book unlike the calibration's rows: maturities log-uniform in ``years``, 70 % puts,
    moneyness 0.75-1.35, vol 12-55 %, rates 0-6 %, half with a dividend yield up to 4 %."""
    rng = np.random.default_rng(seed)
    today = dt.date(2025, 6, 2)
    settlement = today + dt.timedelta(days=2)
    records = []
    for number in range(1, rows + 1):
        days = int(np.exp(rng.uniform(np.log(years[0] * 365), np.log(years[1] * 365))))
        strike = round(float(rng.uniform(*strikes)), 1)
        records.append(
            [
                str(number),
                f"{today:%m/%d/%Y}",
                f"{settlement:%m/%d/%Y}",
                "Put" if rng.random() < 0.7 else "Call",
                str(round(strike * float(rng.uniform(0.75, 1.35)), 2)),
                str(strike),
                f"{rng.uniform(0.0, 0.06):.3f}",
                f"{rng.uniform(0.12, 0.55):.2f}",
                f"{settlement + dt.timedelta(days=days):%m/%d/%Y}",
                f"{rng.uniform(0.0, 0.04):.3f}" if rng.random() < 0.5 else "",
                "European" if rng.random() < european else "American",
            ]
        )
    return write_csv(_COLUMNS, records)


@dataclasses.dataclass(frozen=True)
class Book:
    name: str
    engine: str
    greeks: bool
    data: bytes


def books(scale: float = 1.0) -> list[Book]:
    """The checked books (``scale`` shrinks them for a quick run)."""

    def n(rows: int) -> int:
        return max(10, int(rows * scale))

    return [
        Book("short-dated (workshop kind, <= 3 months)", "lsm", False,
             generate_portfolio(n(3000), seed=2101)),
        Book("long-dated (1-5 years, dividends, 25 % European)", "lsm", False,
             mixed_book(n(800), 2102, (1.0, 5.0))),
        Book("with Greeks (1 month - 2 years)", "lsm", True,
             mixed_book(n(800), 2103, (1 / 12, 2.0))),
        Book("mc, mixed (2 weeks - 1 year, strikes 10-60)", "mc", False,
             mixed_book(max(6, int(30 * scale)), 2104, (0.04, 1.0), strikes=(10.0, 60.0))),
    ]  # fmt: skip


def measured_cpu(path: Path, engine: str, greeks: bool, runs: int) -> float:
    """Best CPU seconds (user + system) of a one-core ``python -m runtime price`` run."""
    env = dict(os.environ)
    env.update(PRICING_WORKERS="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")  # fmt: skip
    command = [sys.executable, "-m", "runtime", "price", str(path), "--engine", engine,
               "-o", str(path) + "-result", *(["--greeks"] if greeks else [])]  # fmt: skip
    best = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best = min(best, used)
    return best


def accuracy(runs: int, scale: float) -> tuple[list[str], bool]:
    lines = [
        "| book | engine | rows | planner CPU s | measured CPU s | estimate / measured |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        for book in books(scale):
            path = Path(scratch) / "book.csv"
            path.write_bytes(book.data)
            settings = PlanSettings(engine=book.engine, greeks=book.greeks)
            plan = plan_file(book.data, settings)
            _log(f"[accuracy] {book.name}: {plan.rows} rows, planner {plan.cpu_seconds:.1f} s")
            measured = measured_cpu(path, book.engine, book.greeks, runs)
            ratio = plan.cpu_seconds / measured
            ok &= abs(ratio - 1.0) <= TOLERANCE
            engine = f"{book.engine}{' --greeks' if book.greeks else ''}"
            lines.append(
                f"| {book.name} | {engine} | {plan.rows:,} | {plan.cpu_seconds:.2f} | "
                f"{measured:.2f} | {ratio:.2f} |"
            )
    return lines, ok


def cost_table(sizes: Sequence[int], settings: PlanSettings) -> list[str]:
    lines = [
        "| rows | CPU s (one core) | fast: parts, wall, USD | normal: parts, wall, USD "
        "| urgent: parts, wall, USD |",
        "| ---: | ---: | --- | --- | --- |",
    ]
    for rows in sizes:
        _log(f"[cost] {rows:,} rows")
        plan = plan_file(generate_portfolio(rows, seed=7), settings, max_rows=None)
        cells = []
        for name in ("fast", "normal", "urgent"):
            path = plan.paths[name]
            if not path.available:
                cells.append("not available")
                continue
            fits = "" if path.fits else " (parts do not fit)"
            cells.append(
                f"{path.parts:,} x {path.part_rows:,}, {seconds_text(path.wall_seconds)}, "
                f"{usd_text(path.usd)}{fits}"
            )
        lines.append(f"| {rows:,} | {plan.cpu_seconds:,.1f} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.cli import HelpFormatter  # defaults shown once

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_planner",
        description="The planner's estimates against measured runs of books it was not "
        "calibrated on, and its cost table (docs/cost.md).",
        formatter_class=HelpFormatter,
        epilog="example: python -m benchmarks.bench_planner --runs 1 --skip-accuracy",
    )
    parser.add_argument("--runs", type=int, default=2, help="price runs per book (best of)")
    parser.add_argument("--scale", type=float, default=1.0, help="book size factor")
    parser.add_argument("--sizes", default="100,10000,500000", help="rows of the cost table")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model = load_model()
    print(f"Command: `python -m benchmarks.bench_planner {' '.join(argv or sys.argv[1:])}`  ")
    print(
        f"Model: calibrated {model.document.get('calibrated')} on {model.document.get('machine')}"
    )
    ok = True
    if not args.skip_accuracy:
        lines, ok = accuracy(args.runs, args.scale)
        print("\nPlanner CPU estimate against a measured one-core `price` run:\n")
        print("\n".join(lines))
        print(f"\nEvery book within +-{TOLERANCE:.0%}: {'yes' if ok else 'NO'}")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print("\nCost table (estimates from the planner, default settings: lsm, us-east-1, x86_64, "
          "1,769 MB Lambda, on-demand EC2, jobVcpus 1, urgentMaxVcpus 16; workshop-style "
          "books):\n")  # fmt: skip
    print("\n".join(cost_table(sizes, PlanSettings())))
    _log(f"done in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
