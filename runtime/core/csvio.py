"""The CSV contract: reading an upload into a table, validating rows, writing results.

Pure functions only. A whole-file problem raises ``FileError`` with a message meant for
the user; a row problem becomes that row's error and never stops the rest of the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.core.fields import (
    MARKET_PRICE,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    capped,
    parse_market_price,
    parse_option,
    quoted,
    shown,
)
from runtime.core.options import OptionSpec, Quote

PRICE_COLUMNS = ("price", "stdError")
BOUND_COLUMNS = ("priceLow", "priceHigh")  # only with bounds
GREEK_COLUMNS = ("delta", "gamma", "vega", "theta", "rho")  # only when Greeks are requested
IMPLIED_COLUMN = "impliedVolatility"  # only when the input has a marketPrice column
ERROR_COLUMN = "error"
RESULT_COLUMNS = (*PRICE_COLUMNS, ERROR_COLUMN)  # the result columns without options

# Fields as long as the input allows: the csv module's default limit (131,072 characters) made
# a merge fail on a long field that a single part had accepted (issue 18, finding 6). One
# place, for every reader of the process (the limit is the module's, not a reader's).
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


class FileError(ValueError):
    """The file as a whole cannot be priced; the message says why, for the user."""


@dataclass(frozen=True)
class Table:
    """An upload's header and its data records (raw field strings, blank lines dropped)."""

    header: list[str]
    records: list[list[str]]


@dataclass(frozen=True)
class Row:
    """One data record checked against the contract: an option to price, or an error.

    ``market_price`` is the row's ``marketPrice`` (None when absent or empty), or the text of
    its error: a bad market price costs the row its implied volatility, not its price.
    """

    values: list[str]
    option: OptionSpec | None
    error: str | None
    market_price: float | str | None = None


def has_market_price(header: Sequence[str]) -> bool:
    """Whether a file's header has the optional ``marketPrice`` column."""
    return _has_market_price(header)


def _has_market_price(header: Sequence[str]) -> bool:
    return MARKET_PRICE.casefold() in {name.strip().casefold() for name in header}


def output_columns(
    header: Sequence[str], greeks: bool = False, *, bounds: bool = False
) -> list[str]:
    """The columns pricing appends to the input's, in order: price, stdError, with bounds
    priceLow, priceHigh, with Greeks delta..rho, with a marketPrice column
    impliedVolatility, then error."""
    return [
        *PRICE_COLUMNS,
        *(BOUND_COLUMNS if bounds else ()),
        *(GREEK_COLUMNS if greeks else ()),
        *((IMPLIED_COLUMN,) if _has_market_price(header) else ()),
        ERROR_COLUMN,
    ]


def reserved_columns(
    greeks: bool = False, *, bounds: bool = False, implied: bool = False
) -> tuple[str, ...]:
    """Names an input column may not have: the columns the result adds."""
    return (
        *PRICE_COLUMNS,
        *(BOUND_COLUMNS if bounds else ()),
        *(GREEK_COLUMNS if greeks else ()),
        *((IMPLIED_COLUMN,) if implied else ()),
        ERROR_COLUMN,
    )


