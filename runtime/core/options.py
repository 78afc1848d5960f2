"""The option contract every engine prices: plain data, no I/O, no QuantLib."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionSpec:
    """One American equity option on a non-dividend-paying stock, as read from a CSV row."""

    today: dt.date
    settlement: dt.date
    maturity: dt.date
    is_call: bool
    spot: float
    strike: float
    rate: float
    volatility: float

    def seed(self) -> int:
        """A 31-bit seed derived from the option's terms only.

        Engines that draw random numbers per option use it, so a price depends on the
        option and never on which part, path or position it was priced in.
        """
        terms = repr(
            (
                self.today.isoformat(),
                self.settlement.isoformat(),
                self.maturity.isoformat(),
                self.is_call,
                self.spot,
                self.strike,
                self.rate,
                self.volatility,
            )
        )
        return int.from_bytes(hashlib.sha256(terms.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Quote:
    """An engine's answer for one option: a price, or an error message for that row."""

    price: float | None
    std_error: float | None = None
    error: str | None = None
