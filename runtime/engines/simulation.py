"""The simulation: the lattice's Bermudan rule on independent paths, with a martingale control
and, on request, the dual (upper) bound from the same martingale.

Per option (units of the strike), blocks of antithetic pairs of exact GBM paths on the dates
``T/n .. T``:

- **primal**: the rule from the lattice (``Lattice.thresholds``) stops each path at its first
  date in the exercise region; ``Y = e^{-r tau} payoff(tau)``. Any fixed rule is feasible, so
  ``E[Y]`` is a lower bound of the Bermudan, hence of the American value.
- **martingale control**: ``C = (D(tau) - D(0)) + M(tau)``, ``D`` the discounted European value
  (exact) and ``M`` the sum of ``c1 He1(Z) + c2 He2(Z) + c3 He3(Z)`` over the steps, where ``Z``
  is the path's own normalised Brownian increment and ``c`` the lattice's Hermite
  coefficients of the Bermudan's premium over the European (``Lattice.premium``) at the
  path's node. Hermite polynomials of a fresh standard normal have conditional mean 0, so
  ``E[C] = 0`` exactly (optional stopping, ``tau <= T``) whatever the coefficients' quality;
  the estimator ``mean(Y - C)`` is unbiased for the rule's value, and its variance is what the
  lattice's value function does not explain (a median standard error of 0.00008 for 0.11
  without control, 1,024 pairs on the tuning set: docs/engines.md).
- **dual** (``bounds``): with ``M_V`` the same martingale built from the Bermudan's value itself
  (Hermite on every step but the last, the exact European over the last),
  ``E[max_k (Z_k - M_V(k))]`` over the dates ``0, T/n .. T`` is an upper bound of the Bermudan
  with those dates (Rogers 2002; Andersen and Broadie 2004).

Every option draws from its own generator; block sizes never depend on the other options and
every reduction runs along the option's own row, so the numbers do not depend on the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.engines.closed_forms import bsm
from runtime.engines.lattice import Lattice, Market


@dataclass
class Budget:
    """How long each option is simulated (strike units): blocks of ``block_pairs`` pairs
    until the standard error is at most ``target`` (after ``min_blocks``), at most
    ``max_blocks``. Block sizes never depend on the other options."""

    block_pairs: int
    max_blocks: int
    target: np.ndarray
    min_blocks: int = 1


@dataclass
class Simulated:
    """Per option: the rule's value and its standard error; the dual bound's, with bounds."""

    estimate: np.ndarray
    std_error: np.ndarray
    pairs: np.ndarray
    dual: np.ndarray | None = None
    dual_error: np.ndarray | None = None


class _Running:
    """Mean and sum of squared deviations per option, merged block by block (Chan et al.)."""

    def __init__(self, size: int) -> None:
        self.n = np.zeros(size)
        self.mean = np.zeros(size)
        self.m2 = np.zeros(size)

    def add(self, rows: np.ndarray, samples: np.ndarray) -> None:
        count = samples.shape[1]
        mean = samples.mean(axis=1)
        m2 = ((samples - mean[:, None]) ** 2).sum(axis=1)
        before = self.n[rows]
        total = before + count
        delta = mean - self.mean[rows]
        self.mean[rows] += delta * (count / total)
        self.m2[rows] += m2 + delta * delta * (before * count / total)
        self.n[rows] = total

    def std_error(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.n - 1.0, 1.0) / np.maximum(self.n, 1.0))


def _martingale(
    table: np.ndarray,
    offsets: np.ndarray,
    scale: float,
    m: int,
    w_before: np.ndarray,
    z: np.ndarray,
) -> np.ndarray:
    """Cumulative ``c1 He1(Z) + c2 He2(Z) + c3 He3(Z)`` after each step (rows, steps, paths).

    ``table`` is (3, rows, steps, width): step k's coefficients on date k's ``k m + 1`` nodes,
    interpolated linearly at each path's node ``offsets[:, k] + scale W_k``; ``w_before`` is
    W at the start of each step and ``z`` the step's increment (a fresh standard normal, so
    every term has conditional mean 0 whatever the coefficients).
    """
    rows, steps, _ = z.shape
    width = table.shape[3]
    f = offsets[:, :steps, None] + scale * w_before
    top = (np.arange(steps) * m)[None, :, None] - 1e-9  # the last node of date k
    np.clip(f, 0.0, np.maximum(top, 0.0), out=f)
    i0 = f.astype(np.int64)
    f -= i0
    i0 += ((np.arange(rows)[:, None] * steps + np.arange(steps)[None, :]) * width)[..., None]
    flat = table.reshape(3, -1)
    z2 = z * z
    coefficient = []
    for p in range(3):
        low = np.take(flat[p], i0)
        high = np.take(flat[p], i0 + 1, mode="clip")
        high -= low
        high *= f
        low += high
        coefficient.append(low)
    # c1 z + c2 (z^2 - 1) + c3 (z^3 - 3 z)
    out = z2 - 3.0
    out *= coefficient[2]
    out += coefficient[0]
    out *= z
    z2 -= 1.0
    z2 *= coefficient[1]
    out += z2
    return np.cumsum(out, axis=1, out=out)


def _block(
    m: Market,
    rows: np.ndarray,
    lattice: Lattice,
    z: np.ndarray,
    bounds: bool,
    euro0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pair averages of ``Y - C`` (rows, pairs), and of the dual's maximum with bounds."""
    b, dates, pairs = z.shape
    phi = m.phi[rows][:, None]
    dt_date = (m.t[rows] / dates)[:, None]
    sd = m.vol[rows][:, None] * np.sqrt(dt_date)
    mu = (m.rate[rows] - m.div[rows] - 0.5 * m.vol[rows] ** 2)[:, None]
    lx0 = np.log(m.x0[rows])[:, None]
    zz = np.concatenate([z, -z], axis=2)  # a path and its antithetic twin
    w = np.cumsum(zz, axis=1)  # W at dates 1 .. n
    steps = dates - 1  # the steps with a premium (the last one has none)
    w_before = np.concatenate([np.zeros((b, 1, 2 * pairs)), w[:, : steps - 1]], axis=1)
    offsets = lattice.offsets[rows]
    scale, per_date = lattice.index_scale, lattice.steps_per_date
    martingale = np.zeros((b, dates, 2 * pairs))
    if steps > 0:
        table = lattice.premium[:, rows]
        martingale[:, :steps] = _martingale(
            table, offsets, scale, per_date, w_before, zz[:, :steps]
        )
        martingale[:, steps] = martingale[:, steps - 1]
    crossed = phi[:, :, None] * w > lattice.thresholds[rows][:, :, None]
    first = np.argmax(crossed, axis=1)
    hit = np.take_along_axis(crossed, first[:, None, :], axis=1)[:, 0, :]
    at = np.where(hit, first, dates - 1)[:, None, :]
    stop_w = np.take_along_axis(w, at, axis=1)[:, 0, :]
    stop_m = np.take_along_axis(martingale, at, axis=1)[:, 0, :]
    stop_k = at[:, 0, :] + 1
    # the discounted payoff minus the control: for a path that runs to maturity, the payoff
    # and the European control cancel; for one stopped early, payoff minus European value
    early = stop_k < dates
    adj = euro0[:, None] - stop_m
    if early.any():
        r_idx = np.nonzero(early)[0]
        t_stop = stop_k[early] * dt_date[r_idx, 0]
        le = lx0[r_idx, 0] + mu[r_idx, 0] * t_stop + sd[r_idx, 0] * stop_w[early]
        (euro,) = bsm(
            m.phi[rows][r_idx],
            np.exp(le),
            le,
            m.rate[rows][r_idx],
            m.div[rows][r_idx],
            m.vol[rows][r_idx],
            m.t[rows][r_idx] - t_stop,
        )
        pay = np.maximum(m.phi[rows][r_idx] * np.expm1(le), 0.0)
        adj[early] += (pay - euro) * np.exp(-m.rate[rows][r_idx] * t_stop)
    primal = 0.5 * (adj[:, :pairs] + adj[:, pairs:])
    if not bounds:
        return primal, None
    return primal, _dual(m, rows, lattice, zz, w, w_before, pairs)


