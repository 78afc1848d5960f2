"""Deep in-the-money screen: a proven bound on the early-exercise premium (Carr-Jarrow-Myneni).

The early-exercise premium of an American put is
``int_0^T [r K e^{-rt} N(-d2(S, B_t, t)) - q S e^{-qt} N(-d1(S, B_t, t))] dt`` for the exercise
boundary ``B_t``, which lies between the perpetual put's boundary and ``K min(1, r/q)``.
Putting those limits where they make the integrand largest bounds the premium from above
without knowing ``B_t``. When the European value plus that bound is within ``threshold`` of
the intrinsic value, the option is worth its intrinsic value to within the bound, and is
settled there with the bound as its standard error (never 0: the bound is what is known).
Calls use put-call symmetry, ``C(S, K, r, q) = P(K, S, q, r)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.core.options import OptionSpec
from runtime.engines.closed_forms import bsm, norm_cdf

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(32)
_GL_S = 0.5 * (_GL_NODES + 1.0)  # on [0, 1]; t = T s^2 smooths the integrand's t -> 0 end
_GL_W = 0.5 * _GL_WEIGHTS


def premium_bound(
    spot: np.ndarray,
    strike: np.ndarray,
    rate: np.ndarray,
    div: np.ndarray,
    vol: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """Upper bound of the American put's price minus its intrinsic value (price units).

    Needs ``rate > 0``. The premium integrand's first term grows with the boundary and the
    second (for q > 0) shrinks with it, so the boundary's upper limit ``K min(1, r/q)`` goes
    into the first and the perpetual boundary (a lower limit) into the second; for q < 0
    the second term is a gain and gets the upper limit too.
    """
    upper = strike * np.where(div > 0.0, np.minimum(1.0, rate / np.where(div > 0, div, 1.0)), 1.0)
    # perpetual boundary K g/(g - 1), g the negative root of s^2/2 g^2 + (r - q - s^2/2) g - r
    b = rate - div - 0.5 * vol * vol
    s2 = vol * vol
    g = (-b - np.sqrt(b * b + 2.0 * s2 * rate)) / s2
    lower = strike * g / (g - 1.0)
    second = np.where(div > 0.0, lower, upper)
    tt = t[:, None] * _GL_S[None, :] ** 2
    jac = 2.0 * t[:, None] * _GL_S[None, :]
    sd = vol[:, None] * np.sqrt(tt)
    ls = np.log(spot)[:, None]
    d2u = (ls - np.log(upper)[:, None] + (b[:, None]) * tt) / sd
    d1l = (ls - np.log(second)[:, None] + (b + s2)[:, None] * tt) / sd
    f = rate[:, None] * strike[:, None] * np.exp(-rate[:, None] * tt) * norm_cdf(-d2u)
    f -= div[:, None] * spot[:, None] * np.exp(-div[:, None] * tt) * norm_cdf(-d1l)
    premium = (f * jac) @ _GL_W
    x = spot / strike
    (euro,) = bsm(-1.0, x, np.log(x), rate, div, vol, t)
    return euro * strike + premium - np.maximum(strike - spot, 0.0)


def screen(options: Sequence[OptionSpec], ts: Sequence[float], threshold: float) -> np.ndarray:
    """Per option: the bound (price units) when it is at most ``threshold``, else NaN."""
    result = np.full(len(options), np.nan)
    if not options or threshold <= 0.0:
        return result
    # a call is the put with spot and strike, rate and dividend yield swapped
    spot = np.array([s.strike if s.is_call else s.spot for s in options], dtype=np.float64)
    strike = np.array([s.spot if s.is_call else s.strike for s in options], dtype=np.float64)
    rate = np.array([s.dividend_yield if s.is_call else s.rate for s in options])
    div = np.array([s.rate if s.is_call else s.dividend_yield for s in options])
    vol = np.array([s.volatility for s in options], dtype=np.float64)
    t = np.array(ts, dtype=np.float64)
    candidate = (spot < strike) & (rate > 0.0)
    if candidate.any():
        c = candidate
        with np.errstate(all="ignore"):
            bound = premium_bound(spot[c], strike[c], rate[c], div[c], vol[c], t[c])
        settled = np.isfinite(bound) & (bound <= threshold)
        result[np.flatnonzero(c)[settled]] = np.maximum(bound[settled], 0.0)
    return result
