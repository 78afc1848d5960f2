"""Closed forms of the Black-Scholes-Merton model (numpy only) and the no-arbitrage limits.

Conventions are the reference's (docs/performance.md, "Conventions"): flat rate ``r`` and
continuous dividend yield ``q``, time in Actual/365 Fixed from settlement to maturity. The
vectorised functions work in units of the strike (``x`` is spot / strike, values are per unit
of strike), so one code path serves a strike of 1 and of 1e8 alike.
"""

from __future__ import annotations

import math

import numpy as np

from runtime.core.options import Greeks, OptionSpec, Quote

# Hart's double-precision rational approximation of the normal tail (West 2005, "Better
# approximations to cumulative normal functions"): absolute error below 1e-15 everywhere,
# vectorised and several times cheaper than a Python-level erfc.
_HART_P = (
    3.52624965998911e-02,
    0.700383064443688,
    6.37396220353165,
    33.912866078383,
    112.079291497871,
    221.213596169931,
    220.206867912376,
)
_HART_Q = (
    8.83883476483184e-02,
    1.75566716318264,
    16.064177579207,
    86.7807322029461,
    296.564248779674,
    637.333633378831,
    793.826512519948,
    440.413735824752,
)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF of an array (absolute error below 1e-15)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        return norm_cdf(x[None])[0]
    a = np.abs(x)
    tail = a * a
    tail *= -0.5
    np.exp(tail, out=tail)
    num = a * _HART_P[0]
    num += _HART_P[1]
    for c in _HART_P[2:]:
        num *= a
        num += c
    den = a * _HART_Q[0]
    den += _HART_Q[1]
    for c in _HART_Q[2:]:
        den *= a
        den += c
    num *= tail
    num /= den
    np.subtract(1.0, num, out=num, where=x > 0)
    return num


