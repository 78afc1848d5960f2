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
        (HEADER.replace(",", ";").encode(), "columns look separated by semicolons"),
        (HEADER.replace(",", "\t").encode(), "columns look separated by tabs"),
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


# --- dividend yields, exercise style, bounds ---------------------------------------------


def with_columns(extra: dict[str, str], base: str = GOOD) -> str:
    """A one-row file: the good row plus ``extra`` columns."""
    header = ",".join([HEADER, *extra])
    line = ",".join([base, *extra.values()])
    return f"{header}\n{line}\n"


def test_without_the_new_columns_options_are_american_without_dividends():
    (row,) = rows_of(f"{HEADER}\n{GOOD}\n")
    assert row.option.dividend_yield == 0.0 and row.option.american


@pytest.mark.parametrize(
    ("dividend", "exercise", "expected"),
    [
        ("0.03", "European", (0.03, False)),
        ("-0.01", "european", (-0.01, False)),
        (" 0.07 ", "AMERICAN", (0.07, True)),
        ("", "", (0.0, True)),  # empty cells: the defaults
        ("0", " American ", (0.0, True)),
    ],
)
def test_dividend_yield_and_exercise_type(dividend, exercise, expected):
    (row,) = rows_of(with_columns({"DividendYield": dividend, "exercisetype": exercise}))
    assert row.error is None
    assert (row.option.dividend_yield, row.option.american) == expected


def test_the_new_columns_are_optional_one_at_a_time():
    (row,) = rows_of(with_columns({"exerciseType": "European"}))
    assert row.option.dividend_yield == 0.0 and not row.option.american
    (row,) = rows_of(with_columns({"dividendYield": "0.02"}))
    assert row.option.dividend_yield == 0.02 and row.option.american


def test_default_terms_keep_the_workshop_seed():
    (plain,) = rows_of(f"{HEADER}\n{GOOD}\n")
    (explicit,) = rows_of(with_columns({"dividendYield": "0", "exerciseType": "American"}))
    assert explicit.option == plain.option and explicit.option.seed() == plain.option.seed()
    (dividend,) = rows_of(with_columns({"dividendYield": "0.01"}))
    assert dividend.option.seed() != plain.option.seed()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("dividendYield", "two", "dividendYield: 'two' is not a number"),
        ("dividendYield", "nan", "dividendYield: 'nan' is not a finite number"),
        ("dividendYield", "-inf", "dividendYield: '-inf' is not a finite number"),
        ("dividendYield", "3", "dividendYield: 3 is outside [-1, 1]"),
        ("dividendYield", "-1.5", "dividendYield: -1.5 is outside [-1, 1]"),
        ("exerciseType", "Bermudan", "exerciseType: 'Bermudan' is not American or European"),
    ],
)
def test_bad_dividend_or_exercise_is_a_row_error_naming_the_column(column, value, message):
    good, bad = parse_rows(
        read_table(
            (
                f"{HEADER},{column}\n{GOOD},\n{GOOD},{value}\n"  # the first row: empty = default
            ).encode()
        )
    )
    assert good.error is None
    assert bad.option is None and message in bad.error


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("underlying", "1e8", None),
        ("underlying", "100000001", "underlying: 100000001 is above the limit of 1e+08"),
        ("strike", "1e9", "strike: 1e9 is above the limit of 1e+08"),
        ("volatility", "5", None),
        ("volatility", "5.01", "volatility: 5.01 is above the limit of 5"),
        ("volatility", "1e5", "volatility: 1e5 is above the limit of 5"),
        ("volatility", "0", "volatility: must be positive"),
        ("riskFreeRate", "-1", None),
        ("riskFreeRate", "1", None),
        ("riskFreeRate", "475", "riskFreeRate: 475 is outside [-1, 1] (a decimal"),
        ("riskFreeRate", "-1.01", "riskFreeRate: -1.01 is outside [-1, 1]"),
        ("maturityDate", "10/28/2072", None),  # exactly 50 years after settlement
        ("maturityDate", "10/29/2072", "maturityDate: 10/29/2072 is more than 50 years after"),
    ],
)
def test_validation_bounds_name_the_column_and_the_bound(field, value, message):
    names = HEADER.split(",")
    values = GOOD.split(",")
    values[names.index(field)] = value
    (row,) = rows_of(f"{HEADER}\n{','.join(values)}\n")
    if message is None:
        assert row.error is None, row.error
    else:
        assert row.option is None and message in row.error, row.error


def test_fifty_years_from_a_leap_day():
    values = GOOD.split(",")
    values[1:3] = ["02/29/2024", "02/29/2024"]
    values[-1] = "02/28/2074"
    (row,) = rows_of(f"{HEADER}\n{','.join(values)}\n")
    assert row.error is None
    values[-1] = "03/01/2074"
    (row,) = rows_of(f"{HEADER}\n{','.join(values)}\n")
    assert "more than 50 years" in row.error


def test_several_problems_in_one_row_are_all_named():
    (row,) = rows_of(with_columns({"dividendYield": "9", "exerciseType": "Asian"}))
    assert "dividendYield" in row.error and "exerciseType" in row.error


# --- result columns ---------------------------------------------------------------------


