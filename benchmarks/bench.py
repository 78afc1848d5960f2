"""``python -m benchmarks.bench``: the engines side by side on the same inputs.

Sets: ``sample`` (runtime/sample/EquityOption-100.csv), ``ls`` (Longstaff-Schwartz 2001
Table 1: 20 American puts), ``portfolio`` (a deterministic 200-option portfolio, 80% puts,
maturities up to two years), ``dividends`` (the pricing-model issue's book: dividend yields
up to 7 %, some negative rates, half calls, a quarter European) and, on request, ``stress``
(far corners). Sets with calls get a second, puts-only row, so closed forms for calls cannot
carry the figures.

Per set and engine: ms per option on one core (CPU time of this process), speed-up against
``mc`` and against the first release's ``lsm`` (``lsm-v1``, vendored in
``benchmarks/lsm_v1.py`` for this comparison only) on the same options in the same run,
max and mean absolute error against the reference (QuantLib's QD+ with its high-precision
scheme for American options, the analytic engine for European ones and for American options
that are never exercised early), how many options lie within max(0.02, 3 x stdError) of it,
the largest stdError, and peak memory (the maximum resident set of a fresh process pricing
the set: interpreter, numpy and QuantLib included). ``lsm`` also runs on every vCPU through
``runtime.engines.parallel`` (wall-clock time).

Then a Greeks run (``lsm`` with ``greeks=True`` on the dividend book against bumped QD+,
fine-grid finite differences for theta and closed forms), the cold start (a fresh process
importing the engine and pricing one option), and the split and merge throughput of the job
protocol on a generated 100,000-row file. Output: Markdown on stdout, progress on stderr.
See docs/performance.md.
"""

from __future__ import annotations

import os

# one core means one thread: set before numpy or QuantLib are loaded
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402 - after the thread settings above
import datetime as dt  # noqa: E402
import pickle  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.references import reference_quote  # noqa: E402
from runtime.core.csvio import (  # noqa: E402
    parse_rows,
    read_table,
    result_header,
    result_records,
    write_csv,
)
from runtime.core.manifest import merge_results, plan_parts  # noqa: E402
from runtime.core.options import OptionSpec, Quote  # noqa: E402
from runtime.engines import get_engine  # noqa: E402
from runtime.engines.cpus import available_cpus  # noqa: E402
from runtime.engines.parallel import shutdown  # noqa: E402
from runtime.environment import cpu_limits  # noqa: E402
from runtime.tools.generate import generate_portfolio  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "runtime" / "sample" / "EquityOption-100.csv"
SETS = ("sample", "ls", "portfolio", "dividends")
EXTRA_SETS = ("stress",)  # not run by default: outside the targets, see docs/performance.md
BASELINE = "mc"
FIRST_RELEASE = "lsm-v1"  # the first release's lsm, for the speed ratio; bench only
GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho")
# the pricing-model issue's targets: absolute error, or relative to the reference
GREEK_TOLERANCE = {
    "delta": (0.01, 0.0),
    "gamma": (0.003, 0.15),
    "vega": (0.15, 0.05),
    "theta": (0.25, 0.10),
    "rho": (0.15, 0.05),
}


def sample_options(path: Path = SAMPLE) -> list[OptionSpec]:
    """The sample file's valid rows, through the project's CSV parser."""
    rows = parse_rows(read_table(path.read_bytes()))
    return [row.option for row in rows if row.option is not None]


def longstaff_schwartz_puts() -> list[OptionSpec]:
    """Table 1 of Longstaff & Schwartz (2001): K=40, r=0.06, S=36..44, sigma 0.2/0.4, T=1/2.

    T is exactly 1 or 2 years in Actual/365 (365 or 730 days from settlement).
    """
    day = dt.date(2024, 1, 2)
    return [
        OptionSpec(day, day, day + dt.timedelta(days=365 * years), False, spot, 40.0, 0.06, vol)
        for spot in (36.0, 38.0, 40.0, 42.0, 44.0)
        for vol in (0.2, 0.4)
        for years in (1, 2)
    ]


