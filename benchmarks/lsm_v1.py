"""The first release's ``lsm`` engine (commit 3109e46), kept only as the benchmark's baseline.

Vendored unchanged except for the import path of ``OptionSpec`` (the layout moved): the
benchmark prices the same options with it and with the current engine in one run, so the
speed ratio is measured side by side. It lives in ``benchmarks/``, outside the image, and
nothing but ``benchmarks.bench`` imports it. It knows neither dividends nor
European exercise: the benchmark gives it only the workshop's kind of options.

Original docstring:

``lsm``: Longstaff-Schwartz American Monte Carlo in numpy, vectorised across a batch.

Conventions are the QuantLib reference's (docs/performance.md, "Conventions"): time is
Actual/365 Fixed from settlement to maturity, the flat rate discounts from settlement, no
dividends, and an option whose maturity is on or before todaysDate is worth 0. QuantLib's
curves start at the settlement date, so the spot is read as the value at settlement and the
price is a settlement-date value: the days between todaysDate and settlement change nothing.
``qdfp``, ``fd`` and ``mc`` all behave that way, and so does this engine.

Per option:

- calls with ``rate >= 0`` get the exact Black-Scholes price (early exercise of a call on a
  non-dividend stock is then never optimal; with a negative rate it can be, so those calls
  are simulated like every put);
- a common time grid normalised by maturity: ``time_steps`` exercise dates ``T/n .. T`` for
  every option, so a whole chunk of options shares array shapes and is priced at once;
- geometric Brownian motion sampled exactly at the exercise dates, antithetic pairs;
- calibration paths fix the exercise rule by least squares (Longstaff-Schwartz), in-the-money
  paths only; the regressand is the discounted cash flow minus the discounted European value
  at the path's exercise time, and the regressor the European value plus a polynomial in the
  standardised moneyness. The European value at a stopping time is a martingale, so this
  estimates the same continuation value with far less noise than the raw cash flow;
- the rule is stored as the exercise boundary it implies at each date (the price where the
  fitted continuation value meets the payoff): exercise is one comparison per path and date;
- independent pricing paths apply the rule, so the estimate is low-biased, as QuantLib's;
- control variate (Rasmussen 2005): the discounted European value at the exercise time has
  the Black-Scholes price as its exact mean and follows the American cash flow closely;
- Richardson extrapolation removes most of the discrete-exercise bias (an LSM with n dates
  prices a Bermudan, below the American by about c/n): on the same paths the rule runs on all
  n dates and on every other date, and the estimate is ``2 V(n) - V(n/2)``;
- pricing paths come in blocks until the standard error is at most ``target_error`` (0.005,
  well inside the 0.02 tolerance, so the mean error stays small), or ``tolerance`` once
  ``soft_pairs`` are spent, or a hard cap is reached; the actual standard error is reported;
- immediate exercise counts: the price is at least the intrinsic value, as for QuantLib's QD+
  and finite-difference engines.

Every option draws from its own generator seeded with ``OptionSpec.seed()``, block sizes
never depend on the other options, and every reduction runs along one option's own row, so
a price depends neither on the partitioning nor on the batch's composition or order.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runtime.core.options import OptionSpec, Quote

_DAYS_PER_YEAR = 365.0  # Actual/365 Fixed, as the reference


@dataclass(frozen=True)
class LsmSettings:
    """Tuning knobs; the defaults are the ones measured in docs/performance.md."""

    time_steps: int = 40  # exercise dates per option; even, the coarse grid takes every other
    calibration_pairs: int = 2048  # antithetic pairs for the regressions
    block_pairs: int = 1024  # antithetic pairs per pricing block
    target_error: float = 0.005  # stop adding blocks at this standard error (price units)
    tolerance: float = 0.02  # the standard error every quote should meet
    soft_pairs: int = 32_768  # past this many pricing pairs, the tolerance is enough
    max_pairs: int = 1_048_576  # hard cap on pricing pairs per option
    degree: int = 3  # polynomial degree of the regression basis
    richardson: bool = True  # extrapolate n and n/2 exercise dates
    memory_budget_bytes: int = 64 * 2**20  # path storage per chunk of options

    def __post_init__(self) -> None:
        if self.time_steps < 2 or self.time_steps % 2:
            raise ValueError("time_steps must be even and at least 2 (Richardson halves it)")
        if min(self.calibration_pairs, self.block_pairs, self.max_pairs) < 1:
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


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF of an array (absolute error below 1e-15)."""
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


