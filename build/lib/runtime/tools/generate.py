"""Deterministic sample portfolios in the workshop's format (like its 100k-row file)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from runtime.core.csvio import REQUIRED_COLUMNS, write_csv

HEADER = ["id", *REQUIRED_COLUMNS]


def generate_portfolio(rows: int, seed: int = 1) -> bytes:
    """``rows`` options drawn like the workshop's sample: October 2022 trade dates,
    T+2 settlement, maturities up to about three months, moneyness 0.6 to 1.6.
    The same ``rows`` and ``seed`` always give the same bytes."""
    rng = np.random.default_rng(seed)
    first_day = dt.date(2022, 10, 1)
    records = []
    for number in range(1, rows + 1):
        today = first_day + dt.timedelta(days=int(rng.integers(0, 28)))
        settlement = today + dt.timedelta(days=2)
        maturity = settlement + dt.timedelta(days=int(rng.integers(2, 97)))
        underlying = round(float(rng.uniform(2.0, 100.0)), 1)
        strike = max(1, round(underlying * float(rng.uniform(0.6, 1.6))))
        records.append(
            [
                str(number),
                f"{today:%m/%d/%Y}",
                f"{settlement:%m/%d/%Y}",
                "Put" if rng.random() < 0.5 else "Call",
                str(underlying),
                str(strike),
                f"{rng.uniform(0.001, 0.15):.3f}",
                f"{rng.uniform(0.10, 0.40):.2f}",
                f"{maturity:%m/%d/%Y}",
            ]
        )
    return write_csv(HEADER, records)
