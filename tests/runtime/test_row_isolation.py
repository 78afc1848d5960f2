"""Every row is priced within no-arbitrage bounds or carries an error naming the cause, and
no row affects another (issue 11, finding 7)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from runtime.core.csvio import Row, read_table
from runtime.core.options import Greeks, OptionSpec, Quote
from runtime.engines import get_engine
from runtime.pricing import NO_GREEKS, check_quote, price_bounds, price_rows, price_table

TODAY = dt.date(2022, 10, 26)
SETTLEMENT = dt.date(2022, 10, 28)
HEADER = (
    "id,todaysDate,settlementDate,optionType,underlying,strike,riskFreeRate,volatility,"
    "maturityDate,dividendYield,exerciseType"
)


def spec(**changes) -> OptionSpec:
    base = OptionSpec(TODAY, SETTLEMENT, dt.date(2023, 1, 16), True, 22.2, 22.0, 0.047, 0.10)
    return dataclasses.replace(base, **changes)


def rows_for(options):
    return [Row(values=[], option=o, error=None) for o in options]


def price(options, engine, greeks=False):
    return price_rows(rows_for(options), engine, greeks=greeks)


# --- the reported failures, reproduced --------------------------------------------------


def test_fd_nan_for_a_huge_underlying_becomes_an_error_naming_the_cause():
    huge = spec(spot=1e305)
    assert math.isnan(get_engine("fd")([huge])[0].price)  # what fd itself answers
    good, bad = price([spec(), huge], get_engine("fd"))
    assert good.price is not None and good.error is None
    assert bad.price is None and bad.error == "pricing failed: the engine returned price nan"


def test_a_put_priced_above_its_strike_is_an_error_not_a_price():
    wild = spec(is_call=False, volatility=1e5)
    assert get_engine("fd")([wild])[0].price > wild.strike  # fd's answer: absurd
    (quote,) = price([wild], get_engine("fd"))
    assert quote.price is None
    assert "above the American put's no-arbitrage upper bound 22" in quote.error


def test_the_csv_bounds_stop_those_rows_before_any_engine():
    data = (
        f"{HEADER}\n"
        "1,10/26/2022,10/28/2022,Call,1e305,22,0.047,0.1,01/16/2023,,\n"
        "2,10/26/2022,10/28/2022,Put,22.2,22,0.047,1e5,01/16/2023,,\n"
        "3,10/26/2022,10/28/2022,Put,22.2,22,475,0.1,01/16/2052,,\n"
        "4,10/26/2022,10/28/2022,Put,22.2,22,0.047,0.1,01/16/2023,0.02,European\n"
    ).encode()
    records = read_table(price_table(read_table(data), get_engine("fd")).csv, is_result=True)
    errors = [record[-1] for record in records.records]
    assert "underlying: 1e305 is above the limit of 1e+08" in errors[0]
    assert "volatility: 1e5 is above the limit of 5" in errors[1]
    assert "riskFreeRate: 475 is outside [-1, 1]" in errors[2]
    assert errors[3] == "" and float(records.records[3][-3]) > 0


def vectorised(options, greeks=False):
    """Like a numpy engine: one overflowing option sinks the whole batch's arithmetic."""
    for o in options:
        math.exp(o.rate * (o.maturity - o.settlement).days / 365.0)  # OverflowError
    return get_engine("qdfp")(options, greeks=greeks)


def test_one_overflowing_row_no_longer_fails_its_batch_of_25():
    options = [spec(strike=10.0 + i) for i in range(24)]
    options.insert(7, spec(rate=475.0, maturity=dt.date(2052, 1, 16)))
    quotes = price(options, vectorised)
    alone = [get_engine("qdfp")([o])[0] for o in options]
    assert quotes[7].price is None
    assert quotes[7].error == "pricing failed: OverflowError: math range error"
    assert [q for i, q in enumerate(quotes) if i != 7] == [q for i, q in enumerate(alone) if i != 7]


