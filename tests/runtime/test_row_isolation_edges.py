"""Row isolation at the edges (issue 18, findings 6, 12 and 13): long fields, dates at the
calendar's edges, repeated extra columns; and rows of arbitrary values, which never affect
the other rows and never raise from price_table. Through runtime.core and ``price``."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.core.csvio import FileError, read_table, write_csv
from runtime.core.fields import MAX_ERROR_CHARS, QUOTE_CHARS
from runtime.core.manifest import merge_results, plan_parts
from runtime.engines import get_engine
from runtime.pricing import price_table
from tests.runtime.test_cli import run_cli

HEADER = (
    "id,todaysDate,settlementDate,optionType,underlying,strike,riskFreeRate,volatility,maturityDate"
)
GOOD = [
    "1,10/26/2022,10/28/2022,Put,36,40,0.06,0.2,10/28/2023",
    "2,10/26/2022,10/28/2022,Call,110,100,0.03,0.25,04/28/2023",
    "3,10/26/2022,10/28/2022,Put,95,100,0.05,0.3,10/28/2024",
]


def priced(lines: list[str], engine: str = "lsm", header: str = HEADER) -> list[list[str]]:
    data = ("\n".join([header, *lines]) + "\n").encode()
    result = price_table(read_table(data), get_engine(engine)).csv
    return read_table(result, is_result=True).records


# --- 18.6: long fields ------------------------------------------------------------------


def long_row(size: int) -> str:
    return f"9,10/26/2022,10/28/2022,{'Put' * size},{'x' * size},40,0.06,0.2,10/28/2023"


def test_an_error_quoting_a_long_field_is_capped_and_names_the_column():
    records = priced([GOOD[0], long_row(200_000), GOOD[1]])
    error = records[1][-1]
    assert len(error) <= MAX_ERROR_CHARS
    assert "underlying: 'xxxx" in error and "(200000 characters)" in error
    assert "optionType" in error
    assert records[1][4] == "x" * 200_000  # the value itself is kept, unchanged
    assert records[0] == priced([GOOD[0]])[0] and records[2] == priced([GOOD[1]])[0]


def test_a_split_job_with_a_long_field_merges_and_reads_back():
    """The merge re-reads the merged file: a field past the csv module's default limit of
    131,072 characters made every merge of such a job fail while the unsplit file was done."""
    data = ("\n".join([HEADER, GOOD[0], long_row(300_000), GOOD[1], GOOD[2]]) + "\n").encode()
    table = read_table(data)
    whole = price_table(table, get_engine("qdfp")).csv
    header = whole[: whole.index(b"\n") + 1]
    parts = [
        price_table(
            read_table(write_csv(table.header, table.records[r.start : r.stop])),
            get_engine("qdfp"),
        ).csv
        for r in plan_parts(len(table.records), 1, max_parts=10)
    ]
    merged = merge_results(header, parts)
    assert merged == whole
    records = read_table(merged, is_result=True).records
    assert len(records) == 4 and records[1][4] == "x" * 300_000 and records[1][-1]


def test_a_row_with_too_many_long_fields_gets_a_capped_error():
    extra = ",".join(["y" * 50_000] * 4)
    (record,) = priced([f"{GOOD[0]},{extra}"])
    assert record[-1].startswith("row has 13 fields, header has 9: extra ")
    assert len(record[-1]) <= MAX_ERROR_CHARS and "characters)" in record[-1]


def test_a_quoted_value_is_at_most_the_documented_length():
    (record,) = priced([GOOD[0].replace("0.06", "r" * 1000)])
    quoted = record[-1].split("riskFreeRate: ", 1)[1]
    assert quoted.startswith("'" + "r" * QUOTE_CHARS + "'... (1000 characters)")


# --- 18.12: dates at the calendar's edges -------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "expect"),
    [
        (("12/30/9998", "12/30/9998", "12/31/9999"), None),  # priced
        (("01/01/0001", "01/01/0001", "01/01/0002"), None),
        (("12/31/9999", "12/31/9999", "12/31/9999"), "maturityDate: 12/31/9999 is not after"),
        (("06/01/9990", "06/01/9990", "01/01/10000"), "maturityDate: '01/01/10000' is not a date"),
        (("01/01/0001", "01/01/0001", "01/02/0051"), "is more than 50 years after"),
    ],
)
def test_dates_at_the_calendars_edges_are_priced_or_a_row_error(dates, expect):
    today, settlement, maturity = dates
    line = f"7,{today},{settlement},Put,36,40,0.06,0.2,{maturity}"
    records = priced([GOOD[0], line, GOOD[1]])
    if expect is None:
        assert records[1][-1] == "" and float(records[1][-3]) > 0
    else:
        assert expect in records[1][-1] and records[1][-3] == ""
    assert records[0] == priced([GOOD[0]])[0] and records[2] == priced([GOOD[1]])[0]


def test_quantlib_engines_name_the_date_outside_their_calendar():
    line = "7,12/30/9998,12/30/9998,Put,36,40,0.06,0.2,12/31/9999"
    records = priced([GOOD[0], line], engine="qdfp")
    assert records[1][-1] == (
        "pricing failed: todaysDate: 12/30/9998 is outside QuantLib's calendar (1901-2199); "
        "the lsm engine prices any date"
    )
    assert records[0][-1] == "" and float(records[0][-3]) > 0


# --- 18.13: repeated columns --------------------------------------------------------------


@pytest.mark.parametrize("extra", ["note,note", ",", "note,NOTE,note"])
def test_repeated_extra_columns_and_empty_names_are_kept_unchanged(extra):
    header = f"{HEADER},{extra}"
    values = [f"v{i}" for i in range(extra.count(",") + 1)]
    data = f"{header}\n{GOOD[0]},{','.join(values)}\n".encode()
    result = read_table(price_table(read_table(data), get_engine("qdfp")).csv, is_result=True)
    assert result.header[: len(header.split(","))] == header.split(",")
    (record,) = result.records
    assert record[9 : 9 + len(values)] == values and record[-1] == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("strike", "column 'strike' appears more than once"),
        ("Volatility", "column 'Volatility' appears more than once"),
        ("dividendYield,DIVIDENDYIELD", "appears more than once"),
        ("price,price", "column 'price' is reserved for the result"),
    ],
)
def test_a_repeated_column_the_contract_reads_is_a_file_error(extra, message):
    with pytest.raises(FileError, match=message):
        read_table(f"{HEADER},{extra}\n".encode())


# --- through the command line --------------------------------------------------------------


def test_price_keeps_the_other_rows_whatever_one_row_holds(tmp_path):
    source = tmp_path / "edges.csv"
    lines = [
        f"{HEADER},note,note,,",
        f"{GOOD[0]},a,b,,",
        f"{long_row(150_000)},c,d,,",
        "8,12/30/9998,12/30/9998,Put,36,40,0.06,0.2,12/31/9999,e,f,,",
        f"{GOOD[1]},g,h,,",
    ]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    done = run_cli("price", str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    result = read_table(out.read_bytes(), is_result=True)
    assert result.header[9:13] == ["note", "note", "", ""]
    records = result.records
    assert [r[9] for r in records] == ["a", "c", "e", "g"]
    assert "underlying: 'xxx" in records[1][-1] and len(records[1][-1]) <= 500
    assert records[2][-1] == "" and float(records[2][-3]) > 0  # dated 9998/9999: priced
    assert records[0][-1] == records[3][-1] == ""
    assert "(1 with errors)" in done.stderr


# --- property: arbitrary rows never affect the others, never raise ------------------------

# any text a UTF-8 file can hold (a NUL byte makes it a binary file: a file error by design)
ANY = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
FIELD = st.one_of(
    st.text(alphabet=ANY, max_size=12),
    st.text(alphabet=string.digits + ".-e/", max_size=12),
    st.sampled_from(["Call", "put", "0", "-1", "1e8", "nan", "inf", "10/28/2023", "9999-12-31"]),
    st.text(alphabet='x,"\r\n', min_size=200, max_size=2000),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rows=st.lists(st.lists(FIELD, min_size=0, max_size=12), min_size=1, max_size=4))
def test_rows_of_arbitrary_values_never_affect_the_others(rows):
    header = HEADER.split(",")
    good = [line.split(",") for line in GOOD[:2]]
    table = read_table(write_csv(header, [good[0], *rows, good[1]]))
    result = price_table(table, get_engine("lsm"))  # never raises
    records = read_table(result.csv, is_result=True).records
    alone = read_table(
        price_table(read_table(write_csv(header, good)), get_engine("lsm")).csv, is_result=True
    ).records
    assert records[0] == alone[0] and records[-1] == alone[1]
    assert len(records) == len(table.records)
    for record in records:
        assert len(record[-1]) <= MAX_ERROR_CHARS
        assert record[-1] or float(record[-3]) >= 0.0
