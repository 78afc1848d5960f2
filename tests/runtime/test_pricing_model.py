"""Dividend yields, European exercise and Greeks: each QuantLib engine against references
computed here (issue 13).

References: QdFp at high precision for American prices, its bumped Greeks with small steps,
a fine finite-difference grid for American theta, and a Black-Scholes-Merton closed form
written out below for European options (an independent check of QuantLib's conventions:
vega and rho per 1.00 change of volatility and rate, theta per year).
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
import QuantLib as ql

from runtime.core.options import Greeks, OptionSpec
from runtime.engines import get_engine

TODAY = dt.date(2024, 3, 1)
SETTLEMENT = dt.date(2024, 3, 4)
GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho")


def option(call, spot, strike, rate, vol, days, q=0.0, american=True) -> OptionSpec:
    return OptionSpec(
        TODAY,
        SETTLEMENT,
        SETTLEMENT + dt.timedelta(days=days),
        call,
        spot,
        strike,
        rate,
        vol,
        dividend_yield=q,
        american=american,
    )


def book(american: bool) -> list[OptionSpec]:
    """Calls and puts, with and without dividends (to 7 %), some negative rates, maturities
    to 2 years, volatilities to 0.6, in and out of the money."""
    terms = [
        (True, 100.0, 100.0, 0.03, 0.25, 365, 0.0),
        (True, 100.0, 90.0, 0.02, 0.30, 180, 0.05),
        (True, 50.0, 55.0, 0.05, 0.60, 730, 0.07),
        (True, 120.0, 100.0, -0.01, 0.20, 91, 0.0),
        (True, 80.0, 100.0, 0.04, 0.35, 540, 0.03),
        (False, 100.0, 100.0, 0.03, 0.25, 365, 0.0),
        (False, 100.0, 110.0, 0.05, 0.20, 180, 0.02),
        (False, 36.0, 40.0, 0.06, 0.40, 730, 0.0),
        (False, 100.0, 90.0, -0.005, 0.30, 270, 0.04),
        (False, 60.0, 50.0, 0.01, 0.15, 45, 0.07),
    ]
    return [option(*t[:6], q=t[6], american=american) for t in terms]


# --- references -----------------------------------------------------------------------


def _ql_option(spec: OptionSpec, spot, vol, rate, q):
    """A QuantLib option built from scratch (not the engine's code)."""
    ql.Settings.instance().evaluationDate = ql.Date(
        spec.today.day, spec.today.month, spec.today.year
    )
    settle = ql.Date(spec.settlement.day, spec.settlement.month, spec.settlement.year)
    expiry = ql.Date(spec.maturity.day, spec.maturity.month, spec.maturity.year)
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(settle, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(settle, rate, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(settle, ql.TARGET(), vol, dc)),
    )
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if spec.is_call else ql.Option.Put, spec.strike)
    exercise = ql.AmericanExercise(settle, expiry)
    return ql.VanillaOption(payoff, exercise), process


def qdfp_precise(spec: OptionSpec, spot=None, vol=None, rate=None) -> float:
    opt, process = _ql_option(
        spec,
        spec.spot if spot is None else spot,
        spec.volatility if vol is None else vol,
        spec.rate if rate is None else rate,
        spec.dividend_yield,
    )
    opt.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    return opt.NPV()


def fine_fd_theta(spec: OptionSpec) -> float:
    opt, process = _ql_option(spec, spec.spot, spec.volatility, spec.rate, spec.dividend_yield)
    opt.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, 1000, 1000))
    opt.NPV()
    return opt.theta()


def american_reference(spec: OptionSpec) -> tuple[float, Greeks]:
    """High-precision QdFp price; Greeks by small central bumps of it; theta on a fine
    finite-difference grid."""
    s, v, r = spec.spot, spec.volatility, spec.rate
    price = qdfp_precise(spec)
    hs, hv, hr = 5e-4 * s, 5e-4, 5e-5
    up, down = qdfp_precise(spec, spot=s + hs), qdfp_precise(spec, spot=s - hs)
    greeks = Greeks(
        delta=(up - down) / (2 * hs),
        gamma=(up - 2 * price + down) / hs**2,
        vega=(qdfp_precise(spec, vol=v + hv) - qdfp_precise(spec, vol=v - hv)) / (2 * hv),
        theta=fine_fd_theta(spec),
        rho=(qdfp_precise(spec, rate=r + hr) - qdfp_precise(spec, rate=r - hr)) / (2 * hr),
    )
    return price, greeks


