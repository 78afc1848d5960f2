"""``lsm`` on the pricing model of issue 13: dividend yields, European exercise, Greeks, and
rows at the edges of the validated ranges.

References are computed here with QuantLib (``benchmarks.bench.reference_quote``: QD+ at
high precision and bumps of it for American options, the analytic engine for European ones,
fine-grid finite differences for American theta). Small sets only; no timing assertions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random

import numpy as np
import pytest

from benchmarks.bench import GREEK_NAMES, GREEK_TOLERANCE, reference_quote
from runtime.core.options import Greeks, OptionSpec, Quote
from runtime.engines import lsm, screen
from runtime.engines.closed_forms import black_scholes
from runtime.engines.lsm import LsmSettings, price_lsm

DAY = dt.date(2024, 3, 1)


def spec(
    is_call: bool,
    spot: float,
    strike: float,
    rate: float,
    div: float,
    vol: float,
    days: int,
    american: bool = True,
) -> OptionSpec:
    settlement = DAY + dt.timedelta(days=2)
    return OptionSpec(
        DAY,
        settlement,
        settlement + dt.timedelta(days=days),
        is_call,
        spot,
        strike,
        rate,
        vol,
        dividend_yield=div,
        american=american,
    )


# American options that must be simulated: calls on dividend payers (early exercise pays),
# puts with and without dividends, a negative rate with a negative yield, long and short.
AMERICAN = [
    spec(True, 110.0, 100.0, 0.03, 0.05, 0.25, 365),
    spec(True, 192.26, 158.5, -0.004, 0.044, 0.21, 315),  # deep call, q > r: exercised early
    spec(True, 45.0, 50.0, 0.06, 0.07, 0.45, 700),
    spec(False, 36.0, 40.0, 0.06, 0.0, 0.2, 365),
    spec(False, 95.0, 100.0, 0.05, 0.03, 0.3, 500),
    spec(False, 70.9, 75.4, 0.061, 0.007, 0.12, 175),
    spec(False, 120.0, 100.0, 0.08, 0.01, 0.5, 60),
    spec(False, 48.0, 50.0, -0.01, -0.02, 0.3, 400),  # r < 0 but q < r: may be exercised
]
EUROPEAN = [
    spec(True, 100.0, 100.0, 0.03, 0.05, 0.25, 365, american=False),
    spec(False, 90.0, 100.0, 0.05, 0.02, 0.4, 730, american=False),
    spec(True, 80.0, 100.0, -0.01, 0.0, 0.6, 30, american=False),
    spec(False, 120.0, 100.0, -0.005, 0.07, 0.15, 200, american=False),
]


@pytest.fixture(scope="module")
def american_quotes():
    return price_lsm(AMERICAN, greeks=True), [reference_quote(s, greeks=True) for s in AMERICAN]


def within_price(quote: Quote, reference: Quote) -> bool:
    return abs(quote.price - reference.price) <= max(0.02, 3.0 * quote.std_error)


def test_american_options_with_dividends_match_qdfp(american_quotes):
    quotes, references = american_quotes
    errors = []
    for option, quote, reference in zip(AMERICAN, quotes, references, strict=True):
        assert quote.error is None, (option, quote)
        assert 0.0 < quote.std_error <= 0.02, (option, quote)  # all of these are simulated
        assert within_price(quote, reference), (option, quote, reference)
        errors.append(abs(quote.price - reference.price))
    assert sum(errors) / len(errors) <= 0.01


def test_calls_on_dividend_payers_are_worth_more_than_european(american_quotes):
    # the first release priced every call with r >= 0 by Black-Scholes: with dividends that
    # misses the early-exercise premium (0.3 to 3.7 here)
    quotes, _ = american_quotes
    for option, quote in zip(AMERICAN[:3], quotes[:3], strict=True):
        t = (option.maturity - option.settlement).days / 365
        european = black_scholes(
            True,
            option.spot,
            option.strike,
            option.rate,
            option.volatility,
            t,
            option.dividend_yield,
        )
        assert quote.price > european + 0.25, (option, quote, european)


def test_american_greeks_meet_the_issue_targets(american_quotes):
    quotes, references = american_quotes
    for option, quote, reference in zip(AMERICAN, quotes, references, strict=True):
        for name in GREEK_NAMES:
            absolute, relative = GREEK_TOLERANCE[name]
            value, target = getattr(quote.greeks, name), getattr(reference.greeks, name)
            assert abs(value - target) <= max(absolute, relative * abs(target)), (
                name,
                option,
                value,
                target,
            )


def test_european_options_are_the_closed_form_with_its_greeks():
    quotes = price_lsm(EUROPEAN, greeks=True)
    for option, quote in zip(EUROPEAN, quotes, strict=True):
        reference = reference_quote(option, greeks=True)
        assert quote.std_error == 0.0
        assert quote.price == pytest.approx(reference.price, abs=1e-10)
        for name in GREEK_NAMES:
            assert getattr(quote.greeks, name) == pytest.approx(
                getattr(reference.greeks, name), rel=1e-8, abs=1e-10
            ), (name, option)


@pytest.mark.parametrize(
    "option",
    [
        spec(True, 105.0, 100.0, 0.04, 0.0, 0.3, 300),  # call, q = 0, r >= 0
        spec(True, 105.0, 100.0, 0.0, -0.02, 0.3, 300),  # call, q < 0
        spec(False, 95.0, 100.0, -0.01, 0.03, 0.3, 300),  # put, r < 0, q >= 0
        spec(False, 95.0, 100.0, 0.0, 0.0, 0.3, 300),  # put, r = 0
    ],
)
def test_american_options_never_exercised_early_get_the_european_closed_form(option):
    american = price_lsm([option], greeks=True)[0]
    european = price_lsm([dataclasses.replace(option, american=False)], greeks=True)[0]
    assert american.std_error == 0.0
    assert american.price == european.price
    assert american.greeks == european.greeks
    assert american.price == pytest.approx(reference_quote(option).price, abs=1e-6)


def test_a_simulated_call_and_a_european_one_differ_only_where_early_exercise_pays():
    american = spec(True, 110.0, 100.0, 0.03, 0.05, 0.25, 365)
    european = dataclasses.replace(american, american=False)
    a, e = price_lsm([american, european])
    assert a.std_error > 0.0 and e.std_error == 0.0
    assert a.price > e.price


def test_deep_in_the_money_options_are_settled_at_intrinsic_within_the_bound():
    deep = [
        spec(False, 60.0, 100.0, 0.05, 0.0, 0.2, 120),
        spec(False, 35.9, 45.0, 0.043, 0.0, 0.12, 57),
        spec(True, 150.0, 100.0, 0.0, 0.08, 0.2, 90),  # a call via put-call symmetry
    ]
    quotes = price_lsm(deep, greeks=True)
    for option, quote in zip(deep, quotes, strict=True):
        intrinsic = max((1 if option.is_call else -1) * (option.spot - option.strike), 0.0)
        # the bound is the error bar: 0 would claim an exactness the screen does not have
        assert 0.0 < quote.std_error <= 0.001 and quote.price == intrinsic
        assert 0.0 <= reference_quote(option).price - quote.price <= quote.std_error
        assert quote.greeks == Greeks(1.0 if option.is_call else -1.0, 0.0, 0.0, 0.0, 0.0)
    # just outside the bound, the option is simulated
    near = price_lsm([spec(False, 80.0, 100.0, 0.05, 0.0, 0.3, 300)])[0]
    assert near.std_error > 0.0


def test_the_premium_bound_is_an_upper_bound():
    options = [
        spec(False, s, 100.0, r, q, v, d)
        for s in (70.0, 85.0, 95.0)
        for r, q in ((0.05, 0.0), (0.08, 0.03), (0.03, 0.06), (0.04, -0.02))
        for v in (0.15, 0.4)
        for d in (60, 400)
    ]
    arrays = [np.array([getattr(o, f) for o in options]) for f in ("spot", "strike", "rate")]
    div = np.array([o.dividend_yield for o in options])
    vol = np.array([o.volatility for o in options])
    t = np.array([(o.maturity - o.settlement).days / 365 for o in options])
    bound = screen.premium_bound(*arrays, div, vol, t)
    for option, b in zip(options, bound, strict=True):
        premium = reference_quote(option).price - (option.strike - option.spot)
        assert premium <= b + 1e-6, (option, premium, b)


def test_same_quotes_with_greeks_whatever_the_partitioning():
    options = AMERICAN[:5] + EUROPEAN[:2] + [spec(False, 60.0, 100.0, 0.05, 0.0, 0.2, 120)]
    whole = price_lsm(options, greeks=True)
    chunked = price_lsm(options[:3], greeks=True) + price_lsm(options[3:], greeks=True)
    order = list(range(len(options)))
    random.Random(3).shuffle(order)
    shuffled: list[Quote | None] = [None] * len(options)
    for position, quote in zip(
        order, price_lsm([options[i] for i in order], greeks=True), strict=True
    ):
        shuffled[position] = quote
    tiny = price_lsm(options, greeks=True, settings=LsmSettings(memory_budget_bytes=1))
    assert chunked == whole
    assert shuffled == whole
    assert tiny == whole
    assert all(q.greeks is not None for q in whole)
    assert all(q.greeks is None for q in price_lsm(options))


# --- robustness within the CSV layer's bounds (issue 11, finding 7) -----------------------


def extreme_options() -> list[OptionSpec]:
    rng = np.random.default_rng(5)
    options = []
    for _ in range(60):
        spot = float(10 ** rng.uniform(-4, 8))
        strike = float(min(max(spot * math.exp(rng.normal(0, 1.5)), 1e-4), 1e8))
        vol = float(rng.choice([1e-4, 0.05, 1.0, 5.0]))
        rate, div = (float(v) for v in rng.choice([-1.0, -0.2, 0.0, 0.2, 1.0], size=2))
        days = int(rng.choice([1, 30, 3650, 18262]))  # up to 50 years
        options.append(
            spec(bool(rng.random() < 0.5), spot, strike, rate, div, vol, days, rng.random() < 0.8)
        )
    return options


def test_rows_at_the_edges_of_the_bounds_are_priced_finite_or_say_why_not():
    options = extreme_options()
    quotes = price_lsm(options, greeks=True)
    failed = [q for q in quotes if q.error]
    # absurd corners (yields of +-100 % or rates of -20 % for 50 years, volatility 5 with a
    # -100 % yield) cannot meet their tolerance within the time budget (issue 19: "a row error
    # that says so, never a silently wrong price"); every other row is priced to finite numbers
    assert len(failed) <= 10
    reasons = ("is above the tolerance", "is not a finite number")
    assert all(any(r in q.error for r in reasons) for q in failed), failed
    for quote in quotes:
        if quote.error:
            continue
        values = [quote.price, quote.std_error] + [getattr(quote.greeks, n) for n in GREEK_NAMES]
        assert all(math.isfinite(v) for v in values), quote
        assert quote.price >= 0.0


@pytest.mark.parametrize("american", [True, False])
@pytest.mark.parametrize("days", [365, 3650, 18262])
def test_a_put_at_huge_volatility_is_worth_almost_the_discounted_strike_not_zero(american, days):
    option = spec(False, 100.0, 100.0, 0.0, 0.0, 5.0, days, american)
    quote = price_lsm([option])[0]
    # with sigma^2 T in the hundreds the stock ends near 0 almost surely
    assert quote.error is None
    assert 90.0 < quote.price <= 100.0 + 3 * quote.std_error


def test_one_options_overflow_is_its_own_error_and_its_batch_is_priced(monkeypatch):
    options = AMERICAN[:4]
    good = price_lsm(options)
    real = lsm.simulated
    target = options[1].volatility  # the only one of the four at this volatility

    def poisoned(market, *args):
        result = real(market, *args)
        result.price[market.vol == target] = np.inf
        return result

    monkeypatch.setattr(lsm, "simulated", poisoned)
    quotes = price_lsm(options)
    assert quotes[1].price is None
    assert "price is not a finite number" in quotes[1].error
    assert "overflow" in quotes[1].error
    assert [quotes[i] for i in (0, 2, 3)] == [good[i] for i in (0, 2, 3)]


def test_an_exception_in_a_chunk_is_retried_option_by_option(monkeypatch):
    options = AMERICAN[:4]
    good = price_lsm(options)
    real = lsm.simulated
    target = options[2].volatility  # the only one of the four at this volatility

    def fragile(market, *args):
        if target in market.vol:
            raise FloatingPointError("overflow in exp")
        return real(market, *args)

    monkeypatch.setattr(lsm, "simulated", fragile)
    quotes = price_lsm(options)
    assert quotes[2].price is None
    assert quotes[2].error == "pricing failed: FloatingPointError: overflow in exp"
    assert [quotes[i] for i in (0, 1, 3)] == [good[i] for i in (0, 1, 3)]


def test_dividend_yield_is_checked_like_the_other_numbers():
    bad = dataclasses.replace(AMERICAN[0], dividend_yield=math.nan)
    quote = price_lsm([bad, AMERICAN[0]])
    assert quote[0].price is None and "dividend_yield must be finite" in quote[0].error
    assert quote[1].price is not None
