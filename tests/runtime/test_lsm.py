"""The vectorised American Monte Carlo engine (``lsm``) against QuantLib's QD+ reference.

No timing assertions: the machines running this are shared. Speed is the benchmark's job
(python -m benchmarks.bench, docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random

import numpy as np
import pytest

from runtime.core.options import OptionSpec
from runtime.engines import ENGINE_NAMES, get_engine
from runtime.engines.closed_forms import black_scholes, norm_cdf
from runtime.engines.lsm import LsmSettings, price_lsm

DAY = dt.date(2024, 1, 2)


def option(
    spot: float = 36.0,
    strike: float = 40.0,
    rate: float = 0.06,
    vol: float = 0.2,
    days: int = 365,
    is_call: bool = False,
    settle_lag: int = 0,
) -> OptionSpec:
    settlement = DAY + dt.timedelta(days=settle_lag)
    return OptionSpec(
        DAY, settlement, settlement + dt.timedelta(days=days), is_call, spot, strike, rate, vol
    )


# A small spread of simulated options: Longstaff-Schwartz Table 1 corners, short and deep
# puts like the sample file's, a high rate, and a call with a negative rate (simulated too).
SIMULATED = [
    option(36.0, 40.0, 0.06, 0.2, 365),
    option(44.0, 40.0, 0.06, 0.4, 730),
    option(40.0, 40.0, 0.06, 0.2, 730),
    option(54.6, 57.0, 0.128, 0.23, 94, settle_lag=2),
    option(35.9, 45.0, 0.043, 0.12, 57, settle_lag=2),  # deep: worth its intrinsic value
    option(6.9, 7.0, 0.129, 0.15, 89, settle_lag=2),
    option(150.0, 160.0, 0.03, 0.5, 400),
    option(40.0, 40.0, -0.01, 0.3, 300),  # put, negative rate: never exercised early
    option(45.0, 40.0, -0.03, 0.3, 500, is_call=True),  # call, negative rate: simulated
]


@pytest.fixture(scope="module")
def priced():
    return price_lsm(SIMULATED), get_engine("qdfp")(SIMULATED)


def test_lsm_is_registered():
    assert "lsm" in ENGINE_NAMES
    assert get_engine("lsm") is price_lsm


def test_prices_are_within_three_standard_errors_of_qdfp(priced):
    quotes, references = priced
    for spec, quote, reference in zip(SIMULATED, quotes, references, strict=True):
        assert quote.error is None and quote.price is not None
        assert quote.std_error is not None
        tolerance = max(0.02, 3 * quote.std_error)
        assert abs(quote.price - reference.price) <= tolerance, (spec, quote, reference)


def test_standard_error_is_reported_and_at_most_two_cents(priced):
    quotes, _ = priced
    for quote in quotes:
        assert quote.std_error is not None
        assert 0.0 <= quote.std_error <= 0.02
    # only an exact answer reports 0: the put with a negative rate is never exercised early
    # (its closed form is exact); the deep put settled at its intrinsic value by the proven
    # bound reports that bound, and every other option its simulation's error bar
    exact = {SIMULATED.index(option(40.0, 40.0, -0.01, 0.3, 300))}
    for i, quote in enumerate(quotes):
        assert (quote.std_error == 0.0) == (i in exact), (SIMULATED[i], quote)
    deep = SIMULATED.index(option(35.9, 45.0, 0.043, 0.12, 57, settle_lag=2))
    assert 0.0 < quotes[deep].std_error <= 0.001


def test_deep_in_the_money_put_is_worth_at_least_its_intrinsic_value(priced):
    quotes, _ = priced
    deep = SIMULATED.index(option(35.9, 45.0, 0.043, 0.12, 57, settle_lag=2))
    assert quotes[deep].price >= 45.0 - 35.9


def test_same_floats_whole_in_chunks_shuffled_and_with_tiny_memory_budget():
    options = SIMULATED[:6] + [option(38.0 + i, 40.0, 0.05, 0.25, 120 + 30 * i) for i in range(6)]
    whole = [q.price for q in price_lsm(options)]

    chunked = []
    for start in range(0, len(options), 5):
        chunked.extend(q.price for q in price_lsm(options[start : start + 5]))

    order = list(range(len(options)))
    random.Random(7).shuffle(order)
    shuffled: list[float | None] = [None] * len(options)
    for position, quote in zip(order, price_lsm([options[i] for i in order]), strict=True):
        shuffled[position] = quote.price

    one_by_one = [price_lsm([spec])[0].price for spec in options[:4]]
    tiny = [q.price for q in price_lsm(options, settings=LsmSettings(memory_budget_bytes=1))]

    assert chunked == whole
    assert shuffled == whole
    assert one_by_one == whole[:4]
    assert tiny == whole


def test_a_price_does_not_depend_on_the_other_options_in_the_batch():
    target = option(42.0, 40.0, 0.06, 0.4, 365)
    alone = price_lsm([target])[0]
    crowded = price_lsm([option(30.0), target, option(50.0, 40.0, 0.01, 0.6, 700)])[1]
    assert crowded == alone


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.134])
@pytest.mark.parametrize("spot", [22.2, 56.0])
def test_calls_with_non_negative_rate_get_the_black_scholes_price(rate, spot):
    spec = option(spot, 45.0, rate, 0.17, 90, is_call=True, settle_lag=2)
    quote = price_lsm([spec])[0]
    t = 90 / 365  # Actual/365 Fixed from settlement
    assert quote.price == max(black_scholes(True, spot, 45.0, rate, 0.17, t), spot - 45.0)
    assert quote.std_error == 0.0
    assert quote.price == pytest.approx(get_engine("qdfp")([spec])[0].price, abs=1e-6)


def test_calls_with_a_negative_rate_are_simulated_not_shortcut():
    spec = option(45.0, 40.0, -0.03, 0.3, 500, is_call=True)
    quote = price_lsm([spec])[0]
    european = black_scholes(True, 45.0, 40.0, -0.03, 0.3, 500 / 365)
    assert quote.std_error is not None and quote.std_error > 0.0
    assert quote.price > european + 0.05  # early exercise is worth something here


def test_time_runs_from_settlement_and_the_trade_date_does_not_matter():
    # QuantLib's curves start at settlement: the reference prices ignore todaysDate
    # (as long as the option has not expired) and so does lsm
    # (the seed follows every term, todaysDate included, so compare with the reference)
    base = option(38.0, 40.0, 0.05, 0.3, 200, settle_lag=2)
    later_trade = dataclasses.replace(base, today=base.settlement)
    reference = get_engine("qdfp")([base, later_trade])
    assert reference[0].price == reference[1].price
    for quote in price_lsm([base, later_trade]):
        assert abs(quote.price - reference[0].price) <= max(0.02, 3 * quote.std_error)


def test_expired_options_are_worth_zero_like_quantlib():
    spec = dataclasses.replace(option(30.0, 40.0), today=DAY + dt.timedelta(days=400))
    assert price_lsm([spec])[0].price == 0.0
    assert get_engine("qdfp")([spec])[0].price == 0.0


def test_deterministic_corner_cases_match_qdfp():
    cases = [
        option(36.0, 40.0, 0.06, 0.0, 365),  # no volatility: exercise now
        option(36.0, 40.0, -0.02, 0.0, 365),  # no volatility, negative rate: wait
        option(0.0, 40.0, 0.06, 0.2, 365),  # worthless stock: the put pays the strike now
    ]
    for spec, quote, reference in zip(
        cases, price_lsm(cases), get_engine("qdfp")(cases), strict=True
    ):
        assert quote.std_error == 0.0
        assert quote.price == pytest.approx(reference.price, abs=1e-9), spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spot": math.nan}, "spot must be finite"),
        ({"spot": -1.0}, "spot must not be negative"),
        ({"strike": 0.0}, "strike must be positive"),
        ({"volatility": -0.2}, "volatility must not be negative"),
        ({"rate": math.inf}, "rate must be finite"),
        ({"maturity": DAY}, "must be after the settlement date"),
        ({"strike": "40"}, "strike must be a number"),
        ({"maturity": None}, "maturity must be a date"),
    ],
)
def test_bad_inputs_give_error_quotes_and_the_rest_is_priced(change, message):
    good = option(38.0, 40.0, 0.05, 0.3, 200)
    bad = dataclasses.replace(good, **change)
    quotes = price_lsm([good, bad, good])
    assert quotes[1].price is None
    assert message in quotes[1].error
    assert quotes[0] == quotes[2]
    assert quotes[0].price is not None and quotes[0].error is None


def test_empty_batch():
    assert price_lsm([]) == []


def test_settings_are_checked():
    with pytest.raises(ValueError, match="even"):
        LsmSettings(steps_per_date=7)
    with pytest.raises(ValueError, match="positive"):
        LsmSettings(block_pairs=0)
    with pytest.raises(ValueError, match="target_error"):
        LsmSettings(target_error=0.05)


def test_vectorised_normal_cdf_matches_erfc():
    x = np.linspace(-38.0, 38.0, 20001)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    assert np.max(np.abs(norm_cdf(x) - exact)) < 1e-14
