"""``python -m runtime.tools.bench``: the engines side by side on the same inputs.

Sets: ``sample`` (runtime/sample/EquityOption-100.csv), ``ls`` (Longstaff-Schwartz 2001
Table 1: 20 American puts), ``portfolio`` (a deterministic 200-option portfolio, 80% puts,
maturities up to two years). Sets with calls get a second, puts-only row, so the exact
Black-Scholes shortcut for calls cannot carry the figures.

Per set and engine: ms per option on one core (CPU time of this process), speed-up against
``mc`` on the same options, max and mean absolute error against ``qdfp``, how many options
lie within max(0.02, 3 x stdError) of it, the largest stdError, and peak memory (the
maximum resident set of a fresh process pricing the set: interpreter, numpy and QuantLib
included). ``lsm`` also runs on every vCPU through ``runtime.engines.parallel`` (wall-clock time).
Finally the split and merge throughput of the job protocol on a generated 100,000-row file.
Output: a Markdown table on stdout, progress on stderr. See docs/performance.md.
"""

from __future__ import annotations

import os

# one core means one thread: set before numpy or QuantLib are loaded
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402 - after the thread settings above
import csv  # noqa: E402
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

from runtime.core.options import Greeks, OptionSpec, Quote  # noqa: E402
from runtime.engines import get_engine  # noqa: E402
from runtime.engines.cpus import available_cpus  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "EquityOption-100.csv"
SETS = ("sample", "ls", "portfolio")
EXTRA_SETS = ("stress",)  # not run by default: outside the targets, see docs/performance.md
REFERENCE = "qdfp"
BASELINE = "mc"


def sample_options(path: Path = SAMPLE) -> list[OptionSpec]:
    """The sample file's valid rows, through the project's CSV parser when it is there."""
    data = path.read_bytes()
    try:
        from runtime.core.csvio import parse_rows, read_table

        return [row.option for row in parse_rows(read_table(data)) if row.option is not None]
    except ImportError:  # minimal fallback: the workshop's columns and date format
        options = []
        for record in csv.DictReader(data.decode("utf-8-sig").splitlines()):

            def day(text: str) -> dt.date:
                return dt.datetime.strptime(text.strip(), "%m/%d/%Y").date()

            options.append(
                OptionSpec(
                    today=day(record["todaysDate"]),
                    settlement=day(record["settlementDate"]),
                    maturity=day(record["maturityDate"]),
                    is_call=record["optionType"].strip().lower() == "call",
                    spot=float(record["underlying"]),
                    strike=float(record["strike"]),
                    rate=float(record["riskFreeRate"]),
                    volatility=float(record["volatility"]),
                )
            )
        return options


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


def _ql_setup(spec: OptionSpec):  # returns QuantLib objects
    import QuantLib as ql

    def day(d: dt.date) -> ql.Date:
        return ql.Date(d.day, d.month, d.year)

    ql.Settings.instance().evaluationDate = day(spec.today)
    settlement = day(spec.settlement)
    count = ql.Actual365Fixed()
    quotes = {
        "spot": ql.SimpleQuote(spec.spot),
        "rate": ql.SimpleQuote(spec.rate),
        "div": ql.SimpleQuote(spec.dividend_yield),
        "vol": ql.SimpleQuote(spec.volatility),
    }
    rates = ql.YieldTermStructureHandle(
        ql.FlatForward(settlement, ql.QuoteHandle(quotes["rate"]), count)
    )
    divs = ql.YieldTermStructureHandle(
        ql.FlatForward(settlement, ql.QuoteHandle(quotes["div"]), count)
    )
    vols = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(settlement, ql.TARGET(), ql.QuoteHandle(quotes["vol"]), count)
    )
    process = ql.BlackScholesMertonProcess(ql.QuoteHandle(quotes["spot"]), divs, rates, vols)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if spec.is_call else ql.Option.Put, spec.strike)
    if spec.american:
        exercise = ql.AmericanExercise(settlement, day(spec.maturity))
    else:
        exercise = ql.EuropeanExercise(day(spec.maturity))
    return ql, ql.VanillaOption(payoff, exercise), process, quotes