def _n(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes_merton(spec: OptionSpec) -> tuple[float, Greeks]:
    """The European closed form and its Greeks, written out (theta = dV/dt, per year)."""
    s, k, r, q, v = spec.spot, spec.strike, spec.rate, spec.dividend_yield, spec.volatility
    t = (spec.maturity - spec.settlement).days / 365.0
    d1 = (math.log(s / k) + (r - q + 0.5 * v * v) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    dq, dr = math.exp(-q * t), math.exp(-r * t)
    gamma = dq * _pdf(d1) / (s * v * math.sqrt(t))
    vega = s * dq * _pdf(d1) * math.sqrt(t)
    decay = -s * dq * _pdf(d1) * v / (2 * math.sqrt(t))
    if spec.is_call:
        price = s * dq * _n(d1) - k * dr * _n(d2)
        delta = dq * _n(d1)
        theta = decay - r * k * dr * _n(d2) + q * s * dq * _n(d1)
        rho = k * t * dr * _n(d2)
    else:
        price = k * dr * _n(-d2) - s * dq * _n(-d1)
        delta = -dq * _n(-d1)
        theta = decay + r * k * dr * _n(-d2) - q * s * dq * _n(-d1)
        rho = -k * t * dr * _n(-d2)
    return price, Greeks(delta, gamma, vega, theta, rho)


# issue 13's targets: absolute error, or relative to the reference, whichever is larger
TARGETS = {
    "delta": (0.01, 0.0),
    "gamma": (0.003, 0.15),
    "vega": (0.15, 0.05),
    "theta": (0.25, 0.10),
    "rho": (0.15, 0.05),
}


def assert_greeks_close(got: Greeks, want: Greeks, spec, targets=TARGETS, skip=()):
    assert got is not None, spec
    for name in GREEK_NAMES:
        if name in skip:
            continue
        value, reference = getattr(got, name), getattr(want, name)
        absolute, relative = targets[name]
        allowed = max(absolute, relative * abs(reference))
        assert math.isfinite(value) and abs(value - reference) <= allowed, (
            name,
            value,
            reference,
            spec,
        )


@pytest.fixture(scope="module")
def american_book():
    options = book(american=True)
    return options, [american_reference(spec) for spec in options]


# --- qdfp ---------------------------------------------------------------------------


def test_qdfp_american_prices_and_greeks_meet_the_targets(american_book):
    options, references = american_book
    quotes = get_engine("qdfp")(options, greeks=True)
    for spec, quote, (price, greeks) in zip(options, quotes, references, strict=True):
        assert quote.error is None
        assert abs(quote.price - price) <= 0.002, spec
        assert_greeks_close(quote.greeks, greeks, spec)


def test_qdfp_european_is_the_closed_form():
    options = book(american=False)
    for spec, quote in zip(options, get_engine("qdfp")(options, greeks=True), strict=True):
        price, greeks = black_scholes_merton(spec)
        assert abs(quote.price - price) <= 1e-9 * max(1.0, price), spec
        tight = {name: (1e-8, 1e-8) for name in GREEK_NAMES}
        assert_greeks_close(quote.greeks, greeks, spec, targets=tight)


def test_dividends_and_exercise_style_move_prices_the_right_way():
    engine = get_engine("qdfp")
    call, put = (
        option(True, 100.0, 100.0, 0.03, 0.25, 365),
        option(False, 100, 100, 0.03, 0.25, 365),
    )
    with_q = [
        option(True, 100.0, 100.0, 0.03, 0.25, 365, q=0.05),
        option(False, 100.0, 100.0, 0.03, 0.25, 365, q=0.05),
    ]
    plain_call, plain_put, q_call, q_put = (quote.price for quote in engine([call, put, *with_q]))
    assert q_call < plain_call and q_put > plain_put  # a dividend lowers the forward
    european = [
        option(s.is_call, 100.0, 100.0, 0.03, 0.25, 365, q=0.05, american=False) for s in with_q
    ]
    e_call, e_put = (quote.price for quote in engine(european))
    assert e_call < q_call and e_put < q_put  # early exercise is worth something for both


def test_american_call_without_dividends_is_european():
    spec = option(True, 100.0, 95.0, 0.04, 0.3, 365)
    american = get_engine("qdfp")([spec])[0].price
    assert abs(american - black_scholes_merton(spec)[0]) < 1e-6


def test_no_greeks_unless_requested():
    spec = option(False, 100.0, 100.0, 0.03, 0.25, 365)
    for name in ("qdfp", "fd"):
        (quote,) = get_engine(name)([spec])
        assert quote.greeks is None


# --- fd -----------------------------------------------------------------------------

# fd's grid delta on short-dated options near the money is about 0.01 off: reported, not a
# target of issue 13 (which sets targets for the default engine and qdfp).
FD_TARGETS = {**TARGETS, "delta": (0.02, 0.0)}


def test_fd_american_prices_and_greeks(american_book):
    options, references = american_book
    quotes = get_engine("fd")(options, greeks=True)
    for spec, quote, (price, greeks) in zip(options, quotes, references, strict=True):
        assert quote.error is None
        assert abs(quote.price - price) <= 0.01, spec
        assert_greeks_close(quote.greeks, greeks, spec, targets=FD_TARGETS)


def test_fd_european_on_its_grid_against_the_closed_form():
    options = book(american=False)
    for spec, quote in zip(options, get_engine("fd")(options, greeks=True), strict=True):
        price, greeks = black_scholes_merton(spec)
        assert abs(quote.price - price) <= 0.005, spec
        assert_greeks_close(quote.greeks, greeks, spec)


# --- mc (about 0.5 s per price and 9x that with Greeks: very few options) ----------------


def test_mc_prices_dividends_within_its_standard_error():
    spec = option(False, 100.0, 105.0, 0.03, 0.3, 180, q=0.04)
    (quote,) = get_engine("mc")([spec])
    reference = qdfp_precise(spec)
    assert 0 < quote.std_error <= 0.05
    # the workshop's Longstaff-Schwartz is low-biased (a Bermudan on 100 dates, a fitted
    # exercise rule): up to 0.15 here, as tests/runtime/test_engines.py allows
    slack = 4 * quote.std_error + 0.005
    assert reference - slack - 0.15 <= quote.price <= reference + slack


def test_mc_greeks_by_common_random_numbers():
    spec = option(False, 100.0, 100.0, 0.03, 0.3, 91, q=0.02)  # a quarter: mc bumps a year in 15 s
    (quote,) = get_engine("mc")([spec], greeks=True)
    _, reference = american_reference(spec)
    # A Monte Carlo estimate: delta, vega, rho, theta are usable; gamma by bumps is noise.
    loose = {
        "delta": (0.03, 0.0),
        "vega": (1.5, 0.1),
        "rho": (1.5, 0.1),
        "theta": (0.5, 0.25),
        "gamma": (1.0, 0.0),
    }
    assert_greeks_close(quote.greeks, reference, spec, targets=loose, skip=("gamma",))
    assert math.isfinite(quote.greeks.gamma)


def test_mc_european_is_the_closed_form_with_zero_error():
    spec = option(True, 100.0, 100.0, 0.03, 0.3, 365, q=0.03, american=False)
    (quote,) = get_engine("mc")([spec], greeks=True)
    price, greeks = black_scholes_merton(spec)
    assert quote.std_error == 0.0 and abs(quote.price - price) < 1e-9
    assert_greeks_close(quote.greeks, greeks, spec)


# --- lsm ---------------------------------------------------------------------------------
# (these ran under a skipif on whether lsm takes ``greeks``: had it stopped, they would have
# been skipped instead of failing; an engine without Greeks now fails them, issue 19)


def test_lsm_american_prices_and_greeks_meet_the_targets(american_book):
    options, references = american_book
    quotes = get_engine("lsm")(options, greeks=True)
    for spec, quote, (price, greeks) in zip(options, quotes, references, strict=True):
        assert quote.error is None, quote.error
        assert abs(quote.price - price) <= max(0.02, 3 * (quote.std_error or 0.0)), spec
        assert_greeks_close(quote.greeks, greeks, spec)


def test_lsm_european_against_the_closed_form():
    options = book(american=False)
    for spec, quote in zip(options, get_engine("lsm")(options, greeks=True), strict=True):
        price, greeks = black_scholes_merton(spec)
        assert abs(quote.price - price) <= 0.005, spec
        assert_greeks_close(quote.greeks, greeks, spec)
