"""Parts that fit each path's time limit, and the paths' estimates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.bench import portfolio
from runtime.core.manifest import plan_parts
from runtime.planning.model import load_model
from runtime.planning.paths import FAST, NORMAL, URGENT, part_size
from runtime.planning.plan import part_sizing, plan_options
from runtime.planning.prices import default_prices
from runtime.planning.settings import PlanSettings
from runtime.planning.usage import total_cost


def test_parts_are_as_large_as_the_threshold_allows_when_they_fit():
    sizing = part_size(np.full(1000, 0.01), limit_seconds=900, threshold=200, max_parts=200)
    assert (sizing.size, sizing.parts, sizing.fits) == (200, 5, True)
    assert sizing.worst_part_seconds == pytest.approx(2.0)


def test_slow_rows_make_smaller_parts_each_within_the_limit_with_its_margin():
    rows = np.full(1000, 5.0)  # mc's 5 s per option
    sizing = part_size(rows, limit_seconds=900, threshold=200, max_parts=200, fixed_seconds=2.0)
    assert sizing.fits and sizing.size == 89  # (450 - 2) / 5
    assert sizing.budget_seconds == 450 and sizing.margin == pytest.approx(0.5)
    for part in plan_parts(1000, sizing.size, 200):
        assert rows[part.start : part.stop].sum() + 2.0 <= 450


def test_uneven_rows_are_checked_part_by_part_in_file_order():
    rows = np.zeros(6)
    rows[3] = 10.0
    rows[4:] = 5.0  # parts of 3 rows: [0, 20]; of 4 rows: [10, 10]
    sizing = part_size(rows, limit_seconds=30, threshold=4, max_parts=10, margin=0.5)
    assert (sizing.size, sizing.worst_part_seconds) == (4, 10.0)
    sizing = part_size(rows, limit_seconds=30, threshold=3, max_parts=10, margin=0.5)
    assert sizing.size < 3 and sizing.fits


def test_too_few_parts_allowed_or_a_row_too_slow_says_why():
    sizing = part_size(np.full(1000, 5.0), limit_seconds=900, threshold=200, max_parts=5)
    assert not sizing.fits and sizing.size == 200
    assert "at most 5 parts are allowed" in sizing.reason
    sizing = part_size(np.array([1000.0]), limit_seconds=900, threshold=200, max_parts=5)
    assert not sizing.fits and "one row is estimated at 1000 s" in sizing.reason


@pytest.fixture(scope="module")
def long_book():
    return portfolio(200, seed=11)  # 7 days to 2 years, strikes 10-200: mc's slow kind


@pytest.mark.parametrize("engine", ["mc", "lsm"])
@pytest.mark.parametrize("path", [FAST, NORMAL])
def test_parts_fit_each_paths_limit_for_mc_and_lsm(long_book, engine, path):
    settings = PlanSettings(engine=engine, job_timeout_seconds=900)
    model = load_model()
    sizing = part_sizing(long_book, settings, path, model)
    assert sizing.fits, sizing.reason
    seconds = model.row_seconds(long_book, engine, False) + model.io_per_row
    for part in plan_parts(len(long_book), sizing.size, settings.max_parts):
        assert seconds[part.start : part.stop].sum() <= 0.5 * 900
    if engine == "lsm":
        assert sizing.size == 200  # milliseconds per row: the threshold is the limit
    else:
        assert sizing.size < 200  # the old fixed 200-row part would not fit


def test_a_job_costs_what_its_records_cost_and_each_path_reports_its_shape(long_book):
    settings = PlanSettings(engine="mc", urgent_max_vcpus=2, job_timeout_seconds=300)
    plan = plan_options(long_book, settings)
    prices = default_prices()
    for name in (FAST, NORMAL, URGENT):
        path = plan.paths[name]
        assert path.available and path.fits
        assert path.usd == pytest.approx(total_cost(path.records, prices).usd)
        assert path.parts * path.part_rows >= plan.rows
        assert path.wall_seconds > 0 and path.cpu_seconds >= plan.cpu_seconds * 0.5
    # at most urgentMaxVcpus one-vCPU children at a time: more waves, no faster
    assert plan.paths[URGENT].parts > 2
    assert plan.paths[URGENT].concurrency == 2
    assert plan.paths[URGENT].waves > plan.paths[NORMAL].waves
    # a fast part is one invocation: the start and every part are requests
    assert plan.paths[FAST].cost.lambda_requests == plan.paths[FAST].parts + 1


def test_a_disabled_fast_path_or_urgent_lane_is_not_available(long_book):
    plan = plan_options(
        long_book[:5], PlanSettings(lambda_reserved_concurrency=0, urgent_max_vcpus=0)
    )
    assert not plan.paths[FAST].available and "disabled" in plan.paths[FAST].reason
    assert not plan.paths[URGENT].available and "no urgent lane" in plan.paths[URGENT].reason
    document = plan.to_dict()
    assert document["paths"][URGENT]["wallSeconds"] is None
    assert plan.auto_path == NORMAL


def test_spot_fargate_and_arm_change_the_price_not_the_parts(long_book):
    base = PlanSettings()
    plans = {
        name: plan_options(long_book, dataclasses.replace(base, **change)).paths[NORMAL]
        for name, change in {
            "ec2": {},
            "spot": {"use_spot": True},
            "fargate": {"use_fargate": True},
            "arm": {"architecture": "arm64"},
        }.items()
    }
    assert plans["spot"].usd < plans["ec2"].usd
    assert plans["arm"].usd < plans["ec2"].usd
    assert plans["fargate"].capacity == "FARGATE"
    assert len({p.parts for p in plans.values()}) == 1


def test_a_start_plans_from_a_sample_that_keeps_the_files_slow_stretches_in_place():
    """The splitter, the auto lane and the guard parse a sample of the rows (parsing every
    row is what a plan costs: 17 s for 500,000 here); each sampled row stands for the rows
    after it, so parts are still checked in file order."""
    from runtime.core.csvio import read_table
    from runtime.planning.plan import plan_table, sample_indexes, table_row_seconds
    from runtime.tools.generate import generate_portfolio

    assert list(sample_indexes(5, 10)) == [0, 1, 2, 3, 4]
    spread = sample_indexes(1000, 10)
    assert spread[0] == 0 and spread[-1] == 999 and len(spread) == 10
    table = read_table(generate_portfolio(3_000))
    settings = PlanSettings(engine="mc", lambda_timeout_seconds=60)
    exact = plan_table(table, settings, paths=(FAST,), sample=10_000)
    for sample, within in ((300, 0.3), (1_000, 0.1)):  # one row in 10, one in 3
        sampled = plan_table(table, settings, paths=(FAST,), sample=sample)
        assert exact.rows == sampled.rows == 3_000
        assert sampled.cpu_seconds == pytest.approx(exact.cpu_seconds, rel=0.05)
        rows = exact.paths[FAST].part_rows
        assert sampled.paths[FAST].part_rows == pytest.approx(rows, rel=within)
    assert exact.paths[FAST].part_rows < 200  # mc within half a minute: small parts
    seconds, options = table_row_seconds(table, settings, sample=300)
    assert len(seconds) == 3_000 and options == 3_000
