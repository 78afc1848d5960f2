"""The default engine's price, error bar and bounds for options that need more than a closed
form, per unit of strike and vectorised over a chunk (docs/engines.md).

**Simulated** (``sigma^2 T`` below ``simulate_below``):

    price = simulated Bermudan + (lattice American - lattice Bermudan)

The simulation is unbiased for the value of the lattice's rule on the dates; the lattice
(BBSR) supplies the American's premium over that Bermudan, which the dates cannot see. The
error bar is

    stdError^2 = noise^2 + spread^2 + max(0, disagreement^2 - 9 noise^2)

with ``noise`` the simulation's standard error, ``spread`` how far the lattice's correction
moved between ``N/2`` and ``N`` steps, and ``disagreement`` the simulated minus the lattice's
Bermudan: both measure the same value, so a disagreement beyond three noise standard errors
is an error of the lattice (or of its rule) that the correction may carry into the price. A
row whose bar is above ``refine_above`` targets and is the lattice's, not the noise's, is
priced again on a lattice twice as fine (``simulated``).

**Lattice only** (larger ``sigma^2 T``, up to the validated 5^2 x 50 = 1,250): the smoothed
tree's BBSR value over at most ``horizon_variance / sigma^2`` years. A longer American option
is worth at least the shorter one and at most the perpetual one, so a truncated horizon
contributes half the interval between them to the price and to the bar. The tree's error is
estimated as the change of the BBSR value between ``N/2`` and ``N`` steps.

Every price is kept within ``closed_forms.price_limits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.engines.closed_forms import bsm, price_limits
from runtime.engines.lattice import Market, american, corrections, exercise_lattice
from runtime.engines.lsm_settings import LsmSettings
from runtime.engines.simulation import Budget, Simulated, simulate

PRECISION = 1e-15  # of max(spot, strike): the floor of any estimate's error bar


@dataclass
class Estimate:
    """Per option, in units of the strike."""

    price: np.ndarray
    std_error: np.ndarray
    noise: np.ndarray  # the simulation's standard error (0 for the lattice only)
    lattice_error: np.ndarray  # what the bar holds beyond the noise
    low: np.ndarray | None = None  # with bounds
    high: np.ndarray | None = None


def _limits(market: Market) -> tuple[np.ndarray, np.ndarray]:
    m = market
    (euro,) = bsm(m.phi, m.x0, np.log(m.x0), m.rate, m.div, m.vol, m.t)
    return price_limits(m.phi, m.x0, m.rate, m.div, m.vol, m.t, euro)


def simulated(
    market: Market,
    seeds: list[int],
    target: np.ndarray,
    tolerance: np.ndarray,
    dates: int,
    cfg: LsmSettings,
    bounds: bool,
) -> Estimate:
    """One chunk of options that share their number of exercise dates.

    A row whose bar is the lattice's, not the noise's, and above ``refine_above`` targets,
    gets its correction from a lattice twice as fine (the simulation is kept: its rule and
    control came from the coarser lattice, which only makes them slightly less efficient),
    up to ``refine_lattice_steps``; while it is above its tolerance, up to
    ``max_lattice_steps``.

    A row still above its tolerance whose bar is the disagreement between the simulated and
    the lattice's Bermudan (a long-dated option deep in the money at a high rate, whose
    lattice Bermudan converges erratically) takes the lattice's American value from its
    finest lattice, with the change of that value from the previous lattice as its bar
    (``lattice_only``'s estimate of a tree's error).
    """
    m = cfg.steps_for(dates)
    lattice = exercise_lattice(market, dates, m, values=bounds)
    budget = Budget(
        block_pairs=cfg.block_pairs,
        max_blocks=max(1, cfg.work_budget // (2 * cfg.block_pairs * dates)),
        # noise far below the lattice's own spread would not shrink the bar: stop at half
        target=np.maximum(target, 0.5 * lattice.spread),
        min_blocks=cfg.min_blocks,
    )
    sim = simulate(market, lattice, seeds, dates, budget, bounds)
    american, bermudan, spread = lattice.american, lattice.bermudan, lattice.spread
    raw = lattice.raw
    est = _assemble(market, sim, american, bermudan, spread, cfg, bounds)
    previous = np.full(len(market), np.nan)  # the American value one lattice coarser
    while 2 * m * dates <= cfg.max_lattice_steps:
        finer_steps = 2 * m * dates
        above = est.std_error > tolerance
        if finer_steps <= cfg.refine_lattice_steps:
            above |= est.std_error > cfg.refine_above * target
        redo = above & (est.lattice_error > est.noise)
        if not redo.any():
            break
        m *= 2
        rows = np.flatnonzero(redo)
        previous[rows] = american[rows]
        american, bermudan, spread = american.copy(), bermudan.copy(), spread.copy()
        half = (raw[0][rows], raw[1][rows])
        american[rows], bermudan[rows], spread[rows], finer = corrections(
            market.take(rows), dates, m, half
        )
        raw = (raw[0].copy(), raw[1].copy())
        raw[0][rows], raw[1][rows] = finer
        est = _assemble(market, sim, american, bermudan, spread, cfg, bounds)
    stuck = (est.std_error > tolerance) & (est.lattice_error > est.noise) & np.isfinite(previous)
    if stuck.any():
        _lattice_american(market, est, stuck, american, np.abs(american - previous), cfg, bounds)
    return est


def _lattice_american(
    market: Market,
    est: Estimate,
    rows: np.ndarray,
    american: np.ndarray,
    tree_error: np.ndarray,
    cfg: LsmSettings,
    bounds: bool,
) -> None:
    """Replace ``rows`` of ``est`` by the lattice's American value and its tree error."""
    lower, upper = _limits(market)
    price = np.clip(american, lower, upper)
    bar = np.maximum(tree_error, PRECISION * np.maximum(market.x0, 1.0))
    est.price[rows] = price[rows]
    est.std_error[rows] = bar[rows]
    est.lattice_error[rows] = bar[rows]
    if bounds and est.low is not None and est.high is not None:
        z = cfg.confidence
        est.low[rows] = np.minimum(np.maximum(price - z * bar, lower), price)[rows]
        est.high[rows] = np.maximum(np.minimum(price + z * bar, upper), price)[rows]


