"""Greeks of American options from the lattice (the default engine's simulated options).

Pathwise Monte Carlo Greeks hold the exercise rule fixed, which is right away from the
exercise boundary and wrong near it: a deep in-the-money short-dated option that the
American holder exercises now, or within days, is exercised by the simulation's Bermudan only
at its first date (issue 19: theta of the wrong sign, vega 31-54 % high, rho up to 121 % off).
The lattice re-optimises the exercise decision at every node, in every bumped market, so:

- theta comes from the nodes around the spot of a tree started two steps before the
  valuation date (``lattice.american_greeks``), read off the tree;
- delta, gamma, vega and rho are central differences of the tree's American value in bumped
  markets (spot +-0.5 %; volatility +-1 % of itself, at least +-0.001; rate +-0.001, at most
  half its distance to 0, where the American value has a kink), each tree re-deciding
  exercise. At the exercise boundary gamma jumps (0 inside the exercise region): a bump of
  the spot straddles it as the reference's does, where the nodes around the spot straddle it
  by a distance that depends on the tree (gamma 0.0059 for 0.0016 on a 2-month put 31 % in
  the money; the bumps give 0.0018).

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

SPOT_BUMP = 0.005  # relative
VOL_BUMP = 0.01  # relative
MIN_VOL_BUMP = 0.001
RATE_BUMP = 0.001
STEPS = 768


def _rate_step(rate: np.ndarray) -> np.ndarray:
    step = np.full_like(rate, RATE_BUMP)
    near_zero = (rate != 0.0) & (np.abs(rate) < 2.0 * RATE_BUMP)
    return np.where(near_zero, np.maximum(np.abs(rate) / 2.0, 1e-5), step)


def lattice_greeks(market: Market, steps: int = STEPS) -> dict[str, np.ndarray]:
    """delta, gamma, vega, theta and rho per unit of strike, on ``steps`` steps."""
    _, _, _, theta = american_greeks(market, steps)
    hv = np.maximum(VOL_BUMP * market.vol, MIN_VOL_BUMP)
    hv = np.minimum(hv, 0.5 * market.vol)
    hr = _rate_step(market.rate)
    hs = SPOT_BUMP * market.x0
    bumped = market.with_(x0=market.x0 + hs).stack(
        market.with_(x0=market.x0 - hs),
        market,
        market.with_(vol=market.vol + hv),
        market.with_(vol=market.vol - hv),
        market.with_(rate=market.rate + hr),
        market.with_(rate=market.rate - hr),
    )
    up_s, down_s, mid, up_v, down_v, up_r, down_r = np.split(american(bumped, steps), 7)
    return {
        "delta": (up_s - down_s) / (2.0 * hs),
        "gamma": (up_s - 2.0 * mid + down_s) / (hs * hs),
        "vega": (up_v - down_v) / (2.0 * hv),
        "theta": theta,
        "rho": (up_r - down_r) / (2.0 * hr),
    }
