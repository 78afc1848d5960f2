"""The default engine's knobs, with the values measured in docs/engines.md."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LsmSettings:
    """Tuning knobs of ``lsm``; the defaults are the ones measured in docs/engines.md.

    Tuned on the benchmark's tuning sets (seeds of their own); the figures in the docs come
    from sets drawn with other seeds.
    """

    # exercise dates: the first (limit, dates) whose limit exceeds sigma^2 T, and the same by
    # years to maturity (the Bermudan's gap to the American grows with both); the larger wins
    dates: tuple[tuple[float, int], ...] = ((0.02, 12), (0.1, 24), (1.0, 48), (8.0, 96))
    dates_by_years: tuple[tuple[float, int], ...] = ((0.25, 12), (1.0, 24), (51.0, 48))
    steps_per_date: int = 8  # lattice steps between two exercise dates ...
    base_lattice_steps: int = 768  # ... but at least 4 and no more steps than this in all
    # the error bar: noise^2 + (spread_weight spread)^2 + disagreement beyond excess_sigmas
    # noise standard errors, squared (docs/engines.md, "The error bar")
    spread_weight: float = 0.5
    excess_sigmas: float = 3.0
    # a row whose bar is the lattice's gets a lattice twice as fine: above refine_above
    # targets up to refine_lattice_steps, above its tolerance up to max_lattice_steps
    refine_above: float = 2.5
    refine_lattice_steps: int = 768
    max_lattice_steps: int = 1536
    block_pairs: int = 256  # antithetic pairs per block
    min_blocks: int = 1
    target_error: float = 0.002  # stop simulating at this standard error (price units) ...
    target_relative: float = 1e-5  # ... or at this fraction of the strike, if larger
    tolerance: float = 0.02  # a row whose error bar stays above this is an error ...
    tolerance_relative: float = 1e-4  # ... or above this fraction of the strike, if larger
    work_budget: int = 250_000  # simulated path-dates per option: the time budget
    # beyond this sigma^2 T, the lattice alone prices the option (see lsm_estimates)
    simulate_below: float = 8.0
    lattice_steps: int = 1536
    horizon_variance: float = 100.0  # the lattice's horizon, in sigma^2 T, beyond which the
    # option is worth within [value at that horizon, perpetual value]
    # below this sigma sqrt(T), or where the drift over one of 384 lattice steps exceeds the
    # volatility's step (|r - q| T / sqrt(384) > sigma sqrt(T)), the deterministic forward
    # prices the option: the lattice cannot resolve it; its error bar is the volatility's reach
    deterministic_below: float = 1e-3

    def nearly_deterministic(self, vol: float, years: float, drift: float) -> bool:
        spread = vol * years**0.5
        return spread < max(self.deterministic_below, abs(drift) * years / 384**0.5)

    confidence: float = 2.576  # one-sided normal quantile of each bound (99.5 %: 99 % for both)
    screen: float = 0.001  # settle at intrinsic value when the premium bound is below; 0: off
    memory_budget_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        if self.steps_per_date < 4 or self.steps_per_date % 2:
            raise ValueError("steps_per_date must be even and at least 4 (Richardson halves it)")
        if not self.dates or any(n < 1 for _, n in self.dates):
            raise ValueError("dates must map sigma^2 T limits to positive date counts")
        if min(self.block_pairs, self.min_blocks, self.work_budget) < 1:
            raise ValueError("path counts must be positive")
        if not 0.0 < self.target_error <= self.tolerance:
            raise ValueError("need 0 < target_error <= tolerance")
        if self.lattice_steps < 8:
            raise ValueError("lattice_steps must be at least 8")

    def dates_for(self, variance: float, years: float = 0.0) -> int:
        """Exercise dates for an option with ``sigma^2 T = variance`` and ``T = years``."""
        return max(_lookup(self.dates, variance), _lookup(self.dates_by_years, years))

    def steps_for(self, dates: int) -> int:
        """Lattice steps per exercise date: ``steps_per_date``, fewer (at least 4) when the
        dates are so many that the lattice would exceed ``base_lattice_steps``."""
        return max(4, min(self.steps_per_date, self.base_lattice_steps // dates))

    def tolerance_for(self, strike: float, spot: float = 0.0) -> float:
        """The option's scale is the larger of strike and spot (a deep call's price is the
        spot's order)."""
        return max(self.tolerance, self.tolerance_relative * max(strike, spot))

    def target_for(self, strike: float) -> float:
        return max(self.target_error, self.target_relative * strike)


DEFAULT_SETTINGS = LsmSettings()


def _lookup(table: tuple[tuple[float, int], ...], value: float) -> int:
    for limit, dates in table:
        if value < limit:
            return dates
    return table[-1][1]