def reference_quote(spec: OptionSpec, greeks: bool = False, fd_grid: int = 1000) -> Quote:
    """An accurate reference computed here with QuantLib, independent of the engines module.

    European: the analytic engine (price and every Greek). American: QD+ with its
    high-precision scheme for the price, and central bumps of it for delta, gamma
    (spot, 0.5 %), vega (0.001) and rho (0.0001); theta from finite differences on a fine
    grid (``fd_grid`` x ``fd_grid``), whose theta is read off the grid.
    """
    ql, option, process, quotes = _ql_setup(spec)
    if not spec.american:
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        price = option.NPV()
        if not greeks:
            return Quote(price=price, std_error=0.0)
        return Quote(
            price=price,
            std_error=0.0,
            greeks=Greeks(
                delta=option.delta(),
                gamma=option.gamma(),
                vega=option.vega(),
                theta=option.theta(),
                rho=option.rho(),
            ),
        )
    option.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    price = option.NPV()
    if not greeks:
        return Quote(price=price, std_error=0.0)

    def bumped(name: str, h: float) -> tuple[float, float]:
        base = quotes[name].value()
        quotes[name].setValue(base + h)
        up = option.NPV()
        quotes[name].setValue(base - h)
        down = option.NPV()
        quotes[name].setValue(base)
        return up, down

    hs = 0.005 * spec.spot
    up, down = bumped("spot", hs)
    delta = (up - down) / (2 * hs)
    gamma = (up - 2 * price + down) / (hs * hs)
    up, down = bumped("vol", 1e-3)
    vega = (up - down) / 2e-3
    up, down = bumped("rate", 1e-4)
    rho = (up - down) / 2e-4
    option.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, fd_grid, fd_grid))
    theta = option.theta()
    return Quote(
        price=price,
        std_error=0.0,
        greeks=Greeks(delta=delta, gamma=gamma, vega=vega, theta=theta, rho=rho),
    )


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
    speedup: float | None
    max_error: float
    mean_error: float
    within: int
    compared: int
    max_std_error: float | None
    peak_mb: float | None
    notes: list[str] = field(default_factory=list)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def time_engine(name: str, options: Sequence[OptionSpec], repeat: int) -> Timing:
    """Price ``options``; best of ``repeat`` runs (mc: once, option by option).

    In-process engines are timed in CPU seconds of this process: on a machine shared with
    other work that is the one-core cost, where wall-clock time would add the neighbours'
    load. The parallel run is timed by the wall clock, which is what it is for.
    """
    if name.endswith("-parallel"):
        from runtime.engines.parallel import price_in_parallel

        engine_name = name.removesuffix("-parallel")
        price_in_parallel(engine_name, list(options[:64]))  # start the workers untimed
        return _timed(lambda: price_in_parallel(engine_name, options), repeat, time.perf_counter)
    engine = get_engine(name)
    engine(list(options[:1]))  # imports and first-call set-up are not the workload
    if name == BASELINE:
        per_option, quotes = [], []
        for spec in options:
            start = time.process_time()
            quotes.extend(engine([spec]))
            per_option.append(time.process_time() - start)
        return Timing(sum(per_option), quotes, per_option)
    return _timed(lambda: engine(options), repeat, time.process_time)


def peak_memory_mb(name: str, options: Sequence[OptionSpec]) -> float | None:
    """Peak resident memory (MB) of a fresh process that prices ``options`` with ``name``.

    A child process, so QuantLib's C++ heap counts too and earlier runs leave no trace;
    the figure includes the interpreter, numpy and QuantLib (what a Lambda's memory must
    hold), not just the engine's arrays.
    """
    probe = [sys.executable, "-m", "runtime.tools.bench", "--memory-probe", name]
    done = subprocess.run(probe, input=pickle.dumps(list(options)), capture_output=True)
    if done.returncode != 0:
        _log(f"memory probe for {name} failed: {done.stderr.decode(errors='replace')[-500:]}")
        return None
    return float(done.stdout.decode().strip()) / 1024  # KiB


def _memory_probe(name: str) -> int:
    import QuantLib  # noqa: F401 - every engine's process has it loaded in production

    options = pickle.loads(sys.stdin.buffer.read())
    get_engine(name)(options)
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