def portfolio(count: int = 200, seed: int = 7) -> list[OptionSpec]:
    """A deterministic mixed book: 80% puts, 7 days to 2 years, vol 0.1-0.6, strikes 10-200."""
    rng = np.random.default_rng(seed)
    today = dt.date(2024, 3, 1)
    settlement = today + dt.timedelta(days=2)
    options = []
    for _ in range(count):
        is_put = rng.random() < 0.8
        strike = float(np.round(rng.uniform(10.0, 200.0), 1))
        spot = float(np.round(strike * rng.uniform(0.7, 1.3), 2))
        days = int(rng.integers(7, 731))
        rate = float(np.round(rng.uniform(0.0, 0.08), 3))
        vol = float(np.round(rng.uniform(0.1, 0.6), 2))
        options.append(
            OptionSpec(
                today,
                settlement,
                settlement + dt.timedelta(days=days),
                not is_put,
                spot,
                strike,
                rate,
                vol,
            )
        )
    return options


def stress(count: int = 300, seed: int = 1) -> list[OptionSpec]:
    """Far corners, beyond the targets: up to 3 years, rates -3%..15%, vol 5-80%, strikes
    up to 300 (absolute errors grow with the price level), 20% calls (most of them exact)."""
    rng = np.random.default_rng(seed)
    today = dt.date(2024, 3, 1)
    settlement = today + dt.timedelta(days=2)
    options = []
    for _ in range(count):
        is_call = rng.random() < 0.2
        strike = float(np.round(rng.uniform(1.0, 300.0), 2))
        spot = float(np.round(strike * np.exp(rng.normal(0.0, 0.3)), 2))
        days = int(rng.integers(1, 1100))
        rate = float(np.round(rng.uniform(-0.03, 0.15), 3))
        vol = float(np.round(rng.uniform(0.05, 0.8), 3))
        maturity = settlement + dt.timedelta(days=days)
        options.append(OptionSpec(today, settlement, maturity, is_call, spot, strike, rate, vol))
    return options


def dividend_book(count: int = 200, seed: int = 13) -> list[OptionSpec]:
    """The pricing-model issue's realistic book: dividend yields 0-7 %, 7 days to 2 years,
    vol 0.1-0.6, rates -1 %..8 % (some negative), half calls, a quarter European."""
    rng = np.random.default_rng(seed)
    today = dt.date(2024, 3, 1)
    settlement = today + dt.timedelta(days=2)
    options = []
    for _ in range(count):
        is_call = rng.random() < 0.5
        european = rng.random() < 0.25
        strike = float(np.round(rng.uniform(10.0, 200.0), 1))
        spot = float(np.round(strike * rng.uniform(0.7, 1.3), 2))
        days = int(rng.integers(7, 731))
        rate = float(np.round(rng.uniform(-0.01, 0.08), 3))
        div = float(np.round(rng.uniform(0.0, 0.07), 3))
        vol = float(np.round(rng.uniform(0.1, 0.6), 2))
        options.append(
            OptionSpec(
                today,
                settlement,
                settlement + dt.timedelta(days=days),
                is_call,
                spot,
                strike,
                rate,
                vol,
                dividend_yield=div,
                american=not european,
            )
        )
    return options


def load_set(name: str) -> list[OptionSpec]:
    if name == "sample":
        return sample_options()
    if name == "ls":
        return longstaff_schwartz_puts()
    if name == "portfolio":
        return portfolio()
    if name == "stress":
        return stress()
    if name == "dividends":
        return dividend_book()
    raise ValueError(f"unknown set {name!r}: choose from {', '.join(SETS + EXTRA_SETS)}")


@dataclass
class Timing:
    seconds: float
    quotes: list[Quote]
    per_option: list[float] | None = None  # mc only: each option priced on its own


@dataclass
class Row:
    set_name: str
    engine: str
    options: int
    ms_per_option: float
    speedup: float | None  # against mc, same options
    max_error: float
    mean_error: float
    within: int
    compared: int
    max_std_error: float | None
    peak_mb: float | None
    vs_first: float | None = None  # against the first release's lsm, same options
    notes: list[str] = field(default_factory=list)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine_for(name: str) -> Callable[..., list[Quote]]:
    """A project engine, or the first release's lsm (``lsm-v1``), which only the bench has."""
    if name == FIRST_RELEASE:
        from benchmarks.lsm_v1 import price_lsm as first_release

        return first_release
    return get_engine(name)


