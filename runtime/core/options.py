"""The option contract every engine prices: plain data, no I/O, no QuantLib."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionSpec:
    """One equity option, as read from a CSV row.

    ``dividend_yield`` is a continuous annual yield (0.02 = 2 %); ``american`` is False for
    European exercise.
    """

    today: dt.date
    settlement: dt.date
    maturity: dt.date
    is_call: bool
    spot: float
    strike: float
    rate: float
    volatility: float
    dividend_yield: float = 0.0
    american: bool = True

    def seed(self) -> int:
        """A 31-bit seed derived from the option's terms only.

        Engines that draw random numbers per option use it, so a price depends on the
        option and never on which part, path or position it was priced in.
        """
        terms: tuple = (
            self.today.isoformat(),
            self.settlement.isoformat(),
            self.maturity.isoformat(),
            self.is_call,
            self.spot,
            self.strike,
            self.rate,
            self.volatility,
        )
        # Terms added later join only when set, so the workshop's options keep their seeds.
        if self.dividend_yield != 0.0:
            terms += (("q", self.dividend_yield),)
        if not self.american:
            terms += (("european",),)
        return int.from_bytes(hashlib.sha256(repr(terms).encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Greeks:
    """Sensitivities in QuantLib's conventions: delta and gamma with respect to the
    underlying, vega and rho per 1.00 change of volatility and rate, theta per year."""

    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


@dataclass(frozen=True)
class Quote:
    """An engine's answer for one option: a price, or an error message for that row.

    ``price_low`` and ``price_high`` (with bounds) are an interval that contains the value,
    each side at its own confidence (docs/engines.md).
    """

    price: float | None
    std_error: float | None = None
    error: str | None = None
    greeks: Greeks | None = None
    price_low: float | None = None
    price_high: float | None = None