def bench_set(
    set_name: str,
    options: list[OptionSpec],
    engines: Sequence[str],
    limit: int | None,
    repeat: int,
    workers: int,
) -> list[Row]:
    """Rows for one set, and for its puts alone when it also holds calls."""
    _log(f"[{set_name}] {len(options)} options: reference {REFERENCE}")
    reference = get_engine(REFERENCE)(options)
    baseline_count = len(options) if limit is None else min(limit, len(options))
    baseline = None
    if BASELINE in engines:
        _log(f"[{set_name}] {BASELINE} on {baseline_count} options (about 0.2-3 s each)")
        baseline = time_engine(BASELINE, options[:baseline_count], 1)

    subsets = [(set_name, list(range(len(options))))]
    puts = [i for i, spec in enumerate(options) if not spec.is_call]
    if len(puts) < len(options):
        subsets.append((f"{set_name} (puts only)", puts))

    names = [e for e in engines if e != BASELINE]
    if "lsm" in names and workers > 1:
        names.append("lsm-parallel")
    rows = []
    for label, indices in subsets:
        chosen = [options[i] for i in indices]
        refs = [reference[i] for i in indices]
        in_baseline = [i for i in indices if i < baseline_count]
        base_ms = None
        if baseline is not None and baseline.per_option is not None and in_baseline:
            base_quotes = [baseline.quotes[i] for i in in_baseline]
            base_ms = 1000 * sum(baseline.per_option[i] for i in in_baseline) / len(in_baseline)
            stats = _errors(base_quotes, [reference[i] for i in in_baseline])
            peak = peak_memory_mb(BASELINE, [options[i] for i in in_baseline[:3]])
            rows.append(
                Row(label, BASELINE, len(in_baseline), base_ms, 1.0, *stats, peak)  # type: ignore[arg-type]
            )
        for name in names:
            _log(f"[{label}] {name}")
            run = time_engine(name, chosen, repeat)
            ms = 1000 * run.seconds / len(chosen)
            speedup = None
            if base_ms is not None:
                same = [options[i] for i in in_baseline]
                same_ms = ms if len(same) == len(chosen) else 0.0
                if not same_ms:
                    same_ms = 1000 * time_engine(name, same, repeat).seconds / len(same)
                speedup = base_ms / same_ms if same_ms > 0 else None
            peak = None if name.endswith("-parallel") else peak_memory_mb(name, chosen)
            label_name = f"lsm ({workers} workers)" if name == "lsm-parallel" else name
            rows.append(
                Row(label, label_name, len(chosen), ms, speedup, *_errors(run.quotes, refs), peak)
            )
    return rows


def split_merge_throughput(rows: int, threshold: int) -> list[str]:
    """The job protocol's pure steps on a generated file: split into parts, merge results."""
    try:
        from runtime.core.csvio import (
            parse_rows,
            read_table,
            result_header,
            result_records,
            write_csv,
        )
        from runtime.core.manifest import merge_results, plan_parts
        from runtime.tools.generate import generate_portfolio
    except ImportError as exc:
        return [f"split/merge: skipped ({exc})"]
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


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        "| set | engine | options | ms/option | speed-up vs mc | max abs err | mean abs err "
        "| within max(0.02, 3se) | max stdError | peak MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        speedup = "-" if r.speedup is None else f"{r.speedup:.1f}x"
        lines.append(
            f"| {r.set_name} | {r.engine} | {r.options} | {r.ms_per_option:.1f} | {speedup} "
            f"| {_fmt(r.max_error, 4)} | {_fmt(r.mean_error, 4)} | {r.within}/{r.compared} "
            f"| {_fmt(r.max_std_error, 4)} | {_fmt(r.peak_mb, 1)} |"
        )
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
        f"{model}; os.cpu_count()={os.cpu_count()}, available_cpus()={available_cpus()}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, QuantLib {ql.__version__}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime.tools.bench", description=__doc__)
    parser.add_argument(
        "--sets",
        default=",".join(SETS),
        help=f"comma-separated, from {', '.join(SETS + EXTRA_SETS)}",
    )
    parser.add_argument(
        "--engines", default="mc,lsm,qdfp", help="comma-separated engines (qdfp is the reference)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="price at most N options of each set with mc"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (not mc)")
    parser.add_argument(
        "--workers", type=int, default=None, help="lsm-parallel workers (default: all vCPUs)"
    )
    parser.add_argument(
        "--split-rows", type=int, default=100_000, help="rows of the split/merge file; 0 skips"
    )
    parser.add_argument("--threshold", type=int, default=200, help="rows per part")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)  # internal: child process
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.memory_probe:
        return _memory_probe(args.memory_probe)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for name in engines:
        get_engine(name)  # unknown names fail before any work
    workers = args.workers or available_cpus()
    started = time.perf_counter()
    rows: list[Row] = []
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        rows.extend(
            bench_set(set_name, load_set(set_name), engines, args.limit, args.repeat, workers)
        )
    extra = split_merge_throughput(args.split_rows, args.threshold) if args.split_rows else []
    command = "python -m runtime.tools.bench " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    print(f"Command: `{command.strip()}`  ")
    print(f"Machine: {machine()}  ")
    print(f"Wall time: {time.perf_counter() - started:.0f} s\n")
    print(markdown(rows))
    if extra:
        print()
        for line in extra:
            print(f"- {line}")
    try:
        from runtime.engines.parallel import shutdown

        shutdown()
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
