"""Implied volatility from a ``marketPrice`` column (issue 19): American or European, with
the row's dividend yield, the same on every engine; a price it cannot come from is a row
error naming the cause, next to the row's price."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from benchmarks.references import reference_quote
from runtime.core.csvio import FileError, read_table
from runtime.core.options import OptionSpec
from runtime.engines import get_engine
from runtime.engines.implied import implied_volatilities
from runtime.pricing import price_table

DAY = dt.date(2024, 3, 1)


def spec(call, spot, strike, rate, div, vol, days, american=True) -> OptionSpec:
    settlement = DAY + dt.timedelta(days=2)
    return OptionSpec(
        DAY,
        settlement,
        settlement + dt.timedelta(days=days),
        call,
        spot,
        strike,
        rate,
        vol,
        dividend_yield=div,
        american=american,
    )


BOOK = [
    spec(False, 36.0, 40.0, 0.06, 0.0, 0.2, 365),
    spec(False, 95.0, 100.0, 0.08, 0.03, 0.45, 730),
    spec(True, 110.0, 100.0, 0.03, 0.06, 0.25, 180),  # call on a dividend payer: early
    spec(True, 100.0, 100.0, 0.03, 0.0, 0.3, 365),  # never early: the closed form
    spec(False, 100.0, 90.0, 0.05, 0.02, 0.8, 60, american=False),
    spec(True, 50.0, 55.0, -0.01, 0.04, 0.15, 1200),
]


def test_the_volatility_behind_a_reference_price_comes_back():
    prices = [reference_quote(o).price for o in BOOK]  # QD+ or the closed form
    for option, (vol, why) in zip(BOOK, implied_volatilities(BOOK, prices), strict=True):
        assert why is None, (option, why)
        assert vol == pytest.approx(option.volatility, abs=2e-4), option


def test_european_inversion_is_exact():
    option = BOOK[4]
    price = reference_quote(option).price
    ((vol, _),) = implied_volatilities([option], [price])
    assert vol == pytest.approx(option.volatility, abs=1e-9)


@pytest.mark.parametrize(
    ("option", "price", "cause"),
    [
        (BOOK[0], 3.0, "below the option's no-arbitrage lower bound 4"),  # intrinsic 4
        (BOOK[0], 40.5, "above the option's no-arbitrage upper bound 40"),
        (BOOK[3], 99.0, "at least the value at volatility 5"),
        (spec(False, 60.0, 100.0, 0.06, 0.0, 0.2, 30), 40.0, "is within 1e-7 of the strike of"),
        (BOOK[2], 0.0, "below the option's no-arbitrage lower bound"),
    ],
)
def test_a_price_no_volatility_reproduces_names_the_cause(option, price, cause):
    ((vol, why),) = implied_volatilities([option], [price])
    assert vol is None and why.startswith("impliedVolatility: marketPrice ")
    assert cause in why, why


HEADER = (
    "id,todaysDate,settlementDate,optionType,underlying,strike,riskFreeRate,volatility,"
    "maturityDate,dividendYield,exerciseType,marketPrice"
)


def table_of(market_prices: list[str]):
    lines = [HEADER]
    for i, price in enumerate(market_prices):
        lines.append(f"{i},03/01/2024,03/03/2024,Put,36,40,0.06,0.2,03/03/2025,0.01,,{price}")
    return read_table(("\n".join(lines) + "\n").encode())


def test_every_engine_reports_the_same_implied_volatility_next_to_its_price():
    option = dataclasses.replace(BOOK[0], dividend_yield=0.01, maturity=dt.date(2025, 3, 3))
    market = reference_quote(option).price
    table = table_of([f"{market:.10f}", "", "abc", "-1", "3"])
    results = {}
    for name in ("lsm", "qdfp", "fd"):
        result = read_table(price_table(table, get_engine(name)).csv, is_result=True)
        assert result.header[-3:] == ["stdError", "impliedVolatility", "error"]
        results[name] = result.records
    vols = {name: records[0][-2] for name, records in results.items()}
    assert len(set(vols.values())) == 1 and float(vols["lsm"]) == pytest.approx(0.2, abs=2e-4)
    for records in results.values():
        assert all(r[-4] != "" for r in records)  # every row keeps its price
        assert records[1][-2:] == ["", ""]  # an empty market price: no volatility, no error
        assert records[2][-1] == "impliedVolatility: marketPrice: 'abc' is not a number"
        assert records[3][-1] == "impliedVolatility: marketPrice: must not be negative, got -1"
        assert "no-arbitrage lower bound" in records[4][-1] and records[4][-2] == ""


def test_the_column_is_reserved_only_in_a_file_with_market_prices():
    plain = HEADER.replace(",marketPrice", "")
    (row,) = read_table(f"{plain},impliedVolatility\n1,x\n".encode()).records
    assert row == ["1", "x"]
    with pytest.raises(FileError, match="reserved for the result in a file with a marketPrice"):
        read_table(f"{HEADER},impliedVolatility\n".encode())