def _timed(call: Callable[[], list[Quote]], repeat: int, clock: Callable[[], float]) -> Timing:
    best = None
    for _ in range(max(1, repeat)):
        start = clock()
        quotes = call()
        elapsed = clock() - start
        if best is None or elapsed < best.seconds:
            best = Timing(elapsed, quotes)
    assert best is not None
    return best


def time_engine(
    name: str, options: Sequence[OptionSpec], repeat: int, greeks: bool = False
) -> Timing:
    """Price ``options``; best of ``repeat`` runs (mc: once, option by option).

    In-process engines are timed in CPU seconds of this process: on a machine shared with
    other work that is the one-core cost, where wall-clock time would add the neighbours'
    load. The parallel run is timed by the wall clock, which is what it is for.
    """
    if name.endswith("-parallel"):
        from runtime.engines.parallel import price_in_parallel

        engine_name = name.removesuffix("-parallel")
        price_in_parallel(engine_name, list(options[:64]))  # start the workers untimed
        limits = cpu_limits()
        return _timed(
            lambda: price_in_parallel(engine_name, options, limits=limits),
            repeat,
            time.perf_counter,
        )
    engine = engine_for(name)
    extra = {"greeks": True} if greeks else {}
    engine(list(options[:1]), **extra)  # imports and first-call set-up are not the workload
    if name == BASELINE:
        per_option, quotes = [], []
        for spec in options:
            start = time.process_time()
            quotes.extend(engine([spec]))
            per_option.append(time.process_time() - start)
        return Timing(sum(per_option), quotes, per_option)
    return _timed(lambda: engine(options, **extra), repeat, time.process_time)


def peak_memory_mb(name: str, options: Sequence[OptionSpec], greeks: bool = False) -> float | None:
    """Peak resident memory (MB) of a fresh process that prices ``options`` with ``name``.

    A child process, so QuantLib's C++ heap counts too and earlier runs leave no trace;
    the figure includes the interpreter, numpy and QuantLib (what a Lambda's memory must
    hold), not just the engine's arrays.
    """
    probe = [sys.executable, "-m", "benchmarks.bench", "--memory-probe", name]
    if greeks:
        probe.append("--probe-greeks")
    done = subprocess.run(probe, input=pickle.dumps(list(options)), capture_output=True)
    if done.returncode != 0:
        _log(f"memory probe for {name} failed: {done.stderr.decode(errors='replace')[-500:]}")
        return None
    return float(done.stdout.decode().strip()) / 1024  # KiB


def _memory_probe(name: str, greeks: bool) -> int:
    import QuantLib  # noqa: F401 - every engine's process has it loaded in production

    options = pickle.loads(sys.stdin.buffer.read())
    engine = engine_for(name)
    if greeks:
        engine(options, greeks=True)
    else:
        engine(options)
    print(_peak_rss_kib())
    return 0


def _peak_rss_kib() -> int:
    # VmHWM belongs to this process image; ru_maxrss can carry the forking parent's peak
    # across exec on Linux, which would charge the benchmark's own memory to the child
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _errors(
    quotes: Sequence[Quote], reference: Sequence[Quote]
) -> tuple[float, float, int, int, float | None]:
    errors, within, std_errors = [], 0, []
    for quote, ref in zip(quotes, reference, strict=True):
        if quote.price is None or ref.price is None:
            continue
        error = abs(quote.price - ref.price)
        errors.append(error)
        se = quote.std_error or 0.0
        if quote.std_error is not None:
            std_errors.append(quote.std_error)
        if error <= max(0.02, 3.0 * se):
            within += 1
    if not errors:
        return float("nan"), float("nan"), 0, 0, None
    return (
        max(errors),
        sum(errors) / len(errors),
        within,
        len(errors),
        max(std_errors) if std_errors else None,
    )