def test_result_header_with_and_without_greeks():
    header = HEADER.split(",")
    assert result_header(header)[-3:] == ["price", "stdError", "error"]
    assert result_header(header, greeks=True)[len(header) :] == [
        "price",
        "stdError",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        "error",
    ]


@pytest.mark.parametrize("name", ["delta", "Gamma", "VEGA", "theta", "rho"])
def test_a_greek_named_input_column_is_a_file_error_only_with_greeks(name):
    data = f"{HEADER},{name}\n{GOOD},x\n".encode()
    with pytest.raises(FileError, match=f"column '{name}' is reserved .* when Greeks"):
        read_table(data, greeks=True)
    with pytest.raises(FileError, match="when Greeks are requested"):
        parse_rows(read_table(data), greeks=True)  # read without, priced with: still caught
    (row,) = parse_rows(read_table(data))  # without Greeks: an ordinary extra column
    assert row.error is None and row.values[-1] == "x"


def test_price_stderror_error_stay_reserved_without_greeks():
    for name in ("price", "stdError", "ERROR"):
        with pytest.raises(FileError, match="reserved for the result: rename"):
            read_table(f"{HEADER},{name}\n".encode())


# --- carriage returns inside quoted fields (issue 11, finding 6) ---------------------------

AWKWARD_IDS = ["cr\ronly", "crlf\r\ninside", "lf\ninside", '"quoted", and \r\n all', "plain"]


def awkward_file(line_end: str) -> bytes:
    lines = [HEADER]
    for name in AWKWARD_IDS:
        escaped = name.replace('"', '""')
        lines.append(f'"{escaped}",' + GOOD.split(",", 1)[1])
    return (line_end.join(lines) + line_end).encode()


@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_line_breaks_inside_quoted_fields_round_trip(line_end):
    table = read_table(awkward_file(line_end))
    assert [record[0] for record in table.records] == AWKWARD_IDS
    again = read_table(write_csv(table.header, table.records))
    assert again.header == table.header and again.records == table.records
    assert all(row.error is None for row in parse_rows(again))


def test_a_lone_carriage_return_is_quoted_when_written():
    assert write_csv(["a", "b"], [["x\ry", "z"]]) == b'a,b\n"x\ry",z\n'
    assert write_csv(["a"], [[""]]) == b'a\n""\n'  # not a blank line, which reads as nothing


def test_the_writer_matches_the_csv_module_on_ordinary_values():
    import csv
    import io

    records = [["1", "a b", " spaced ", 'q"uote', "com,ma", "", "l\nf"], ["2"] * 7]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows([HEADER.split(",")[:7], *records])
    assert write_csv(HEADER.split(",")[:7], records) == buffer.getvalue().encode()


@pytest.mark.parametrize("threshold", [1, 2, 3, 10])
def test_line_breaks_survive_split_price_and_merge(threshold):
    from runtime.core.csvio import result_records
    from runtime.core.manifest import merge_results, plan_parts
    from runtime.core.options import Quote

    data = awkward_file("\r\n")
    table = read_table(data)
    plan = plan_parts(len(table.records), threshold, max_parts=100)
    parts = [write_csv(table.header, table.records[r.start : r.stop]) for r in plan]
    header = write_csv(result_header(table.header), [])
    results = []
    for part in parts:
        rows = parse_rows(read_table(part))
        quotes = [Quote(price=1.0, std_error=0.0) for _ in rows]
        results.append(write_csv(result_header(table.header), result_records(rows, quotes)))
    merged = read_table(merge_results(header, results), is_result=True)
    assert len(merged.records) == len(table.records) == len(AWKWARD_IDS)
    assert [record[: len(table.header)] for record in merged.records] == table.records


# --- issue 19's columns: bounds and implied volatility --------------------------------------


def test_the_result_columns_in_order_with_every_option():
    from runtime.core.csvio import output_columns

    header = [*HEADER.split(","), "marketPrice"]
    assert output_columns(header, greeks=True, bounds=True) == [
        "price",
        "stdError",
        "priceLow",
        "priceHigh",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        "impliedVolatility",
        "error",
    ]
    assert result_header(HEADER.split(","), bounds=True)[-5:] == [
        "price",
        "stdError",
        "priceLow",
        "priceHigh",
        "error",
    ]


@pytest.mark.parametrize("name", ["priceLow", "PRICEHIGH"])
def test_a_bound_named_input_column_is_a_file_error_only_with_bounds(name):
    data = f"{HEADER},{name}\n{GOOD},x\n".encode()
    with pytest.raises(FileError, match=f"column '{name}' is reserved .* when bounds"):
        read_table(data, bounds=True)
    (row,) = parse_rows(read_table(data))  # without bounds: an ordinary extra column
    assert row.error is None and row.values[-1] == "x"


def test_a_market_price_is_read_and_a_bad_one_is_the_rows_note_not_its_error():
    data = f"{HEADER},marketPrice\n{GOOD},1.25\n{GOOD},\n{GOOD},cheap\n".encode()
    given, empty, bad = parse_rows(read_table(data))
    assert given.market_price == 1.25 and given.error is None
    assert empty.market_price is None and empty.error is None
    assert bad.market_price == "marketPrice: 'cheap' is not a number" and bad.option is not None
