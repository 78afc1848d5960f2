"""Binomial lattices of the Black-Scholes-Merton model, vectorised across options (numpy only).

One tree serves everything the default engine needs from a deterministic model:

- **the exercise rule** of the simulation: at each exercise date, the boundary where the
  Bermudan's continuation value meets the payoff;
- **the value function** behind the simulation's martingale control and dual bound: at each
  exercise date, the Bermudan's value on the nodes, projected on Hermite polynomials of the
  next date's Brownian increment (``Lattice.premium`` and ``Lattice.value``);
- **American and Bermudan values**, whose difference corrects the simulated Bermudan price to
  the American one;
- American values for the Greeks and the implied volatility.

The tree: equal probabilities 1/2, log-moneyness ``log x0 + i a + (2 j - i) s`` at level ``i``
with ``s = vol sqrt(dt)`` and ``a = (r - q) dt - log cosh s``, which makes the discounted price a
martingale for any inputs (no probability can leave [0, 1], at volatility 5 or rates of
+-100 %). The last step uses the European closed form instead of the payoff (Broadie and
Detemple's BBS), which removes the payoff kink's odd-even oscillation, so Richardson
extrapolation over ``N`` and ``N/2`` steps (BBSR) converges smoothly: on the benchmark's broad
set, 384 steps give a mean absolute error of 0.0002 (0.003 without smoothing and
extrapolation). Values are per unit of strike (``Market``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from runtime.engines.closed_forms import bsm


@dataclass(frozen=True)
class Market:
    """Options as arrays, in units of the strike: ``x0`` is spot / strike."""

    phi: np.ndarray  # +1 call, -1 put
    x0: np.ndarray
    rate: np.ndarray
    div: np.ndarray
    vol: np.ndarray
    t: np.ndarray  # years from settlement to maturity

    def take(self, rows: np.ndarray) -> Market:
        return Market(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def stack(self, *others: Market) -> Market:
        return Market(
            **{
                f.name: np.concatenate([getattr(m, f.name) for m in (self, *others)])
                for f in fields(self)
            }
        )

    def with_(self, **changes: np.ndarray) -> Market:
        return replace(self, **changes)

    def __len__(self) -> int:
        return len(self.phi)


def _log_cosh(s: np.ndarray) -> np.ndarray:
    return s + np.log1p(np.exp(-2.0 * s)) - math.log(2.0)


class _Tree:
    """The geometry of one tree per option (rows of ``market``) with ``steps`` steps."""

    def __init__(self, market: Market, steps: int, extend: int = 0) -> None:
        self.market = market
        self.steps = steps
        self.extend = extend  # levels before the valuation date (for delta, gamma, theta)
        self.dt = market.t / steps
        self.s = market.vol * np.sqrt(self.dt)
        self.a = (market.rate - market.div) * self.dt - _log_cosh(self.s)
        self.disc = (0.5 * np.exp(-market.rate * self.dt))[:, None]
        self.lx0 = np.log(market.x0)
        self._j = np.arange(steps + extend + 1, dtype=np.float64)[None, :]
        self.phi = market.phi[:, None]
        # spots one level earlier, node by node: x e^{s - a} (a product, not an exp per node)
        self.back = np.exp(self.s - self.a)[:, None]

    def logx(self, level: int) -> np.ndarray:
        """Log-moneyness of the nodes at ``level`` (level 0 is the valuation date)."""
        width = level + self.extend
        return (
            self.lx0[:, None]
            + level * self.a[:, None]
            + (2.0 * self._j[:, : width + 1] - width) * self.s[:, None]
        )

    def european_last_step(self) -> tuple[np.ndarray, np.ndarray]:
        """(phi x, European value over the last step) at level ``steps - 1``."""
        m = self.market
        lx = self.logx(self.steps - 1)
        x = np.exp(lx)
        (value,) = bsm(
            self.phi, x, lx, m.rate[:, None], m.div[:, None], m.vol[:, None], self.dt[:, None]
        )
        return self.phi * x, value

    def step_back(self, v: np.ndarray, signed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One level back: discounted expectation, and ``phi x`` on the earlier nodes."""
        earlier = v[:, 1:] + v[:, :-1]
        earlier *= self.disc
        return earlier, signed[:, :-1] * self.back

    def exercise(self, v: np.ndarray, signed: np.ndarray, rows: slice = slice(None)) -> None:
        """``v = max(v, payoff)`` in place (``v >= 0``, so the payoff's floor at 0 is moot)."""
        np.maximum(v, signed - self.phi[rows], out=v)


