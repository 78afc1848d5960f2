"""QuantLib engines: the workshop's Monte Carlo (``mc``) and two fast references.

``mc`` keeps the reference workload's settings exactly (DESIGN.md "Reference pricing"),
so its figures compare one to one with the workshop's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import QuantLib as ql

from runtime.core.options import OptionSpec, Quote

MC_TIME_STEPS = 100
MC_CALIBRATION_SAMPLES = 4096
MC_REQUIRED_TOLERANCE = 0.02
MC_SEED = 42

_DAY_COUNT = ql.Actual365Fixed()
_CALENDAR = ql.TARGET()


def _ql_date(day: dt.date) -> ql.Date:
    return ql.Date(day.day, day.month, day.year)


def _american_option(spec: OptionSpec) -> tuple[ql.VanillaOption, ql.BlackScholesMertonProcess]:
    ql.Settings.instance().evaluationDate = _ql_date(spec.today)
    settlement = _ql_date(spec.settlement)
    spot = ql.QuoteHandle(ql.SimpleQuote(spec.spot))
    rates = ql.YieldTermStructureHandle(ql.FlatForward(settlement, spec.rate, _DAY_COUNT))
    dividends = ql.YieldTermStructureHandle(ql.FlatForward(settlement, 0.0, _DAY_COUNT))
    vol = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(settlement, _CALENDAR, spec.volatility, _DAY_COUNT)
    )
    process = ql.BlackScholesMertonProcess(spot, dividends, rates, vol)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if spec.is_call else ql.Option.Put, spec.strike)
    exercise = ql.AmericanExercise(settlement, _ql_date(spec.maturity))
    return ql.VanillaOption(payoff, exercise), process


def _mc_engine(process: ql.BlackScholesMertonProcess) -> ql.PricingEngine:
    return ql.MCAmericanEngine(
        process,
        "PseudoRandom",
        timeSteps=MC_TIME_STEPS,
        antitheticVariate=True,
        nCalibrationSamples=MC_CALIBRATION_SAMPLES,
        requiredTolerance=MC_REQUIRED_TOLERANCE,
        seed=MC_SEED,
    )


def _fd_engine(process: ql.BlackScholesMertonProcess) -> ql.PricingEngine:
    return ql.FdBlackScholesVanillaEngine(process, 400, 400)


def _price_each(
    options: Sequence[OptionSpec],
    make_engine: Callable[[ql.BlackScholesMertonProcess], ql.PricingEngine],
    with_error_estimate: bool,
) -> list[Quote]:
    quotes = []
    for spec in options:
        try:
            option, process = _american_option(spec)
            option.setPricingEngine(make_engine(process))
            price = option.NPV()
            std_error = option.errorEstimate() if with_error_estimate else None
            quotes.append(Quote(price=price, std_error=std_error))
        except RuntimeError as exc:  # QuantLib reports bad inputs as RuntimeError
            quotes.append(Quote(price=None, error=f"pricing failed: {exc}"))
    return quotes


def price_mc(options: Sequence[OptionSpec]) -> list[Quote]:
    """The workshop's Longstaff-Schwartz Monte Carlo, reporting its standard error."""
    return _price_each(options, _mc_engine, with_error_estimate=True)


def price_qdfp(options: Sequence[OptionSpec]) -> list[Quote]:
    """QuantLib's QD+ fixed-point American engine: accurate in milliseconds."""
    return _price_each(options, ql.QdFpAmericanEngine, with_error_estimate=False)


def price_fd(options: Sequence[OptionSpec]) -> list[Quote]:
    """Finite differences on a 400 x 400 grid: an independent accurate reference."""
    return _price_each(options, _fd_engine, with_error_estimate=False)