def _assemble(
    market: Market,
    sim: Simulated,
    american: np.ndarray,
    bermudan: np.ndarray,
    spread: np.ndarray,
    cfg: LsmSettings,
    bounds: bool,
) -> Estimate:
    lower, upper = _limits(market)
    correction = american - bermudan
    price = np.clip(sim.estimate + correction, lower, upper)
    noise = sim.std_error
    disagreement = sim.estimate - bermudan
    excess = np.maximum(disagreement**2 - (cfg.excess_sigmas * noise) ** 2, 0.0)
    lattice_error = np.sqrt((cfg.spread_weight * spread) ** 2 + excess)
    out = Estimate(
        price=price,
        # never below the arithmetic's precision: an estimate is not exact
        std_error=np.maximum(
            np.sqrt(noise**2 + lattice_error**2), PRECISION * np.maximum(market.x0, 1.0)
        ),
        noise=noise,
        lattice_error=lattice_error,
    )
    if bounds and sim.dual is not None and sim.dual_error is not None:
        z = cfg.confidence
        # the rule's value on independent paths is a lower bound of the Bermudan, hence of
        # the American; the dual bounds the Bermudan (dates 0, T/n .. T) from above, and the
        # lattice's American-Bermudan difference carries it to the American
        out.low = np.minimum(np.maximum(sim.estimate - z * noise, lower), price)
        high = sim.dual + np.maximum(correction, 0.0) + z * np.sqrt(sim.dual_error**2 + spread**2)
        out.high = np.maximum(np.minimum(high, upper), price)
    return out


def lattice_horizon(market: Market, cfg: LsmSettings) -> np.ndarray:
    """Years the lattice-only estimate looks ahead: at most ``horizon_variance / sigma^2``
    where a perpetual option bounds the value from above (puts with r > 0, calls with q > 0);
    elsewhere the whole maturity."""
    perpetual = np.where(market.phi > 0.0, market.div > 0.0, market.rate > 0.0)
    cut = np.minimum(market.t, cfg.horizon_variance / market.vol**2)
    return np.where(perpetual, cut, market.t)


def lattice_only(market: Market, cfg: LsmSettings, bounds: bool) -> Estimate:
    """The smoothed tree alone, over ``lattice_horizon``."""
    horizon = lattice_horizon(market, cfg)
    near = market.with_(t=horizon)
    n = cfg.lattice_steps
    fine, half, quarter = (american(near, steps) for steps in (n, n // 2, n // 4))
    value = 2.0 * fine - half
    tree_error = np.abs(value - (2.0 * half - quarter))
    lower, upper = _limits(market)
    truncated = horizon < market.t
    gap = np.where(truncated, np.maximum(upper - value, 0.0), 0.0)
    price = np.clip(value + 0.5 * gap, lower, upper)
    lattice_error = np.sqrt(tree_error**2 + (0.5 * gap) ** 2)
    out = Estimate(
        price=price,
        std_error=np.maximum(lattice_error, PRECISION * np.maximum(market.x0, 1.0)),
        noise=np.zeros(len(market)),
        lattice_error=lattice_error,
    )
    if bounds:
        z = cfg.confidence
        out.low = np.minimum(np.maximum(value - z * tree_error, lower), price)
        out.high = np.maximum(np.minimum(value + gap + z * tree_error, upper), price)
    return out