def references(options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
    return [reference_quote(spec, greeks=greeks) for spec in options]


def _classic(options: Sequence[OptionSpec]) -> bool:
    """The workshop's kind of options only: what the first release can price."""
    return all(spec.american and spec.dividend_yield == 0.0 for spec in options)


def bench_set(
    set_name: str,
    options: list[OptionSpec],
    engines: Sequence[str],
    limit: int | None,
    repeat: int,
    workers: int,
) -> list[Row]:
    """Rows for one set, and for its puts alone when it also holds calls."""
    _log(f"[{set_name}] {len(options)} options: reference")
    reference = references(options)
    baseline_count = len(options) if limit is None else min(limit, len(options))
    baseline = None
    if BASELINE in engines:
        _log(f"[{set_name}] {BASELINE} on {baseline_count} options (about 0.2-5 s each)")
        baseline = time_engine(BASELINE, options[:baseline_count], 1)

    subsets = [(set_name, list(range(len(options))))]
    puts = [i for i, spec in enumerate(options) if not spec.is_call]
    if len(puts) < len(options):
        subsets.append((f"{set_name} (puts only)", puts))

    names = [e for e in engines if e != BASELINE]
    if FIRST_RELEASE in names and not _classic(options):
        names.remove(FIRST_RELEASE)  # it knows neither dividends nor European exercise
    if "lsm" in names and workers > 1:
        names.append("lsm-parallel")
    rows = []
    for label, indices in subsets:
        chosen = [options[i] for i in indices]
        refs = [reference[i] for i in indices]
        in_baseline = [i for i in indices if i < baseline_count]
        same = [options[i] for i in in_baseline]
        base_ms = None
        if baseline is not None and baseline.per_option is not None and in_baseline:
            base_quotes = [baseline.quotes[i] for i in in_baseline]
            base_ms = 1000 * sum(baseline.per_option[i] for i in in_baseline) / len(in_baseline)
            stats = _errors(base_quotes, [reference[i] for i in in_baseline])
            peak = peak_memory_mb(BASELINE, same[:3])
            rows.append(Row(label, BASELINE, len(in_baseline), base_ms, 1.0, *stats, peak))
        timings: dict[str, float] = {}
        for name in names:
            _log(f"[{label}] {name}")
            try:
                run = time_engine(name, chosen, repeat)
            except Exception as exc:  # e.g. the parallel plumbing: report, keep going
                _log(f"[{label}] {name} failed: {exc}")
                continue
            ms = 1000 * run.seconds / len(chosen)
            timings[name] = ms
            speedup = None
            if base_ms is not None:
                same_ms = ms if len(same) == len(chosen) else 0.0
                if not same_ms:
                    same_ms = 1000 * time_engine(name, same, repeat).seconds / len(same)
                speedup = base_ms / same_ms if same_ms > 0 else None
            peak = None if name.endswith("-parallel") else peak_memory_mb(name, chosen)
            label_name = f"lsm ({workers} workers)" if name == "lsm-parallel" else name
            rows.append(
                Row(label, label_name, len(chosen), ms, speedup, *_errors(run.quotes, refs), peak)
            )
        first = timings.get(FIRST_RELEASE)
        if first:
            for row in rows:
                if row.set_name == label and row.engine.startswith("lsm"):
                    row.vs_first = first / row.ms_per_option
    return rows


@dataclass
class GreeksReport:
    options: int
    price_ms: float
    greeks_ms: float
    peak_mb: float | None
    price_stats: tuple[float, float, int, int, float | None]
    european_max_error: float
    lines: list[tuple[str, float, float, int, int, str]]  # name, max, mean, within, n, tol


def greeks_run(options: list[OptionSpec], repeat: int) -> GreeksReport:
    """lsm with and without Greeks on the same options; Greeks against the references."""
    _log(f"[greeks] references for {len(options)} options (bumped QD+, fine-grid FD theta)")
    reference = references(options, greeks=True)
    _log("[greeks] lsm price only, then greeks=True")
    plain = time_engine("lsm", options, repeat)
    with_greeks = time_engine("lsm", options, repeat, greeks=True)
    lines = []
    for name in GREEK_NAMES:
        absolute, relative = GREEK_TOLERANCE[name]
        errors, within = [], 0
        for quote, ref in zip(with_greeks.quotes, reference, strict=True):
            if quote.greeks is None or ref.greeks is None:
                continue
            value, target = getattr(quote.greeks, name), getattr(ref.greeks, name)
            error = abs(value - target)
            errors.append(error)
            within += error <= max(absolute, relative * abs(target))
        tolerance = f"{absolute}" if not relative else f"max({absolute}, {relative:.0%})"
        lines.append((name, max(errors), sum(errors) / len(errors), within, len(errors), tolerance))
    european = [
        abs(q.price - r.price)
        for spec, q, r in zip(options, with_greeks.quotes, reference, strict=True)
        if not spec.american and q.price is not None
    ]
    return GreeksReport(
        options=len(options),
        price_ms=1000 * plain.seconds / len(options),
        greeks_ms=1000 * with_greeks.seconds / len(options),
        peak_mb=peak_memory_mb("lsm", options, greeks=True),
        price_stats=_errors(with_greeks.quotes, reference),
        european_max_error=max(european) if european else float("nan"),
        lines=lines,
    )


_COLD_START = """
import time
start = time.perf_counter()
import datetime as dt
{imports}
from runtime.core.options import OptionSpec
{engine}
day = dt.date(2024, 1, 2)
quote = engine([OptionSpec(day, day, dt.date(2025, 1, 1), False, 36.0, 40.0, 0.06, 0.2)])[0]
assert quote.price is not None, quote
print(time.perf_counter() - start)
"""


COLD_STARTS = {
    # label: (modules imported first, how the engine is obtained)
    "lsm": ("", "from runtime.engines import get_engine; engine = get_engine('lsm')"),
    "lsm + Lambda handler": (
        "import runtime.adapters.lambda_handler",
        "from runtime.engines import get_engine; engine = get_engine('lsm')",
    ),
    FIRST_RELEASE: ("", "from benchmarks.lsm_v1 import price_lsm as engine"),
}


def cold_start(label: str, runs: int) -> tuple[float, float]:
    """Median seconds of a fresh process: (whole process, imports + one priced option).

    The option is a simulated put, so the figure includes the first simulation's set-up.
    """
    imports, engine = COLD_STARTS[label]
    code = _COLD_START.format(imports=imports, engine=engine)
    whole, inside = [], []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            check=True,
        )
        whole.append(time.perf_counter() - start)
        inside.append(float(done.stdout.decode().strip()))
    return float(np.median(whole)), float(np.median(inside))


