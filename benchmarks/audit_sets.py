"""The option sets of issue 19's benchmark (``benchmarks.audit``), deterministic per seed.

Each set is drawn from its own generator; the defaults are the *reporting* seeds, which the
engine was never tuned on (the tuning runs used ``TUNING_SEEDS``; docs/engines.md).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from runtime.core.options import OptionSpec

REPORTING_SEEDS = {"broad": 2027, "stress": 17, "boundary": 29}
# an interim reporting run on broad seed 2026 found two defects (4 lattice steps per date
# for 96 dates; an erratic lattice Bermudan on long-dated deep puts at high rates), since
# fixed; the figures of docs/engines.md come from seed 2027, seen only after that
INTERIM_SEEDS = {"broad": 2026}
TUNING_SEEDS = {"broad": 101, "boundary": 303}

_TODAY = dt.date(2024, 3, 1)
_SETTLEMENT = _TODAY + dt.timedelta(days=2)


def _option(
    call: bool,
    spot: float,
    strike: float,
    days: int,
    vol: float,
    rate: float,
    div: float,
    american: bool = True,
) -> OptionSpec:
    return OptionSpec(
        _TODAY,
        _SETTLEMENT,
        _SETTLEMENT + dt.timedelta(days=days),
        call,
        spot,
        strike,
        rate,
        vol,
        dividend_yield=div,
        american=american,
    )


def broad(count: int, seed: int = REPORTING_SEEDS["broad"]) -> list[OptionSpec]:
    """American calls and puts (half each): maturities 1 week to 5 years (log-uniform),
    volatility 0.05 to 1, rates -1 % to 10 %, yields 0 to 8 %, moneyness S/K 0.5 to 2
    (log-uniform), strikes 10 to 200."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        call = bool(rng.random() < 0.5)
        strike = float(np.round(rng.uniform(10.0, 200.0), 1))
        moneyness = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        days = int(np.round(np.exp(rng.uniform(np.log(7.0), np.log(1826.0)))))
        vol = float(np.round(rng.uniform(0.05, 1.0), 3))
        rate = float(np.round(rng.uniform(-0.01, 0.10), 4))
        div = float(np.round(rng.uniform(0.0, 0.08), 4))
        out.append(
            _option(call, float(np.round(strike * moneyness, 2)), strike, days, vol, rate, div)
        )
    return out


def stress(count: int, seed: int = REPORTING_SEEDS["stress"]) -> list[OptionSpec]:
    """Beyond any ordinary book, in three equal parts after issue 19's own cases:

    - huge variance: volatility 1 to 5 over 5 to 50 years (sigma^2 T up to 1,250);
    - huge scale: underlyings and strikes 1e4 to 1e8, the broad set's other terms;
    - far out of the money over 4 to 5 years: calls at S/K 0.2 to 0.5, puts at 2 to 5.
    """
    rng = np.random.default_rng(seed)
    out = [
        _option(False, 100.0, 100.0, 18262, 5.0, 0.05, 0.0),  # issue 19: 99.25 for 97.42
        _option(False, 100.0, 100.0, 18262, 3.0, 0.05, 0.0),
        _option(False, 100.0, 100.0, 7305, 5.0, 0.05, 0.0),
        _option(False, 100.0, 100.0, 3652, 5.0, 0.05, 0.0),
        _option(False, 300.0, 100.0, 1826, 0.3, 0.05, 0.0),  # S/K = 3 over 5 years
        _option(False, 200.0, 100.0, 1826, 0.3, 0.05, 0.0),  # S/K = 2
        _option(False, 100.0, 100.0, 365, 0.001, 0.05, 0.0),  # volatility 0.001
        _option(True, 1e6, 1e6, 365, 0.3, 0.05, 0.02),  # an underlying of 1e6
    ]
    for i in range(max(0, count - len(out))):
        part = i % 3
        call = bool(rng.random() < 0.5)
        rate = float(np.round(rng.uniform(-0.01, 0.10), 4))
        div = float(np.round(rng.uniform(0.0, 0.08), 4))
        if part == 0:
            strike = 100.0
            spot = float(np.round(strike * np.exp(rng.uniform(np.log(0.5), np.log(2.0))), 2))
            days = int(rng.integers(5 * 365, 50 * 365 + 12))
            vol = float(np.round(rng.uniform(1.0, 5.0), 3))
        elif part == 1:
            strike = float(np.round(10 ** rng.uniform(4.0, 8.0), 0))
            spot = float(min(1e8, np.round(strike * np.exp(rng.uniform(-0.69, 0.69)), 0)))
            days = int(np.round(np.exp(rng.uniform(np.log(7.0), np.log(1826.0)))))
            vol = float(np.round(rng.uniform(0.05, 1.0), 3))
        else:
            strike = float(np.round(rng.uniform(10.0, 200.0), 1))
            far = rng.uniform(0.2, 0.5) if call else rng.uniform(2.0, 5.0)
            spot = float(np.round(strike * far, 2))
            days = int(rng.integers(4 * 365, 5 * 365 + 2))
            vol = float(np.round(rng.uniform(0.05, 0.6), 3))
        out.append(_option(call, spot, strike, days, vol, rate, div))
    return out[:count]


def boundary(count: int, seed: int = REPORTING_SEEDS["boundary"]) -> list[OptionSpec]:
    """Near the exercise boundary, where issue 19 found the Greeks wrong: deep in-the-money
    short-dated (1 week to 4 months) American calls with yields of 5-8 % and puts with rates
    of 4-10 %, volatility 0.1 to 0.6; calls S/K 1.1-1.6, puts 0.6-0.92."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        call = i % 2 == 0
        strike = float(np.round(rng.uniform(20.0, 200.0), 1))
        moneyness = rng.uniform(1.1, 1.6) if call else rng.uniform(0.6, 0.92)
        days = int(rng.integers(7, 120))
        vol = float(np.round(rng.uniform(0.1, 0.6), 3))
        if call:
            div = float(np.round(rng.uniform(0.05, 0.08), 4))
            rate = float(np.round(rng.uniform(-0.01, 0.06), 4))
        else:
            rate = float(np.round(rng.uniform(0.04, 0.10), 4))
            div = float(np.round(rng.uniform(0.0, 0.04), 4))
        spot = float(np.round(strike * moneyness, 2))
        out.append(_option(call, spot, strike, days, vol, rate, div))
    return out