def read_table(
    data: bytes,
    max_rows: int | None = None,
    *,
    is_result: bool = False,
    greeks: bool = False,
    bounds: bool = False,
) -> Table:
    """Decode and parse an upload, checking everything that concerns the whole file.

    ``is_result`` reads one of our result files, whose header carries the result columns.
    ``greeks`` and ``bounds`` say which columns the result will add, so an input column named
    like one of them (``delta``, ``priceLow`` ...) is a file error; without the option such a
    column is an ordinary extra column, kept in the result. Likewise ``impliedVolatility``
    is reserved only in a file with a ``marketPrice`` column.
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
        # reject a bad header up front, before any part is written
        column_index(header, greeks, bounds=bounds)
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


_WHEN = {
    **{name.casefold(): " when Greeks are requested" for name in GREEK_COLUMNS},
    **{name.casefold(): " when bounds are requested" for name in BOUND_COLUMNS},
    IMPLIED_COLUMN.casefold(): f" in a file with a {MARKET_PRICE} column",
}
_READ = {name.casefold() for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}


def column_index(
    header: Sequence[str], greeks: bool = False, *, bounds: bool = False
) -> dict[str, int]:
    """Map each required column, and each optional column present, to its position;
    raise FileError naming what is wrong.

    A column the contract reads must appear once; any other column (an empty name too) may
    repeat, and is kept unchanged in the result (issue 18, finding 13).
    """
    implied = _has_market_price(header)
    reserved = {
        name.casefold() for name in reserved_columns(greeks, bounds=bounds, implied=implied)
    }
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        folded = name.casefold()
        if folded in reserved:
            why = _WHEN.get(folded, "")
            raise FileError(
                f"column {quoted(name)} is reserved for the result{why}: rename or remove it"
            )
        if folded not in _READ:
            continue
        if folded in positions:
            raise FileError(f"column {quoted(name)} appears more than once in the header")
        positions[folded] = position
    missing = [name for name in REQUIRED_COLUMNS if name.casefold() not in positions]
    if missing:
        present = ", ".join(name[:80] for name in header[:40]) or "nothing"
        if len(header) > 40:
            present += f", ... ({len(header)} columns)"
        raise FileError(
            f"missing required column(s): {', '.join(missing)} (header has: {present})"
            + _separator_hint(header)
        )
    wanted = [*REQUIRED_COLUMNS, *(n for n in OPTIONAL_COLUMNS if n.casefold() in positions)]
    return {name: positions[name.casefold()] for name in wanted}


def _separator_hint(header: Sequence[str]) -> str:
    """A header that is one column holding another separator: say so (a spreadsheet's
    export in a locale that writes decimal commas separates with semicolons)."""
    if len(header) != 1:
        return ""
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if separator in header[0]:
            return f"; the columns look separated by {name}: separate them with commas"
    return ""


def parse_rows(table: Table, greeks: bool = False, *, bounds: bool = False) -> list[Row]:
    """Check every record; each becomes an option to price or a row-level error."""
    columns = column_index(table.header, greeks, bounds=bounds)
    width = len(table.header)
    rows = []
    for record in table.records:
        values = (record + [""] * width)[:width]
        if len(record) != width:
            extra = f": extra {shown(repr(record[width:]))}" if len(record) > width else ""
            message = f"row has {len(record)} fields, header has {width}{extra}"
            rows.append(Row(values, None, capped(message)))
            continue
        option, error = parse_option(record, columns)
        rows.append(Row(values, option, error, parse_market_price(record, columns)))
    return rows


def result_header(
    header: Sequence[str], greeks: bool = False, *, bounds: bool = False
) -> list[str]:
    """Every input column, then ``output_columns``."""
    return [*header, *output_columns(header, greeks, bounds=bounds)]


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
    return "" if value is None else repr(float(value) + 0.0)  # + 0.0: never "-0.0"


Implied = tuple[float | None, str | None]  # (volatility, why there is none)


def result_records(
    rows: Sequence[Row],
    quotes: Sequence[Quote | None],
    greeks: bool = False,
    *,
    bounds: bool = False,
    implied: Sequence[Implied | None] | None = None,
) -> list[list[str]]:
    """Join rows with their quotes (None for rows that were not priced), and with their
    implied volatilities (``implied``: given exactly when the file has a ``marketPrice``
    column, None per row without one).

    A priced row's ``error`` is normally empty; it holds a note when the Greeks or bounds
    were requested but the quote has none, or why the row has no implied volatility, and
    then those cells are empty while the price stands. Every error is ``capped``.
    """
    has_implied = implied is not None  # the file has a marketPrice column
    implied = implied if implied is not None else [None] * len(rows)
    blank_bounds = [""] * len(BOUND_COLUMNS) if bounds else []
    blank_greeks = [""] * len(GREEK_COLUMNS) if greeks else []
    records = []
    for row, quote, vol in zip(rows, quotes, implied, strict=True):
        implied_cells = [_number(vol[0]) if vol else ""] if has_implied else []
        if quote is None or quote.price is None:
            error = row.error or (quote.error if quote else None) or "not priced"
            cells = [*row.values, "", "", *blank_bounds, *blank_greeks]
            records.append([*cells, *([""] if has_implied else []), capped(error)])
            continue
        bound_cells = blank_bounds
        if bounds and quote.price_low is not None and quote.price_high is not None:
            bound_cells = [_number(quote.price_low), _number(quote.price_high)]
        greek_cells = blank_greeks
        if greeks and quote.greeks is not None:
            g = quote.greeks
            greek_cells = [_number(v) for v in (g.delta, g.gamma, g.vega, g.theta, g.rho)]
        notes = [quote.error or "", vol[1] if vol and vol[1] else ""]
        records.append(
            [
                *row.values,
                _number(quote.price),
                _number(quote.std_error),
                *bound_cells,
                *greek_cells,
                *implied_cells,
                capped("; ".join(note for note in notes if note)),
            ]
        )
    return records
