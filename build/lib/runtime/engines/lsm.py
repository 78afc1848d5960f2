"""``lsm``: American Monte Carlo in numpy, vectorised across a batch, with Greeks on request.

Model and conventions are the QuantLib reference's (docs/performance.md, "Conventions"):
Black-Scholes-Merton with a flat rate and a flat continuous dividend yield, time in
Actual/365 Fixed from settlement to maturity; the spot is the settlement-date spot and the
price a settlement-date value (QuantLib's curves start at settlement), and an option whose
maturity is on or before todaysDate is worth 0. ``qdfp``, ``fd`` and ``mc`` do the same.

Per option, the cheapest exact method first:

1. **Closed forms.** European exercise: Black-Scholes-Merton with the dividend yield.
   American calls with ``q <= 0`` and ``r >= 0`` and American puts with ``r <= 0`` and
   ``q >= 0``: early exercise is never optimal, so the same closed form is exact. Volatility
   0 or spot 0 (a deterministic forward): the best exercise time along the forward, exactly.
2. **Deep in the money screen** (Carr-Jarrow-Myneni). The early-exercise premium of a put is
   ``int_0^T [r K e^{-rt} N(-d2(S, B_t, t)) - q S e^{-qt} N(-d1(S, B_t, t))] dt`` for the
   exercise boundary ``B_t``. The boundary lies between the perpetual put's boundary and
   ``K min(1, r/q)``, which bounds the premium from above without knowing ``B_t``; when the
   European price plus that bound is within ``screen`` (0.001) of the intrinsic value, the
   option is worth its intrinsic value to within 0.001 and is settled there. Calls use
   put-call symmetry, ``C(S, K, r, q) = P(K, S, q, r)``.
3. **Monte Carlo** for the rest:

   - the exercise rule comes from a deterministic lattice of the same model (an
     equal-probability binomial tree, ``tree_steps_per_date`` = 8 steps between exercise
     dates, martingale-exact for any inputs): at each exercise date the tree's continuation
     value meets the payoff at a boundary price, found by interpolation between nodes. This
     replaces the first release's regression calibration (Longstaff-Schwartz on 4,096
     separate paths, twice): the rule is the same kind of object, without calibration noise,
     at a fraction of the cost. Only the rule comes from the lattice; the price is the
     simulation's;
   - ``time_steps`` = 48 exercise dates ``T/n .. T`` (a common grid normalised by maturity,
     so a chunk of options shares array shapes), exact GBM samples at the dates, antithetic
     pairs, one SFC64 generator per option seeded with ``OptionSpec.seed()``;
   - pricing paths apply the rule: any fixed rule is a feasible exercise strategy, so the
     estimate is low-biased (up to Monte Carlo noise and the extrapolation below);
   - control variates: the discounted European value at the exercise time (Rasmussen 2005),
     whose mean is the Black-Scholes-Merton price exactly, and nine functions of the
     Brownian path (|W|, W^2 at the last, middle and quarter date, and their pairwise
     products |W_s W_t|) whose means are known in closed form; the estimate is the
     regression estimator and its standard error the residual's, with the degrees of
     freedom the controls use;
   - Richardson extrapolation: the same paths are priced with the rule of a Bermudan with
     every date and with every other date (each from its own lattice pass), and the estimate
     is ``2 V(n) - V(n/2)``, which removes most of the discrete-exercise bias;
   - blocks of pricing paths until the standard error is at most ``target_error``, or
     ``tolerance`` once ``soft_pairs`` are spent; the standard error reported is the
     sample's (pairs are independent);
   - the price is at least the intrinsic value and the European value (the latter matters
     for far out-of-the-money options none of whose paths pay: their standard error is 0
     and their price the European one, which the early-exercise premium exceeds by less
     than 0.001 in the benchmark's sets).

Greeks (``greeks=True``; QuantLib's conventions: per 1.00 of vol and rate, theta per year):
delta, vega and rho are pathwise derivatives on the pricing paths with the exercise rule
held fixed (the envelope theorem: at the optimal rule the rule's own sensitivity vanishes;
pathwise Greeks are first-order sensitive to the rule's error, so with Greeks the lattice
takes ``greeks_tree_steps_per_date`` = 16 steps per date, and prices with and without Greeks
may differ within their noise), each with the pathwise derivative of the European control,
whose mean is the closed-form Greek exactly. The Greeks of a Bermudan converge to the
American ones like n^-1.5 in the number of dates (measured: 24, 48, 96 dates against a
4,800-step tree), so they are extrapolated with weight 1 / (2^1.5 - 1) instead of 1. Gamma
comes from the lattice (an American tree started two steps before the valuation date, so
three nodes straddle the spot); theta from the Black-Scholes-Merton equation
``theta = r V - (r - q) S delta - sigma^2 S^2 gamma / 2`` with the lattice's value, delta and
gamma (0 where immediate exercise is optimal). Closed-form options get closed-form Greeks,
settled ones those of the intrinsic value (delta +-1, the rest 0).

Every option draws from its own generator seeded with ``OptionSpec.seed()``, block sizes never
depend on the other options, and every reduction runs along one option's own row, so a price
(and its Greeks) depends neither on the partitioning nor on the batch's composition or order.
A numeric failure in one option becomes that option's error quote, naming the cause.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from runtime.core.options import Greeks, OptionSpec, Quote

_DAYS_PER_YEAR = 365.0  # Actual/365 Fixed, as the reference


@dataclass(frozen=True)
class LsmSettings:
    """Tuning knobs; the defaults are the ones measured in docs/performance.md."""

    time_steps: int = 48  # exercise dates per option; even, the coarse grid takes every other
    tree_steps_per_date: int = 8  # lattice steps between two exercise dates
    greeks_tree_steps_per_date: int = 16  # the same with greeks: they need a sharper rule
    block_pairs: int = 1024  # antithetic pairs per pricing block
    target_error: float = 0.005  # stop adding blocks at this standard error (price units)
    tolerance: float = 0.02  # the standard error every quote should meet
    soft_pairs: int = 32_768  # past this many pricing pairs, the tolerance is enough
    max_pairs: int = 1_048_576  # hard cap on pricing pairs per option
    richardson: bool = True  # extrapolate n and n/2 exercise dates
    richardson_weight: float = 1.0  # V = (1 + w) V(n) - w V(n/2); 1 assumes an error c/n
    greeks_richardson_weight: float = 1.0 / (2.0**1.5 - 1.0)  # Greeks converge like n^-1.5
    screen: float = 0.001  # settle at intrinsic value when the premium bound is below; 0: off
    memory_budget_bytes: int = 64 * 2**20  # path storage per chunk of options

    def __post_init__(self) -> None:
        if self.time_steps < 2 or self.time_steps % 2:
            raise ValueError("time_steps must be even and at least 2 (Richardson halves it)")
        if min(self.tree_steps_per_date, self.greeks_tree_steps_per_date) < 1:
            raise ValueError("tree steps per date must be at least 1")
        if min(self.block_pairs, self.max_pairs) < 1:
            raise ValueError("path counts must be positive")
        if not 0.0 < self.target_error <= self.tolerance:
            raise ValueError("need 0 < target_error <= tolerance")


DEFAULT_SETTINGS = LsmSettings()

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


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _bsm(
    phi: np.ndarray,
    x: np.ndarray,
    logx: np.ndarray,
    rate: np.ndarray,
    div: np.ndarray,
    vol: np.ndarray,
    tau: np.ndarray,
    greeks: bool = False,
) -> tuple[np.ndarray, ...]:
    """Black-Scholes-Merton value in units of the strike, ``tau > 0`` years before maturity.

    Arguments broadcast; ``phi`` is +1 for a call and -1 for a put; ``x`` is spot / strike.
    With ``greeks``: also d/dx, d2/dx2, d/dsigma, d/dtau... returned as
    (value, dx, dxx, dvol, drate, dt) where dt is the calendar-time derivative (theta).
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
    pdf = _norm_pdf(d1)
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
    (value,) = _bsm(
        np.array(1.0 if is_call else -1.0),
        np.array(x),
        np.array(math.log(x)),
        np.array(rate),
        np.array(dividend_yield),
        np.array(vol),
        np.array(t),
    )
    return float(value) * strike


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


