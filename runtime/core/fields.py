"""One row's fields checked against the contract: an option, or errors naming the columns.

Pure functions. Every error names its column; a quoted value is at most ``QUOTE_CHARS``
characters (a long field is cut and its length given), so an error can never grow with the
input: a row of megabyte-long fields gets an error of a few hundred characters (issue 18,
finding 6). Every date computation stays inside the calendar: a row dated near year 1 or
9999 is validated like any other (issue 18, finding 12).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

from runtime.core.options import OptionSpec

# The workshop's column names; matched case-insensitively, in any order.
TODAY = "todaysDate"
SETTLEMENT = "settlementDate"
OPTION_TYPE = "optionType"
UNDERLYING = "underlying"
STRIKE = "strike"
RATE = "riskFreeRate"
VOLATILITY = "volatility"
MATURITY = "maturityDate"
REQUIRED_COLUMNS = (TODAY, SETTLEMENT, OPTION_TYPE, UNDERLYING, STRIKE, RATE, VOLATILITY, MATURITY)
# Optional columns: absent, or an empty cell, means the default (no dividends, American, no
# implied volatility).
DIVIDEND = "dividendYield"
EXERCISE = "exerciseType"
MARKET_PRICE = "marketPrice"
OPTIONAL_COLUMNS = (DIVIDEND, EXERCISE, MARKET_PRICE)

# Validation bounds (README "The CSV contract"): a row outside them is a row error naming the
# column and the bound. They keep every engine's arithmetic finite (exp(r T) with |r| <= 1 and
# T <= 50 years) and catch unit typos (a rate in basis points, a volatility in percent).
MAX_PRICE_LEVEL = 1e8  # underlying and strike: > 0 and <= this
MAX_VOLATILITY = 5.0  # > 0 and <= 500 %
RATE_BOUNDS = (-1.0, 1.0)  # riskFreeRate, decimal
DIVIDEND_BOUNDS = (-1.0, 1.0)  # dividendYield, decimal
MAX_YEARS = 50  # maturityDate at most this many years after settlementDate

_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d")

QUOTE_CHARS = 80  # of a value quoted in an error
MAX_ERROR_CHARS = 500  # of a row's whole error message


def quoted(value: str) -> str:
    """``repr(value)``, cut to ``QUOTE_CHARS`` characters with the full length named."""
    if len(value) <= QUOTE_CHARS:
        return repr(value)
    return f"{value[:QUOTE_CHARS]!r}... ({len(value)} characters)"


def shown(value: str) -> str:
    """``value`` as is, cut to ``QUOTE_CHARS`` characters with the full length named."""
    if len(value) <= QUOTE_CHARS:
        return value
    return f"{value[:QUOTE_CHARS]}... ({len(value)} characters)"


def capped(message: str) -> str:
    """A row's error message, at most ``MAX_ERROR_CHARS`` characters."""
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return message[: MAX_ERROR_CHARS - 24] + f"... ({len(message)} characters)"


def mdy(day: dt.date) -> str:
    """MM/DD/YYYY with a four-digit year (``%Y`` drops the zeros of year 1 on some libcs)."""
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def parse_option(
    record: Sequence[str], columns: Mapping[str, int]
) -> tuple[OptionSpec | None, str | None]:
    """The option a record describes, or every problem found, each naming its column."""
    problems: list[str] = []

    def field(name: str) -> str:
        return record[columns[name]].strip() if name in columns else ""

    def number(name: str, low: float, high: float, positive: bool = False) -> float:
        raw = field(name)
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}: {quoted(raw)} is not a number")
            return math.nan
        if not math.isfinite(value):
            problems.append(f"{name}: {quoted(raw)} is not a finite number")
        elif positive and value <= 0:
            problems.append(f"{name}: must be positive, got {shown(raw)}")
        elif positive and value > high:
            problems.append(f"{name}: {shown(raw)} is above the limit of {high:g}")
        elif not positive and not low <= value <= high:
            problems.append(
                f"{name}: {shown(raw)} is outside [{low:g}, {high:g}] (a decimal: 0.05 means 5 %)"
            )
        return value

    def date(name: str) -> dt.date | None:
        raw = field(name)
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(raw, fmt).date()
            except ValueError:
                continue
        problems.append(f"{name}: {quoted(raw)} is not a date (expected MM/DD/YYYY)")
        return None

    today, settlement, maturity = date(TODAY), date(SETTLEMENT), date(MATURITY)
    kind = field(OPTION_TYPE).casefold()
    if kind not in ("call", "put"):
        problems.append(f"{OPTION_TYPE}: {quoted(field(OPTION_TYPE))} is not Call or Put")
    spot = number(UNDERLYING, 0.0, MAX_PRICE_LEVEL, positive=True)
    strike = number(STRIKE, 0.0, MAX_PRICE_LEVEL, positive=True)
    rate = number(RATE, *RATE_BOUNDS)
    volatility = number(VOLATILITY, 0.0, MAX_VOLATILITY, positive=True)
    dividend_yield = number(DIVIDEND, *DIVIDEND_BOUNDS) if field(DIVIDEND) else 0.0
    exercise = field(EXERCISE).casefold() or "american"
    if exercise not in ("american", "european"):
        problems.append(f"{EXERCISE}: {quoted(field(EXERCISE))} is not American or European")
    if settlement and today and settlement < today:
        problems.append(f"{SETTLEMENT}: {mdy(settlement)} is before {TODAY}")
    if maturity and settlement and maturity <= settlement:
        problems.append(f"{MATURITY}: {mdy(maturity)} is not after {SETTLEMENT}")
    elif maturity and settlement and maturity > years_after(settlement, MAX_YEARS):
        problems.append(
            f"{MATURITY}: {mdy(maturity)} is more than {MAX_YEARS} years after {SETTLEMENT}"
        )
    if problems:
        return None, "; ".join(problems)
    assert today and settlement and maturity  # every date parsed, or problems is not empty
    spec = OptionSpec(
        today,
        settlement,
        maturity,
        kind == "call",
        spot,
        strike,
        rate,
        volatility,
        dividend_yield=dividend_yield,
        american=exercise == "american",
    )
    return spec, None


def parse_market_price(record: Sequence[str], columns: Mapping[str, int]) -> float | str | None:
    """The row's market price: None when absent or empty, else a non-negative finite number,
    or the error text naming the column."""
    if MARKET_PRICE not in columns:
        return None
    raw = record[columns[MARKET_PRICE]].strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return f"{MARKET_PRICE}: {quoted(raw)} is not a number"
    if not math.isfinite(value):
        return f"{MARKET_PRICE}: {quoted(raw)} is not a finite number"
    if value < 0.0:
        return f"{MARKET_PRICE}: must not be negative, got {shown(raw)}"
    return value


def years_after(day: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` later (28 February for a 29th into a common year);
    the calendar's last day when that is beyond year 9999, which no date can exceed."""
    if day.year + years > dt.MAXYEAR:
        return dt.date.max
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a year that has none
        return day.replace(year=day.year + years, day=28)
