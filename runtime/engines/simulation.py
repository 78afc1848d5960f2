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
  lattice's value function does not explain (25 to 1,000 times less than ``Y``'s).
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
    """How long each option is simulated (strike units).

    Block ``b`` (1-based) has ``first_pairs * 2^max(0, b - 2)`` pairs, at most ``max_pairs``:
    few blocks for an option that needs many paths (each block costs a fixed Python
    overhead per date), one small block for the many that need few. A block's size depends
    on its index only, so an option's paths never depend on the other options.
    """

    first_pairs: int
    max_pairs: int  # largest block
    work: int  # path-dates per option (2 paths per pair): the time budget
    target: np.ndarray  # stop once the standard error is at most this
    min_blocks: int = 1

    def block(self, index: int) -> int:
        return min(self.max_pairs, self.first_pairs << max(0, index - 2))

    def blocks(self, dates: int) -> int:
        """How many blocks fit in the work budget (at least one)."""
        spent, count = 0, 0
        while True:
            spent += 2 * dates * self.block(count + 1)
            if spent > self.work and count:
                return count
            count += 1


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


def _gather(table: np.ndarray, offset: np.ndarray, scale: float, w: np.ndarray) -> np.ndarray:
    """Coefficients (3, rows, paths) at each path's node, interpolated linearly.

    ``table`` is (3, rows, nodes); the path's node index is ``offset + scale W``.
    """
    nodes = table.shape[2]
    if nodes == 1:  # the valuation date: every path is at the one node
        return table[:, :, :1]
    f = offset[:, None] + scale * w
    np.clip(f, 0.0, nodes - 1.000001, out=f)
    i0 = f.astype(np.int64)
    f -= i0
    i0 += (np.arange(table.shape[1]) * nodes)[:, None]
    flat = table.reshape(3, -1)
    low = flat[:, i0]
    high = flat[:, i0 + 1]
    high -= low
    high *= f
    low += high
    return low


def _hermite(c: np.ndarray, z: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """c1 z + c2 (z^2 - 1) + c3 (z^3 - 3 z): zero conditional mean for a fresh normal z."""
    out = z2 - 3.0
    out *= c[2]
    out += c[0]
    out *= z
    second = z2 - 1.0
    second *= c[1]
    out += second
    return out


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
    both = 2 * pairs
    phi = m.phi[rows][:, None]
    rate = m.rate[rows][:, None]
    dt_date = (m.t[rows] / dates)[:, None]
    sd = m.vol[rows][:, None] * np.sqrt(dt_date)
    mu = (m.rate[rows] - m.div[rows] - 0.5 * m.vol[rows] ** 2)[:, None]
    lx0 = np.log(m.x0[rows])[:, None]
    thresholds = lattice.thresholds[rows]
    offsets = lattice.offsets[rows]
    premium = [table[:, rows] for table in lattice.premium]
    values = [table[:, rows] for table in lattice.value] if bounds else []
    w = np.zeros((b, both))
    martingale = np.zeros((b, both))
    alive = np.ones((b, both), dtype=bool)
    stop_w = np.zeros((b, both))
    stop_m = np.zeros((b, both))
    stop_k = np.full((b, both), dates, dtype=np.int64)
    dual = dual_m = None
    if bounds:
        intrinsic = np.maximum(phi * (m.x0[rows][:, None] - 1.0), 0.0)
        dual = np.repeat(intrinsic, both, axis=1)  # exercise at once is allowed
        dual_m = np.zeros((b, both))
    zk = np.empty((b, both))
    for k in range(dates):
        zk[:, :pairs] = z[:, k]
        np.negative(z[:, k], out=zk[:, pairs:])  # the antithetic twin
        z2 = zk * zk
        last = k == dates - 1
        if not last:
            c = _gather(premium[k], offsets[:, k], lattice.index_scale, w)
            martingale += _hermite(c, zk, z2)
            if bounds:
                c = _gather(values[k], offsets[:, k], lattice.index_scale, w)
                dual_m += _hermite(c, zk, z2)
        elif bounds:  # the last step's exact European increment, from before the step
            lx = lx0 + mu * (k * dt_date) + sd * w
            vol = m.vol[rows][:, None]
            (euro,) = bsm(phi, np.exp(lx), lx, rate, m.div[rows][:, None], vol, dt_date)
            dual_m -= np.exp(-rate * (k * dt_date)) * euro
        w += zk
        crossed = phi * w > thresholds[:, k][:, None]
        crossed &= alive
        np.copyto(stop_w, w, where=crossed)
        np.copyto(stop_m, martingale, where=crossed)
        stop_k[crossed] = k + 1
        alive &= ~crossed
        if bounds:
            lx = lx0 + mu * ((k + 1) * dt_date) + sd * w
            pay = np.maximum(phi * np.expm1(lx), 0.0) * np.exp(-rate * ((k + 1) * dt_date))
            if last:
                dual_m += pay
            pay -= dual_m
            np.maximum(dual, pay, out=dual)
    # after the last date: every path still alive is out of the money at maturity, Y = 0
    np.copyto(stop_m, martingale, where=alive)
    early = stop_k < dates
    t_stop = stop_k * dt_date
    lx = lx0 + mu * t_stop + sd * stop_w
    adj = euro0[:, None] - stop_m
    if early.any():
        r_idx = np.nonzero(early)[0]
        le = lx[early]
        tau = (m.t[rows][r_idx]) - t_stop[early]
        (euro,) = bsm(
            m.phi[rows][r_idx],
            np.exp(le),
            le,
            m.rate[rows][r_idx],
            m.div[rows][r_idx],
            m.vol[rows][r_idx],
            tau,
        )
        pay = np.maximum(m.phi[rows][r_idx] * np.expm1(le), 0.0)
        adj[early] += (pay - euro) * np.exp(-m.rate[rows][r_idx] * t_stop[early])
    primal = 0.5 * (adj[:, :pairs] + adj[:, pairs:])
    upper = 0.5 * (dual[:, :pairs] + dual[:, pairs:]) if bounds else None
    return primal, upper


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
    last = budget.blocks(dates)
    while len(active):
        block += 1
        z = sampler.normals(active, dates, budget.block(block))
        samples, upper = _block(market, active, lattice, z, bounds, euro0[active])
        primal.add(active, samples)
        if dual is not None and upper is not None:
            dual.add(active, upper)
        se = primal.std_error()[active]
        done = (se <= budget.target[active]) & (block >= budget.min_blocks)
        done |= (block >= last) | ~np.isfinite(se)
        active = active[~done]
    return Simulated(
        estimate=primal.mean,
        std_error=primal.std_error(),
        pairs=primal.n,
        dual=None if dual is None else dual.mean,
        dual_error=None if dual is None else dual.std_error(),
    )
