"""Greeks of American options from the lattice (the default engine's simulated options).

Pathwise Monte Carlo Greeks hold the exercise rule fixed, which is right away from the
exercise boundary and wrong near it: a deep in-the-money short-dated option that the
American holder exercises now, or within days, is exercised by the simulation's Bermudan only
at its first date (issue 19: theta of the wrong sign, vega 31-54 % high, rho up to 121 % off).
The lattice re-optimises the exercise decision at every node, in every bumped market, so:

- delta, gamma and theta come from the nodes around the spot of a tree started two steps
  before the valuation date (``lattice.american_greeks``), theta read off the tree, all
  Richardson-extrapolated over ``N`` and ``N/2`` steps (``N`` at least 384);
- vega and rho are central differences of the tree's American value in bumped markets
  (volatility +-1 % of itself, at least +-0.001; rate +-0.001, at most half its distance to 0,
  where the American value has a kink), each tree re-deciding exercise, on 768 steps without
  extrapolation: a bumped tree's error is nearly the unbumped one's and cancels in the
  difference, while extrapolation doubles the part that does not (the nodes move with the
  volatility and the drift). Measured on the benchmark's boundary set and the dividend book
  against bumped QD+: every option within issue 13's tolerances (docs/engines.md).

Units: per unit of strike here; ``lsm`` scales them to QuantLib's conventions.
"""

from __future__ import annotations

import numpy as np

from runtime.engines.lattice import Market, american, american_greeks

VOL_BUMP = 0.01  # relative
MIN_VOL_BUMP = 0.001
RATE_BUMP = 0.001
MIN_STEPS = 384  # delta, gamma, theta
BUMP_STEPS = 768  # vega, rho


def _rate_step(rate: np.ndarray) -> np.ndarray:
    step = np.full_like(rate, RATE_BUMP)
    near_zero = (rate != 0.0) & (np.abs(rate) < 2.0 * RATE_BUMP)
    return np.where(near_zero, np.maximum(np.abs(rate) / 2.0, 1e-5), step)


def lattice_greeks(market: Market, steps: int) -> dict[str, np.ndarray]:
    """delta, gamma, vega, theta and rho per unit of strike; ``steps`` of the pricing
    lattice, at least ``MIN_STEPS``."""
    steps = max(steps, MIN_STEPS)
    fine = american_greeks(market, steps)
    coarse = american_greeks(market, steps // 2)
    _, delta, gamma, theta = (2.0 * f - c for f, c in zip(fine, coarse, strict=True))
    hv = np.maximum(VOL_BUMP * market.vol, MIN_VOL_BUMP)
    hv = np.minimum(hv, 0.5 * market.vol)
    hr = _rate_step(market.rate)
    bumped = market.with_(vol=market.vol + hv).stack(
        market.with_(vol=market.vol - hv),
        market.with_(rate=market.rate + hr),
        market.with_(rate=market.rate - hr),
    )
    values = american(bumped, BUMP_STEPS)
    up_v, down_v, up_r, down_r = np.split(values, 4)
    return {
        "delta": delta,
        "gamma": gamma,
        "vega": (up_v - down_v) / (2.0 * hv),
        "theta": theta,
        "rho": (up_r - down_r) / (2.0 * hr),
    }