def american(market: Market, steps: int) -> np.ndarray:
    """American values at the valuation date on a smoothed tree of ``steps`` steps."""
    tree = _Tree(market, steps)
    signed, v = tree.european_last_step()
    tree.exercise(v, signed)
    for _ in range(steps - 1):
        v, signed = tree.step_back(v, signed)
        tree.exercise(v, signed)
    return v[:, 0]


def american_bbsr(market: Market, steps: int) -> np.ndarray:
    """Richardson-extrapolated smoothed tree (BBSR): ``2 V(steps) - V(steps / 2)``."""
    return 2.0 * american(market, steps) - american(market, max(2, steps // 2))


def american_greeks(market: Market, steps: int) -> tuple[np.ndarray, ...]:
    """(value, delta, gamma, theta) per unit of strike, from a smoothed tree started two
    steps before the valuation date, so three nodes straddle the spot at t = 0.

    Theta is read off the tree (the value at the spot two steps apart in time), not from
    the Black-Scholes equation, which fails where immediate exercise is close.
    """
    tree = _Tree(market, steps, extend=2)
    signed, v = tree.european_last_step()
    tree.exercise(v, signed)
    for level in range(steps - 2, -3, -1):
        v, signed = tree.step_back(v, signed)
        tree.exercise(v, signed)
        if level == 0:
            at_zero = v
    x = np.exp(tree.logx(0))  # x0 e^{-2s}, x0, x0 e^{2s}
    up = (at_zero[:, 2] - at_zero[:, 1]) / (x[:, 2] - x[:, 1])
    down = (at_zero[:, 1] - at_zero[:, 0]) / (x[:, 1] - x[:, 0])
    gamma = 2.0 * (up - down) / (x[:, 2] - x[:, 0])
    delta = (at_zero[:, 2] - at_zero[:, 0]) / (x[:, 2] - x[:, 0])
    # the single node two steps earlier sits at x0 e^{-2a}: move it to x0 along delta, gamma
    shift = market.x0 - np.exp(tree.logx(-2)[:, 0])
    earlier = v[:, 0] + delta * shift + 0.5 * gamma * shift * shift
    theta = (at_zero[:, 1] - earlier) / (2.0 * tree.dt)
    return at_zero[:, 1], delta, gamma, theta


# ---------------------------------------------------------------------------------------
# the exercise lattice: rule, value function and the American-Bermudan difference


def hermite_projector(steps_per_date: int) -> np.ndarray:
    """(3, m + 1): least-squares coefficients of He1, He2, He3 of the normalised increment.

    From a node, ``m`` steps later the tree is at one of ``m + 1`` nodes with binomial
    weights; ``z_j = (2 j - m) / sqrt(m)`` is the increment in standard deviations. A value
    on those nodes is fitted by ``c0 + c1 z + c2 (z^2 - 1) + c3 (z^3 - 3 z)`` under the weights.
    """
    m = steps_per_date
    j = np.arange(m + 1)
    weights = np.array([math.comb(m, i) for i in j], dtype=np.float64) / 2.0**m
    z = (2.0 * j - m) / math.sqrt(m)
    basis = np.stack([np.ones_like(z), z, z * z - 1.0, z**3 - 3.0 * z], axis=1)
    normal = basis.T @ (weights[:, None] * basis)
    return np.linalg.solve(normal, basis.T * weights[None, :])[1:]


def _project(projector: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(3, ..., nodes - m): Hermite coefficients of each node's m-step window (last axis).

    Written as sums of shifted slices, not a matrix product: BLAS may sum in an order that
    depends on the array's shape, and a price must not depend on the batch it is in.
    """
    width = projector.shape[1]
    nodes = values.shape[-1] - width + 1
    out = np.zeros((3, *values.shape[:-1], nodes))
    for j in range(width):
        window = values[..., j : j + nodes]
        for p in range(3):
            out[p] += projector[p, j] * window
    return out


REACH = 8.0  # standard deviations of the simulated paths the tables cover


@dataclass
class Lattice:
    """What the exercise lattice gives the simulation, per option (strike units).

    Step ``k`` (0-based) goes from date ``k`` to date ``k + 1`` (date 0 is the valuation
    date). Tables are padded: step ``k``'s coefficients live on the ``k m + 1`` nodes of date
    ``k``, at ``[:, option, k, :k m + 1]``; the last step has none (the premium over the
    European is 0 at maturity, and the dual's last step is the exact European one).
    """

    american: np.ndarray  # American value, BBSR
    bermudan: np.ndarray  # Bermudan value on the simulation's dates, BBSR
    spread: np.ndarray  # |(A - B)(N) - (A - B)(N/2)|: how far the correction is from settled
    thresholds: np.ndarray  # (options, dates): exercise when phi * W > threshold
    premium: np.ndarray  # (3, options, dates - 1, width): discounted He1..3 coefficients
    value: np.ndarray | None  # the same for the Bermudan's value itself (dual bound only)
    offsets: np.ndarray  # (options, dates): node index of W = 0 at date k
    index_scale: float  # node units per unit of W
    steps_per_date: int
    raw: tuple[np.ndarray, np.ndarray]  # (American, Bermudan) before extrapolation

    @property
    def correction(self) -> np.ndarray:
        """American minus Bermudan value: the simulated Bermudan's distance to the price."""
        return self.american - self.bermudan


def _thresholds(
    h: np.ndarray,
    lx: np.ndarray,
    counts: np.ndarray,
    phi: np.ndarray,
    centre: np.ndarray,
    date_sd: np.ndarray,
) -> np.ndarray:
    """Exercise thresholds on ``phi * W`` from payoff minus continuation ``h`` (rows, nodes),
    each row valid on its first ``counts`` nodes.

    Puts exercise below the boundary (the highest node with h > 0, interpolated towards the
    next node up), calls above it. The simulation's path ``log x0 + mu t + sd W`` exercises
    when ``phi * W > threshold``.
    """
    nodes = h.shape[1]
    valid = np.arange(nodes)[None, :] < counts[:, None]
    positive = (h > 0.0) & valid
    has = positive.any(axis=1)
    rows = np.arange(h.shape[0])
    put = phi < 0.0
    last = nodes - 1 - np.argmax(positive[:, ::-1], axis=1)
    first = np.argmax(positive, axis=1)
    idx = np.where(put, last, first)
    top = counts - 1
    nxt = np.clip(np.where(put, idx + 1, idx - 1), 0, top)
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


def _backward(
    market: Market, dates: int, steps_per_date: int, keep: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, _Tree]:
    """One backward pass with two rows per option: Bermudan (exercise on the dates) and
    American (every step). With ``keep``: the Bermudan's payoff-minus-continuation and value
    at every date but the last, padded to (options, dates - 1, steps + 1)."""
    b = len(market)
    m = steps_per_date
    steps = dates * m
    tree = _Tree(market.stack(market), steps)
    phi = market.phi[:, None]
    american_rows, bermudan_rows = slice(b, None), slice(None, b)
    signed, v = tree.european_last_step()
    tree.exercise(v[b:], signed[b:], american_rows)
    if m == 1:  # one step per date: that level is a date of the Bermudan too
        tree.exercise(v[:b], signed[:b], bermudan_rows)
    shape = (b, max(dates - 1, 0), steps + 1)
    h_at = np.full(shape, -np.inf) if keep else None
    v_at = np.zeros(shape) if keep else None
    for level in range(steps - 2, -1, -1):
        v, signed = tree.step_back(v, signed)
        tree.exercise(v[b:], signed[b:], american_rows)
        if level % m or level == 0:
            continue
        k = level // m  # exercise date k (1-based) at time k T / n
        pay = np.maximum(signed[:b] - phi, 0.0)
        if keep:
            h_at[:, k - 1, : level + 1] = pay - v[:b]
        np.maximum(v[:b], pay, out=v[:b])
        if keep:
            v_at[:, k - 1, : level + 1] = v[:b]
    return v[:b, 0], v[b:, 0], h_at, v_at, tree


def corrections(
    market: Market, dates: int, steps_per_date: int, half: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(American, Bermudan, spread, raw) with BBSR over ``dates * steps_per_date`` steps,
    given ``half``, the raw (American, Bermudan) values with half as many steps: a finer
    lattice for a correction, without rule or tables. ``raw`` is this pass's, for the next."""
    bermudan, amer, *_ = _backward(market, dates, steps_per_date, False)
    amer_2, bermudan_2 = half
    return (
        2.0 * amer - amer_2,
        2.0 * bermudan - bermudan_2,
        np.abs((amer - bermudan) - (amer_2 - bermudan_2)),
        (amer, bermudan),
    )


def exercise_lattice(
    market: Market, dates: int, steps_per_date: int, values: bool = False
) -> Lattice:
    """Rule, Hermite tables and BBSR values for ``dates`` equally spaced exercise dates
    ``T/n .. T``, on a tree of ``dates * steps_per_date`` steps (and half as many)."""
    b = len(market)
    m = steps_per_date
    steps = dates * m
    bermudan, amer, h_at, v_at, tree = _backward(market, dates, m, True)
    bermudan_2, amer_2, *_ = _backward(market, dates, max(1, m // 2), False)
    assert h_at is not None and v_at is not None
    s, a = tree.s[:b, None, None], tree.a[:b, None, None]
    lx0 = tree.lx0[:b, None, None]
    k = np.arange(1, dates)[None, :, None]  # dates 1 .. n - 1
    j = np.arange(steps + 1)[None, None, :]
    lx = lx0 + k * m * a + (2.0 * j - k * m) * s  # the nodes of date k
    mu = market.rate - market.div - 0.5 * market.vol**2
    date_sd = market.vol * np.sqrt(market.t / dates)
    thresholds = np.full((b, dates), np.inf)
    thresholds[:, -1] = market.phi * (-(tree.lx0[:b] + mu * market.t)) / date_sd  # in the money
    if dates > 1:
        t_k = k[..., 0] * (market.t / dates)[:, None]  # (b, dates - 1)
        centre = tree.lx0[:b, None] + mu[:, None] * t_k
        counts = np.broadcast_to(k[..., 0] * m + 1, t_k.shape)
        thresholds[:, :-1] = _thresholds(
            h_at.reshape(-1, steps + 1),
            lx.reshape(-1, steps + 1),
            counts.reshape(-1),
            np.repeat(market.phi, dates - 1),
            centre.reshape(-1),
            np.repeat(date_sd, dates - 1),
        ).reshape(b, dates - 1)
    projector = hermite_projector(m)
    width = steps + 1 - m
    premium = np.zeros((3, b, max(dates - 1, 0), max(width, 1)))
    value = np.zeros_like(premium) if values else None
    kk = np.arange(dates)[None, :]
    # node index of the simulated log-moneyness log x0 + mu t_k + sd W_k among date k's nodes
    # (nodes at log x0 + k m a + (2 i - k m) s; the simulation's date sd is sqrt(m) s)
    s2, a2 = tree.s[:b, None], tree.a[:b, None]
    t_all = kk * (market.t / dates)[:, None]
    offsets = (mu[:, None] * t_all - kk * m * a2 + kk * m * s2) / (2.0 * s2)
    if dates > 1:
        # the European value where a path can be: within REACH standard deviations of the
        # simulation's centre at date k (beyond, no path goes and the table stays 0)
        centre = offsets[:, 1:, None]
        reach = REACH * np.sqrt(k * m) / 2.0 + m
        near = (np.abs(j - centre) <= reach) & (j <= k * m)
        tau = np.broadcast_to((market.t[:, None] * (1.0 - k[..., 0] / dates))[..., None], lx.shape)
        grid = lambda v: np.broadcast_to(v[:, None, None], lx.shape)[near]  # noqa: E731
        euro = np.zeros(lx.shape)
        (euro[near],) = bsm(
            grid(market.phi),
            np.exp(lx[near]),
            lx[near],
            grid(market.rate),
            grid(market.div),
            grid(market.vol),
            tau[near],
        )
        discount = np.exp(-market.rate[:, None] * (k[..., 0] * market.t[:, None] / dates))
        premium = _project(projector, np.where(near, v_at - euro, 0.0))
        premium *= discount[None, :, :, None]
        if values:
            value = _project(projector, np.where(near, v_at, 0.0)) * discount[None, :, :, None]
    return Lattice(
        american=2.0 * amer - amer_2,
        bermudan=2.0 * bermudan - bermudan_2,
        spread=np.abs((amer - bermudan) - (amer_2 - bermudan_2)),
        thresholds=thresholds,
        premium=premium,
        value=value,
        offsets=offsets,
        index_scale=math.sqrt(m) / 2.0,
        steps_per_date=m,
        raw=(amer, bermudan),
    )