def split_merge_throughput(rows: int, threshold: int) -> list[str]:
    """The job protocol's pure steps on a generated file: split into parts, merge results."""
    _log(f"[split/merge] generating {rows} rows")
    data = generate_portfolio(rows)
    start = time.perf_counter()
    table = read_table(data)
    plan = plan_parts(len(table.records), threshold, 10_000)
    parts = [write_csv(table.header, table.records[r.start : r.stop]) for r in plan]
    split_s = time.perf_counter() - start

    # part results as a part worker writes them (the pricing itself is not timed here)
    header = write_csv(result_header(table.header), [])
    results = []
    for part in parts:
        part_rows = parse_rows(read_table(part))
        quotes = [Quote(price=1.0, std_error=0.001)] * len(part_rows)
        results.append(write_csv(result_header(table.header), result_records(part_rows, quotes)))
    start = time.perf_counter()
    merged = merge_results(header, results)
    merge_s = time.perf_counter() - start
    mb = len(data) / 2**20
    return [
        f"split: {rows:,} rows ({mb:.1f} MB) into {len(parts)} parts of <= {threshold} rows "
        f"in {split_s:.2f} s = {rows / split_s:,.0f} rows/s",
        f"merge: {len(parts)} part results ({len(merged) / 2**20:.1f} MB) in {merge_s:.3f} s "
        f"= {rows / merge_s:,.0f} rows/s",
    ]


def _fmt(value: float | None, digits: int) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        "| set | engine | options | ms/option | vs mc | vs lsm v1 | max abs err | mean abs err "
        "| within max(0.02, 3se) | max stdError | peak MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.set_name} | {r.engine} | {r.options} | {r.ms_per_option:.2f} "
            f"| {_ratio(r.speedup)} | {_ratio(r.vs_first)} "
            f"| {_fmt(r.max_error, 4)} | {_fmt(r.mean_error, 4)} | {r.within}/{r.compared} "
            f"| {_fmt(r.max_std_error, 4)} | {_fmt(r.peak_mb, 1)} |"
        )
    return "\n".join(lines)