def _dual(
    m: Market,
    rows: np.ndarray,
    lattice: Lattice,
    zz: np.ndarray,
    w: np.ndarray,
    w_before: np.ndarray,
    pairs: int,
) -> np.ndarray:
    """Pair averages of ``max_k (Z_k - M_V(k))`` over the dates 0 .. n, ``M_V`` built from the
    Bermudan's value (Hermite on every step but the last, the exact European over it)."""
    b, dates, _ = zz.shape
    phi = m.phi[rows][:, None]
    rate = m.rate[rows][:, None]
    dt_date = (m.t[rows] / dates)[:, None]
    sd = m.vol[rows][:, None] * np.sqrt(dt_date)
    mu = (m.rate[rows] - m.div[rows] - 0.5 * m.vol[rows] ** 2)[:, None]
    lx0 = np.log(m.x0[rows])[:, None]
    steps = dates - 1
    martingale = np.zeros((b, dates, 2 * pairs))
    if steps > 0 and lattice.value is not None:
        table = lattice.value[:, rows]
        martingale[:, :steps] = _martingale(
            table,
            lattice.offsets[rows],
            lattice.index_scale,
            lattice.steps_per_date,
            w_before,
            zz[:, :steps],
        )
        martingale[:, steps] = martingale[:, steps - 1]
    k = np.arange(1, dates + 1)[None, :, None]
    lx = lx0[:, :, None] + mu[:, :, None] * (k * dt_date[:, :, None]) + sd[:, :, None] * w
    discount = np.exp(-rate[:, :, None] * (k * dt_date[:, :, None]))
    payoff = np.maximum(phi[:, :, None] * np.expm1(lx), 0.0) * discount
    # the last step's exact European increment: payoff at T minus the European value before
    last = lx[:, -2] if dates > 1 else np.repeat(lx0, 2 * pairs, axis=1)
    (euro,) = bsm(
        phi, np.exp(last), last, rate, m.div[rows][:, None], m.vol[rows][:, None], dt_date
    )
    before = np.exp(-rate * ((dates - 1) * dt_date))
    martingale[:, -1] += payoff[:, -1] - before * euro
    payoff -= martingale
    intrinsic = np.maximum(phi * (m.x0[rows][:, None] - 1.0), 0.0)  # exercise at once
    best = np.maximum(payoff.max(axis=1), intrinsic)
    return 0.5 * (best[:, :pairs] + best[:, pairs:])


