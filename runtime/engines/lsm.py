"""``lsm``: the default engine. American Monte Carlo with a lattice-built rule, control and dual.

Model and conventions are the QuantLib reference's (docs/performance.md, "Conventions"):
Black-Scholes-Merton with a flat rate and a flat continuous dividend yield, time in
Actual/365 Fixed from settlement to maturity; an option whose maturity is on or before
todaysDate is worth 0. How the price and its error bar are made is told in docs/engines.md;
per option, the cheapest exact method first:

1. closed forms (``closed_forms``): European exercise, and American options that are never
   exercised early (calls with ``q <= 0 <= r``, puts with ``r <= 0 <= q``), standard error 0;
   volatility or spot 0 (a deterministic forward);
2. the deep in-the-money screen (``screen``): worth its intrinsic value to within a proven
   bound, which is its standard error;
3. a volatility too small for a lattice against the drift: an interval between exact lower
   limits and the premium bound (``_nearly_deterministic``);
4. below ``sigma^2 T = 8`` simulated (``lsm_estimates.simulated``: ``lattice``,
   ``simulation``): the simulated Bermudan (the lattice's rule on independent paths, with the
   lattice's value function as a martingale control) plus the lattice's American-minus-
   Bermudan difference; its standard error adds to the simulation's half the lattice's
   Richardson spread and any disagreement between simulation and lattice beyond noise. The
   exercise dates grow with ``sigma^2 T`` and ``T``;
5. beyond, the lattice alone (``lsm_estimates.lattice_only``).

A price is kept within the no-arbitrage limits (``price_limits``), and a row whose error bar
stays above its tolerance when its budget is spent is an error.

Greeks of simulated options come from the lattice (``tree_greeks``); with ``bounds``, every
quote also carries ``price_low`` and ``price_high``. Every option draws from its own
generator seeded with ``OptionSpec.seed()``, and nothing depends on the other options of the
batch, so a quote never depends on the partitioning. A numeric failure in one option
becomes that option's error quote.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

import numpy as np

from runtime.core.options import Greeks, OptionSpec, Quote
from runtime.engines.closed_forms import (
    black_scholes,
    deterministic_quote,
    european_quote,
    forward_value,
    price_limits,
)
from runtime.engines.lattice import Market
from runtime.engines.lsm_estimates import Estimate, lattice_horizon, lattice_only, simulated
from runtime.engines.lsm_settings import DEFAULT_SETTINGS, LsmSettings
from runtime.engines.screen import premium_bound, screen
from runtime.engines.tree_greeks import lattice_greeks

__all__ = ["DEFAULT_SETTINGS", "LsmSettings", "price_lsm"]

_DAYS_PER_YEAR = 365.0  # Actual/365 Fixed, as the reference
_GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho")


def _year_fraction(start: dt.date, end: dt.date) -> float:
    return (end - start).days / _DAYS_PER_YEAR


def _check(spec: OptionSpec) -> str | None:
    """Why this option cannot be priced, or None. Mirrors QuantLib's refusals."""
    for name in ("spot", "strike", "rate", "volatility", "dividend_yield"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"{name} must be finite, got {value!r}"
    for name in ("today", "settlement", "maturity"):
        if not isinstance(getattr(spec, name), dt.date):
            return f"{name} must be a date, got {getattr(spec, name)!r}"
    if spec.spot < 0.0:
        return f"spot must not be negative, got {spec.spot}"
    if spec.strike <= 0.0:
        return f"strike must be positive, got {spec.strike}"
    if spec.volatility < 0.0:
        return f"volatility must not be negative, got {spec.volatility}"
    if spec.maturity <= spec.settlement:
        return (
            f"maturity {spec.maturity.isoformat()} must be after the settlement date "
            f"{spec.settlement.isoformat()}"
        )
    return None


def _exact(quote: Quote) -> Quote:
    """An exact answer is its own interval."""
    if quote.price is None:
        return quote
    return Quote(
        price=quote.price,
        std_error=quote.std_error,
        greeks=quote.greeks,
        price_low=quote.price,
        price_high=quote.price,
    )


def _settled(spec: OptionSpec, t: float, bound: float, greeks: bool) -> Quote:
    """Worth its intrinsic value to within ``bound`` (the screen's proof), and never less
    than the European value (a put with q > r is worth a little more than its intrinsic
    value even when exercise is nearly certain)."""
    sign = 1.0 if spec.is_call else -1.0
    euro = black_scholes(
        spec.is_call, spec.spot, spec.strike, spec.rate, spec.volatility, t, spec.dividend_yield
    )
    price = max(sign * (spec.spot - spec.strike), euro, 0.0)
    g = Greeks(delta=sign, gamma=0.0, vega=0.0, theta=0.0, rho=0.0) if greeks else None
    return Quote(price=price, std_error=bound, greeks=g, price_low=price, price_high=price + bound)


def _nearly_deterministic(spec: OptionSpec, t: float, greeks: bool, cfg: LsmSettings) -> Quote:
    """A volatility too small for the lattice to resolve against the drift: the value lies
    between the larger of intrinsic and European value (both exact) and an upper limit, and
    is priced at the middle with half the interval as its error bar.

    The upper limit is the early-exercise premium's proven bound (``screen.premium_bound``,
    puts with r > 0 and calls with q > 0); elsewhere the deterministic forward's value plus its
    convexity over one standard deviation of the spot, ``|V(S e^s) + V(S e^-s) - 2 V(S)|``
    with ``s = sigma sqrt(T)`` (the volatility's reach, twice its second-order effect where
    the value is smooth).
    """
    exact = deterministic_quote(spec, t, greeks)
    if exact.price is None:
        return exact
    sign = 1.0 if spec.is_call else -1.0
    intrinsic = max(sign * (spec.spot - spec.strike), 0.0)
    euro = black_scholes(
        spec.is_call, spec.spot, spec.strike, spec.rate, spec.volatility, t, spec.dividend_yield
    )
    lower = max(intrinsic, euro)
    upper = math.inf
    # put-call symmetry: a call is the put with spot and strike, rate and yield swapped
    spot, strike = (spec.strike, spec.spot) if spec.is_call else (spec.spot, spec.strike)
    rate, div = (
        (spec.dividend_yield, spec.rate) if spec.is_call else (spec.rate, spec.dividend_yield)
    )
    if rate > 0.0:
        with np.errstate(all="ignore"):
            bound = premium_bound(
                *(np.array([v], dtype=np.float64) for v in (spot, strike, rate, div)),
                np.array([spec.volatility]),
                np.array([t]),
            )[0]
        if math.isfinite(bound):
            upper = intrinsic + max(bound, 0.0)
    if not math.isfinite(upper):
        spread = math.exp(spec.volatility * math.sqrt(t))
        up, down = (
            forward_value(spec, spec.spot * f, spec.rate, spec.dividend_yield, t)
            for f in (spread, 1.0 / spread)
        )
        upper = exact.price + abs(up + down - 2.0 * exact.price)
    x0 = spec.spot / spec.strike
    _, limit = price_limits(
        *(np.array([v]) for v in (sign, x0, spec.rate, spec.dividend_yield, spec.volatility, t)),
        np.array([lower / spec.strike]),
    )
    upper = max(min(upper, float(limit[0]) * spec.strike), lower)
    price = 0.5 * (lower + upper)
    reach = 0.5 * (upper - lower) + 1e-15 * max(spec.spot, spec.strike)
    tolerance = cfg.tolerance_for(spec.strike, spec.spot)
    if reach > tolerance:
        return Quote(
            price=None,
            error=f"pricing failed: the error bar {reach:.3g} is above the tolerance "
            f"{tolerance:.3g}: the volatility is too small for the lattice to resolve against "
            "the drift, and too large to ignore",
        )
    return Quote(
        price=price,
        std_error=reach,
        greeks=exact.greeks,
        price_low=lower + 0.0,
        price_high=upper,
    )


def chunk_size(dates: int, cfg: LsmSettings, bounds: bool) -> int:
    """Options per vectorised chunk: the padded lattice and a block's paths dominate."""
    nodes = dates * cfg.steps_per_date + 1
    lattice = dates * nodes * 8 * (4 + 3 * (2 if bounds else 1))
    paths = dates * 2 * cfg.block_pairs * 8 * (16 if bounds else 12)
    return max(1, int(cfg.memory_budget_bytes // (lattice + paths)))


def _market(specs: Sequence[OptionSpec], years: Sequence[float]) -> Market:
    return Market(
        phi=np.array([1.0 if s.is_call else -1.0 for s in specs]),
        x0=np.array([s.spot / s.strike for s in specs], dtype=np.float64),
        rate=np.array([s.rate for s in specs], dtype=np.float64),
        div=np.array([s.dividend_yield for s in specs], dtype=np.float64),
        vol=np.array([s.volatility for s in specs], dtype=np.float64),
        t=np.array(years, dtype=np.float64),
    )


def _chunk_quotes(
    specs: Sequence[OptionSpec],
    years: Sequence[float],
    dates: int | None,
    cfg: LsmSettings,
    greeks: bool,
    bounds: bool,
) -> list[Quote]:
    """One chunk: simulated with ``dates`` exercise dates, or by the lattice alone (None)."""
    market = _market(specs, years)
    strike = np.array([s.strike for s in specs], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if dates is None:
            est: Estimate = lattice_only(market, cfg, bounds)
            near = market.with_(t=lattice_horizon(market, cfg))
        else:
            target = np.array([cfg.target_for(k) for k in strike]) / strike
            tolerance = np.array([cfg.tolerance_for(s.strike, s.spot) for s in specs]) / strike
            seeds = [s.seed() for s in specs]
            est = simulated(market, seeds, target, tolerance, dates, cfg, bounds)
            near = market
        sensitivities = lattice_greeks(near) if greeks else None
    quotes = []
    for i, spec in enumerate(specs):
        k = spec.strike
        p, se = float(est.price[i]) * k + 0.0, float(est.std_error[i]) * k
        if not (math.isfinite(p) and math.isfinite(se)):
            quotes.append(_overflow("price" if not math.isfinite(p) else "standard error"))
            continue
        tolerance = cfg.tolerance_for(k, spec.spot)
        if se > tolerance:
            quotes.append(
                Quote(
                    price=None,
                    error=f"pricing failed: the error bar {se:.3g} is above the tolerance "
                    f"{tolerance:.3g} after the row's time budget (volatility^2 x years = "
                    f"{spec.volatility**2 * years[i]:.3g})",
                )
            )
            continue
        g = None
        if sensitivities is not None:
            values = {
                "delta": sensitivities["delta"][i],
                "gamma": sensitivities["gamma"][i] / k,
                "vega": sensitivities["vega"][i] * k,
                "theta": sensitivities["theta"][i] * k,
                "rho": sensitivities["rho"][i] * k,
            }
            bad = [name for name, v in values.items() if not math.isfinite(v)]
            if bad:
                quotes.append(_overflow(bad[0]))
                continue
            g = Greeks(**{name: float(v) for name, v in values.items()})
        lo = hi = None
        if est.low is not None and est.high is not None:
            lo, hi = float(est.low[i]) * k + 0.0, float(est.high[i]) * k
        quotes.append(Quote(price=p, std_error=se, greeks=g, price_low=lo, price_high=hi))
    return quotes


def _overflow(what: str) -> Quote:
    return Quote(
        price=None,
        error=f"pricing failed: the {what} is not a finite number (floating-point overflow "
        "in the simulation)",
    )


def _safely(call: Callable[[], Quote], exact: bool = True) -> Quote:
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            quote = call()
    except Exception as exc:  # one bad row must not sink the batch
        return Quote(price=None, error=f"pricing failed: {type(exc).__name__}: {exc}")
    values = [quote.price, quote.std_error]
    if quote.greeks is not None:
        values += [getattr(quote.greeks, name) for name in _GREEK_NAMES]
    if quote.price is not None and not all(v is None or math.isfinite(v) for v in values):
        return _overflow("closed-form value")
    return _exact(quote) if exact else quote


def _simulate_all(
    options: Sequence[OptionSpec],
    todo: list[tuple[int, float]],
    cfg: LsmSettings,
    greeks: bool,
    bounds: bool,
) -> dict[int, Quote]:
    """Quotes for the options to simulate, grouped by their number of exercise dates."""
    groups: dict[int, list[tuple[int, float]]] = {}
    for i, years in todo:
        variance = options[i].volatility ** 2 * years
        dates = cfg.dates_for(variance, years) if variance < cfg.simulate_below else 0
        groups.setdefault(dates, []).append((i, years))
    out: dict[int, Quote] = {}
    for key, members in sorted(groups.items()):
        dates = key or None  # 0: the lattice alone
        size = chunk_size(key or 1, cfg, bounds)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            try:
                priced = _chunk_quotes(
                    [options[i] for i, _ in chunk],
                    [y for _, y in chunk],
                    dates,
                    cfg,
                    greeks,
                    bounds,
                )
            except Exception:
                # never let one option sink its neighbours: price them one by one
                priced = []
                for i, years in chunk:
                    try:
                        priced.extend(
                            _chunk_quotes([options[i]], [years], dates, cfg, greeks, bounds)
                        )
                    except Exception as exc:
                        priced.append(
                            Quote(price=None, error=f"pricing failed: {type(exc).__name__}: {exc}")
                        )
            for (i, _), quote in zip(chunk, priced, strict=True):
                out[i] = quote
    return out


def price_lsm(
    options: Sequence[OptionSpec],
    greeks: bool = False,
    settings: LsmSettings | None = None,
    bounds: bool = False,
) -> list[Quote]:
    """Price a batch; a bad row becomes that row's error quote, never an exception."""
    cfg = settings or DEFAULT_SETTINGS
    quotes: list[Quote | None] = [None] * len(options)
    pending: list[tuple[int, float]] = []
    for i, spec in enumerate(options):
        problem = None
        try:
            problem = _check(spec)
        except Exception as exc:  # a malformed object
            problem = f"unreadable option: {exc}"
        if problem is not None:
            quotes[i] = Quote(price=None, error=problem)
            continue
        if spec.maturity <= spec.today:
            # QuantLib values an option expiring on or before the evaluation date at 0
            zero = Greeks(0.0, 0.0, 0.0, 0.0, 0.0) if greeks else None
            quotes[i] = Quote(price=0.0, std_error=0.0, greeks=zero, price_low=0.0, price_high=0.0)
            continue
        t = _year_fraction(spec.settlement, spec.maturity)
        r, q = spec.rate, spec.dividend_yield
        if spec.volatility == 0.0 or spec.spot == 0.0:
            quotes[i] = _safely(lambda s=spec, t=t: deterministic_quote(s, t, greeks))
        elif spec.american and cfg.nearly_deterministic(spec.volatility, t, r - q):
            quotes[i] = _safely(
                lambda s=spec, t=t: _nearly_deterministic(s, t, greeks, cfg), exact=False
            )
        elif (
            not spec.american
            or (spec.is_call and q <= 0.0 and r >= 0.0)
            or (not spec.is_call and r <= 0.0 and q >= 0.0)
        ):
            # European, or American where early exercise is never optimal
            quotes[i] = _safely(lambda s=spec, t=t: european_quote(s, t, greeks))
        else:
            pending.append((i, t))

    settled = screen([options[i] for i, _ in pending], [t for _, t in pending], cfg.screen)
    simulated = []
    for (i, t), bound in zip(pending, settled, strict=True):
        if math.isfinite(bound):
            quotes[i] = _settled(options[i], t, float(bound), greeks)
        else:
            simulated.append((i, t))
    for i, quote in _simulate_all(options, simulated, cfg, greeks, bounds).items():
        quotes[i] = quote
    final = [q if q is not None else Quote(price=None, error="not priced") for q in quotes]
    if not bounds:
        final = [_without_bounds(q) for q in final]
    return final


def _without_bounds(quote: Quote) -> Quote:
    if quote.price_low is None and quote.price_high is None:
        return quote
    return Quote(
        price=quote.price, std_error=quote.std_error, error=quote.error, greeks=quote.greeks
    )
