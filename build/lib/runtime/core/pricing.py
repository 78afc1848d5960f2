"""Pricing a table: the one function every path (local, Lambda, Batch) calls.

Whatever the engine, every row ends either priced, with a finite price within the
no-arbitrage bounds (and finite Greeks when requested), or with an error naming the cause;
and no row affects another (issue 11, finding 7):

- an engine call that raises, or returns the wrong number of quotes, is retried one option
  at a time, so the failure stays with the option that caused it;
- every quote passes ``check_quote``; a quote from a batch of several options that fails it
  (an error, a non-finite or out-of-bounds price, a non-finite Greek) is priced once more on
  its own, and that answer is final. Engines price each option from its own terms, so the
  rows of a batch that failed as a whole get the same prices as they would alone, and the
  result never depends on how a file was split.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from runtime.core.csvio import Row, Table, parse_rows, result_header, result_records, write_csv
from runtime.core.options import OptionSpec, Quote
from runtime.engines import Engine

Progress = Callable[[int], None]

# With a progress bar, up to this many updates per file, but batches of at least
# _MIN_BATCH options, so vectorised and multi-process engines still see real batches.
_PROGRESS_STEPS = 50
_MIN_BATCH = 256

# Tolerance of the no-arbitrage check: STD_ERRORS standard errors of a Monte Carlo price,
# plus RELATIVE_SLACK of max(underlying, strike) for the deterministic engines' own
# discretisation error (QuantLib's finite differences put a deep in-the-money call
# about 1e-7 of the spot above the spot).
STD_ERRORS = 4.0
RELATIVE_SLACK = 1e-6
_GREEK_NAMES = ("delta", "gamma", "vega", "theta", "rho")
NO_GREEKS = "Greeks: not computed by this engine"
# An option that killed a worker process twice is not priced again in this process.
WORKER_DIED = "pricing failed: worker process died"


def accepts_greeks(engine: Callable) -> bool:
    """Whether ``engine`` takes the ``greeks`` argument (an engine written before Greeks
    existed is still called, without it, and its rows say the Greeks are missing)."""
    try:
        parameters = inspect.signature(engine).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "greeks" or p.kind is p.VAR_KEYWORD for p in parameters)


def call_engine(engine: Callable, options: Sequence[OptionSpec], greeks: bool) -> list[Quote]:
    """``engine(options)``, with ``greeks=True`` when requested and the engine takes it."""
    if greeks and accepts_greeks(engine):
        return engine(options, greeks=True)
    return engine(options)


def year_fraction(spec: OptionSpec) -> float:
    """Actual/365 Fixed from settlement to maturity, as every engine measures it."""
    return (spec.maturity - spec.settlement).days / 365.0


def price_bounds(spec: OptionSpec) -> tuple[float, float]:
    """No-arbitrage lower and upper bounds of the option's price (flat r and q over T).

    American: intrinsic value <= price; a call <= S max(1, e^{-qT}), a put <= K max(1, e^{-rT})
    (S and K for q, r >= 0). European: call within [max(0, S e^{-qT} - K e^{-rT}), S e^{-qT}],
    put within [max(0, K e^{-rT} - S e^{-qT}), K e^{-rT}].
    """
    s, k = spec.spot, spec.strike
    if spec.maturity <= spec.today:
        return 0.0, 0.0  # expired: QuantLib and lsm value it at 0
    t = year_fraction(spec)
    stock = s * math.exp(-spec.dividend_yield * t)  # the share, delivered at T
    cash = k * math.exp(-spec.rate * t)  # the strike, paid at T
    if spec.american:
        if spec.is_call:
            return max(0.0, s - k, stock - cash), max(s, stock)
        return max(0.0, k - s, cash - stock), max(k, cash)
    if spec.is_call:
        return max(0.0, stock - cash), stock
    return max(0.0, cash - stock), cash


def check_quote(spec: OptionSpec, quote: Quote, greeks: bool = False) -> Quote:
    """The quote if it is sound; otherwise an error quote naming what is wrong.

    A missing Greek (the engine does not compute them) keeps the price with a note in the
    error; a non-finite Greek is an error for the row.
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
    if not greeks:
        return quote if quote.greeks is None else replace(quote, greeks=None)
    if quote.greeks is None:
        return replace(quote, error=quote.error or NO_GREEKS)
    for name in _GREEK_NAMES:
        value = getattr(quote.greeks, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return Quote(price=None, error=f"pricing failed: {name} is {value!r}")
    return quote


def _needs_retry(quote: Quote) -> bool:
    if quote.error is not None and quote.error.startswith(WORKER_DIED):
        return False
    return quote.price is None or (quote.error is not None and quote.error != NO_GREEKS)


# Failures of the machine, not of a row: they propagate, so the invocation or job is retried
# (or recorded as failed) instead of publishing a result whose rows all say "disk full".
ENVIRONMENT_ERRORS = (MemoryError, OSError)


def _price_alone(engine: Engine, spec: OptionSpec, greeks: bool) -> Quote:
    try:
        quotes = call_engine(engine, [spec], greeks)
    except ENVIRONMENT_ERRORS:
        raise
    except Exception as exc:  # the engine broke its contract: the row says how
        return Quote(price=None, error=f"pricing failed: {type(exc).__name__}: {exc}")
    if not isinstance(quotes, list) or len(quotes) != 1 or not isinstance(quotes[0], Quote):
        return Quote(price=None, error="pricing failed: the engine returned no quote")
    return check_quote(spec, quotes[0], greeks)


def price_batch(engine: Engine, options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
    """Checked quotes for ``options``, one row never affecting another (module docstring)."""
    if len(options) == 1:
        return [_price_alone(engine, options[0], greeks)]
    try:
        quotes = call_engine(engine, options, greeks)
        if not isinstance(quotes, list) or len(quotes) != len(options):
            raise ValueError("wrong number of quotes")
    except ENVIRONMENT_ERRORS:
        raise
    except Exception:
        return [_price_alone(engine, spec, greeks) for spec in options]
    checked = []
    for spec, quote in zip(options, quotes, strict=True):
        sound = check_quote(spec, quote, greeks) if isinstance(quote, Quote) else None
        if sound is None or _needs_retry(sound):
            sound = _price_alone(engine, spec, greeks)
        checked.append(sound)
    return checked


def price_rows(
    rows: Sequence[Row],
    engine: Engine,
    progress: Progress | None = None,
    greeks: bool = False,
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
        for i, quote in zip(chunk, price_batch(engine, options, greeks), strict=True):  # type: ignore[arg-type]
            quotes[i] = quote
        if progress:
            progress(len(chunk))
    return quotes


@dataclass(frozen=True)
class PricedTable:
    csv: bytes  # input columns, then price, stdError, the Greeks if requested, error
    rows: int
    errors: int


def price_table(
    table: Table, engine: Engine, progress: Progress | None = None, greeks: bool = False
) -> PricedTable:
    """Price every row of ``table`` into a result CSV, counting the rows with errors.

    With ``greeks`` the result has the columns delta, gamma, vega, theta, rho before
    ``error``; a header with a column of one of those names raises FileError.
    """
    rows = parse_rows(table, greeks)
    records = result_records(rows, price_rows(rows, engine, progress, greeks), greeks)
    errors = sum(1 for record in records if record[-1])
    return PricedTable(write_csv(result_header(table.header, greeks), records), len(rows), errors)