def greeks_markdown(report: GreeksReport) -> str:
    worst, mean, within, compared, max_se = report.price_stats
    lines = [
        f"Greeks run: `lsm` on the dividend book ({report.options} options), "
        f"price alone {report.price_ms:.2f} ms/option, with `greeks=True` "
        f"{report.greeks_ms:.2f} ms/option (x{report.greeks_ms / report.price_ms:.2f}), "
        f"peak {_fmt(report.peak_mb, 1)} MB. Prices with Greeks: max abs err {worst:.4f}, "
        f"mean {mean:.4f}, {within}/{compared} within max(0.02, 3se), max stdError "
        f"{_fmt(max_se, 4)}; European rows max abs err {report.european_max_error:.2e}.",
        "",
        "| Greek | max abs err | mean abs err | within target | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, worst_g, mean_g, ok, count, tolerance in report.lines:
        lines.append(f"| {name} | {worst_g:.4f} | {mean_g:.4f} | {ok}/{count} | {tolerance} |")
    return "\n".join(lines)


def machine() -> str:
    import QuantLib as ql

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}; os.cpu_count()={os.cpu_count()}, "
        f"available_cpus()={available_cpus(limits=cpu_limits())}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, QuantLib {ql.__version__}"
    )


def _parser() -> argparse.ArgumentParser:
    from runtime.cli import HelpFormatter  # defaults shown once

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="The engines side by side on the same options: speed on one core and on "
        "every vCPU, error against QuantLib references, memory, cold start, split and merge "
        "throughput. Markdown on stdout, progress on stderr (docs/performance.md). The default "
        "run takes about 43 minutes on 2 vCPUs, almost all of it mc: --engines lsm,qdfp or "
        "--limit 20 for a run of a few minutes.",
        formatter_class=HelpFormatter,
        epilog="example: python -m benchmarks.bench --engines lsm,qdfp --sets sample,ls",
    )
    parser.add_argument(
        "--sets",
        default=",".join(SETS),
        help=f"comma-separated, from {', '.join(SETS + EXTRA_SETS)}",
    )
    parser.add_argument(
        "--engines",
        default=f"mc,{FIRST_RELEASE},lsm,qdfp",
        help=f"comma-separated engines ({FIRST_RELEASE}: the first release's lsm)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="price at most N options of each set with mc"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (not mc)")
    parser.add_argument(
        "--workers", type=int, default=None, help="lsm-parallel workers (None: all vCPUs)"
    )
    parser.add_argument(
        "--greeks", type=int, default=200, help="options of the dividend book for the Greeks run"
    )
    parser.add_argument("--cold-start", type=int, default=5, help="fresh processes; 0 skips")
    parser.add_argument(
        "--split-rows", type=int, default=100_000, help="rows of the split/merge file; 0 skips"
    )
    parser.add_argument("--threshold", type=int, default=200, help="rows per part")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)  # internal: child process
    parser.add_argument("--probe-greeks", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.memory_probe:
        return _memory_probe(args.memory_probe, args.probe_greeks)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for name in engines:
        engine_for(name)  # unknown names fail before any work
    workers = args.workers or available_cpus(limits=cpu_limits())
    started = time.perf_counter()
    rows: list[Row] = []
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        rows.extend(
            bench_set(set_name, load_set(set_name), engines, args.limit, args.repeat, workers)
        )
    report = greeks_run(dividend_book()[: args.greeks], args.repeat) if args.greeks else None
    starts = []
    if args.cold_start:
        for label in COLD_STARTS:
            _log(f"[cold start] {label}, {args.cold_start} fresh processes")
            try:
                whole, inside = cold_start(label, args.cold_start)
            except subprocess.CalledProcessError as exc:
                starts.append(f"cold start {label}: failed ({exc.stderr.decode()[-200:]})")
                continue
            starts.append(
                f"cold start {label}: {whole:.2f} s for the whole process (interpreter, "
                f"imports, one simulated put), {inside:.2f} s of it importing and pricing "
                f"(median of {args.cold_start})"
            )
    extra = split_merge_throughput(args.split_rows, args.threshold) if args.split_rows else []
    command = "python -m benchmarks.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Command: `{command.strip()}`  ")
    print(f"Machine: {machine()}  ")
    print(f"Wall time: {time.perf_counter() - started:.0f} s\n")
    print(markdown(rows))
    if report is not None:
        print()
        print(greeks_markdown(report))
    if starts or extra:
        print()
        for line in starts + extra:
            print(f"- {line}")
    shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