# ---------------------------------------------------------------------------------------
# closed forms


def _closed_form(spec: OptionSpec, t: float, greeks: bool) -> Quote:
    """Black-Scholes-Merton price (and Greeks) of a European option, in price units."""
    k = spec.strike
    x = spec.spot / k
    out = _bsm(
        np.array(1.0 if spec.is_call else -1.0),
        np.array(x),
        np.array(math.log(x)),
        np.array(spec.rate),
        np.array(spec.dividend_yield),
        np.array(spec.volatility),
        np.array(t),
        greeks=greeks,
    )
    price = float(out[0]) * k
    if not greeks:
        return Quote(price=price, std_error=0.0)
    _, delta, gamma, vega, rho, theta = (float(v) for v in out)
    return Quote(
        price=price,
        std_error=0.0,
        greeks=Greeks(delta=delta, gamma=gamma / k, vega=vega * k, theta=theta * k, rho=rho * k),
    )


def _forward_value(spec: OptionSpec, spot: float, rate: float, div: float, t: float) -> float:
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
    return max(at(s) for s in times)


def _deterministic(spec: OptionSpec, t: float, greeks: bool) -> Quote:
    price = _forward_value(spec, spec.spot, spec.rate, spec.dividend_yield, t)
    if not greeks:
        return Quote(price=price, std_error=0.0)

    def value(spot: float = spec.spot, rate: float = spec.rate, tt: float = t) -> float:
        return _forward_value(spec, spot, rate, spec.dividend_yield, tt)

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


def _intrinsic_quote(spec: OptionSpec, greeks: bool) -> Quote:
    sign = 1.0 if spec.is_call else -1.0
    price = max(sign * (spec.spot - spec.strike), 0.0)
    g = Greeks(delta=sign, gamma=0.0, vega=0.0, theta=0.0, rho=0.0) if greeks else None
    return Quote(price=price, std_error=0.0, greeks=g)


