"""The CSV contract: reading an upload into a table, validating rows, writing results.

Pure functions only. A whole-file problem raises ``FileError`` with a message meant for
the user; a row problem becomes that row's error and never stops the rest of the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
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
RESULT_COLUMNS = ("price", "stdError", "error")
_RESERVED = {name.casefold() for name in RESULT_COLUMNS}

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


def read_table(data: bytes, max_rows: int | None = None, *, is_result: bool = False) -> Table:
    """Decode and parse an upload, checking everything that concerns the whole file.

    ``is_result`` reads one of our result files, whose header carries the result columns.
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
        column_index(header)  # reject a bad header up front, before any part is written
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


def column_index(header: Sequence[str]) -> dict[str, int]:
    """Map each required column to its position, or raise FileError naming what is wrong."""
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        folded = name.casefold()
        if folded in _RESERVED:
            raise FileError(f"column {name!r} is reserved for the result: rename or remove it")
        if folded in positions:
            raise FileError(f"column {name!r} appears more than once in the header")
        positions[folded] = position
    missing = [name for name in REQUIRED_COLUMNS if name.casefold() not in positions]
    if missing:
        raise FileError(
            f"missing required column(s): {', '.join(missing)} "
            f"(header has: {', '.join(header) or 'nothing'})"
        )
    return {name: positions[name.casefold()] for name in REQUIRED_COLUMNS}


def parse_rows(table: Table) -> list[Row]:
    """Check every record; each becomes an option to price or a row-level error."""
    columns = column_index(table.header)
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
        return record[columns[name]].strip()

    def number(name: str, positive: bool) -> float:
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
    spot = number(UNDERLYING, positive=True)
    strike = number(STRIKE, positive=True)
    rate = number(RATE, positive=False)
    volatility = number(VOLATILITY, positive=True)
    if settlement and today and settlement < today:
        problems.append(f"{SETTLEMENT}: {settlement:%m/%d/%Y} is before {TODAY}")
    if maturity and settlement and maturity <= settlement:
        problems.append(f"{MATURITY}: {maturity:%m/%d/%Y} is not after {SETTLEMENT}")
    if problems:
        return None, "; ".join(problems)
    assert today and settlement and maturity  # every date parsed, or problems is not empty
    spec = OptionSpec(today, settlement, maturity, kind == "call", spot, strike, rate, volatility)
    return spec, None


def result_header(header: Sequence[str]) -> list[str]:
    return [*header, *RESULT_COLUMNS]


def write_csv(header: Sequence[str], records: Sequence[Sequence[str]]) -> bytes:
    """Serialise a table; parts and results all use this one dialect."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    return buffer.getvalue().encode("utf-8")


def result_records(rows: Sequence[Row], quotes: Sequence[Quote | None]) -> list[list[str]]:
    """Join rows with their quotes (None for rows that were not priced)."""
    records = []
    for row, quote in zip(rows, quotes, strict=True):
        if quote is None or quote.price is None:
            error = row.error or (quote.error if quote else None) or "not priced"
            records.append([*row.values, "", "", error])
        else:
            std_error = "" if quote.std_error is None else repr(quote.std_error)
            records.append([*row.values, repr(quote.price), std_error, ""])
    return records