def batch_poisoning(options, greeks=False):
    """Like lsm today: an exception inside a chunk becomes every option's error quote."""
    if len(options) > 1 and any(o.rate > 1 for o in options):
        return [Quote(price=None, error="pricing failed: overflow in exp")] * len(options)
    if options[0].rate > 1:
        return [Quote(price=None, error="pricing failed: overflow in exp")]
    return get_engine("qdfp")(options, greeks=greeks)


def test_rows_failed_with_their_batch_are_priced_alone():
    options = [spec(strike=20.0 + i) for i in range(5)] + [spec(rate=475.0)]
    quotes = price(options, batch_poisoning)
    assert [q.price is not None for q in quotes] == [True] * 5 + [False]
    assert quotes[5].error == "pricing failed: overflow in exp"
    assert quotes[:5] == get_engine("qdfp")(options[:5])


def test_a_wrong_number_of_quotes_prices_the_batch_one_by_one():
    calls = []

    def short(options, greeks=False):
        calls.append(len(options))
        return get_engine("qdfp")(options)[: max(1, len(options) - 1)]

    options = [spec(strike=20.0 + i) for i in range(4)]
    quotes = price(options, short)
    assert calls == [4, 1, 1, 1, 1]
    assert quotes == get_engine("qdfp")(options)


def test_an_engine_that_returns_nonsense_gets_errors_not_a_traceback():
    def broken(options, greeks=False):
        if len(options) == 1 and options[0].strike == 21.0:
            return "nonsense"
        if len(options) == 1 and options[0].strike == 22.0:
            raise ZeroDivisionError("division by zero")
        if len(options) == 1 and options[0].strike == 23.0:
            return [Quote(price=None)]  # no price and no reason
        return get_engine("qdfp")(options) if len(options) == 1 else None

    quotes = price([spec(strike=k) for k in (20.0, 21.0, 22.0, 23.0)], broken)
    assert quotes[0].price is not None
    assert quotes[1].error == "pricing failed: the engine returned no quote"
    assert quotes[2].error == "pricing failed: ZeroDivisionError: division by zero"
    assert quotes[3].error == "pricing failed: no price"


# --- the check itself ---------------------------------------------------------------


def test_bounds_of_each_kind():
    t = (dt.date(2023, 1, 16) - SETTLEMENT).days / 365.0
    call, put = spec(spot=30.0, strike=22.0), spec(is_call=False, spot=15.0, strike=22.0)
    assert price_bounds(call) == (30.0 - 22.0 * math.exp(-0.047 * t), 30.0)  # >= European's
    # so deep that even the perpetual put (its upper bound) is exercised now: worth exactly 7
    assert price_bounds(put) == (7.0, pytest.approx(7.0, abs=1e-12))
    # without a perpetual bound (r <= 0 puts are never exercised early): the strike's
    assert price_bounds(dataclasses.replace(put, rate=0.0)) == (7.0, 22.0)
    high_vol = dataclasses.replace(put, volatility=1.0, spot=21.0)
    perpetual = price_bounds(high_vol)[1]
    assert 1.0 < perpetual < 22.0  # the perpetual put of issue 19, below the strike
    e_put = dataclasses.replace(put, american=False, dividend_yield=0.02)
    low, high = price_bounds(e_put)
    assert high == pytest.approx(22.0 * math.exp(-0.047 * t))
    assert low == pytest.approx(22.0 * math.exp(-0.047 * t) - 15.0 * math.exp(-0.02 * t))
    e_call = dataclasses.replace(call, american=False, dividend_yield=-0.5)
    assert price_bounds(e_call)[1] == pytest.approx(30.0 * math.exp(0.5 * t))  # above S
    negative = dataclasses.replace(put, rate=-0.5)  # waiting pays: K e^{-rT} > K
    assert price_bounds(negative)[1] == pytest.approx(22.0 * math.exp(0.5 * t))


def test_the_check_allows_a_few_standard_errors_and_no_more():
    put = spec(is_call=False, spot=15.0, strike=22.0)  # intrinsic 7
    assert check_quote(put, Quote(6.95, 0.02)).price == 6.95
    assert (
        "below the American put's no-arbitrage lower bound 7"
        in check_quote(put, Quote(6.9, 0.02)).error
    )
    assert check_quote(put, Quote(7.0 - 1e-6)).price is not None  # deterministic slack
    assert check_quote(put, Quote(6.999)).price is None
    assert "standard error" in check_quote(put, Quote(7.5, math.inf)).error


