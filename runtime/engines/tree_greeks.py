"""Greeks of American options from the lattice (the default engine's simulated options).

Pathwise Monte Carlo Greeks hold the exercise rule fixed, which is right away from the
exercise boundary and wrong near it: a deep in-the-money short-dated option that the
American holder exercises now, or within days, is exercised by the simulation's Bermudan only
at its first date (issue 19: theta of the wrong sign, vega 31-54 % high, rho up to 121 % off).
The lattice re-optimises the exercise decision at every node, in every bumped market, so:

- delta, gamma and theta come from the nodes around the spot of a tree started two steps
  before the valuation date (``lattice.american_greeks``), theta read off the tree;
- vega and rho are central differences of the tree's American value in bumped markets
  (volatility +-1 % of itself, at least +-0.001; rate +-0.001, at most half its distance to 0,
  where the American value has a kink), each tree re-deciding exercise.

All on ``STEPS`` = 768 steps of the smoothed tree, without Richardson extrapolation: near the
boundary a tree's Greeks oscillate with the boundary's place among the nodes, and
extrapolation doubles the oscillation (theta of a 3-month call 48 % in the money with a
7.6 % yield: -2.44 extrapolated from 384 steps, -2.73 plain, reference -2.80); a bumped
tree's smooth error is nearly the unbumped one's and cancels in the difference. Measured on
the benchmark's boundary set and the dividend book against bumped QD+ (docs/engines.md).

Units: per unit of strike here; ``lsm`` scales them to QuantLib's conventions.
"""

from __future__ import annotations

import numpy as np

from runtime.engines.lattice import Market, american, american_greeks

VOL_BUMP = 0.01  # relative
MIN_VOL_BUMP = 0.001
RATE_BUMP = 0.001
STEPS = 768


def _rate_step(rate: np.ndarray) -> np.ndarray:
    step = np.full_like(rate, RATE_BUMP)
    near_zero = (rate != 0.0) & (np.abs(rate) < 2.0 * RATE_BUMP)
    return np.where(near_zero, np.maximum(np.abs(rate) / 2.0, 1e-5), step)


def lattice_greeks(market: Market, steps: int = STEPS) -> dict[str, np.ndarray]:
    """delta, gamma, vega, theta and rho per unit of strike, on ``steps`` steps.

    An option the tree exercises now is in the exercise region, where its value is the
    payoff in a whole neighbourhood: its Greeks are the payoff's (delta +-1, the rest 0), as
    ``qdfp``'s; the nodes around the spot would straddle the boundary.
    """
    value, delta, gamma, theta = american_greeks(market, steps)
    hv = np.maximum(VOL_BUMP * market.vol, MIN_VOL_BUMP)
    hv = np.minimum(hv, 0.5 * market.vol)
    hr = _rate_step(market.rate)
    bumped = market.with_(vol=market.vol + hv).stack(
        market.with_(vol=market.vol - hv),
        market.with_(rate=market.rate + hr),
        market.with_(rate=market.rate - hr),
    )
    values = american(bumped, steps)
    up_v, down_v, up_r, down_r = np.split(values, 4)
    intrinsic = np.maximum(market.phi * (market.x0 - 1.0), 0.0)
    now = (intrinsic > 0.0) & (value <= intrinsic * (1.0 + 1e-12))
    zero = np.where(now, 0.0, 1.0)
    return {
        "delta": np.where(now, market.phi, delta),
        "gamma": gamma * zero,
        "vega": (up_v - down_v) / (2.0 * hv) * zero,
        "theta": theta * zero,
        "rho": (up_r - down_r) / (2.0 * hr) * zero,
    }
