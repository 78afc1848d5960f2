"""The CSV contract: reading an upload into a table, validating rows, writing results.

Pure functions only. A whole-file problem raises ``FileError`` with a message meant for
the user; a row problem becomes that row's error and never stops the rest of the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.core.options import OptionSpec, Quote

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
# Optional columns: absent, or an empty cell, means the default (no dividends, American).
DIVIDEND = "dividendYield"
EXERCISE = "exerciseType"
OPTIONAL_COLUMNS = (DIVIDEND, EXERCISE)

PRICE_COLUMNS = ("price", "stdError")
GREEK_COLUMNS = ("delta", "gamma", "vega", "theta", "rho")  # only when Greeks are requested
_GREEKS_FOLDED = {name.casefold() for name in GREEK_COLUMNS}
ERROR_COLUMN = "error"
RESULT_COLUMNS = (*PRICE_COLUMNS, ERROR_COLUMN)  # the result columns without Greeks

# Validation bounds (README "The CSV contract"): a row outside them is a row error naming the
# column and the bound. They keep every engine's arithmetic finite (exp(r T) with |r| <= 1 and
# T <= 50 years) and catch unit typos (a rate in basis points, a volatility in percent).
MAX_PRICE_LEVEL = 1e8  # underlying and strike: > 0 and <= this
MAX_VOLATILITY = 5.0  # > 0 and <= 500 %
RATE_BOUNDS = (-1.0, 1.0)  # riskFreeRate, decimal
DIVIDEND_BOUNDS = (-1.0, 1.0)  # dividendYield, decimal
MAX_YEARS = 50  # maturityDate at most this many years after settlementDate

_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d")


class FileError(ValueError):
    """The file as a whole cannot be priced; the message says why, for the user."""


@dataclass(frozen=True)
class Table:
    """An upload's header and its data records (raw field strings, blank lines dropped)."""

    header: list[str]
    records: list[list[str]]


@dataclass(frozen=True)
class Row:
    """One data record checked against the contract: an option to price, or an error."""

    values: list[str]
    option: OptionSpec | None
    error: str | None


def reserved_columns(greeks: bool = False) -> tuple[str, ...]:
    """Names an input column may not have: the result columns (with Greeks, theirs too)."""
    return (*PRICE_COLUMNS, *(GREEK_COLUMNS if greeks else ()), ERROR_COLUMN)


def read_table(
    data: bytes, max_rows: int | None = None, *, is_result: bool = False, greeks: bool = False
) -> Table:
    """Decode and parse an upload, checking everything that concerns the whole file.

    ``is_result`` reads one of our result files, whose header carries the result columns.
    ``greeks`` says the result will carry Greek columns, so an input column named like one
    of them (``delta`` ...) is a file error; without Greeks such a column is an ordinary
    extra column, kept in the result.
    """
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records: list[list[str]] = []
    try:
        for record in reader:
            if not any(field.strip() for field in record):
                continue  # blank line
            if header is None:
                header = [name.strip() for name in record]
                continue
            records.append(record)
            if max_rows is not None and len(records) > max_rows:
                raise FileError(f"file has more than {max_rows} data rows, the configured limit")
    except csv.Error as exc:
        raise FileError(f"not a readable CSV file (line {reader.line_num}): {exc}") from exc
    if header is None:
        raise FileError("file is empty: expected a header line and data rows")
    if not is_result:
        column_index(header, greeks)  # reject a bad header up front, before any part is written
    return Table(header=header, records=records)


def _decode(data: bytes) -> str:
    if not data.strip():
        raise FileError("file is empty: expected a header line and data rows")
    if b"\x00" in data:
        raise FileError("file is not text (it contains NUL bytes): expected a CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(
            f"file is not UTF-8 text (invalid byte at offset {exc.start}): expected a CSV file"
        ) from exc


def column_index(header: Sequence[str], greeks: bool = False) -> dict[str, int]:
    """Map each required column, and each optional column present, to its position;
    raise FileError naming what is wrong."""
    reserved = {name.casefold() for name in reserved_columns(greeks)}
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        folded = name.casefold()
        if folded in reserved:
            why = " when Greeks are requested" if folded in _GREEKS_FOLDED else ""
            raise FileError(f"column {name!r} is reserved for the result{why}: rename or remove it")
        if folded in positions:
            raise FileError(f"column {name!r} appears more than once in the header")
        positions[folded] = position
    missing = [name for name in REQUIRED_COLUMNS if name.casefold() not in positions]
    if missing:
        raise FileError(
            f"missing required column(s): {', '.join(missing)} "
            f"(header has: {', '.join(header) or 'nothing'})"
        )
    wanted = [*REQUIRED_COLUMNS, *(n for n in OPTIONAL_COLUMNS if n.casefold() in positions)]
    return {name: positions[name.casefold()] for name in wanted}


def parse_rows(table: Table, greeks: bool = False) -> list[Row]:
    """Check every record; each becomes an option to price or a row-level error."""
    columns = column_index(table.header, greeks)
    width = len(table.header)
    rows = []
    for record in table.records:
        values = (record + [""] * width)[:width]
        if len(record) != width:
            extra = f": extra {record[width:]!r}" if len(record) > width else ""
            rows.append(
                Row(values, None, f"row has {len(record)} fields, header has {width}{extra}")
            )
            continue
        option, error = _parse_option(record, columns)
        rows.append(Row(values, option, error))
    return rows


