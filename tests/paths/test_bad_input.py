"""Malformed and unusual files through ``price`` and through both cloud paths.

Each case states its expectation: either every row comes out (row count in = row count
out) with the named rows carrying an error naming the column, or the whole file is refused
with a clear message (an error object in the cloud, the input left untouched).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from runtime.adapters.lambda_handler import handle_object
from runtime.cli import main as cli_main
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.tools.generate import generate_portfolio
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.helpers import all_keys, read, run_batch_job, status_of, upload

HEADER = (
    "id,todaysDate,settlementDate,optionType,underlying,strike,riskFreeRate,volatility,maturityDate"
)
ROWS = [
    "1,10/26/2022,10/28/2022,Call,22.2,22,0.047,0.10,01/16/2023",
    "2,10/23/2022,10/25/2022,Call,56.0,45,0.134,0.17,11/10/2022",
    "3,10/17/2022,10/19/2022,Put,54.6,57,0.128,0.23,01/21/2023",
]
NAMES = HEADER.split(",")


def with_field(row: int, column: str, value: str) -> bytes:
    """The three good rows, with one field of one row replaced."""
    rows = [line.split(",") for line in ROWS]
    rows[row][NAMES.index(column)] = value
    return "\n".join([HEADER, *(",".join(r) for r in rows)]).encode() + b"\n"


def lines(*text: str) -> bytes:
    return "\n".join(text).encode() + b"\n"


@dataclass(frozen=True)
class Case:
    data: bytes
    rows: int | None = None  # expected output rows; None: the whole file is refused
    row_errors: dict[int, str] = field(default_factory=dict)
    file_error: str = ""
    max_rows: int = 1_000_000


GOOD = lines(HEADER, *ROWS)
CASES = {
    "non-numeric": Case(
        with_field(1, "underlying", "abc"), 3, {1: "underlying: 'abc' is not a number"}
    ),
    "empty-number": Case(with_field(0, "strike", ""), 3, {0: "strike: '' is not a number"}),
    "nan": Case(with_field(2, "volatility", "NaN"), 3, {2: "volatility: 'NaN' is not a finite"}),
    "inf": Case(
        with_field(0, "riskFreeRate", "inf"), 3, {0: "riskFreeRate: 'inf' is not a finite"}
    ),
    "minus-inf": Case(
        with_field(1, "underlying", "-inf"), 3, {1: "underlying: '-inf' is not a finite"}
    ),
    "zero-underlying": Case(
        with_field(0, "underlying", "0"), 3, {0: "underlying: must be positive"}
    ),
    "negative-strike": Case(with_field(1, "strike", "-45"), 3, {1: "strike: must be positive"}),
    "zero-volatility": Case(
        with_field(2, "volatility", "0"), 3, {2: "volatility: must be positive"}
    ),
    "negative-volatility": Case(
        with_field(2, "volatility", "-0.2"), 3, {2: "volatility: must be positive"}
    ),
    "negative-rate-is-fine": Case(with_field(0, "riskFreeRate", "-0.01"), 3),
    "impossible-date": Case(
        with_field(0, "maturityDate", "02/30/2023"),
        3,
        {0: "maturityDate: '02/30/2023' is not a date"},
    ),
    "unparseable-date": Case(
        with_field(1, "todaysDate", "yesterday"), 3, {1: "todaysDate: 'yesterday' is not a date"}
    ),
    "reversed-dates": Case(
        with_field(2, "maturityDate", "10/01/2022"),
        3,
        {2: "maturityDate: 10/01/2022 is not after settlementDate"},
    ),
    "maturity-equals-settlement": Case(
        with_field(0, "maturityDate", "10/28/2022"), 3, {0: "is not after settlementDate"}
    ),
    "settlement-before-today": Case(
        with_field(1, "settlementDate", "10/01/2022"),
        3,
        {1: "settlementDate: 10/01/2022 is before todaysDate"},
    ),
    "unknown-type": Case(
        with_field(0, "optionType", "Straddle"), 3, {0: "optionType: 'Straddle' is not Call or Put"}
    ),
    "empty-type": Case(
        with_field(1, "optionType", ""), 3, {1: "optionType: '' is not Call or Put"}
    ),
    "type-any-case": Case(with_field(0, "optionType", "cALL").replace(b"Put", b"PUT"), 3),
    "short-row": Case(
        lines(HEADER, ROWS[0], "2,10/23/2022,10/25/2022", ROWS[2]),
        3,
        {1: "row has 3 fields, header has 9"},
    ),
    "long-row": Case(
        lines(HEADER, ROWS[0] + ",x,y", ROWS[1], ROWS[2]), 3, {0: "row has 11 fields, header has 9"}
    ),
    "missing-column": Case(
        lines(
            HEADER.replace(",strike", ""), "1,10/26/2022,10/28/2022,Call,22.2,0.047,0.10,01/16/2023"
        ),
        file_error="missing required column(s): strike",
    ),
    "reordered-columns": Case(
        lines(",".join(reversed(NAMES)), *(",".join(reversed(r.split(","))) for r in ROWS)), 3
    ),
    "extra-columns": Case(lines(HEADER + ",desk", *(r + ",A" for r in ROWS)), 3),
    "bom": Case(b"\xef\xbb\xbf" + GOOD, 3),
    "crlf": Case(GOOD.replace(b"\n", b"\r\n"), 3),
    "blank-lines": Case(b"\n" + GOOD.replace(b"\n", b"\n\n") + b"   \n", 3),
    "quoted-fields": Case(
        lines(HEADER, *(",".join(f'"{v}"' for v in r.split(",")) for r in ROWS)), 3
    ),
    "spaces-around-fields": Case(
        lines(HEADER.replace(",", " , "), *(r.replace(",", " , ") for r in ROWS)), 3
    ),
    "unterminated-quote": Case(
        lines(HEADER, ROWS[0], '2,"10/23/2022,10/25/2022,Call'), 2, {1: "row has 2 fields"}
    ),
    "binary-garbage": Case(bytes(range(256)) * 4, file_error="not text"),
    "latin-1": Case("id,todaysDate,Désignation\n1,é\n".encode("latin-1"), file_error="not UTF-8"),
    "empty-file": Case(b"", file_error="file is empty"),
    "whitespace-only": Case(b" \n\r\n\t\n", file_error="file is empty"),
    "header-only": Case(lines(HEADER), 0),
    "duplicate-column": Case(
        lines(HEADER + ",strike", ROWS[0] + ",1"), file_error="appears more than once"
    ),
    "reserved-column": Case(
        lines(HEADER + ",price", ROWS[0] + ",1"), file_error="reserved for the result"
    ),
    "semicolons": Case(GOOD.replace(b",", b";"), file_error="missing required column(s)"),
    "over-the-row-ceiling": Case(
        generate_portfolio(3_000), file_error="more than 2500 data rows", max_rows=2_500
    ),
    "large-file": Case(generate_portfolio(3_000), 3_000),
}


def assert_result(case: Case, result: bytes) -> None:
    records = read_table(result, is_result=True).records
    assert len(records) == case.rows
    for index, record in enumerate(records):
        expected = case.row_errors.get(index)
        if expected:
            assert expected in record[-1] and record[-3] == "", record
        else:
            assert record[-1] == "" and float(record[-3]) >= 0, record


def test_the_matrix_is_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_price_command(name, tmp_path, capsys):
    case = CASES[name]
    if case.max_rows < 1_000_000:
        # The row ceiling protects the deployed stack; on a laptop, price prints what it gets.
        case = dataclasses.replace(case, rows=len(read_table(case.data).records))
    source = tmp_path / "input.csv"
    source.write_bytes(case.data)
    code = cli_main(["price", str(source), "--engine", "qdfp"])
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    if case.rows is None:
        assert code == 1 and case.file_error in stderr and stderr.startswith("error: ")
    else:
        assert code == 0, stderr
        assert_result(case, (tmp_path / "input.csv-result").read_bytes())


def run_fast(steps, s3, key: str) -> None:
    handle_object(steps, INPUT_BUCKET, key)
    parts = [k for k in all_keys(s3, INPUT_BUCKET) if keys.is_fast_part(k)]
    for part in parts:
        handle_object(steps, INPUT_BUCKET, part)


def run_normal(steps, s3, key: str) -> None:
    run_batch_job(steps, s3, key)


@pytest.mark.parametrize("path", ["fast", "normal"])
@pytest.mark.parametrize("name", CASES)
def test_cloud_paths(name, path, make_steps, s3):
    case = CASES[name]
    # Two-row parts, so every multi-row file is split and merged; big files use bigger parts.
    threshold = 2 if len(case.data) < 10_000 else 1_000
    steps = make_steps(threshold=threshold, max_rows=case.max_rows)
    key = f"{path}/20261124-0900/input.csv"
    upload(s3, key, case.data)
    (run_fast if path == "fast" else run_normal)(steps, s3, key)
    assert read(s3, key, bucket=INPUT_BUCKET) == case.data  # the user's input is untouched
    status = status_of(s3, key)
    if case.rows is None:
        assert case.file_error in read(s3, keys.error_key(key)).decode()
        assert read(s3, keys.result_key(key)) is None
        assert status["state"] == "failed" and case.file_error in status["error"]
    else:
        assert status["state"] == "done"
        assert read(s3, keys.error_key(key)) is None
        assert_result(case, read(s3, keys.result_key(key)))