def _scalar_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black_scholes(
    is_call: bool, spot: float, strike: float, rate: float, vol: float, t: float
) -> float:
    """European price with no dividends, discounted at the flat ``rate`` over ``t`` years."""
    discount = math.exp(-rate * t)
    if vol <= 0.0 or t <= 0.0 or spot <= 0.0:
        forward_value = spot - strike * discount
        return max(forward_value, 0.0) if is_call else max(-forward_value, 0.0)
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / sd
    d2 = d1 - sd
    if is_call:
        return spot * _scalar_cdf(d1) - strike * discount * _scalar_cdf(d2)
    return strike * discount * _scalar_cdf(-d2) - spot * _scalar_cdf(-d1)


def _european(
    phi: np.ndarray,
    x: np.ndarray,
    logx: np.ndarray,
    rate: np.ndarray,
    vol: np.ndarray,
    tau: np.ndarray,
) -> np.ndarray:
    """Black-Scholes value in units of the strike, ``tau > 0`` years before maturity.

    Arguments broadcast; ``phi`` is +1 for a call and -1 for a put.
    """
    sd = vol * np.sqrt(tau)
    d1 = (logx + (rate + 0.5 * vol * vol) * tau) / sd
    d2 = d1 - sd
    value = x * norm_cdf(phi * d1)
    value -= np.exp(-rate * tau) * norm_cdf(phi * d2)
    value *= phi
    return value


def _year_fraction(start: dt.date, end: dt.date) -> float:
    return (end - start).days / _DAYS_PER_YEAR


def _check(spec: OptionSpec) -> str | None:
    """Why this option cannot be priced, or None. Mirrors QuantLib's refusals."""
    for name in ("spot", "strike", "rate", "volatility"):
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


@dataclass
class _Group:
    """The simulated options of one chunk as arrays; prices are in units of the strike."""

    phi: np.ndarray  # +1 call, -1 put
    x0: np.ndarray  # spot / strike
    strike: np.ndarray
    rate: np.ndarray
    vol: np.ndarray
    t: np.ndarray  # years from settlement to maturity
    seeds: list[int]


class _Paths:
    """Per-option generators and exact log-moneyness paths on the normalised grid."""

    def __init__(self, group: _Group, steps: int) -> None:
        self.steps = steps
        dt_ = group.t / steps
        self.mu = (group.rate - 0.5 * group.vol**2) * dt_  # log drift per step
        self.sd = group.vol * np.sqrt(dt_)
        self.logx0 = np.log(group.x0)
        self.gens = [np.random.Generator(np.random.PCG64(seed)) for seed in group.seeds]

    def normals(self, rows: np.ndarray, pairs: int) -> np.ndarray:
        """(rows, steps, pairs) normals, each row from its own option's generator.

        Every option consumes its stream in the same order (calibration, then one block at a
        time) whatever the other rows, so its paths never depend on the batch.
        """
        z = np.empty((len(rows), self.steps, pairs))
        for k, row in enumerate(rows):
            self.gens[row].standard_normal(out=z[k])
        return z

    def log_paths(self, rows: np.ndarray, pairs: int) -> np.ndarray:
        """(steps, rows, 2 * pairs) log-moneyness: the plus half, then the antithetic half."""
        z = self.normals(rows, pairs)
        out = np.empty((self.steps, len(rows), 2 * pairs))
        acc = np.zeros((len(rows), pairs))
        for j in range(self.steps):
            acc += self.sd[rows][:, None] * z[:, j, :]
            centre = (self.logx0[rows] + (j + 1) * self.mu[rows])[:, None]
            np.add(centre, acc, out=out[j, :, :pairs])
            np.subtract(centre, acc, out=out[j, :, pairs:])
        return out


