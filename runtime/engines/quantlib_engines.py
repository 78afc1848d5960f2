"""QuantLib engines: the workshop's Monte Carlo (``mc``) and two fast references.

``mc`` keeps the reference workload's settings exactly (docs/performance.md, "Conventions"),
so its figures compare one to one with the workshop's.

Every engine prices a flat dividend yield (a flat dividend curve from settlement, like the
rate curve) and both exercise styles. European options:

- ``qdfp`` and ``mc`` price them with ``AnalyticEuropeanEngine`` (Black-Scholes-Merton, exact;
  ``mc`` then reports a standard error of 0) and take its analytic Greeks;
- ``fd`` solves them on its grid (``ql.EuropeanExercise``), so it stays an independent check
  of the closed form.

Greeks (``greeks=True``), in QuantLib's conventions: delta and gamma with respect to the
underlying, vega and rho per 1.00 change of volatility and rate (the dividend curve held
fixed), theta per year (the value's change as time passes, ``-dV/dT``):

- ``qdfp``, American: bump and reprice with central differences on the same engine (QD+
  is deterministic and smooth in its inputs): spot +-0.2 % (delta, gamma), volatility
  +-0.002 (vega), rate +-0.0002 (rho; smaller, down to +-0.00002, when the rate is closer
  to 0 than that: the value has a kink at r = 0, where early exercise starts), and time to
  maturity +-0.5 % (theta). The time bump needs no date arithmetic: with flat curves, the
  price at maturity ``T (1 + e)`` is the price at ``T`` with ``r (1 + e)``, ``q (1 + e)`` and
  ``sigma sqrt(1 + e)`` (a change of time scale), so it is one more pair of reprices. 8 extra
  prices: 5x to 6x the time of the price alone (the reprices reuse the option and its
  curves; measured by benchmarks/greeks_report.py). An option QD+ prices at its
  intrinsic value is in the exercise region, where the Greeks are the payoff's: delta +-1,
  the others 0 (bumps there would straddle the exercise boundary).
- ``fd``: delta, gamma and theta from the grid (QuantLib's own, free), vega and rho by
  central bumps of volatility (+-0.005) and rate (+-0.001, never across r = 0) on the same
  grid size: 4 extra solves, about 6x the time of the price.
- ``mc``, American: the same central bumps as ``qdfp`` but larger (spot +-2 %, volatility
  +-0.02, rate +-0.01, time +-5 %), priced with common random numbers: the same seed, the
  same calibration and a fixed number of paths, so the bumped prices share their paths and
  the differences are not swamped by noise. 8 extra simulations of 16,383 paths: about 3x
  the time of the price (which runs to a tolerance), seconds per option. They are the
  derivatives of mc's own low-biased estimator: delta within 0.02, vega, theta and rho
  within about 10 %, gamma noisy.
- European options (``qdfp``, ``mc``): the analytic Greeks, at no extra cost worth naming.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import QuantLib as ql

from runtime.core.fields import mdy
from runtime.core.options import Greeks, OptionSpec, Quote

MC_TIME_STEPS = 100
MC_CALIBRATION_SAMPLES = 4096
MC_REQUIRED_TOLERANCE = 0.02
MC_SEED = 42
# Paths of every bumped mc price (common random numbers need a fixed count).
MC_GREEK_SAMPLES = 16383

FD_TIME_STEPS = 400
FD_SPACE_STEPS = 400  # per unit of sigma sqrt(T) above 1 (see _fd_engine)
FD_MAX_SPACE_STEPS = 4000

_DAY_COUNT = ql.Actual365Fixed()
_CALENDAR = ql.TARGET()


@dataclass(frozen=True)
class Bumps:
    """Central-difference steps: spot relative, volatility and rate absolute, time relative."""

    spot: float
    volatility: float
    rate: float
    time: float


QDFP_BUMPS = Bumps(spot=0.002, volatility=0.002, rate=0.0002, time=0.005)
MC_BUMPS = Bumps(spot=0.02, volatility=0.02, rate=0.01, time=0.05)
FD_BUMPS = Bumps(spot=0.0, volatility=0.005, rate=0.001, time=0.0)  # delta, gamma, theta: grid


def _ql_date(day: dt.date) -> ql.Date:
    return ql.Date(day.day, day.month, day.year)


class _Setup:
    """One option and its market, built from quotes so bumps are a ``setValue`` away."""

    def __init__(self, spec: OptionSpec) -> None:
        ql.Settings.instance().evaluationDate = _ql_date(spec.today)
        settlement = _ql_date(spec.settlement)
        self.spec = spec
        self.spot = ql.SimpleQuote(spec.spot)
        self.rate = ql.SimpleQuote(spec.rate)
        self.dividend = ql.SimpleQuote(spec.dividend_yield)
        self.vol = ql.SimpleQuote(spec.volatility)
        rates = ql.YieldTermStructureHandle(
            ql.FlatForward(settlement, ql.QuoteHandle(self.rate), _DAY_COUNT)
        )
        dividends = ql.YieldTermStructureHandle(
            ql.FlatForward(settlement, ql.QuoteHandle(self.dividend), _DAY_COUNT)
        )
        vol = ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(settlement, _CALENDAR, ql.QuoteHandle(self.vol), _DAY_COUNT)
        )
        self.process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(self.spot), dividends, rates, vol
        )
        payoff = ql.PlainVanillaPayoff(
            ql.Option.Call if spec.is_call else ql.Option.Put, spec.strike
        )
        if spec.american:
            exercise: ql.Exercise = ql.AmericanExercise(settlement, _ql_date(spec.maturity))
        else:
            exercise = ql.EuropeanExercise(_ql_date(spec.maturity))
        self.option = ql.VanillaOption(payoff, exercise)
        self.years = (spec.maturity - spec.settlement).days / 365.0

    def use(self, engine: ql.PricingEngine) -> _Setup:
        self.option.setPricingEngine(engine)
        return self

    def npv(self, spot: float = 0.0, vol: float = 0.0, rate: float = 0.0, time: float = 0.0):
        """The price with the spot scaled by ``1 + spot``, volatility and rate shifted, and
        the time to maturity scaled by ``1 + time``; the market is restored afterwards."""
        s = self.spec
        scale = 1.0 + time
        self.spot.setValue(s.spot * (1.0 + spot))
        self.vol.setValue((s.volatility + vol) * math.sqrt(scale))
        self.rate.setValue((s.rate + rate) * scale)
        self.dividend.setValue(s.dividend_yield * scale)
        try:
            return self.option.NPV()
        finally:
            self.spot.setValue(s.spot)
            self.vol.setValue(s.volatility)
            self.rate.setValue(s.rate)
            self.dividend.setValue(s.dividend_yield)


def _central(setup: _Setup, bumps: Bumps, base: float, grid: bool = False) -> Greeks:
    """Greeks by central differences; ``grid`` takes delta, gamma, theta from the engine."""
    s = setup.spec
    vol_step = min(bumps.volatility, s.volatility / 2)
    vega = (setup.npv(vol=vol_step) - setup.npv(vol=-vol_step)) / (2 * vol_step)
    # An American option's value has a kink at r = 0 (without dividends, early exercise
    # starts there): a step must not cross it.
    rate_step = bumps.rate
    if s.rate != 0.0:
        rate_step = max(bumps.rate / 10, min(bumps.rate, abs(s.rate) / 2))
    rho = (setup.npv(rate=rate_step) - setup.npv(rate=-rate_step)) / (2 * rate_step)
    if grid:
        option = setup.option
        option.NPV()  # the unbumped solve again, for its grid Greeks
        return Greeks(option.delta(), option.gamma(), vega, option.theta(), rho)
    step = s.spot * bumps.spot
    up, down = setup.npv(spot=bumps.spot), setup.npv(spot=-bumps.spot)
    delta = (up - down) / (2 * step)
    gamma = (up - 2 * base + down) / step**2
    later, sooner = setup.npv(time=bumps.time), setup.npv(time=-bumps.time)
    theta = -(later - sooner) / (2 * bumps.time * setup.years)
    return Greeks(delta, gamma, vega, theta, rho)


def _analytic(setup: _Setup) -> tuple[float, Greeks]:
    option = setup.use(ql.AnalyticEuropeanEngine(setup.process)).option
    price = option.NPV()
    return price, Greeks(
        option.delta(), option.gamma(), option.vega(), option.theta(), option.rho()
    )


def _mc_engine(process: ql.BlackScholesMertonProcess, samples: int | None = None):
    """The workshop's settings; with ``samples``, a fixed number of paths instead of the
    tolerance (common random numbers across the bumps of the Greeks)."""
    stop = (
        {"requiredTolerance": MC_REQUIRED_TOLERANCE}
        if samples is None
        else {"requiredSamples": samples}
    )
    return ql.MCAmericanEngine(
        process,
        "PseudoRandom",
        timeSteps=MC_TIME_STEPS,
        antitheticVariate=True,
        nCalibrationSamples=MC_CALIBRATION_SAMPLES,
        seed=MC_SEED,
        **stop,
    )


def _fd_engine(process: ql.BlackScholesMertonProcess, spec: OptionSpec) -> ql.PricingEngine:
    """400 x 400, with more space steps when sigma sqrt(T) > 1: QuantLib's mesh spans a
    multiple of sigma sqrt(T) in log price, so a fixed count grows coarse (a call at
    volatility 1 over 8 years is 0.36 off on 400 points, 0.02 on 1600; at volatility 2 the
    price falls out of its no-arbitrage bounds, which the post-check then reports)."""
    spread = spec.volatility * math.sqrt(max((spec.maturity - spec.settlement).days, 0) / 365.0)
    space = min(FD_MAX_SPACE_STEPS, FD_SPACE_STEPS * max(1, math.ceil(spread)))
    return ql.FdBlackScholesVanillaEngine(process, FD_TIME_STEPS, space)


def _quote_mc(spec: OptionSpec, greeks: bool) -> Quote:
    setup = _Setup(spec)
    if not spec.american:
        price, sensitivities = _analytic(setup)
        return Quote(price, 0.0, greeks=sensitivities if greeks else None)
    option = setup.use(_mc_engine(setup.process)).option
    # QuantLib's Monte Carlo exercises on its time grid, never at once, so a deep
    # in-the-money put can come out a little below its payoff; exercising now is always
    # allowed, so the American value is at least that (and the no-arbitrage check agrees).
    payoff = max(0.0, (spec.spot - spec.strike) if spec.is_call else (spec.strike - spec.spot))
    price, std_error = max(option.NPV(), payoff), option.errorEstimate()
    if not greeks:
        return Quote(price, std_error)
    setup.use(_mc_engine(setup.process, MC_GREEK_SAMPLES))
    return Quote(price, std_error, greeks=_central(setup, MC_BUMPS, setup.npv()))


def _quote_qdfp(spec: OptionSpec, greeks: bool) -> Quote:
    setup = _Setup(spec)
    if not spec.american:
        price, sensitivities = _analytic(setup)
        return Quote(price, greeks=sensitivities if greeks else None)
    price = setup.use(ql.QdFpAmericanEngine(setup.process)).npv()
    if not greeks:
        return Quote(price)
    sign = 1.0 if spec.is_call else -1.0
    if price <= sign * (spec.spot - spec.strike) + 1e-9 * max(spec.spot, spec.strike):
        # exercise now: the value is the payoff in a whole neighbourhood, and so are its
        # derivatives (bumps would straddle the exercise boundary)
        return Quote(price, greeks=Greeks(sign, 0.0, 0.0, 0.0, 0.0))
    return Quote(price, greeks=_central(setup, QDFP_BUMPS, price))


def _quote_fd(spec: OptionSpec, greeks: bool) -> Quote:
    setup = _Setup(spec)
    price = setup.use(_fd_engine(setup.process, spec)).npv()
    return Quote(price, greeks=_central(setup, FD_BUMPS, price, grid=True) if greeks else None)


# QuantLib's calendar: a date outside it raises deep in its C++ (issue 18, finding 12)
_QL_YEARS = (1901, 2199)
_COLUMNS = (("today", "todaysDate"), ("settlement", "settlementDate"), ("maturity", "maturityDate"))


def _outside_calendar(spec: OptionSpec) -> str | None:
    for name, column in _COLUMNS:
        day = getattr(spec, name, None)
        if isinstance(day, dt.date) and not _QL_YEARS[0] <= day.year <= _QL_YEARS[1]:
            return (
                f"pricing failed: {column}: {mdy(day)} is outside QuantLib's calendar "
                f"({_QL_YEARS[0]}-{_QL_YEARS[1]}); the lsm engine prices any date"
            )
    return None


def _price_each(
    options: Sequence[OptionSpec], quote: Callable[[OptionSpec, bool], Quote], greeks: bool
) -> list[Quote]:
    quotes = []
    for spec in options:
        outside = _outside_calendar(spec)
        if outside:
            quotes.append(Quote(price=None, error=outside))
            continue
        try:
            quotes.append(quote(spec, greeks))
        except RuntimeError as exc:  # QuantLib reports bad inputs as RuntimeError
            quotes.append(Quote(price=None, error=f"pricing failed: {exc}"))
        except (ArithmeticError, ValueError, TypeError) as exc:
            quotes.append(Quote(price=None, error=f"pricing failed: {type(exc).__name__}: {exc}"))
    return quotes


def price_mc(options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
    """The workshop's Longstaff-Schwartz Monte Carlo, reporting its standard error."""
    return _price_each(options, _quote_mc, greeks)


def price_qdfp(options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
    """QuantLib's QD+ fixed-point American engine: accurate in milliseconds."""
    return _price_each(options, _quote_qdfp, greeks)


def price_fd(options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
    """Finite differences on a 400 x 400 grid (more space steps when sigma sqrt(T) > 1):
    an independent accurate reference."""
    return _price_each(options, _quote_fd, greeks)
