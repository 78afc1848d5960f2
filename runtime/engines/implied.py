"""Implied volatility from a market price, on every engine (numpy only, vectorised).

The volatility in the engines' bounds (``MIN_VOLATILITY`` .. 5) whose value reproduces the
market price, with the row's dividend yield and exercise style:

- European options, and American options never exercised early (calls with ``q <= 0 <= r``,
  puts with ``r <= 0 <= q``): the Black-Scholes-Merton closed form;
- other American options: the smoothed, Richardson-extrapolated binomial tree of
  ``lattice.american_bbsr`` with ``STEPS`` steps, which prices the benchmark's broad set to a
  mean absolute error of 0.0002 (a deterministic function of the volatility: a Monte Carlo
  price's noise would make the root meaningless), so every engine reports the same
  volatility for the same row.

The solver is Newton's method with the European vega as the slope (the American vega is
close to it), kept inside a bracket that shrinks with every value and falls back to
bisection: from the European-implied volatility, which brackets the American one from
above for both calls and puts, it takes 3-5 tree values per row. It stops when the value is
within ``PRICE_TOLERANCE`` of the strike of the market price or the bracket is narrower than
``VOL_TOLERANCE``.

A market price outside the option's no-arbitrage range, or one that no volatility in the
bounds reproduces (below the value at ``MIN_VOLATILITY``, above the value at 5, or the
exercise value that every small volatility reproduces), gets the reason instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from runtime.core.options import OptionSpec
from runtime.engines.closed_forms import bsm, forward_value
from runtime.engines.lattice import Market, american_bbsr

MIN_VOLATILITY = 1e-4
MAX_VOLATILITY = 5.0  # the CSV contract's bound
STEPS = 384
PRICE_TOLERANCE = 1e-10  # of the strike
VOL_TOLERANCE = 1e-9
MAX_ITERATIONS = 60
RESOLUTION = 1e-7  # of the strike: see implied_volatilities

Implied = tuple[float | None, str | None]  # (volatility, why there is none)


def _never_early(spec: OptionSpec) -> bool:
    r, q = spec.rate, spec.dividend_yield
    return (spec.is_call and q <= 0.0 <= r) or (not spec.is_call and r <= 0.0 <= q)


def _market(options: Sequence[OptionSpec], years: Sequence[float]) -> Market:
    return Market(
        phi=np.array([1.0 if s.is_call else -1.0 for s in options]),
        x0=np.array([s.spot / s.strike for s in options], dtype=np.float64),
        rate=np.array([s.rate for s in options], dtype=np.float64),
        div=np.array([s.dividend_yield for s in options], dtype=np.float64),
        vol=np.full(len(options), MIN_VOLATILITY),
        t=np.array(years, dtype=np.float64),
    )


def _european(m: Market, vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """European value and vega per unit of strike."""
    logx = np.log(m.x0)
    value, _, _, vega, _, _ = bsm(m.phi, m.x0, logx, m.rate, m.div, vol, m.t, greeks=True)
    return value, vega


def _solve(
    m: Market, target: np.ndarray, american: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The volatility in [lo, hi] whose value is ``target`` (values increase with it)."""
    lo, hi = lo.copy(), hi.copy()
    # start from the European-implied volatility: closed-form Newton steps, no tree
    x = 0.5 * (lo + hi)
    for _ in range(8):
        value, vega = _european(m, x)
        x = np.clip(x - (value - target) / np.where(vega > 0.0, vega, np.inf), lo, hi)
    result = np.full(len(target), np.nan)
    active = np.arange(len(target))
    previous = np.full(len(target), np.inf)  # |error| at the last value, per row
    for _ in range(MAX_ITERATIONS):
        if not len(active):
            break
        sub = m.take(active).with_(vol=x[active])
        euro, vega = _european(sub, sub.vol)
        value = np.where(american[active], american_bbsr(sub, STEPS), euro)
        error = value - target[active]
        converged = np.abs(error) <= PRICE_TOLERANCE
        result[active[converged]] = sub.vol[converged]
        high = error > 0.0
        hi[active] = np.where(high, sub.vol, hi[active])
        lo[active] = np.where(high, lo[active], sub.vol)
        newton = sub.vol - error / np.where(vega > 0.0, vega, np.inf)
        inside = (newton > lo[active]) & (newton < hi[active]) & np.isfinite(newton)
        # Newton only while it halves the error; where the value is flat in the volatility
        # (an option at its exercise value) it would crawl, and bisection does not
        inside &= np.abs(error) <= 0.5 * previous[active]
        previous[active] = np.abs(error)
        x[active] = np.where(inside, newton, 0.5 * (lo[active] + hi[active]))
        narrow = ~converged & (hi[active] - lo[active] <= VOL_TOLERANCE)
        result[active[narrow]] = 0.5 * (lo[active] + hi[active])[narrow]
        active = active[~(converged | narrow)]
    return result


