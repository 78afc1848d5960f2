"""``python -m benchmarks.audit [--full]``: issue 19's figures for the default engine.

Every figure against an independent reference (``benchmarks.references``: QuantLib's QD+
at high precision, its bumps, closed forms), on sets drawn with the reporting seeds
(``benchmarks.audit_sets``), which the engine was never tuned on:

- **coverage**: the broad set's share of prices within 1.96 and 3 stdError of the reference,
  the mean z, misses against max(0.02, 3 stdError); by maturity and by kind;
- **bounds**: ``bounds=True`` on the broad set: how often [priceLow, priceHigh] contains the
  reference, the interval's width, and the cost against the price alone;
- **stress**: bound violations (a price outside ``core.pricing.price_bounds``), row errors
  and misses on the stress set, and the slowest row of the stress and broad sets, each
  row priced alone on one core;
- **Greeks**: ``greeks=True`` on the boundary set and the dividend book's American options
  against bumped QD+, within issue 13's tolerances;
- **implied volatility**: the volatility behind each broad-set reference price, recovered;
  its error and cost per row;
- **speed**: the portfolio against the first release (``lsm-v1``), and the sample file.

Times are CPU seconds of this process (``time.process_time``; the machine is shared), except
the ``price`` command's own wall-clock report. ``--full`` takes larger sets (docs/engines.md
says how long); the default quick run takes a couple of minutes.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402 - after the thread settings above
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import audit_sets  # noqa: E402
from benchmarks.bench import (  # noqa: E402
    GREEK_NAMES,
    GREEK_TOLERANCE,
    SAMPLE,
    dividend_book,
    engine_for,
    machine,
    portfolio,
)
from benchmarks.references import reference_quote  # noqa: E402
from runtime.core.csvio import read_table  # noqa: E402
from runtime.core.options import OptionSpec, Quote  # noqa: E402
from runtime.engines.implied import implied_volatilities  # noqa: E402
from runtime.engines.lsm import price_lsm  # noqa: E402
from runtime.pricing import price_bounds, price_table  # noqa: E402

SIZES = {  # quick, full
    "broad": (400, 2000),
    "stress": (60, 300),
    "boundary": (40, 200),
    "dividends": (60, 200),
    "implied": (200, 1000),
    "alone": (200, 2000),  # broad-set rows timed one by one
}
# a price within this much of max(S, K) of the reference is the reference (QD+'s precision)
SAME = 1e-9


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu(call: Callable[[], object]) -> tuple[float, object]:
    start = time.process_time()
    out = call()
    return time.process_time() - start, out


def _years(o: OptionSpec) -> float:
    return (o.maturity - o.settlement).days / 365.0


def _scale(o: OptionSpec) -> float:
    return max(o.spot, o.strike)


def _z(quote: Quote, reference: float, option: OptionSpec) -> float:
    error = quote.price - reference
    if abs(error) <= SAME * _scale(option):
        return 0.0
    return error / quote.std_error if quote.std_error else math.copysign(math.inf, error)


@dataclass
class Coverage:
    rows: int
    exact: int
    exact_max_error: float
    z: np.ndarray
    errors: np.ndarray
    std_errors: np.ndarray
    misses: int

    def line(self, label: str) -> str:
        z = self.z
        within = f"{np.mean(np.abs(z) <= 1.96):.1%} | {np.mean(np.abs(z) <= 3):.1%}"
        return (
            f"| {label} | {len(z)} | {within} "
            f"| {np.mean(z):+.3f} | {self.misses} | {np.mean(np.abs(self.errors)):.5f} "
            f"| {np.max(np.abs(self.errors)):.4f} | {np.median(self.std_errors):.1e} |"
        )


def coverage(
    options: Sequence[OptionSpec], quotes: Sequence[Quote], refs: Sequence[float]
) -> Coverage:
    z, errors, ses, misses, exact, exact_error = [], [], [], 0, 0, 0.0
    for o, q, ref in zip(options, quotes, refs, strict=True):
        if q.price is None:
            continue
        error = q.price - ref
        misses += abs(error) > max(0.02, 3.0 * (q.std_error or 0.0))
        if q.std_error == 0.0:
            exact += 1
            exact_error = max(exact_error, abs(error))
            continue
        z.append(_z(q, ref, o))
        errors.append(error)
        ses.append(q.std_error)
    return Coverage(
        len(quotes), exact, exact_error, np.array(z), np.array(errors), np.array(ses), misses
    )


COVERAGE_HEAD = (
    "| rows | simulated | within 1.96 se | within 3 se | mean z | misses max(0.02, 3se) "
    "| mean abs err | max abs err | median se |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def coverage_section(
    options: list[OptionSpec], refs: list[float], seed: int
) -> tuple[list[str], list[Quote], float]:
    _log(f"[coverage] lsm on {len(options)} broad-set options")
    seconds, quotes = _cpu(lambda: price_lsm(options))
    errors = [q.error for q in quotes if q.error]
    total = coverage(options, quotes, refs)
    lines = [
        f"Broad set (seed {seed}, {len(options)} American options, "
        f"{1000 * seconds / len(options):.2f} ms/option): {total.exact} closed-form rows "
        f"(stdError 0, max abs error {total.exact_max_error:.1e}), {len(errors)} row errors.",
        "",
        COVERAGE_HEAD,
        total.line("all"),
    ]
    groups = {
        "calls": lambda o: o.is_call,
        "puts": lambda o: not o.is_call,
        "T < 1 month": lambda o: _years(o) < 1 / 12,
        "1 month - 1 year": lambda o: 1 / 12 <= _years(o) < 1,
        "1 - 5 years": lambda o: _years(o) >= 1,
        "in the money": lambda o: (o.spot > o.strike) == o.is_call,
        "out of the money": lambda o: (o.spot > o.strike) != o.is_call,
    }
    for label, keep in groups.items():
        idx = [i for i, o in enumerate(options) if keep(o)]
        part = coverage([options[i] for i in idx], [quotes[i] for i in idx], [refs[i] for i in idx])
        lines.append(part.line(label))
    return lines, quotes, seconds


def bounds_section(options: list[OptionSpec], refs: list[float], price_seconds: float) -> list[str]:
    _log(f"[bounds] lsm bounds=True on {len(options)} broad-set options")
    seconds, quotes = _cpu(lambda: price_lsm(options, bounds=True))
    inside, widths, simulated = 0, [], []
    for o, q, ref in zip(options, quotes, refs, strict=True):
        if q.price is None or q.price_low is None or q.price_high is None:
            continue
        slack = SAME * _scale(o)
        inside += q.price_low - slack <= ref <= q.price_high + slack
        widths.append(q.price_high - q.price_low)
        if q.std_error:
            simulated.append(q.price_high - q.price_low)
    w = np.array(widths)
    return [
        f"Bounds (`bounds=True`, the broad set): the interval contains the reference for "
        f"{inside}/{len(widths)} rows ({inside / len(widths):.2%}); width median "
        f"{np.median(w):.4f}, "
        f"mean {np.mean(w):.4f}, 90th percentile {np.percentile(w, 90):.4f} (rows not in closed "
        f"form: median {np.median(simulated):.4f}); cost {1000 * seconds / len(options):.2f} "
        f"ms/option, x{seconds / price_seconds:.2f} the price alone.",
    ]


def _alone(options: Sequence[OptionSpec]) -> tuple[float, OptionSpec, list[float]]:
    price_lsm(list(options[:2]))  # imports and first-call set-up are not the row
    times = []
    for o in options:
        seconds, _ = _cpu(lambda o=o: price_lsm([o]))
        times.append(seconds)
    worst = int(np.argmax(times))
    return times[worst], options[worst], times


def stress_section(options: list[OptionSpec], broad: list[OptionSpec]) -> list[str]:
    _log(f"[stress] {len(options)} stress options: references, prices, each row alone")
    refs = []
    for o in options:
        try:
            refs.append(reference_quote(o).price)
        except RuntimeError:
            refs.append(math.nan)
    quotes = price_lsm(options)
    violations, errors, misses, worst = 0, [], 0, 0.0
    for o, q, ref in zip(options, quotes, refs, strict=True):
        if q.price is None:
            errors.append(q.error or "")
            continue
        low, high = price_bounds(o)
        tiny = 1e-12 * _scale(o)
        violations += not (low - tiny <= q.price <= high + tiny)
        if math.isfinite(ref):
            error = abs(q.price - ref)
            worst = max(worst, error / max(0.02, 1e-4 * _scale(o)))
            misses += error > max(0.02, 1e-4 * _scale(o), 3.0 * q.std_error)
    slowest, option, _ = _alone(options)
    _log(f"[stress] {len(broad)} broad-set options, each alone")
    slowest_broad, option_broad, times = _alone(broad)
    lines = [
        f"Stress set (seed {audit_sets.REPORTING_SEEDS['stress']}, {len(options)} options: "
        f"sigma^2 T up to {max(o.volatility**2 * _years(o) for o in options):,.0f}, underlyings "
        f"to {max(o.spot for o in options):.0e}, far out-of-the-money 5-year options): "
        f"**{violations} bound violations**, {len(errors)} row errors, {misses} misses against "
        f"max(0.02, 1e-4 of the scale, 3 stdError).",
        f"Slowest row, each priced alone on one core: stress {1000 * slowest:.1f} ms "
        f"({_describe(option)}); broad set {1000 * slowest_broad:.1f} ms "
        f"({_describe(option_broad)}), median {1000 * np.median(times):.1f} ms, 99th "
        f"percentile {1000 * np.percentile(times, 99):.1f} ms.",
    ]
    lines += [f"  - row error: {e}" for e in errors[:5]]
    return lines


def _describe(o: OptionSpec) -> str:
    kind = "call" if o.is_call else "put"
    return (
        f"{kind} S/K {o.spot / o.strike:.2f}, K {o.strike:g}, {_years(o):.2f} y, vol "
        f"{o.volatility:g}, r {o.rate:g}, q {o.dividend_yield:g}"
    )


def greeks_section(sets: dict[str, list[OptionSpec]]) -> list[str]:
    lines = [
        "| set | options | ms/option price | ms/option with Greeks | "
        + " | ".join(f"{g} within (max abs err)" for g in GREEK_NAMES)
        + " |",
        "| --- | ---: | ---: | ---: |" + " ---: |" * len(GREEK_NAMES),
    ]
    for name, options in sets.items():
        _log(f"[greeks] {len(options)} {name} options: bumped QD+ references")
        refs = [reference_quote(o, greeks=True) for o in options]
        plain, _ = _cpu(lambda o=options: price_lsm(o))
        seconds, quotes = _cpu(lambda o=options: price_lsm(o, greeks=True))
        cells = []
        for g in GREEK_NAMES:
            absolute, relative = GREEK_TOLERANCE[g]
            within, worst, count = 0, 0.0, 0
            for q, ref in zip(quotes, refs, strict=True):
                if q.greeks is None or ref.greeks is None:
                    continue
                value, target = getattr(q.greeks, g), getattr(ref.greeks, g)
                error = abs(value - target)
                worst = max(worst, error)
                within += error <= max(absolute, relative * abs(target))
                count += 1
            cells.append(f"{within}/{count} ({worst:.3f})")
        lines.append(
            f"| {name} | {len(options)} | {1000 * plain / len(options):.2f} "
            f"| {1000 * seconds / len(options):.2f} | " + " | ".join(cells) + " |"
        )
    return lines


def implied_section(options: list[OptionSpec], refs: list[float]) -> list[str]:
    _log(f"[implied] {len(options)} volatilities from reference prices")
    seconds, solved = _cpu(lambda: implied_volatilities(options, refs))
    errors, american, told = [], [], 0
    for o, (vol, _) in zip(options, solved, strict=True):
        if vol is None:
            continue
        told += 1
        errors.append(abs(vol - o.volatility))
        american.append(o.american)
    e = np.array(errors)
    return [
        f"Implied volatility (the volatility behind each of {len(options)} broad-set reference "
        f"prices): {told} recovered, {len(options) - told} rows say why not (a price within 1e-7 "
        f"of the strike of its exercise or zero-volatility value); error max {e.max():.1e}, mean "
        f"{e.mean():.1e}, 99th percentile {np.percentile(e, 99):.1e}; "
        f"{1000 * seconds / len(options):.2f} ms/row.",
    ]


def speed_section(repeat: int) -> list[str]:
    lines = [
        "| set | engine | ms/option | vs first release | max abs err | mean abs err "
        "| within max(0.02, 3se) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    sample = [row.option for row in _sample_rows() if row.option is not None]
    for label, options in (("portfolio", portfolio()), ("sample", sample)):
        _log(f"[speed] {label}: references, lsm-v1, lsm")
        refs = [reference_quote(o).price for o in options]
        timings = {}
        for name in ("lsm-v1", "lsm"):
            engine = engine_for(name)
            engine(options[:1])
            best, quotes = math.inf, []
            for _ in range(repeat):
                seconds, out = _cpu(lambda e=engine, o=options: e(o))
                if seconds < best:
                    best, quotes = seconds, out
            timings[name] = best
            errors = [abs(q.price - r) for q, r in zip(quotes, refs, strict=True)]
            within = sum(
                abs(q.price - r) <= max(0.02, 3.0 * (q.std_error or 0.0))
                for q, r in zip(quotes, refs, strict=True)
            )
            ratio = timings["lsm-v1"] / best
            lines.append(
                f"| {label} | {name} | {1000 * best / len(options):.2f} | {ratio:.1f}x "
                f"| {max(errors):.4f} | {np.mean(errors):.4f} | {within}/{len(options)} |"
            )
    return lines


def _sample_rows():
    from runtime.core.csvio import parse_rows

    return parse_rows(read_table(SAMPLE.read_bytes()))


def sample_section(repeat: int) -> list[str]:
    _log("[sample] price_table and the price command")
    table = read_table(SAMPLE.read_bytes())
    best = min(_cpu(lambda: price_table(table, price_lsm))[0] for _ in range(repeat))
    walls = []
    env = {**os.environ, "PRICING_WORKERS": "1"}
    root = Path(__file__).resolve().parents[1]
    for _ in range(repeat):
        out = Path(tempfile.gettempdir()) / f"audit-sample-{os.getpid()}.csv"
        done = subprocess.run(
            [sys.executable, "-m", "runtime", "price", str(SAMPLE), "-o", str(out)],
            cwd=root,
            env={**env, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        )
        out.unlink(missing_ok=True)
        walls.append(float(done.stderr.split(" in ")[1].split(" s ")[0]))
    return [
        f"Sample file (100 rows): `price_table` {1000 * best:.1f} ms CPU (best of {repeat}); "
        f"`PRICING_WORKERS=1 python -m runtime price` reports {min(walls):.2f} s "
        f"(best of {repeat}; median {np.median(walls):.2f} s), reading, pricing and writing.",
    ]


SECTIONS = ("coverage", "bounds", "stress", "greeks", "implied", "speed", "sample")


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.cli import HelpFormatter  # defaults shown once

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.audit",
        description="The honest-prices audit of the lsm engine against QuantLib references: "
        "stdError coverage, no-arbitrage guards, bounds, Greeks, implied volatility, speed "
        "(docs/engines.md). About 1 minute; --full, the large sets, about 3.5 minutes.",
        formatter_class=HelpFormatter,
        epilog="example: python -m benchmarks.audit --full > audit.md",
    )
    parser.add_argument("--full", action="store_true", help="the large sets (docs/engines.md)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="best of N for the speed runs")
    parser.add_argument(
        "--broad-seed",
        type=int,
        default=audit_sets.REPORTING_SEEDS["broad"],
        help="the broad set's seed (default: the reporting seed)",
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    size = {name: sizes[1 if args.full else 0] for name, sizes in SIZES.items()}
    started = time.perf_counter()
    out: list[str] = []
    broad = audit_sets.broad(size["broad"], seed=args.broad_seed)
    refs: list[float] = []
    if {"coverage", "bounds", "implied"} & set(sections):
        _log(f"[references] QD+ for {len(broad)} broad-set options")
        refs = [reference_quote(o).price for o in broad]
    price_seconds = 0.0
    if "coverage" in sections or "bounds" in sections:
        lines, _, price_seconds = coverage_section(broad, refs, args.broad_seed)
        if "coverage" in sections:
            out += ["### Coverage", "", *lines, ""]
    if "bounds" in sections:
        out += ["### Bounds", "", *bounds_section(broad, refs, price_seconds), ""]
    if "stress" in sections:
        stress = audit_sets.stress(size["stress"])
        out += ["### Stress and time", "", *stress_section(stress, broad[: size["alone"]]), ""]
    if "greeks" in sections:
        greek_sets = {
            "boundary": audit_sets.boundary(size["boundary"]),
            "dividends (American)": [o for o in dividend_book() if o.american][: size["dividends"]],
        }
        out += ["### Greeks", "", *greeks_section(greek_sets), ""]
    if "implied" in sections:
        n = size["implied"]
        out += ["### Implied volatility", "", *implied_section(broad[:n], refs[:n]), ""]
    if "speed" in sections:
        out += ["### Speed", "", *speed_section(args.repeat), ""]
    if "sample" in sections:
        out += [*sample_section(args.repeat), ""]
    command = "python -m benchmarks.audit " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Command: `{command.strip()}`  ")
    print(f"Machine: {machine()}  ")
    print(f"Wall time: {time.perf_counter() - started:.0f} s\n")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
