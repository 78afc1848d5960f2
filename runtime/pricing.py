"""Pricing a table: the one function every path (local, Lambda, Batch) calls.

Whatever the engine, every row ends either priced, with a finite price within the
no-arbitrage bounds (and finite Greeks when requested), or with an error naming the cause;
and no row affects another (issue 11, finding 7):

- an engine call that raises, or returns the wrong number of quotes, is retried one option
  at a time, so the failure stays with the option that caused it;
- every quote passes ``check_quote``; a quote from a batch of several options that fails it
  (an error, a non-finite or out-of-bounds price, a non-finite Greek or bound) is priced
  once more on its own, and that answer is final. Engines price each option from its own
  terms, so the rows of a batch that failed as a whole get the same prices as they would
  alone, and the result never depends on how a file was split.

A file with a ``marketPrice`` column gets each row's implied volatility
(``runtime.engines.implied``, the same for every engine); a price it cannot be implied from
is a note in the row's ``error``, next to its price.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from runtime.core.csvio import (
    Implied,
    Row,
    Table,
    has_market_price,
    parse_rows,
    result_header,
    result_records,
    write_csv,
)
from runtime.core.options import OptionSpec, Quote
from runtime.engines import WORKER_DIED, Engine, call_engine
from runtime.engines.closed_forms import perpetual_put
from runtime.engines.implied import implied_volatilities

Progress = Callable[[int], None]

# With a progress bar, up to this many updates per file, but batches of at least
# _MIN_BATCH options, so vectorised and multi-process engines still see real batches.
_PROGRESS_STEPS = 50
_MIN_BATCH = 256

# Tolerance of the no-arbitrage check: STD_ERRORS standard errors of a Monte Carlo price,
# plus RELATIVE_SLACK of max(underlying, strike) for the deterministic engines' own
# discretisation error (QuantLib's finite differences put a deep in-the-money call
# about 1e-7 of the spot above the spot; QD+ puts a put worth exactly its exercise value,
# which is also its perpetual bound, 1.6e-6 of the strike above it).
STD_ERRORS = 4.0
RELATIVE_SLACK = 1e-5
_GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho")
NO_GREEKS = "Greeks: not computed by this engine"
NO_BOUNDS = "bounds: not computed by this engine"
_NOTES = (NO_GREEKS, NO_BOUNDS)


def year_fraction(spec: OptionSpec) -> float:
    """Actual/365 Fixed from settlement to maturity, as every engine measures it."""
    return (spec.maturity - spec.settlement).days / 365.0


def price_bounds(spec: OptionSpec) -> tuple[float, float]:
    """No-arbitrage lower and upper bounds of the option's price (flat r and q over T).

    American: intrinsic value <= price; a call <= S max(1, e^{-qT}), a put <= K max(1, e^{-rT})
    (S and K for q, r >= 0), and no more than the perpetual option where there is one (a put
    with r > 0, a call with q > 0). European: call within [max(0, S e^{-qT} - K e^{-rT}),
    S e^{-qT}], put within [max(0, K e^{-rT} - S e^{-qT}), K e^{-rT}].
    """
    s, k = spec.spot, spec.strike
    if spec.maturity <= spec.today:
        return 0.0, 0.0  # expired: QuantLib and lsm value it at 0
    t = year_fraction(spec)
    stock = s * math.exp(-spec.dividend_yield * t)  # the share, delivered at T
    cash = k * math.exp(-spec.rate * t)  # the strike, paid at T
    if spec.american:
        if spec.is_call:
            return max(0.0, s - k, stock - cash), min(max(s, stock), _perpetual_call(spec))
        return max(0.0, k - s, cash - stock), min(max(k, cash), _perpetual_put(spec))
    if spec.is_call:
        return max(0.0, stock - cash), stock
    return max(0.0, cash - stock), cash


def _perpetual_put(spec: OptionSpec) -> float:
    if spec.rate <= 0.0 or spec.volatility <= 0.0 or spec.spot <= 0.0:
        return math.inf
    x = spec.spot / spec.strike
    args = (spec.rate, spec.dividend_yield, spec.volatility)
    return float(perpetual_put(*(np.float64(v) for v in (x, *args)))) * spec.strike


def _perpetual_call(spec: OptionSpec) -> float:
    # put-call symmetry: C(S, K, r, q) = P(K, S, q, r)
    if spec.dividend_yield <= 0.0 or spec.volatility <= 0.0 or spec.spot <= 0.0:
        return math.inf
    x = spec.strike / spec.spot
    args = (spec.dividend_yield, spec.rate, spec.volatility)
    return float(perpetual_put(*(np.float64(v) for v in (x, *args)))) * spec.spot


def check_quote(
    spec: OptionSpec, quote: Quote, greeks: bool = False, bounds: bool = False
) -> Quote:
    """The quote if it is sound; otherwise an error quote naming what is wrong.

    Missing Greeks or bounds (the engine does not compute them) keep the price with a note
    in the error; a non-finite Greek, or bounds that are not finite or do not enclose the
    price, are an error for the row.
    """
    if quote.price is None:
        return quote if quote.error else replace(quote, error="pricing failed: no price")
    price = quote.price
    if not isinstance(price, (int, float)) or not math.isfinite(price):
        return Quote(price=None, error=f"pricing failed: the engine returned price {price!r}")
    std_error = quote.std_error
    if std_error is not None and not (math.isfinite(std_error) and std_error >= 0):
        return Quote(price=None, error=f"pricing failed: standard error {std_error!r}")
    low, high = price_bounds(spec)
    slack = STD_ERRORS * (std_error or 0.0) + RELATIVE_SLACK * max(spec.spot, spec.strike)
    kind = ("American " if spec.american else "European ") + ("call" if spec.is_call else "put")
    if price < low - slack:
        return Quote(
            price=None,
            error=f"pricing failed: price {price:.6g} is below the {kind}'s no-arbitrage "
            f"lower bound {low:.6g}",
        )
    if price > high + slack:
        return Quote(
            price=None,
            error=f"pricing failed: price {price:.6g} is above the {kind}'s no-arbitrage "
            f"upper bound {high:.6g}",
        )
    notes = []
    if not greeks:
        quote = quote if quote.greeks is None else replace(quote, greeks=None)
    elif quote.greeks is None:
        notes.append(NO_GREEKS)
    else:
        for name in _GREEK_NAMES:
            value = getattr(quote.greeks, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return Quote(price=None, error=f"pricing failed: {name} is {value!r}")
    if not bounds:
        if quote.price_low is not None or quote.price_high is not None:
            quote = replace(quote, price_low=None, price_high=None)
    elif quote.price_low is None or quote.price_high is None:
        notes.append(NO_BOUNDS)
    else:
        low, high = quote.price_low, quote.price_high
        finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high))
        tiny = RELATIVE_SLACK * max(spec.spot, spec.strike)
        if not finite or not low - tiny <= price <= high + tiny:
            return Quote(
                price=None,
                error=f"pricing failed: bounds [{low!r}, {high!r}] do not enclose the price "
                f"{price!r}",
            )
    if notes and not quote.error:
        quote = replace(quote, error="; ".join(notes))
    return quote


def _needs_retry(quote: Quote) -> bool:
    if quote.error is not None and quote.error.startswith(WORKER_DIED):
        return False
    if quote.price is None:
        return True
    return quote.error is not None and any(n not in _NOTES for n in quote.error.split("; "))


# Failures of the machine, not of a row: they propagate, so the invocation or job is retried
# (or recorded as failed) instead of publishing a result whose rows all say "disk full".
ENVIRONMENT_ERRORS = (MemoryError, OSError)


def _price_alone(engine: Engine, spec: OptionSpec, greeks: bool, bounds: bool) -> Quote:
    try:
        quotes = call_engine(engine, [spec], greeks, bounds)
    except ENVIRONMENT_ERRORS:
        raise
    except Exception as exc:  # the engine broke its contract: the row says how
        return Quote(price=None, error=f"pricing failed: {type(exc).__name__}: {exc}")
    if not isinstance(quotes, list) or len(quotes) != 1 or not isinstance(quotes[0], Quote):
        return Quote(price=None, error="pricing failed: the engine returned no quote")
    return check_quote(spec, quotes[0], greeks, bounds)


def price_batch(
    engine: Engine, options: Sequence[OptionSpec], greeks: bool = False, bounds: bool = False
) -> list[Quote]:
    """Checked quotes for ``options``, one row never affecting another (module docstring)."""
    if len(options) == 1:
        return [_price_alone(engine, options[0], greeks, bounds)]
    try:
        quotes = call_engine(engine, options, greeks, bounds)
        if not isinstance(quotes, list) or len(quotes) != len(options):
            raise ValueError("wrong number of quotes")
    except ENVIRONMENT_ERRORS:
        raise
    except Exception:
        return [_price_alone(engine, spec, greeks, bounds) for spec in options]
    checked = []
    for spec, quote in zip(options, quotes, strict=True):
        sound = check_quote(spec, quote, greeks, bounds) if isinstance(quote, Quote) else None
        if sound is None or _needs_retry(sound):
            sound = _price_alone(engine, spec, greeks, bounds)
        checked.append(sound)
    return checked


def price_rows(
    rows: Sequence[Row],
    engine: Engine,
    progress: Progress | None = None,
    greeks: bool = False,
    *,
    bounds: bool = False,
) -> list[Quote | None]:
    """Quote every valid row in batches; rows with errors get None. Order is kept."""
    valid = [i for i, row in enumerate(rows) if row.option is not None]
    quotes: list[Quote | None] = [None] * len(rows)
    if progress and len(valid) < len(rows):
        progress(len(rows) - len(valid))
    if progress is None:
        batch = max(1, len(valid))  # one call: the engine sees the whole table
    else:
        batch = max(_MIN_BATCH, math.ceil(len(valid) / _PROGRESS_STEPS))
    for start in range(0, len(valid), batch):
        chunk = valid[start : start + batch]
        options = [rows[i].option for i in chunk]
        priced = price_batch(engine, options, greeks, bounds)  # type: ignore[arg-type]
        for i, quote in zip(chunk, priced, strict=True):
            quotes[i] = quote
        if progress:
            progress(len(chunk))
    return quotes


def implied_of(rows: Sequence[Row], quotes: Sequence[Quote | None]) -> list[Implied | None]:
    """Per row: None without a market price, else (volatility, why there is none)."""
    out: list[Implied | None] = [None] * len(rows)
    todo = []
    for i, (row, quote) in enumerate(zip(rows, quotes, strict=True)):
        if row.market_price is None or quote is None or quote.price is None:
            continue
        if isinstance(row.market_price, str):
            out[i] = (None, f"impliedVolatility: {row.market_price}")
        elif row.option is not None:
            todo.append(i)
    if todo:
        options = [rows[i].option for i in todo]
        prices = [float(rows[i].market_price) for i in todo]  # type: ignore[arg-type]
        try:
            solved = implied_volatilities(options, prices)  # type: ignore[arg-type]
        except ENVIRONMENT_ERRORS:
            raise
        except Exception:  # one row's numbers must not sink the others: one at a time
            solved = [_implied_alone(rows[i].option, p) for i, p in zip(todo, prices, strict=True)]
        for i, value in zip(todo, solved, strict=True):
            out[i] = value
    return out


def _implied_alone(option: OptionSpec | None, price: float) -> Implied:
    try:
        return implied_volatilities([option], [price])[0]  # type: ignore[list-item]
    except ENVIRONMENT_ERRORS:
        raise
    except Exception as exc:
        return None, f"impliedVolatility: failed: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class PricedTable:
    csv: bytes  # input columns, then result_header's columns
    rows: int
    errors: int


def price_table(
    table: Table,
    engine: Engine,
    progress: Progress | None = None,
    greeks: bool = False,
    *,
    bounds: bool = False,
) -> PricedTable:
    """Price every row of ``table`` into a result CSV, counting the rows with errors.

    The result's columns are ``csvio.output_columns``: with ``greeks`` delta, gamma, vega,
    theta, rho, with ``bounds`` priceLow, priceHigh, and with a ``marketPrice`` column
    impliedVolatility; an input column named like one of those raises FileError.
    """
    rows = parse_rows(table, greeks, bounds=bounds)
    quotes = price_rows(rows, engine, progress, greeks, bounds=bounds)
    implied = implied_of(rows, quotes) if has_market_price(table.header) else None
    records = result_records(rows, quotes, greeks, bounds=bounds, implied=implied)
    errors = sum(1 for record in records if record[-1])
    header = result_header(table.header, greeks, bounds=bounds)
    return PricedTable(write_csv(header, records), len(rows), errors)