def _parse_option(
    record: list[str], columns: dict[str, int]
) -> tuple[OptionSpec | None, str | None]:
    problems: list[str] = []

    def field(name: str) -> str:
        return record[columns[name]].strip() if name in columns else ""

    def number(name: str, low: float, high: float, positive: bool = False) -> float:
        raw = field(name)
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}: {raw!r} is not a number")
            return math.nan
        if not math.isfinite(value):
            problems.append(f"{name}: {raw!r} is not a finite number")
        elif positive and value <= 0:
            problems.append(f"{name}: must be positive, got {raw}")
        elif positive and value > high:
            problems.append(f"{name}: {raw} is above the limit of {high:g}")
        elif not positive and not low <= value <= high:
            problems.append(
                f"{name}: {raw} is outside [{low:g}, {high:g}] (a decimal: 0.05 means 5 %)"
            )
        return value

    def date(name: str) -> dt.date | None:
        raw = field(name)
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(raw, fmt).date()
            except ValueError:
                continue
        problems.append(f"{name}: {raw!r} is not a date (expected MM/DD/YYYY)")
        return None

    today, settlement, maturity = date(TODAY), date(SETTLEMENT), date(MATURITY)
    kind = field(OPTION_TYPE).casefold()
    if kind not in ("call", "put"):
        problems.append(f"{OPTION_TYPE}: {field(OPTION_TYPE)!r} is not Call or Put")
    spot = number(UNDERLYING, 0.0, MAX_PRICE_LEVEL, positive=True)
    strike = number(STRIKE, 0.0, MAX_PRICE_LEVEL, positive=True)
    rate = number(RATE, *RATE_BOUNDS)
    volatility = number(VOLATILITY, 0.0, MAX_VOLATILITY, positive=True)
    dividend_yield = number(DIVIDEND, *DIVIDEND_BOUNDS) if field(DIVIDEND) else 0.0
    exercise = field(EXERCISE).casefold() or "american"
    if exercise not in ("american", "european"):
        problems.append(f"{EXERCISE}: {field(EXERCISE)!r} is not American or European")
    if settlement and today and settlement < today:
        problems.append(f"{SETTLEMENT}: {settlement:%m/%d/%Y} is before {TODAY}")
    if maturity and settlement and maturity <= settlement:
        problems.append(f"{MATURITY}: {maturity:%m/%d/%Y} is not after {SETTLEMENT}")
    elif maturity and settlement and maturity > _years_after(settlement, MAX_YEARS):
        problems.append(
            f"{MATURITY}: {maturity:%m/%d/%Y} is more than {MAX_YEARS} years after {SETTLEMENT}"
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


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a year that has none
        return day.replace(year=day.year + years, day=28)


def result_header(header: Sequence[str], greeks: bool = False) -> list[str]:
    """Every input column, then price, stdError, the Greeks when requested, then error."""
    return [*header, *PRICE_COLUMNS, *(GREEK_COLUMNS if greeks else ()), ERROR_COLUMN]


# Characters that force quotes: the delimiter, the quote and BOTH line-break characters.
# (csv.writer quotes only the characters of its own line terminator, "\n": a lone "\r" in a
# field went out bare and split the row in two when read back: issue 11, finding 6.)
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _csv_field(value: str) -> str:
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_line(record: Sequence[str]) -> str:
    if len(record) == 1 and record[0] == "":
        return '""\n'  # a lone empty field must not read back as a blank line
    return ",".join(_csv_field(str(value)) for value in record) + "\n"


def write_csv(header: Sequence[str], records: Sequence[Sequence[str]]) -> bytes:
    """Serialise a table; parts and results all use this one dialect: comma separated,
    "\n" line ends, fields quoted when they hold a comma, a quote, "\r" or "\n"."""
    return "".join([_csv_line(header), *map(_csv_line, records)]).encode("utf-8")


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def result_records(
    rows: Sequence[Row], quotes: Sequence[Quote | None], greeks: bool = False
) -> list[list[str]]:
    """Join rows with their quotes (None for rows that were not priced).

    A priced row's ``error`` is normally empty; it holds a note when Greeks were requested
    but the quote has none (the engine could not compute them), and then the Greek cells are
    empty while the price stands.
    """
    blank_greeks = [""] * len(GREEK_COLUMNS) if greeks else []
    records = []
    for row, quote in zip(rows, quotes, strict=True):
        if quote is None or quote.price is None:
            error = row.error or (quote.error if quote else None) or "not priced"
            records.append([*row.values, "", "", *blank_greeks, error])
            continue
        cells = blank_greeks
        if greeks and quote.greeks is not None:
            g = quote.greeks
            cells = [_number(v) for v in (g.delta, g.gamma, g.vega, g.theta, g.rho)]
        records.append(
            [*row.values, _number(quote.price), _number(quote.std_error), *cells, quote.error or ""]
        )
    return records
