"""vCPU detection from (fake) cgroup files, and pricing across worker processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import signal

import pytest

from runtime.core.options import OptionSpec
from runtime.engines import get_engine, parallel
from runtime.engines.cpus import available_cpus
from runtime.engines.parallel import price_in_parallel
from runtime.environment import cpu_limits

# --- available_cpus ---------------------------------------------------------------------


def cgroup_v2(tmp_path, cpu_max: str | None, path: str = "/", parents: dict | None = None):
    """A fake unified hierarchy: /proc/self/cgroup says ``0::<path>``."""
    root = tmp_path / "cgroup"
    directory = root / path.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    if cpu_max is not None:
        (directory / "cpu.max").write_text(cpu_max + "\n")
    for parent, value in (parents or {}).items():
        (root / parent).mkdir(parents=True, exist_ok=True)
        (root / parent / "cpu.max").write_text(value + "\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text(f"0::{path}\n")
    return root, proc


def cpus(root, proc, affinity=8, environ=None):
    return available_cpus(root, proc, limits=cpu_limits(environ or {}), affinity=affinity)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000", 8),  # no limit: the affinity mask decides
        ("200000 100000", 2),  # docker --cpus=2, an ECS task or Fargate with 2 vCPUs
        ("400000 100000", 4),
        ("150000 100000", 1),  # 1.5 CPUs: round down, never oversubscribe
        ("50000 100000", 1),  # half a CPU: still one worker
        ("1600000 100000", 8),  # a quota above the affinity mask changes nothing
        ("garbage", 8),
        ("", 8),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path, cpu_max, expected):
    root, proc = cgroup_v2(tmp_path, cpu_max)
    assert cpus(root, proc) == expected


def test_cgroup_v2_nested_cgroup_and_a_tighter_ancestor(tmp_path):
    root, proc = cgroup_v2(
        tmp_path,
        "600000 100000",
        path="/kubepods/pod1/ctr",
        parents={"kubepods/pod1": "300000 100000"},
    )
    assert cpus(root, proc) == 3


def test_no_cgroup_files_at_all(tmp_path):
    assert cpus(tmp_path / "missing", tmp_path / "missing-proc", affinity=6) == 6


def test_cgroup_v1_cfs_quota(tmp_path):
    root = tmp_path / "cgroup"
    directory = root / "cpu,cpuacct"
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text("300000\n")
    (directory / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:cpu,cpuacct:/\n3:memory:/\n")
    assert cpus(root, proc) == 3
    (directory / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cpus(root, proc) == 8


@pytest.mark.parametrize(
    ("memory_mb", "expected"), [(128, 1), (1769, 1), (3008, 1), (3538, 2), (10240, 5)]
)
def test_lambda_cpu_follows_memory(tmp_path, memory_mb, expected):
    root, proc = cgroup_v2(tmp_path, None)
    env = {"AWS_LAMBDA_FUNCTION_NAME": "pricer", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb)}
    assert cpus(root, proc, affinity=6, environ=env) == expected


def test_explicit_cap_for_batch_on_ec2(tmp_path):
    root, proc = cgroup_v2(tmp_path, "max 100000")
    assert cpus(root, proc, environ={"PRICING_WORKERS": "3"}) == 3
    assert cpus(root, proc, environ={"PRICING_WORKERS": "nonsense"}) == 8


def test_this_machine_reports_at_least_one_cpu():
    assert available_cpus() >= 1
    assert available_cpus() <= (os.cpu_count() or 1)


# --- price_in_parallel ------------------------------------------------------------------

DAY = dt.date(2024, 1, 2)


def book(count: int) -> list[OptionSpec]:
    options = []
    for i in range(count):
        settlement = DAY + dt.timedelta(days=2)
        options.append(
            OptionSpec(
                DAY,
                settlement,
                settlement + dt.timedelta(days=30 + 11 * i),
                i % 5 == 0,  # some calls (exact) among the puts (simulated)
                30.0 + (i % 13),
                36.0,
                0.01 + 0.002 * (i % 7),
                0.15 + 0.01 * (i % 9),
            )
        )
    return options


@pytest.fixture
def fresh_pool(monkeypatch):
    # Small books keep these tests fast: let lsm use two workers from 16 options a worker
    # (in production, at 0.5-3 ms an option, a worker pays for itself from 64).
    monkeypatch.setitem(parallel.MIN_OPTIONS_PER_WORKER, "lsm", 16)
    parallel.shutdown()
    yield
    parallel.shutdown()


def test_two_workers_give_exactly_what_one_gives(fresh_pool):
    options = book(48)
    one = price_in_parallel("lsm", options, workers=1)
    assert parallel._POOL.workers == []  # one worker: priced in this process
    two = price_in_parallel("lsm", options, workers=2)
    assert len(parallel._POOL.workers) == 2  # really in two other processes
    assert two == one
    assert one == get_engine("lsm")(options)


def test_order_and_per_option_errors_survive_the_trip(fresh_pool):
    options = book(40)
    options[3] = dataclasses.replace(options[3], volatility=math.nan)
    options[37] = dataclasses.replace(options[37], maturity=options[37].settlement)
    quotes = price_in_parallel("lsm", options, workers=2)
    assert len(quotes) == 40
    assert quotes[3].price is None and "volatility" in quotes[3].error
    assert quotes[37].price is None and "maturity" in quotes[37].error
    expected = get_engine("lsm")([options[20], options[39]])
    assert [quotes[20], quotes[39]] == expected


def test_small_batches_stay_in_process(fresh_pool):
    quotes = price_in_parallel("lsm", book(5), workers=2)
    assert len(quotes) == 5
    assert parallel._POOL.workers == []


def test_workers_are_reused_and_replaced_when_they_die(fresh_pool):
    options = book(40)
    first = price_in_parallel("lsm", options, workers=2)
    pids = [w.process.pid for w in parallel._POOL.workers]
    again = price_in_parallel("lsm", options, workers=2)
    assert [w.process.pid for w in parallel._POOL.workers] == pids  # warm workers reused
    os.kill(pids[0], signal.SIGKILL)
    parallel._POOL.workers[0].process.wait()
    after = price_in_parallel("lsm", options, workers=2)
    assert first == again == after
    assert pids[0] not in [w.process.pid for w in parallel._POOL.workers]


def test_quantlib_engines_run_in_workers_too(fresh_pool):
    options = book(12)  # mc needs one option per worker; qdfp is cheap, use mc's rule
    expected = get_engine("fd")(options)
    parallel.MIN_OPTIONS_PER_WORKER["fd"], saved = 1, parallel.MIN_OPTIONS_PER_WORKER["fd"]
    try:
        assert price_in_parallel("fd", options, workers=2) == expected
    finally:
        parallel.MIN_OPTIONS_PER_WORKER["fd"] = saved


def test_works_where_posix_semaphores_do_not(fresh_pool, monkeypatch):
    # AWS Lambda has no /dev/shm: multiprocessing.Pool, Queue and ProcessPoolExecutor
    # fail there creating a SemLock. Break SemLock here and the pool must not notice.
    import _multiprocessing
    import multiprocessing
    import multiprocessing.synchronize  # loaded before the patch, as it would be on Lambda

    class NoSemaphores:
        SEM_VALUE_MAX = _multiprocessing.SemLock.SEM_VALUE_MAX

        def __init__(self, *args, **kwargs):
            raise OSError(38, "Function not implemented")

    monkeypatch.setattr(_multiprocessing, "SemLock", NoSemaphores)
    with pytest.raises(OSError):
        multiprocessing.get_context("spawn").Lock()  # what Pool and Queue would hit
    options = book(40)
    assert price_in_parallel("lsm", options, workers=2) == get_engine("lsm")(options)
    assert len(parallel._POOL.workers) == 2


def test_unknown_engine_is_a_value_error():
    with pytest.raises(ValueError, match="unknown engine"):
        price_in_parallel("nope", book(2))


# --- Greeks through the workers ---------------------------------------------------------


def mixed_book(count: int) -> list[OptionSpec]:
    """book() with dividend yields and a quarter European."""
    return [
        dataclasses.replace(o, dividend_yield=(0.0, 0.03, 0.07)[i % 3], american=i % 4 != 3)
        for i, o in enumerate(book(count))
    ]


@pytest.fixture
def small_chunks(monkeypatch):
    """Let cheap engines use workers on a handful of options."""
    for name in ("qdfp", "fd"):
        monkeypatch.setitem(parallel.MIN_OPTIONS_PER_WORKER, name, 2)


@pytest.mark.parametrize("engine", ["qdfp", "fd"])
def test_greeks_travel_to_the_workers_and_back(fresh_pool, small_chunks, engine):
    options = mixed_book(16)
    one = price_in_parallel(engine, options, workers=1, greeks=True)
    assert parallel._POOL.workers == []
    two = price_in_parallel(engine, options, workers=2, greeks=True)
    assert len(parallel._POOL.workers) == 2
    assert two == one == get_engine(engine)(options, greeks=True)
    assert all(q.greeks is not None for q in one)
    plain = price_in_parallel(engine, options, workers=2)
    assert all(q.greeks is None for q in plain)
    assert [q.price for q in plain] == [q.price for q in one]


def greek_file(rows: int) -> bytes:
    from runtime.core.csvio import write_csv

    header = [
        "id",
        "todaysDate",
        "settlementDate",
        "optionType",
        "underlying",
        "strike",
        "riskFreeRate",
        "volatility",
        "maturityDate",
        "dividendYield",
        "exerciseType",
    ]
    records = []
    for i, o in enumerate(mixed_book(rows)):
        records.append(
            [
                str(i),
                f"{o.today:%m/%d/%Y}",
                f"{o.settlement:%m/%d/%Y}",
                "Call" if o.is_call else "Put",
                repr(o.spot),
                repr(o.strike),
                repr(o.rate),
                repr(o.volatility),
                f"{o.maturity:%m/%d/%Y}",
                repr(o.dividend_yield) if i % 5 else "",
                "American" if o.american else "european",
            ]
        )
    return write_csv(header, records)


def test_greek_results_are_the_same_bytes_with_1_or_2_workers_and_any_split(
    fresh_pool, small_chunks, monkeypatch
):
    from runtime.core.csvio import read_table, result_header, write_csv
    from runtime.core.manifest import merge_results, plan_parts
    from runtime.engines.parallel import parallel_engine
    from runtime.pricing import price_table

    table = read_table(greek_file(30), greeks=True)
    one = price_table(table, parallel_engine("qdfp", (None, 1)), greeks=True).csv
    assert parallel._POOL.workers == []
    engine = parallel_engine("qdfp", (None, 2))  # PRICING_WORKERS=2
    two = price_table(table, engine, greeks=True, progress=lambda n: None).csv
    assert len(parallel._POOL.workers) == 2
    assert two == one
    header = write_csv(result_header(table.header, greeks=True), [])
    assert one.startswith(header)
    for threshold in (1, 7, 16):
        parts = [
            price_table(
                read_table(write_csv(table.header, table.records[r.start : r.stop])),
                parallel_engine("qdfp"),
                greeks=True,
            ).csv
            for r in plan_parts(len(table.records), threshold, max_parts=100)
        ]
        assert merge_results(header, parts) == one


def test_lsm_greeks_are_identical_with_1_or_2_workers(fresh_pool):
    options = mixed_book(40)
    one = price_in_parallel("lsm", options, workers=1, greeks=True)
    two = price_in_parallel("lsm", options, workers=2, greeks=True)
    assert len(parallel._POOL.workers) == 2
    assert two == one and all(q.greeks is not None for q in one if q.price is not None)


class _KillsTheWorker(OptionSpec):
    """An option whose unpickling ends the worker process: a stand-in for an option that
    crashes the engine (a segfault, running out of memory) wherever it is priced."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_an_option_that_kills_its_worker_fails_alone(fresh_pool, small_chunks):
    options = mixed_book(8)
    fields = {f.name: getattr(options[5], f.name) for f in dataclasses.fields(OptionSpec)}
    options[5] = _KillsTheWorker(**fields)
    quotes = price_in_parallel("qdfp", options, workers=2, greeks=True)
    assert quotes[5].price is None
    assert quotes[5].error == "pricing failed: worker process died (exit code 3)"
    others = [o for i, o in enumerate(options) if i != 5]
    expected = get_engine("qdfp")(others, greeks=True)
    assert [q for i, q in enumerate(quotes) if i != 5] == expected
