"""The CSV contract: harmless variants are accepted, problems are named per row or file."""

import datetime as dt

import pytest

from runtime.core.csvio import FileError, parse_rows, read_table, result_header, write_csv

HEADER = (
    "id,todaysDate,settlementDate,optionType,underlying,strike,riskFreeRate,volatility,maturityDate"
)
GOOD = "1,10/26/2022,10/28/2022,Call,22.2,22,0.047,0.10,01/16/2023"


def rows_of(text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    return parse_rows(read_table(data))


def test_a_good_row_becomes_an_option():
    (row,) = rows_of(f"{HEADER}\n{GOOD}\n")
    assert row.error is None
    assert row.option.is_call
    assert row.option.today == dt.date(2022, 10, 26)
    assert row.option.maturity == dt.date(2023, 1, 16)
    assert (row.option.spot, row.option.strike) == (22.2, 22.0)
    assert row.values == GOOD.split(",")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(f"\ufeff{HEADER}\n{GOOD}\n".encode(), id="bom"),
        pytest.param(f"{HEADER}\r\n{GOOD}\r\n".encode(), id="crlf"),
        pytest.param(f"\n{HEADER}\n\n{GOOD}\n\n  \n".encode(), id="blank-lines"),
        pytest.param(
            (HEADER + "\n" + ",".join(f'"{v}"' for v in GOOD.split(",")) + "\n").encode(),
            id="quoted",
        ),
        pytest.param(
            (", ".join(HEADER.split(",")) + "\n" + " , ".join(GOOD.split(",")) + "\n").encode(),
            id="spaces",
        ),
        pytest.param(f"{HEADER}\n{GOOD.replace('Call', 'cALL')}\n".encode(), id="case"),
    ],
)
def test_harmless_variants_price_like_the_plain_file(data):
    (plain,) = rows_of(f"{HEADER}\n{GOOD}\n")
    (row,) = rows_of(data)
    assert row.error is None
    assert row.option == plain.option


def test_columns_in_any_order_and_extra_columns_are_kept():
    names = HEADER.split(",")
    values = GOOD.split(",")
    order = list(reversed(range(len(names))))
    header = ",".join([names[i] for i in order] + ["book"])
    line = ",".join([values[i] for i in order] + ["desk A"])
    table = read_table(f"{header}\n{line}\n".encode())
    (row,) = parse_rows(table)
    assert row.error is None and row.values[-1] == "desk A"
    assert result_header(table.header)[-4:] == ["book", "price", "stdError", "error"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("underlying", "abc", "underlying: 'abc' is not a number"),
        ("underlying", "0", "underlying: must be positive"),
        ("strike", "-5", "strike: must be positive"),
        ("volatility", "nan", "volatility: 'nan' is not a finite number"),
        ("riskFreeRate", "inf", "riskFreeRate: 'inf' is not a finite number"),
        ("optionType", "Straddle", "optionType: 'Straddle' is not Call or Put"),
        ("maturityDate", "02/30/2023", "maturityDate: '02/30/2023' is not a date"),
        ("maturityDate", "10/27/2022", "maturityDate: 10/27/2022 is not after settlementDate"),
        ("settlementDate", "10/20/2022", "settlementDate: 10/20/2022 is before todaysDate"),
    ],
)
def test_row_problems_name_the_column(field, value, message):
    names = HEADER.split(",")
    values = GOOD.split(",")
    values[names.index(field)] = value
    good, bad = rows_of(f"{HEADER}\n{GOOD}\n{','.join(values)}\n")
    assert good.error is None
    assert bad.option is None and message in bad.error


def test_wrong_field_counts_are_row_errors_that_keep_the_values():
    short, long_row = rows_of(f"{HEADER}\n1,10/26/2022\n{GOOD},surplus\n")
    assert short.error == "row has 2 fields, header has 9"
    assert short.values[:2] == ["1", "10/26/2022"] and len(short.values) == 9
    assert long_row.error == "row has 10 fields, header has 9: extra ['surplus']"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty"),
        (b"\n\n  \n", "file is empty"),
        (b"\x00\x01\x02binary", "not text"),
        (b"\xff\xfe\xfa not utf8", "not UTF-8"),
        (b"id,strike\n1,2\n", "missing required column(s): todaysDate, settlementDate"),
        ((HEADER + ",strike\n").encode(), "appears more than once"),
        ((HEADER + ",price\n").encode(), "reserved for the result"),
    ],
)
def test_whole_file_problems_raise_a_clear_file_error(data, message):
    with pytest.raises(FileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_table(data)


def test_a_header_with_no_rows_is_a_valid_empty_table():
    assert read_table(f"{HEADER}\n".encode()).records == []


def test_the_row_ceiling_is_a_file_error():
    data = (HEADER + "\n" + "\n".join([GOOD] * 11) + "\n").encode()
    assert len(read_table(data, max_rows=11).records) == 11
    with pytest.raises(FileError, match="more than 10 data rows"):
        read_table(data, max_rows=10)


def test_write_csv_round_trips_awkward_values():
    header = HEADER.split(",")
    awkward = GOOD.split(",")
    awkward[0] = 'say "hi",\nthen break'
    table = read_table(write_csv(header, [awkward]))
    assert table.header == header and table.records == [awkward]