class _Sampler:
    """Per-option generators: each option consumes its own stream block by block."""

    def __init__(self, seeds: list[int]) -> None:
        self.gens = [np.random.Generator(np.random.SFC64(seed)) for seed in seeds]

    def normals(self, rows: np.ndarray, dates: int, pairs: int) -> np.ndarray:
        z = np.empty((len(rows), dates, pairs))
        for k, row in enumerate(rows):
            self.gens[row].standard_normal(out=z[k])
        return z


def simulate(
    market: Market,
    lattice: Lattice,
    seeds: list[int],
    dates: int,
    budget: Budget,
    bounds: bool,
) -> Simulated:
    """Blocks of paths per option until its standard error meets ``budget.target`` (after
    ``min_blocks``) or its ``max_blocks`` are spent."""
    size = len(market)
    (euro0,) = bsm(
        market.phi, market.x0, np.log(market.x0), market.rate, market.div, market.vol, market.t
    )
    primal = _Running(size)
    dual = _Running(size) if bounds else None
    sampler = _Sampler(seeds)
    active = np.arange(size)
    block = 0
    while len(active):
        block += 1
        z = sampler.normals(active, dates, budget.block_pairs)
        samples, upper = _block(market, active, lattice, z, bounds, euro0[active])
        primal.add(active, samples)
        if dual is not None and upper is not None:
            dual.add(active, upper)
        se = primal.std_error()[active]
        done = (se <= budget.target[active]) & (block >= budget.min_blocks)
        done |= (block >= budget.max_blocks) | ~np.isfinite(se)
        active = active[~done]
    return Simulated(
        estimate=primal.mean,
        std_error=primal.std_error(),
        pairs=primal.n,
        dual=None if dual is None else dual.mean,
        dual_error=None if dual is None else dual.std_error(),
    )
