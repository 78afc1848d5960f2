"""Independent references for the benchmark and the tests: QuantLib, never the engines.

American prices from QD+ at its high-precision scheme (finite differences on a fine grid where
QD+ refuses), Greeks by small central bumps of it, European values and Greeks from the
analytic engine. Conventions: docs/performance.md, "Conventions".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from runtime.core.options import Greeks, OptionSpec, Quote


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

    European, and American options that are never exercised early (calls with q <= 0 and
    r >= 0, puts with r <= 0 and q >= 0): the analytic engine (price and every Greek). Other
    American options: QD+ with its high-precision scheme for the price (finite differences on
    a 2000 x 2000 grid where QD+ refuses: the double-boundary puts with q < r < 0), and
    central bumps of it for delta, gamma (spot, 0.5 %), vega (0.001), rho (0.0001) and theta
    (time to maturity +-0.01 %, as a change of time scale: with flat curves, maturity
    ``T (1 + e)`` is maturity ``T`` with ``r (1 + e)``, ``q (1 + e)``, ``sigma sqrt(1 + e)``).
    Where QD+ refuses, theta is read off the finite-difference grid (``fd_grid`` squared).
    A fine grid's own theta is 0.58 off QD+'s on a 13-day put 16 % in the money (issue 19's
    boundary set), which is why it is not the reference where QD+ prices.
    """
    never_early = (spec.is_call and spec.dividend_yield <= 0.0 and spec.rate >= 0.0) or (
        not spec.is_call and spec.rate <= 0.0 and spec.dividend_yield >= 0.0
    )
    # exact for those American options too (early exercise is never optimal), where finite
    # differences' theta is poor at short maturities
    ql, option, process, quotes = _ql_setup(
        dataclasses.replace(spec, american=False) if never_early else spec
    )
    if not spec.american or never_early:
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
    qd_plus = True
    try:
        price = option.NPV()
    except RuntimeError:  # QD+ refuses the double-boundary cases (puts with q < r < 0)
        qd_plus = False
        option.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, 2000, 2000))
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
    if qd_plus:
        theta = -(_rescaled(option, quotes, spec, 1e-4) - _rescaled(option, quotes, spec, -1e-4))
        theta /= 2e-4 * (spec.maturity - spec.settlement).days / 365.0
    else:
        option.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, fd_grid, fd_grid))
        theta = option.theta()
    return Quote(
        price=price,
        std_error=0.0,
        greeks=Greeks(delta=delta, gamma=gamma, vega=vega, theta=theta, rho=rho),
    )


def _rescaled(option, quotes: dict, spec: OptionSpec, e: float) -> float:
    """The price with the time to maturity scaled by ``1 + e`` (flat curves: a change of
    time scale), the market restored afterwards."""
    scale = 1.0 + e
    quotes["rate"].setValue(spec.rate * scale)
    quotes["div"].setValue(spec.dividend_yield * scale)
    quotes["vol"].setValue(spec.volatility * math.sqrt(scale))
    try:
        return option.NPV()
    finally:
        quotes["rate"].setValue(spec.rate)
        quotes["div"].setValue(spec.dividend_yield)
        quotes["vol"].setValue(spec.volatility)
