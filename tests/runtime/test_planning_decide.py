"""The auto lane chooses by the fast path's estimate; the budget guard by the price."""

from __future__ import annotations

import datetime as dt

import pytest

from benchmarks.bench import portfolio
from runtime.core.options import OptionSpec
from runtime.planning.decide import choose_path, over_budget, usd_text
from runtime.planning.paths import FAST, NORMAL, PathPlan
from runtime.planning.plan import plan_options
from runtime.planning.settings import PlanSettings
from runtime.planning.usage import Cost


def paths(fast_seconds: float, fits: bool = True, fast_usd: float = 0.01) -> dict:
    return {
        FAST: PathPlan(FAST, parts=3, wall_seconds=fast_seconds, fits=fits,
                       reason="" if fits else "parts over the limit", cost=Cost(usd=fast_usd)),
        NORMAL: PathPlan(NORMAL, wall_seconds=400.0, cost=Cost(usd=0.2)),
    }  # fmt: skip


def test_the_auto_lane_takes_the_fast_path_within_the_line_and_the_normal_path_beyond():
    path, reason = choose_path(paths(59.0), 60)
    assert path == FAST
    assert reason == (
        "fast path: estimated 59 s on Lambda (3 part(s)), within autoFastSeconds (60 s)"
    )
    path, reason = choose_path(paths(61.0), 60)
    assert path == NORMAL
    assert reason.startswith("normal path: estimated 61 s on Lambda, over autoFastSeconds (60 s)")
    assert choose_path(paths(5.0, fits=False), 60) == (
        NORMAL,
        "normal path: on Lambda parts over the limit",
    )


def test_the_auto_lane_chooses_both_ways_on_files_either_side_of_the_line():
    day = dt.date(2024, 3, 1)
    small = [OptionSpec(day, day, dt.date(2024, 9, 1), False, 36.0, 40.0, 0.06, 0.2)] * 20
    settings = PlanSettings(engine="mc")
    quick = plan_options(small[:2], settings)
    slow = plan_options(portfolio(200, seed=3), settings)
    assert quick.paths[FAST].wall_seconds < 60 < slow.paths[FAST].wall_seconds
    assert quick.auto_path == FAST and slow.auto_path == NORMAL
    assert "within autoFastSeconds" in quick.auto_reason
    assert "over autoFastSeconds" in slow.auto_reason
    # the line is a setting: raise it and the slow file goes fast
    lenient = plan_options(
        portfolio(200, seed=3), PlanSettings(engine="mc", auto_fast_seconds=3600)
    )
    assert lenient.auto_path == FAST


def test_the_budget_guard_names_the_estimate_and_the_limit_and_is_off_at_zero():
    plan = paths(10.0, fast_usd=0.25)
    assert over_budget(plan, FAST, 0) is None
    assert over_budget(plan, FAST, 0.30) is None
    assert over_budget(plan, FAST, 0.10) == (
        "estimated cost $0.250 on the fast path is over maxJobUsd $0.100: not priced "
        "(jobs retry --force runs it anyway)"
    )


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0.0, "$0"),
        (6.674e-05, "$0.0000667"),
        (0.0027, "$0.00270"),
        (1.5, "$1.50"),
        (1234.5, "$1,234.50"),
    ],
)
def test_dollars_read_as_a_person_writes_them(usd, text):
    assert usd_text(usd) == text