def norm_pdf(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def bsm(
    phi: np.ndarray,
    x: np.ndarray,
    logx: np.ndarray,
    rate: np.ndarray,
    div: np.ndarray,
    vol: np.ndarray,
    tau: np.ndarray,
    greeks: bool = False,
) -> tuple[np.ndarray, ...]:
    """European value per unit of strike, ``tau > 0`` years before maturity (arrays broadcast).

    ``phi`` is +1 for a call and -1 for a put; ``x`` is spot / strike. With ``greeks``:
    (value, d/dx, d2/dx2, d/dvol, d/drate, theta), theta being the calendar-time derivative.
    """
    sqt = np.sqrt(tau)
    sd = vol * sqt
    d1 = (logx + (rate - div + 0.5 * vol * vol) * tau) / sd
    d2 = d1 - sd
    dq = np.exp(-div * tau)
    dr = np.exp(-rate * tau)
    n1 = norm_cdf(phi * d1)
    n2 = norm_cdf(phi * d2)
    value = phi * (x * dq * n1 - dr * n2)
    if not greeks:
        return (value,)
    pdf = norm_pdf(d1)
    delta = phi * dq * n1
    gamma = dq * pdf / (x * sd)
    vega = x * dq * pdf * sqt
    rho = phi * tau * dr * n2
    theta = -x * dq * pdf * vol / (2.0 * sqt) + phi * (div * x * dq * n1 - rate * dr * n2)
    return value, delta, gamma, vega, rho, theta


def black_scholes(
    is_call: bool,
    spot: float,
    strike: float,
    rate: float,
    vol: float,
    t: float,
    dividend_yield: float = 0.0,
) -> float:
    """European price with a continuous dividend yield, discounted at ``rate`` over ``t``."""
    if vol <= 0.0 or t <= 0.0 or spot <= 0.0:
        forward_value = spot * math.exp(-dividend_yield * t) - strike * math.exp(-rate * t)
        return max(forward_value, 0.0) if is_call else max(-forward_value, 0.0)
    x = spot / strike
    (value,) = bsm(
        np.array(1.0 if is_call else -1.0),
        np.array(x),
        np.array(math.log(x)),
        np.array(rate),
        np.array(dividend_yield),
        np.array(vol),
        np.array(t),
    )
    return float(value) * strike + 0.0  # + 0.0: never a negative zero


def european_quote(spec: OptionSpec, t: float, greeks: bool) -> Quote:
    """Black-Scholes-Merton price (and Greeks) in price units: exact, standard error 0."""
    k = spec.strike
    x = spec.spot / k
    out = bsm(
        np.array(1.0 if spec.is_call else -1.0),
        np.array(x),
        np.array(math.log(x)),
        np.array(spec.rate),
        np.array(spec.dividend_yield),
        np.array(spec.volatility),
        np.array(t),
        greeks=greeks,
    )
    price = max(float(out[0]) * k, 0.0)  # rounding can leave -1e-17 on a worthless option
    if not greeks:
        return Quote(price=price, std_error=0.0)
    _, delta, gamma, vega, rho, theta = (float(v) for v in out)
    return Quote(
        price=price,
        std_error=0.0,
        greeks=Greeks(delta=delta, gamma=gamma / k, vega=vega * k, theta=theta * k, rho=rho * k),
    )


def forward_value(spec: OptionSpec, spot: float, rate: float, div: float, t: float) -> float:
    """Value along a deterministic forward (volatility or spot 0): the best exercise time."""
    sign = 1.0 if spec.is_call else -1.0

    def at(s: float) -> float:
        return max(sign * (spot * math.exp(-div * s) - spec.strike * math.exp(-rate * s)), 0.0)

    if not spec.american:
        return at(t)
    times = [0.0, t]
    # d/ds of S e^{-qs} - K e^{-rs} vanishes once at most: at e^{(r-q)s} = rK / (qS)
    if rate != div and spot > 0.0 and rate * div > 0.0:
        stationary = math.log(rate * spec.strike / (div * spot)) / (rate - div)
        if 0.0 < stationary < t:
            times.append(stationary)
    return max(at(s) for s in times) + 0.0


def deterministic_quote(spec: OptionSpec, t: float, greeks: bool) -> Quote:
    """Exact value (and finite-difference Greeks) when nothing is random."""
    price = forward_value(spec, spec.spot, spec.rate, spec.dividend_yield, t)
    if not greeks:
        return Quote(price=price, std_error=0.0)

    def value(spot: float = spec.spot, rate: float = spec.rate, tt: float = t) -> float:
        return forward_value(spec, spot, rate, spec.dividend_yield, tt)

    hs = max(1e-4 * spec.spot, 1e-8)
    lo = max(spec.spot - hs, 0.0)
    up = spec.spot + hs
    delta = (value(spot=up) - value(spot=lo)) / (up - lo)
    hr = 1e-5
    rho = (value(rate=spec.rate + hr) - value(rate=spec.rate - hr)) / (2 * hr)
    ht = min(1e-5, 0.5 * t)
    theta = -(value(tt=t + ht) - value(tt=t - ht)) / (2 * ht)
    return Quote(
        price=price,
        std_error=0.0,
        greeks=Greeks(delta=delta, gamma=0.0, vega=0.0, theta=theta, rho=rho),
    )


def perpetual_put(x: np.ndarray, rate: np.ndarray, div: np.ndarray, vol: np.ndarray) -> np.ndarray:
    """The perpetual American put per unit of strike (McKean); +inf where ``rate <= 0``.

    Exercise below ``b = g / (g - 1)``, ``g`` the negative root of
    ``vol^2/2 g^2 + (r - q - vol^2/2) g - r = 0``; above it the value is
    ``(1 - b) (x / b)^g``. A finite-maturity American put is worth at most this.
    """
    positive = rate > 0.0
    r = np.where(positive, rate, 1.0)
    s2 = vol * vol
    drift = r - div - 0.5 * s2
    g = (-drift - np.sqrt(drift * drift + 2.0 * s2 * r)) / s2
    boundary = g / (g - 1.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        above = (1.0 - boundary) * np.exp(g * (np.log(x) - np.log(boundary)))
    value = np.where(x <= boundary, 1.0 - x, above)
    return np.where(positive, value, np.inf)


def price_limits(
    phi: np.ndarray,
    x0: np.ndarray,
    rate: np.ndarray,
    div: np.ndarray,
    vol: np.ndarray,
    t: np.ndarray,
    european: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """No-arbitrage limits of an American option per unit of strike: (lower, upper).

    Lower: the intrinsic value and the European value. Upper: a call is worth at most the
    share (``x max(1, e^{-qT})``) and, with ``q > 0``, the perpetual call; a put at most the
    strike (``max(1, e^{-rT})``) and, with ``r > 0``, the perpetual put. Calls go through
    put-call symmetry: ``C(x, r, q) = x P(1/x, q, r)``.
    """
    intrinsic = np.maximum(phi * (x0 - 1.0), 0.0)
    lower = np.maximum(intrinsic, european)
    call = phi > 0.0
    share = x0 * np.maximum(1.0, np.exp(-div * t))
    cash = np.maximum(1.0, np.exp(-rate * t))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        perpetual = np.where(
            call,
            x0 * perpetual_put(1.0 / x0, div, rate, vol),
            perpetual_put(x0, rate, div, vol),
        )
    upper = np.minimum(np.where(call, share, cash), perpetual)
    return lower, np.maximum(upper, lower)