# ---------------------------------------------------------------------------------------
# deep in the money screen (Carr-Jarrow-Myneni bound on the early-exercise premium)

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(32)
_GL_S = 0.5 * (_GL_NODES + 1.0)  # on [0, 1]; t = T s^2 smooths the integrand's t -> 0 end
_GL_W = 0.5 * _GL_WEIGHTS


def _premium_bound(
    spot: np.ndarray,
    strike: np.ndarray,
    rate: np.ndarray,
    div: np.ndarray,
    vol: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """Upper bound of the American put's price minus its intrinsic value (price units).

    Needs ``rate > 0``. The premium integrand's first term grows with the boundary and the
    second (for q > 0) shrinks with it, so the boundary's upper bound ``K min(1, r/q)`` goes
    into the first and the perpetual boundary (a lower bound) into the second; for q < 0
    the second term is a gain and gets the upper bound too.
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
    (euro,) = _bsm(-1.0, x, np.log(x), rate, div, vol, t)
    return euro * strike + premium - np.maximum(strike - spot, 0.0)


def _screen(options: Sequence[OptionSpec], ts: Sequence[float], threshold: float) -> np.ndarray:
    """Which (American, in the money) options are worth their intrinsic value to threshold."""
    if not options or threshold <= 0.0:
        return np.zeros(len(options), dtype=bool)
    # a call is the put with spot and strike, rate and dividend yield swapped
    spot = np.array([s.strike if s.is_call else s.spot for s in options], dtype=np.float64)
    strike = np.array([s.spot if s.is_call else s.strike for s in options], dtype=np.float64)
    rate = np.array([s.dividend_yield if s.is_call else s.rate for s in options])
    div = np.array([s.rate if s.is_call else s.dividend_yield for s in options])
    vol = np.array([s.volatility for s in options], dtype=np.float64)
    t = np.array(ts, dtype=np.float64)
    candidate = (spot < strike) & (rate > 0.0)
    result = np.zeros(len(options), dtype=bool)
    if candidate.any():
        c = candidate
        with np.errstate(all="ignore"):
            bound = _premium_bound(spot[c], strike[c], rate[c], div[c], vol[c], t[c])
        result[c] = np.isfinite(bound) & (bound <= threshold)
    return result


# ---------------------------------------------------------------------------------------
# simulation


@dataclass
class _Group:
    """The simulated options of one chunk as arrays; prices are in units of the strike."""

    phi: np.ndarray  # +1 call, -1 put
    x0: np.ndarray  # spot / strike
    strike: np.ndarray
    rate: np.ndarray
    div: np.ndarray
    vol: np.ndarray
    t: np.ndarray  # years from settlement to maturity
    seeds: list[int]


def _log_cosh(s: np.ndarray) -> np.ndarray:
    return s + np.log1p(np.exp(-2.0 * s)) - math.log(2.0)


@dataclass
class _Lattice:
    """What the tree gives the Monte Carlo: exercise thresholds, and Greeks' ingredients."""

    thresholds: list[np.ndarray]  # per grid: (options, dates) thresholds on phi * W
    value: np.ndarray | None = None  # American tree value at t = 0 (strike units)
    delta: np.ndarray | None = None
    gamma: np.ndarray | None = None
    exercised_now: np.ndarray | None = None


def _tree_steps(cfg: LsmSettings, greeks: bool) -> int:
    return cfg.greeks_tree_steps_per_date if greeks else cfg.tree_steps_per_date


def _lattice(g: _Group, cfg: LsmSettings, greeks: bool) -> _Lattice:
    """Equal-probability binomial tree per option: Bermudan exercise boundaries per date.

    One row per option and grid (every date; every other date for Richardson). Nodes at
    level ``i`` (time ``i dt``) have log-moneyness ``log x0 + i a + (2 j - i) s`` with
    ``s = sigma sqrt(dt)``; probabilities 1/2 and ``a = (r - q) dt - log cosh s`` make the
    discounted price a martingale for any inputs (no probability can leave [0, 1]).
    """
    n = cfg.time_steps
    m = _tree_steps(cfg, greeks)
    steps = n * m
    b = len(g.phi)
    kinds = [1, 2] if cfg.richardson else [1]
    rows = len(kinds)
    dt_ = g.t / steps
    s = g.vol * np.sqrt(dt_)
    a = (g.rate - g.div) * dt_ - _log_cosh(s)
    disc = 0.5 * np.exp(-g.rate * dt_)
    logx0 = np.log(g.x0)
    mu = g.rate - g.div - 0.5 * g.vol**2  # the Monte Carlo's log drift per year
    date_sd = g.vol * np.sqrt(g.t / n)  # the Monte Carlo's W scale per date

    def tile(v: np.ndarray) -> np.ndarray:
        return np.tile(v, rows)[:, None]

    phi_r, s_r, a_r, disc_r, lx0_r = (tile(v) for v in (g.phi, s, a, disc, logx0))
    j = np.arange(steps + 1, dtype=np.float64)[None, :]

    def logx(level: int) -> np.ndarray:
        return lx0_r + level * a_r + (2.0 * j[:, : level + 1] - level) * s_r

    v = np.maximum(phi_r * np.expm1(logx(steps)), 0.0)
    thresholds = [np.full((b, n), np.inf) for _ in kinds]
    for level in range(steps - 1, m - 1, -1):
        v = disc_r * (v[:, 1:] + v[:, :-1])
        if level % m:
            continue
        k = level // m  # exercise date k (1-based) at time k T / n
        lx = logx(level)
        pay = np.maximum(phi_r * np.expm1(lx), 0.0)
        h = pay - v
        for row, every in enumerate(kinds):
            if k % every:
                continue
            sl = slice(row * b, (row + 1) * b)
            centre = logx0 + mu * (k * g.t / n)
            thresholds[row][:, k - 1] = _threshold(h[sl], lx[sl], g.phi, centre, date_sd)
            np.maximum(v[sl], pay[sl], out=v[sl])
    for row in range(rows):  # at maturity: exercise in the money
        thresholds[row][:, n - 1] = g.phi * (-(logx0 + mu * g.t)) / date_sd
    out = _Lattice(thresholds=thresholds)
    if greeks:
        out.value, out.delta, out.gamma, out.exercised_now = _tree_greeks(g, cfg)
    return out


def _threshold(
    h: np.ndarray,
    lx: np.ndarray,
    phi: np.ndarray,
    centre: np.ndarray,
    date_sd: np.ndarray,
) -> np.ndarray:
    """Exercise threshold on ``phi * W`` at one date from payoff minus continuation ``h``.

    Puts exercise below the boundary (the highest node with h > 0, interpolated towards the
    next node up), calls above it. The Monte Carlo's plus path ``log x0 + mu t + sd W``
    exercises when ``phi * W > threshold``, the antithetic path when ``phi * W < -threshold``.
    """
    positive = h > 0.0
    nodes = h.shape[1]
    has = positive.any(axis=1)
    rows = np.arange(len(phi))
    put = phi < 0.0
    # put: last positive node; call: first positive node
    last = nodes - 1 - np.argmax(positive[:, ::-1], axis=1)
    first = np.argmax(positive, axis=1)
    idx = np.where(put, last, first)
    nxt = np.clip(np.where(put, idx + 1, idx - 1), 0, nodes - 1)
    h0 = h[rows, idx]
    h1 = h[rows, nxt]
    edge = nxt == idx  # the exercise region reaches the lattice's edge
    weight = np.where(edge, 0.0, h0 / np.where(edge, 1.0, h0 - h1))
    boundary = lx[rows, idx] + weight * (lx[rows, nxt] - lx[rows, idx])
    boundary = np.where(edge, phi * -np.inf, boundary)  # everything beyond exercises
    boundary = np.where(has, boundary, phi * np.inf)  # nothing exercises
    with np.errstate(invalid="ignore"):
        w = (boundary - centre) / date_sd
    return np.where(np.isnan(w), np.inf, phi * w)


def _tree_greeks(
    g: _Group, cfg: LsmSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """American tree value, delta and gamma at t = 0 (strike units), and exercise-now flag.

    The same lattice with exercise at every step, started two steps before the valuation
    date so that three nodes straddle the spot at t = 0.
    """
    steps = cfg.time_steps * _tree_steps(cfg, True)
    top = steps + 2
    dt_ = g.t / steps
    s = (g.vol * np.sqrt(dt_))[:, None]
    a = ((g.rate - g.div) * dt_)[:, None] - _log_cosh(s)
    disc = 0.5 * np.exp(-g.rate * dt_)[:, None]
    phi = g.phi[:, None]
    lx0 = np.log(g.x0)[:, None]
    j = np.arange(top + 1, dtype=np.float64)[None, :]

    def logx(level: int) -> np.ndarray:  # level 2 is t = 0
        return lx0 + (level - 2) * a + (2.0 * j[:, : level + 1] - level) * s

    v = np.maximum(phi * np.expm1(logx(top)), 0.0)
    for level in range(top - 1, 1, -1):
        v = disc * (v[:, 1:] + v[:, :-1])
        np.maximum(v, phi * np.expm1(logx(level)), out=v)
    x = np.exp(logx(2))  # x0 e^{-2s}, x0, x0 e^{2s}
    intrinsic = np.maximum(g.phi * (g.x0 - 1.0), 0.0)
    up = (v[:, 2] - v[:, 1]) / (x[:, 2] - x[:, 1])
    dn = (v[:, 1] - v[:, 0]) / (x[:, 1] - x[:, 0])
    gamma = 2.0 * (up - dn) / (x[:, 2] - x[:, 0])
    delta = (v[:, 2] - v[:, 0]) / (x[:, 2] - x[:, 0])
    exercised = (intrinsic > 0.0) & (v[:, 1] <= intrinsic * (1.0 + 1e-12))
    return v[:, 1], delta, gamma, exercised


class _Moments:
    """Running means and co-moments of (estimate, control) pairs per option and quantity."""

    def __init__(self, size: int, quantities: int) -> None:
        self.n = np.zeros(size)
        self.mean = np.zeros((size, quantities, 2))
        self.m2 = np.zeros((size, quantities, 3))  # yy, yc, cc

    def add(self, rows: np.ndarray, samples: np.ndarray) -> None:
        """Merge a block of samples (rows, quantities, 2, pairs) with Chan's update, per row."""
        nb = samples.shape[-1]
        bmean = samples.mean(axis=-1)
        dev = samples - bmean[..., None]
        y, c = dev[:, :, 0, :], dev[:, :, 1, :]
        bm2 = np.stack([(y * y).sum(axis=-1), (y * c).sum(axis=-1), (c * c).sum(axis=-1)], -1)
        na = self.n[rows]
        total = na + nb
        delta = bmean - self.mean[rows]
        self.mean[rows] += delta * (nb / total)[:, None, None]
        cross = np.stack(
            [delta[..., 0] ** 2, delta[..., 0] * delta[..., 1], delta[..., 1] ** 2], -1
        )
        self.m2[rows] += bm2 + cross * (na * nb / total)[:, None, None]
        self.n[rows] = total

    def controlled(
        self, rows: np.ndarray, control_mean: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Control-variate estimates and standard errors (optimal coefficient), per quantity.

        ``control_mean`` is (rows, quantities).
        """
        n = self.n[rows][:, None]
        m2 = self.m2[rows]
        yy, yc, cc = m2[..., 0], m2[..., 1], m2[..., 2]
        # a control with (numerically) no spread carries no information: a rare event the
        # sample has not seen can still shift its mean, and yc / cc would then explode
        useful = cc > 1e-10 * n * self.mean[rows, :, 1] ** 2
        useful &= cc > 0.0
        beta = np.where(useful, yc / np.where(useful, cc, 1.0), 0.0)
        estimate = self.mean[rows, :, 0] - beta * (self.mean[rows, :, 1] - control_mean)
        resid = np.maximum(yy - 2.0 * beta * yc + beta * beta * cc, 0.0)
        stderr = np.sqrt(resid / np.maximum(n - 2.0, 1.0) / np.maximum(n, 1.0))
        return estimate, stderr


class _Regression:
    """Running co-moments of (estimate, controls...) per option: a multi-control estimator.

    Column 0 is the estimate, column 1 the European control, the rest functions of the
    Brownian path with exactly known means. Sums run along one option's own row.
    """

    def __init__(self, size: int, columns: int) -> None:
        self.n = np.zeros(size)
        self.mean = np.zeros((size, columns))
        self.m2 = np.zeros((size, columns, columns))

    def add(self, rows: np.ndarray, samples: np.ndarray) -> None:
        """Merge a block (rows, columns, pairs) with Chan's update."""
        nb = samples.shape[-1]
        d = samples.shape[1]
        bmean = samples.mean(axis=-1)
        dev = samples - bmean[..., None]
        bm2 = np.empty((len(rows), d, d))
        for i in range(d):
            for j in range(i, d):
                bm2[:, i, j] = bm2[:, j, i] = (dev[:, i] * dev[:, j]).sum(axis=-1)
        na = self.n[rows]
        total = na + nb
        delta = bmean - self.mean[rows]
        self.mean[rows] += delta * (nb / total)[:, None]
        self.m2[rows] += (
            bm2 + delta[:, :, None] * delta[:, None, :] * (na * nb / total)[:, None, None]
        )
        self.n[rows] = total

    def controlled(
        self, rows: np.ndarray, control_mean: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Regression estimate and its standard error; ``control_mean`` is (rows, columns-1)."""
        n = self.n[rows]
        m2 = self.m2[rows]
        mean = self.mean[rows]
        p = m2.shape[1] - 1
        scc = m2[:, 1:, 1:].copy()
        scy = m2[:, 1:, 0].copy()
        # controls without (numerical) spread carry no information, and a rare event the
        # sample has not seen can still shift their mean: leave them out
        diag = np.diagonal(scc, axis1=1, axis2=2)
        useless = ~(diag > 1e-10 * n[:, None] * mean[:, 1:] ** 2) | ~(diag > 0.0)
        scc[useless[:, :, None] | useless[:, None, :]] = 0.0
        scy[useless] = 0.0
        eye = np.eye(p, dtype=bool)[None]
        scc[useless[:, :, None] & eye] = 1.0
        scc += np.eye(p)[None] * (1e-12 * np.diagonal(scc, axis1=1, axis2=2))[:, :, None]
        beta = np.linalg.solve(scc, scy[:, :, None])[:, :, 0]
        estimate = mean[:, 0] - (beta * (mean[:, 1:] - control_mean)).sum(axis=-1)
        resid = np.maximum(m2[:, 0, 0] - (beta * scy).sum(axis=-1), 0.0)
        used = p - useless.sum(axis=1)
        stderr = np.sqrt(resid / np.maximum(n - used - 1.0, 1.0) / np.maximum(n, 1.0))
        return estimate, stderr


# Brownian controls: standardised |W| at the last, middle and quarter date, their squares
# and pairwise products, whose means are known exactly (the pair average is even in W).
def _control_dates(n: int) -> tuple[int, ...]:
    return tuple(sorted({n, max(1, n // 2), max(1, n // 4)}))


def _control_means(n: int) -> np.ndarray:
    dates = _control_dates(n)
    means = [math.sqrt(2.0 / math.pi)] * len(dates) + [1.0] * len(dates)
    for a in range(len(dates)):
        for b in range(a + 1, len(dates)):
            rho = math.sqrt(dates[a] / dates[b])
            means.append(2.0 / math.pi * (math.sqrt(1.0 - rho * rho) + rho * math.asin(rho)))
    return np.array(means)


def _control_features(w: np.ndarray, n: int) -> np.ndarray:
    """(rows, features, pairs) from the Brownian paths (rows, dates, pairs)."""
    dates = _control_dates(n)
    a = [np.abs(w[:, d - 1]) / math.sqrt(d) for d in dates]
    cols = a + [x * x for x in a]
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            cols.append(a[i] * a[j])
    return np.stack(cols, axis=1)


class _Sampler:
    """Per-option generators: each option consumes its own stream block by block."""

    def __init__(self, seeds: list[int]) -> None:
        self.gens = [np.random.Generator(np.random.SFC64(seed)) for seed in seeds]

    def normals(self, rows: np.ndarray, steps: int, pairs: int) -> np.ndarray:
        z = np.empty((len(rows), steps, pairs))
        for k, row in enumerate(rows):
            self.gens[row].standard_normal(out=z[k])
        return z


def _stops(pw: np.ndarray, thr: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """First date each path crosses its threshold: (date index, hit) per (row, path)."""
    cross = pw > thr[:, :, None] if sign > 0 else pw < -thr[:, :, None]
    idx = np.argmax(cross, axis=1)
    hit = np.take_along_axis(cross, idx[:, None, :], axis=1)[:, 0, :]
    return idx, hit


def _price_block(
    sampler: _Sampler,
    rows: np.ndarray,
    g: _Group,
    lattice: _Lattice,
    cfg: LsmSettings,
    greeks: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, quantities, 2, pairs) pair averages of (estimate, control) for one block, and
    the Brownian control features (rows, features, pairs).

    Quantities: price, and with greeks delta, vega, rho (strike units).
    """
    n = cfg.time_steps
    pairs = cfg.block_pairs
    w = sampler.normals(rows, n, pairs)  # (rows, dates, pairs)
    for j in range(1, n):  # Brownian path in date units; contiguous slices beat cumsum
        np.add(w[:, j], w[:, j - 1], out=w[:, j])
    phi = g.phi[rows]
    # a path and its antithetic twin are W and -W: taking phi * W as the first of the pair
    # makes every comparison "beyond the threshold" the same for calls and puts
    pw = w
    b = len(rows)
    date = g.t[rows] / n
    date_sd = g.vol[rows] * np.sqrt(date)
    logx0 = np.log(g.x0[rows])
    mu = g.rate[rows] - g.div[rows] - 0.5 * g.vol[rows] ** 2
    quantities = 4 if greeks else 1
    out = np.zeros((b, quantities, 2, pairs))
    features = _control_features(w, n)
    w_price = cfg.richardson_weight if cfg.richardson else 0.0
    w_greeks = cfg.greeks_richardson_weight if cfg.richardson else 0.0
    grids = [(1, lattice.thresholds[0], 1.0 + w_price, 1.0 + w_greeks)]
    if cfg.richardson:
        grids.append((2, lattice.thresholds[1], -w_price, -w_greeks))
    for every, thr, weight, greeks_weight in grids:
        view = pw if every == 1 else pw[:, every - 1 :: every, :]
        tv = thr[rows] if every == 1 else thr[rows][:, every - 1 :: every]
        for sign in (1.0, -1.0):
            idx, hit = _stops(view, tv, sign)
            k = (idx + 1) * every  # 1-based date index
            ws = np.take_along_axis(view, idx[:, None, :], axis=1)[:, 0, :] * (sign * phi[:, None])
            values = _stopped(g, rows, k, hit, ws, n, date, date_sd, logx0, mu, greeks)
            out[:, :1] += 0.5 * weight * values[:, :1]  # antithetic average, Richardson weight
            if greeks:
                out[:, 1:] += 0.5 * greeks_weight * values[:, 1:]
    return out, features


def _stopped(
    g: _Group,
    rows: np.ndarray,
    k: np.ndarray,
    hit: np.ndarray,
    ws: np.ndarray,
    n: int,
    date: np.ndarray,
    date_sd: np.ndarray,
    logx0: np.ndarray,
    mu: np.ndarray,
    greeks: bool,
) -> np.ndarray:
    """Discounted payoff and European control (and pathwise Greeks) at each path's stop."""
    b, pairs = hit.shape
    phi = g.phi[rows][:, None]
    rate = g.rate[rows][:, None]
    vol = g.vol[rows][:, None]
    t_ex = k * date[:, None]
    lx = logx0[:, None] + mu[:, None] * t_ex + date_sd[:, None] * ws
    x = np.exp(lx)
    discount = np.where(hit, np.exp(-rate * t_ex), 0.0)
    pay = np.maximum(phi * (x - 1.0), 0.0)
    value = pay * discount
    control = value.copy()
    quantities = 4 if greeks else 1
    out = np.empty((b, quantities, 2, pairs))
    out[:, 0, 0] = value
    early = np.flatnonzero(hit & (k < n))
    r_idx = early // pairs
    if greeks:
        itm = (pay > 0.0) * discount
        dlx_dvol = np.sqrt(date)[:, None] * ws - vol * t_ex
        dpay = phi * itm * x  # d(discounted payoff)/d(log x)
        out[:, 1, 0] = dpay / g.x0[rows][:, None]
        out[:, 2, 0] = dpay * dlx_dvol
        out[:, 3, 0] = phi * itm * t_ex
        out[:, 1:, 1] = out[:, 1:, 0]  # at maturity the control is the payoff itself
    if len(early):
        xe = x.reshape(-1)[early]
        le = lx.reshape(-1)[early]
        tau = g.t[rows][r_idx] - t_ex.reshape(-1)[early]
        res = _bsm(
            g.phi[rows][r_idx],
            xe,
            le,
            g.rate[rows][r_idx],
            g.div[rows][r_idx],
            g.vol[rows][r_idx],
            tau,
            greeks=greeks,
        )
        d = discount.reshape(-1)[early]
        control.reshape(-1)[early] = res[0] * d
        if greeks:
            _, e_x, _, e_vol, e_rate, _ = res
            te = t_ex.reshape(-1)[early]
            dv = dlx_dvol.reshape(-1)[early]
            ctrl = out[:, 1:, 1].transpose(1, 0, 2).reshape(3, -1)  # copy
            ctrl[0, early] = d * e_x * xe / g.x0[rows][r_idx]
            ctrl[1, early] = d * (e_x * xe * dv + e_vol)
            ctrl[2, early] = d * (e_x * xe * te + e_rate - te * res[0])
            out[:, 1:, 1] = ctrl.reshape(3, b, pairs).transpose(1, 0, 2)
    out[:, 0, 1] = control
    return out


def _simulate(g: _Group, cfg: LsmSettings, greeks: bool) -> dict[str, np.ndarray]:
    """Prices, standard errors and Greeks (price units) for one chunk of simulated options."""
    size = len(g.phi)
    rows = np.arange(size)
    lattice = _lattice(g, cfg, greeks)
    logx0 = np.log(g.x0)
    bs = _bsm(g.phi, g.x0, logx0, g.rate, g.div, g.vol, g.t, greeks=greeks)
    quantities = 4 if greeks else 1
    control_mean = np.stack([bs[0]] + ([bs[1], bs[3], bs[4]] if greeks else []), axis=-1)
    moments = _Moments(size, quantities - 1) if greeks else None
    brownian_means = _control_means(cfg.time_steps)
    regression = _Regression(size, 2 + len(brownian_means))
    price_control_means = np.column_stack(
        [bs[0], np.broadcast_to(brownian_means, (size, len(brownian_means)))]
    )
    estimate = np.zeros((size, quantities))
    stderr = np.full((size, quantities), np.inf)
    # a standard error well below the 0.02 tolerance keeps the mean absolute error small;
    # options with very large prices (the error scales with the strike) may stop at the
    # tolerance after ``soft_pairs``, and nothing runs past ``max_pairs``
    target = cfg.target_error / g.strike
    tolerance = cfg.tolerance / g.strike
    soft_blocks = max(1, math.ceil(cfg.soft_pairs / cfg.block_pairs))
    max_blocks = max(1, math.ceil(cfg.max_pairs / cfg.block_pairs))
    sampler = _Sampler(g.seeds)
    active = rows
    for block in range(1, max_blocks + 1):
        samples, features = _price_block(sampler, active, g, lattice, cfg, greeks)
        regression.add(active, np.concatenate([samples[:, 0], features], axis=1))
        est, se = regression.controlled(active, price_control_means[active])
        if greeks:
            moments.add(active, samples[:, 1:])
            est_g, se_g = moments.controlled(active, control_mean[active, 1:])
            est = np.column_stack([est, est_g])
            se = np.column_stack([se, se_g])
        else:
            est, se = est[:, None], se[:, None]
        estimate[active] = est
        stderr[active] = se
        limit = target[active] if block < soft_blocks else tolerance[active]
        active = active[~(se[:, 0] <= limit)]  # NaN never converges: stop at the cap
        if len(active) == 0:
            break
    intrinsic = np.maximum(g.phi * (g.x0 - 1.0), 0.0)
    price = estimate[:, 0]
    # an American option is worth at least its intrinsic and its European value: the floor
    # matters for far out-of-the-money options whose paths never pay (estimate 0)
    result = {
        "price": np.maximum(np.maximum(price, intrinsic), bs[0]) * g.strike,
        "std_error": stderr[:, 0] * g.strike,
    }
    if greeks:
        now = ((intrinsic > 0.0) & (price <= intrinsic)) | lattice.exercised_now
        k = g.strike
        delta = np.where(now, g.phi, estimate[:, 1])
        gamma = np.where(now, 0.0, lattice.gamma) / k
        vega = np.where(now, 0.0, estimate[:, 2]) * k
        rho = np.where(now, 0.0, estimate[:, 3]) * k
        x0 = g.x0
        theta = (
            g.rate * lattice.value
            - (g.rate - g.div) * x0 * lattice.delta
            - 0.5 * g.vol**2 * x0 * x0 * lattice.gamma
        )
        theta = np.where(now, 0.0, theta) * k
        result.update(delta=delta, gamma=gamma, vega=vega, rho=rho, theta=theta)
    return result


def chunk_size(cfg: LsmSettings = DEFAULT_SETTINGS) -> int:
    """Options per vectorised chunk: a pricing block's paths and temporaries dominate."""
    per_option = cfg.time_steps * cfg.block_pairs * 8 * 6
    per_option += cfg.time_steps * cfg.greeks_tree_steps_per_date * 8 * 8  # lattice rows
    return max(1, int(cfg.memory_budget_bytes // per_option))


_GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho")


def _chunk_quotes(specs: Sequence[OptionSpec], cfg: LsmSettings, greeks: bool) -> list[Quote]:
    group = _Group(
        phi=np.array([1.0 if s.is_call else -1.0 for s in specs]),
        x0=np.array([s.spot / s.strike for s in specs], dtype=np.float64),
        strike=np.array([s.strike for s in specs], dtype=np.float64),
        rate=np.array([s.rate for s in specs], dtype=np.float64),
        div=np.array([s.dividend_yield for s in specs], dtype=np.float64),
        vol=np.array([s.volatility for s in specs], dtype=np.float64),
        t=np.array([_year_fraction(s.settlement, s.maturity) for s in specs]),
        seeds=[s.seed() for s in specs],
    )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        result = _simulate(group, cfg, greeks)
    quotes = []
    for i in range(len(specs)):
        p, se = float(result["price"][i]), float(result["std_error"][i])
        if not (math.isfinite(p) and math.isfinite(se)):
            what = "price" if not math.isfinite(p) else "standard error"
            quotes.append(_overflow(what))
            continue
        g = None
        if greeks:
            values = {name: float(result[name][i]) for name in _GREEK_NAMES}
            bad = [name for name, v in values.items() if not math.isfinite(v)]
            if bad:
                quotes.append(_overflow(bad[0]))
                continue
            g = Greeks(**values)
        quotes.append(Quote(price=p, std_error=se, greeks=g))
    return quotes


def _overflow(what: str) -> Quote:
    return Quote(
        price=None,
        error=f"pricing failed: the {what} is not a finite number (floating-point overflow "
        "in the simulation)",
    )


def _safely(call: Callable[[], Quote]) -> Quote:
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
    return quote


def price_lsm(
    options: Sequence[OptionSpec],
    greeks: bool = False,
    settings: LsmSettings | None = None,
) -> list[Quote]:
    """Price a batch; a bad row becomes that row's error quote, never an exception."""
    cfg = settings or DEFAULT_SETTINGS
    quotes: list[Quote | None] = [None] * len(options)
    pending: list[int] = []
    years: list[float] = []
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
            quotes[i] = Quote(price=0.0, std_error=0.0, greeks=zero)
            continue
        t = _year_fraction(spec.settlement, spec.maturity)
        r, q = spec.rate, spec.dividend_yield
        if spec.volatility == 0.0 or spec.spot == 0.0:
            quotes[i] = _safely(lambda s=spec, t=t: _deterministic(s, t, greeks))
        elif (
            not spec.american
            or (spec.is_call and q <= 0.0 and r >= 0.0)
            or (not spec.is_call and r <= 0.0 and q >= 0.0)
        ):
            # European, or American where early exercise is never optimal
            quotes[i] = _safely(lambda s=spec, t=t: _closed_form(s, t, greeks))
        else:
            pending.append(i)
            years.append(t)

    screened = _screen([options[i] for i in pending], years, cfg.screen)
    simulated = []
    for i, settle in zip(pending, screened, strict=True):
        if settle:
            quotes[i] = _intrinsic_quote(options[i], greeks)
        else:
            simulated.append(i)

    size = chunk_size(cfg)
    for start in range(0, len(simulated), size):
        chunk = simulated[start : start + size]
        try:
            priced = _chunk_quotes([options[i] for i in chunk], cfg, greeks)
        except Exception:
            # never let one option sink its neighbours: price them one by one
            priced = []
            for i in chunk:
                try:
                    priced.extend(_chunk_quotes([options[i]], cfg, greeks))
                except Exception as exc:
                    priced.append(
                        Quote(price=None, error=f"pricing failed: {type(exc).__name__}: {exc}")
                    )
        for i, quote in zip(chunk, priced, strict=True):
            quotes[i] = quote
    return [q if q is not None else Quote(price=None, error="not priced") for q in quotes]