def _payoff(x: np.ndarray, phi: np.ndarray) -> np.ndarray:
    return np.maximum(phi * (x - 1.0), 0.0)


def _fit(
    x: np.ndarray, itm: np.ndarray, target: np.ndarray, degree: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``target`` on polynomials of standardised x, per row, ITM paths only.

    Standardising by the in-the-money mean and spread keeps the normal equations well
    conditioned for any moneyness; every sum runs along one row, so rows never mix.
    """
    w = itm.astype(np.float64)
    count = w.sum(axis=-1)
    safe = np.maximum(count, 1.0)
    mean = (w * x).sum(axis=-1) / safe
    dev = (x - mean[:, None]) * w
    var = (dev * dev).sum(axis=-1) / safe
    scale = np.sqrt(var)
    k = degree + 1
    valid = (count >= 4 * k) & (scale > 1e-9)
    scale = np.where(valid, scale, 1.0)
    u = dev / scale[:, None]  # zero off the money, so the powers of u carry the weights
    moments = np.empty((x.shape[0], 2 * degree + 1))
    rhs = np.empty((x.shape[0], k))
    moments[:, 0] = count
    rhs[:, 0] = (w * target).sum(axis=-1)
    power = u.copy()
    for p in range(1, 2 * degree + 1):
        moments[:, p] = power.sum(axis=-1)
        if p < k:
            rhs[:, p] = (power * target).sum(axis=-1)
        if p < 2 * degree:
            power *= u
    gram = np.empty((x.shape[0], k, k))
    for i in range(k):
        for j in range(k):
            gram[:, i, j] = moments[:, i + j]
    # a tiny ridge keeps nearly collinear samples solvable; invalid rows never exercise
    gram += np.eye(k) * (1e-10 * safe)[:, None, None]
    gram[~valid] = np.eye(k)
    coef = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    return mean, scale, coef, valid


def _polynomial(coef: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = np.broadcast_to(coef[:, -1:], u.shape).copy()
    for p in range(coef.shape[1] - 2, -1, -1):  # Horner
        out *= u
        out += coef[:, p : p + 1]
    return out


_BOUNDARY_GRID = np.linspace(0.0, 1.0, 65)[None, :]


def _boundary(
    phi: np.ndarray,
    rate: np.ndarray,
    vol: np.ndarray,
    tau: np.ndarray,
    fit: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    deepest: np.ndarray,
) -> np.ndarray:
    """Log of the exercise boundary implied by the fitted continuation value, per row.

    The payoff minus the continuation value (European value + fitted premium) is scanned
    from the money towards the deepest in-the-money calibration path; the first sign change
    is the boundary (linear interpolation between grid points: the price is first-order
    insensitive to the boundary's position, so a fine root search buys nothing). No sign
    change means no exercise on that date: +-inf, which no path crosses.
    """
    mean, scale, coef, valid = fit
    ph = phi[:, None]
    g = 1.0 + _BOUNDARY_GRID * (deepest[:, None] - 1.0)
    logg = np.log(g)
    h = _payoff(g, ph) - _european(ph, g, logg, rate[:, None], vol[:, None], tau[:, None])
    # holding to maturity is always possible, so the continuation value is at least the
    # European value: a negative wiggle of the fitted premium must not create exercise
    h -= np.maximum(_polynomial(coef, (g - mean[:, None]) / scale[:, None]), 0.0)
    positive = h > 0.0
    has = positive.any(axis=1) & valid
    k = positive.argmax(axis=1)
    rows = np.arange(len(phi))
    k0 = np.maximum(k - 1, 0)
    h0, h1 = h[rows, k0], h[rows, k]
    weight = np.where(k > 0, h0 / np.where(k > 0, h0 - h1, 1.0), 0.0)
    xb = g[rows, k0] + weight * (g[rows, k] - g[rows, k0])
    with np.errstate(divide="ignore"):
        return np.where(has, np.log(np.maximum(xb, 1e-300)), phi * np.inf)


def _calibrate(x: np.ndarray, group: _Group, cfg: LsmSettings, every: int) -> np.ndarray:
    """Backward induction on the calibration paths: log boundary per date and option.

    ``x`` holds the moneyness paths (steps, options, paths). Exercise dates are every
    ``every``-th grid date; the other rows of the result are unused.
    """
    n = cfg.time_steps
    phi = group.phi[:, None]
    step = group.t / n
    df = np.exp(-group.rate * step * every)[:, None]
    v = _payoff(x[n - 1], phi)  # cash flow, discounted to the current date
    m = v.copy()  # European value at the exercise time, discounted alike
    log_boundary = np.full((n, len(group.phi)), np.nan)
    log_boundary[n - 1] = 0.0  # at maturity: exercise when in the money
    puts_only = bool(np.all(group.phi < 0.0))
    for j in range(n - 1 - every, -1, -every):  # index j is the date (j + 1) * T / n
        v *= df
        m *= df
        xj = x[j]
        pay = _payoff(xj, phi)
        itm = pay > 0.0
        tau = group.t - (j + 1) * step
        fit = _fit(xj, itm, v - m, cfg.degree)
        deepest = np.min(xj, axis=1, where=itm, initial=1.0)
        if not puts_only:
            deep_call = np.max(xj, axis=1, where=itm, initial=1.0)
            deepest = np.where(group.phi < 0.0, deepest, deep_call)
        lb = _boundary(group.phi, group.rate, group.vol, tau, fit, deepest)
        log_boundary[j] = lb
        exercise = phi * (xj - np.exp(lb)[:, None]) > 0.0  # never: exp(-inf) = 0, exp(inf)
        np.copyto(v, pay, where=exercise)
        # the European value is needed only where a path stops: computing it for those paths
        # alone saves most of the calibration's normal-CDF work
        flat = np.flatnonzero(exercise)
        if len(flat):
            r_idx = flat // xj.shape[1]
            x_ex = xj.reshape(-1)[flat]
            m.reshape(-1)[flat] = _european(
                group.phi[r_idx],
                x_ex,
                np.log(x_ex),
                group.rate[r_idx],
                group.vol[r_idx],
                tau[r_idx],
            )
    return log_boundary


def _stopped_values(
    group: _Group,
    rows: np.ndarray,
    step: np.ndarray,
    tau_index: np.ndarray,
    log_at: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Discounted payoff and discounted European value at each path's exercise date."""
    phi = group.phi[rows][:, None]
    rate = group.rate[rows][:, None]
    vol = group.vol[rows][:, None]
    exercised = tau_index >= 0
    t_ex = (np.maximum(tau_index, 0) + 1) * step[:, None]
    left = group.t[rows][:, None] - t_ex
    x = np.exp(log_at)
    pay = _payoff(x, phi)
    before = exercised & (tau_index < n - 1)
    euro = _european(phi, x, log_at, rate, vol, np.where(before, left, 1.0))
    euro = np.where(before, euro, pay)
    discount = np.exp(-rate * t_ex)
    value = np.where(exercised, pay * discount, 0.0)
    control = np.where(exercised, euro * discount, 0.0)
    return value, control


def _price_block(
    paths: _Paths,
    rows: np.ndarray,
    group: _Group,
    boundaries: list[np.ndarray],
    cfg: LsmSettings,
) -> np.ndarray:
    """(rows, pairs, 2) antithetic-pair averages of (estimate, control) for one block."""
    n = cfg.time_steps
    pairs = cfg.block_pairs
    z = paths.normals(rows, pairs)
    b = len(rows)
    phi = group.phi[rows][:, None]
    sd = paths.sd[rows][:, None]
    step = group.t[rows] / n
    acc = np.zeros((b, pairs))
    lx = np.empty((b, 2 * pairs))
    grids = [
        (every, lb, np.full((b, 2 * pairs), -1), np.zeros((b, 2 * pairs)))
        for every, lb in enumerate(boundaries, start=1)
    ]
    # forward in time: the first date beyond the boundary is the exercise date (the same
    # stopping rule the backward induction applies with fixed boundaries)
    for j in range(n):
        acc += sd * z[:, j, :]
        centre = (paths.logx0[rows] + (j + 1) * paths.mu[rows])[:, None]
        np.add(centre, acc, out=lx[:, :pairs])
        np.subtract(centre, acc, out=lx[:, pairs:])
        for every, lb, tau_index, log_at in grids:
            if (j + 1) % every:
                continue
            newly = phi * (lx - lb[j, rows][:, None]) > 0.0
            newly &= tau_index < 0
            np.copyto(tau_index, j, where=newly)
            np.copyto(log_at, lx, where=newly)
    results = []
    for _every, _lb, tau_index, log_at in grids:
        value, control = _stopped_values(group, rows, step, tau_index, log_at, n)
        results.append((value, control))
    value, control = results[0]
    if cfg.richardson:
        value = 2.0 * value - results[1][0]
        control = 2.0 * control - results[1][1]
    value = 0.5 * (value[:, :pairs] + value[:, pairs:])
    control = 0.5 * (control[:, :pairs] + control[:, pairs:])
    return np.stack([value, control], axis=-1)


class _Moments:
    """Running means and co-moments of (estimate, control) per option, block by block."""

    def __init__(self, size: int) -> None:
        self.n = np.zeros(size)
        self.mean = np.zeros((size, 2))
        self.m2 = np.zeros((size, 2, 2))

    def add(self, rows: np.ndarray, samples: np.ndarray) -> None:
        """Merge a block of samples (rows, pairs, 2) with Chan's update: stable, per row."""
        nb = samples.shape[1]
        bmean = samples.mean(axis=1)
        dev = samples - bmean[:, None, :]
        bm2 = np.empty((len(rows), 2, 2))
        for i in range(2):
            for j in range(2):
                bm2[:, i, j] = (dev[..., i] * dev[..., j]).sum(axis=-1)
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
        """Control-variate estimate and its standard error (optimal coefficient)."""
        n = self.n[rows]
        m2 = self.m2[rows]
        var_c = m2[:, 1, 1]
        beta = np.where(var_c > 0.0, m2[:, 0, 1] / np.where(var_c > 0.0, var_c, 1.0), 0.0)
        estimate = self.mean[rows, 0] - beta * (self.mean[rows, 1] - control_mean)
        resid = np.maximum(m2[:, 0, 0] - 2.0 * beta * m2[:, 0, 1] + beta * beta * var_c, 0.0)
        stderr = np.sqrt(resid / np.maximum(n - 2.0, 1.0) / np.maximum(n, 1.0))
        return estimate, stderr


def _simulate(group: _Group, cfg: LsmSettings) -> tuple[np.ndarray, np.ndarray]:
    """Prices and standard errors (price units) for one chunk of simulated options."""
    size = len(group.phi)
    rows = np.arange(size)
    paths = _Paths(group, cfg.time_steps)
    x = paths.log_paths(rows, cfg.calibration_pairs)
    np.exp(x, out=x)  # moneyness, once for both calibrations
    # the coarse grid gets its own rule: reusing the fine boundary there would be suboptimal
    # for n/2 dates, depress V(n/2) and push the extrapolation above the American price
    boundaries = [_calibrate(x, group, cfg, 1)]
    if cfg.richardson:
        boundaries.append(_calibrate(x, group, cfg, 2))
    del x
    european = np.array(
        [
            black_scholes(p > 0.0, x0, 1.0, r, v, t)
            for p, x0, r, v, t in zip(
                group.phi, group.x0, group.rate, group.vol, group.t, strict=True
            )
        ]
    )
    moments = _Moments(size)
    estimate = np.zeros(size)
    stderr = np.full(size, np.inf)
    # a standard error well below the 0.02 tolerance keeps the mean absolute error small;
    # options with very large prices (the error scales with the strike) may stop at the
    # tolerance after ``soft_pairs``, and nothing runs past ``max_pairs``
    target = cfg.target_error / group.strike
    tolerance = cfg.tolerance / group.strike
    soft_blocks = max(1, math.ceil(cfg.soft_pairs / cfg.block_pairs))
    max_blocks = max(1, math.ceil(cfg.max_pairs / cfg.block_pairs))
    active = rows
    for block in range(1, max_blocks + 1):
        moments.add(active, _price_block(paths, active, group, boundaries, cfg))
        est, se = moments.controlled(active, european[active])
        estimate[active] = est
        stderr[active] = se
        limit = target[active] if block < soft_blocks else tolerance[active]
        active = active[se > limit]
        if len(active) == 0:
            break
    intrinsic = np.maximum(group.phi * (group.x0 - 1.0), 0.0)
    return np.maximum(estimate, intrinsic) * group.strike, stderr * group.strike


def chunk_size(cfg: LsmSettings = DEFAULT_SETTINGS) -> int:
    """Options per vectorised chunk: the calibration paths dominate memory."""
    per_option = cfg.time_steps * 2 * cfg.calibration_pairs * 8 * 2  # paths + normals/temps
    return max(1, int(cfg.memory_budget_bytes // per_option))


def price_lsm(options: Sequence[OptionSpec], settings: LsmSettings | None = None) -> list[Quote]:
    """Price a batch; a bad row becomes that row's error quote, never an exception."""
    cfg = settings or DEFAULT_SETTINGS
    quotes: list[Quote | None] = [None] * len(options)
    simulated: list[int] = []
    for i, spec in enumerate(options):
        try:
            problem = _check(spec)
            if problem is not None:
                quotes[i] = Quote(price=None, error=problem)
                continue
            if spec.maturity <= spec.today:
                # QuantLib values an option expiring on or before the evaluation date at 0
                quotes[i] = Quote(price=0.0, std_error=0.0)
                continue
            t = _year_fraction(spec.settlement, spec.maturity)
            sign = 1.0 if spec.is_call else -1.0
            intrinsic = max(sign * (spec.spot - spec.strike), 0.0)
            if spec.is_call and spec.rate >= 0.0:
                price = black_scholes(True, spec.spot, spec.strike, spec.rate, spec.volatility, t)
                quotes[i] = Quote(price=max(price, intrinsic), std_error=0.0)
            elif spec.volatility == 0.0 or spec.spot == 0.0:
                # a deterministic path: the discounted payoff along the forward is monotone in
                # time, so exercising now or at maturity is optimal
                terminal = black_scholes(spec.is_call, spec.spot, spec.strike, spec.rate, 0.0, t)
                quotes[i] = Quote(price=max(terminal, intrinsic), std_error=0.0)
            else:
                simulated.append(i)
        except Exception as exc:  # one bad row must not sink the batch
            quotes[i] = Quote(price=None, error=f"pricing failed: {exc}")

    size = chunk_size(cfg)
    for start in range(0, len(simulated), size):
        chunk = simulated[start : start + size]
        specs = [options[i] for i in chunk]
        try:
            group = _Group(
                phi=np.array([1.0 if s.is_call else -1.0 for s in specs]),
                x0=np.array([s.spot / s.strike for s in specs], dtype=np.float64),
                strike=np.array([s.strike for s in specs], dtype=np.float64),
                rate=np.array([s.rate for s in specs], dtype=np.float64),
                vol=np.array([s.volatility for s in specs], dtype=np.float64),
                t=np.array([_year_fraction(s.settlement, s.maturity) for s in specs]),
                seeds=[s.seed() for s in specs],
            )
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                prices, errors = _simulate(group, cfg)
        except Exception as exc:  # report per option rather than raise
            for i in chunk:
                quotes[i] = Quote(price=None, error=f"pricing failed: {exc}")
            continue
        for i, p, se in zip(chunk, prices, errors, strict=True):
            if math.isfinite(p) and math.isfinite(se):
                quotes[i] = Quote(price=float(p), std_error=float(se))
            else:
                quotes[i] = Quote(price=None, error="pricing failed: the simulation overflowed")
    return [q if q is not None else Quote(price=None, error="not priced") for q in quotes]