def test_greeks_must_be_finite_and_missing_greeks_are_named():
    good = Greeks(0.5, 0.1, 3.0, -1.0, 2.0)
    option = spec()
    quote = Quote(0.7, greeks=good)
    assert check_quote(option, quote, greeks=True) == quote
    assert check_quote(option, quote).greeks is None  # not requested: not reported
    bad = check_quote(option, Quote(0.7, greeks=dataclasses.replace(good, vega=math.nan)), True)
    assert bad.price is None and bad.error == "pricing failed: vega is nan"
    missing = check_quote(option, Quote(0.7), greeks=True)
    assert missing.price == 0.7 and missing.error == NO_GREEKS


def test_an_engine_without_the_greeks_argument_still_prices(tmp_path):
    calls = []

    def old_style(options):
        calls.append(len(options))
        return get_engine("qdfp")(options)

    quotes = price([spec(), spec(strike=21.0)], old_style, greeks=True)
    assert calls == [2]  # no retries: the prices are fine
    assert all(q.price is not None and q.error == NO_GREEKS and q.greeks is None for q in quotes)


def mixed_book(vols=(0.05, 0.3, 0.6, 1.2), maturities=("11/01/2022", "01/16/2023", "10/28/2024")):
    lines = [HEADER]
    for i in range(24):
        kind = "Call" if i % 2 else "Put"
        exercise = "European" if i % 4 == 3 else ("American" if i % 3 else "")
        spot = (5.0, 22.2, 80.0, 400.0)[i % 4]
        lines.append(
            f"{i},10/26/2022,10/28/2022,{kind},{spot},22,{(-0.01, 0.03, 0.12)[i % 3]},"
            f"{vols[i % 4]},{maturities[i % 3]},{(0, 0.07, -0.02)[i % 3]},{exercise}"
        )
    return read_table(("\n".join(lines) + "\n").encode(), greeks=True)


GREEK_RESULT = ["price", "stdError", "delta", "gamma", "vega", "theta", "rho", "error"]


@pytest.mark.parametrize("name", ["qdfp", "fd"])
def test_real_engines_pass_the_check_on_a_mixed_book(name):
    priced = price_table(mixed_book(), get_engine(name), greeks=True)
    result = read_table(priced.csv, is_result=True)
    assert priced.errors == 0, [r[-1] for r in result.records if r[-1]]
    assert result.header[-8:] == GREEK_RESULT
    assert all(math.isfinite(float(c)) for r in result.records for c in [r[-8], *r[-6:-1]])


def test_fd_beyond_its_grid_is_an_error_qdfp_still_prices():
    # volatility 4.9 over 8 years: sigma sqrt(T) = 13.9, far beyond what fd's grid covers
    table = mixed_book(vols=(0.3, 0.3, 0.3, 4.9), maturities=("10/28/2030",) * 3)
    fd = read_table(price_table(table, get_engine("fd")).csv, is_result=True).records
    qdfp = read_table(price_table(table, get_engine("qdfp")).csv, is_result=True).records
    assert all(record[-1] == "" for record in qdfp)
    failed = [r for r in fd if r[-1]]
    assert failed and all("no-arbitrage lower bound" in r[-1] and r[-3] == "" for r in failed)
    assert all(r[-1] or float(r[-3]) >= 0 for r in fd)


def test_an_option_that_killed_its_worker_is_not_priced_again_here():
    from runtime.engines import WORKER_DIED

    calls = []

    def crashed(options, greeks=False):
        calls.append(len(options))
        quotes = get_engine("qdfp")(options)
        quotes[1] = Quote(price=None, error=f"{WORKER_DIED} (exit code -11)")
        return quotes

    quotes = price([spec(strike=20.0 + i) for i in range(3)], crashed)
    assert calls == [3]  # no retry in this process: it could take the process down
    assert quotes[1].error == "pricing failed: worker process died (exit code -11)"
    assert quotes[0].price is not None and quotes[2].price is not None