def implied_volatilities(options: Sequence[OptionSpec], prices: Sequence[float]) -> list[Implied]:
    """Per option, the implied volatility of ``prices[i]`` or why there is none."""
    if not options:
        return []
    years = [max((s.maturity - s.settlement).days, 0) / 365.0 for s in options]
    out: list[Implied] = [(None, None)] * len(options)
    live = []
    for i, (spec, t) in enumerate(zip(options, years, strict=True)):
        if spec.maturity <= spec.today or t <= 0.0:
            out[i] = (None, "impliedVolatility: the option has expired")
        else:
            live.append(i)
    if not live:
        return out
    m = _market([options[i] for i in live], [years[i] for i in live])
    k = np.array([options[i].strike for i in live])
    target = np.array([prices[i] for i in live], dtype=np.float64) / k
    american = np.array([options[i].american and not _never_early(options[i]) for i in live])
    with np.errstate(all="ignore"):
        floor = np.array(
            [
                forward_value(
                    options[i],
                    options[i].spot,
                    options[i].rate,
                    options[i].dividend_yield,
                    years[i],
                )
                / options[i].strike
                for i in live
            ]
        )
        (euro_max,) = bsm(m.phi, m.x0, np.log(m.x0), m.rate, m.div, MAX_VOLATILITY, m.t)
        top = np.where(
            american, american_bbsr(m.with_(vol=np.full(len(m), MAX_VOLATILITY)), STEPS), euro_max
        )
        low_m = m.with_(vol=np.full(len(m), MIN_VOLATILITY))
        (euro_min,) = bsm(m.phi, m.x0, np.log(m.x0), m.rate, m.div, MIN_VOLATILITY, m.t)
        bottom = np.where(american, american_bbsr(low_m, STEPS), euro_min)
        bottom = np.maximum(bottom, floor)
        # whatever the volatility: a call is worth at most the share, a put the strike
        share = m.x0 * np.maximum(1.0, np.exp(-m.div * m.t))
        upper = np.where(m.phi > 0.0, share, np.maximum(1.0, np.exp(-m.rate * m.t)))
        intrinsic = np.maximum(m.phi * (m.x0 - 1.0), 0.0)
        # closer than this (of the strike) to the value at either end of the volatility
        # range, the price does not tell the volatility: the tree's own precision is 1e-8
        tol = RESOLUTION
        solvable = (target > bottom + tol) & (target < top - tol)
        vols = np.full(len(live), np.nan)
        if solvable.any():
            rows = np.flatnonzero(solvable)
            vols[rows] = _solve(
                m.take(rows),
                target[rows],
                american[rows],
                np.full(len(rows), MIN_VOLATILITY),
                np.full(len(rows), MAX_VOLATILITY),
            )
    for j, i in enumerate(live):
        spec, price, scale = options[i], prices[i], k[j]
        if solvable[j] and math.isfinite(vols[j]):
            out[i] = (float(vols[j]), None)
            continue
        shown = f"{price:.10g}"
        if target[j] < floor[j] - tol:
            why = f"is below the option's no-arbitrage lower bound {floor[j] * scale:.6g}"
        elif target[j] > upper[j] + tol:
            why = f"is above the option's no-arbitrage upper bound {upper[j] * scale:.6g}"
        elif (
            target[j] <= bottom[j] + tol and intrinsic[j] > 0.0 and bottom[j] <= intrinsic[j] + tol
        ):
            why = (
                "is within 1e-7 of the strike of the exercise value, which every small "
                "volatility reproduces: it does not tell the volatility"
            )
        elif target[j] <= bottom[j] + tol:
            why = (
                f"is within 1e-7 of the strike of, or below, the value at volatility "
                f"{MIN_VOLATILITY:g} ({bottom[j] * scale:.6g}): no volatility in the bounds "
                "can be told from it"
            )
        elif target[j] >= top[j] - tol:
            why = (
                f"is at least the value at volatility {MAX_VOLATILITY:g} "
                f"({top[j] * scale:.6g}), the largest the engines accept"
            )
        else:
            why = "is reproduced by no volatility in the bounds to the solver's tolerance"
        out[i] = (None, f"impliedVolatility: marketPrice {shown} {why}")
    return out
