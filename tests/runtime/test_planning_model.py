"""The engine cost model: row classes, the table lookup and the checked-in coefficients."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pytest

from runtime.core.options import OptionSpec
from runtime.engines import ENGINE_NAMES
from runtime.planning.model import (
    ModelError,
    features,
    load_model,
    parse_model,
    row_classes,
)

DAY = dt.date(2024, 3, 1)


def option(
    call=False, years=1.0, spot=100.0, strike=100.0, rate=0.05, vol=0.2, q=0.0, american=True
):
    return OptionSpec(
        DAY, DAY, DAY + dt.timedelta(days=round(years * 365)), call, spot, strike, rate, vol,
        dividend_yield=q, american=american,
    )  # fmt: skip


def test_rows_fall_in_the_class_each_engine_gives_them():
    rows = [
        option(american=False),  # European
        option(call=True),  # American call, no dividend: never exercised early
        option(),  # American put, r > 0
        option(call=True, q=0.03),  # American call with a dividend
        None,  # a row error
    ]
    assert list(row_classes(rows, "lsm")) == ["closed", "closed", "early", "early", "invalid"]
    assert list(row_classes(rows, "mc")) == ["closed", "early", "early", "early", "invalid"]
    assert list(row_classes(rows, "fd")) == ["early", "early", "early", "early", "invalid"]


def test_features_are_maturity_price_scale_moneyness_and_spread():
    values = features([option(years=4.0, strike=50.0, spot=60.0, vol=0.3)])
    assert values["years"][0] == pytest.approx(4.0, abs=0.01)
    assert values["scale"][0] == pytest.approx(50 * 0.3 * 2, rel=1e-3)
    assert values["moneyness"][0] == pytest.approx(-np.log(1.2))  # a put above its strike
    assert values["spread"][0] == pytest.approx(0.6, rel=1e-3)


def small_model() -> dict:
    return {
        "engines": {
            "lsm": {
                "axes": {"years": [1.0], "scale": [10.0]},
                "early": {"price": [[0.001, 0.002], [0.003, 0.004]], "greeks": [[1, 2], [3, 4]]},
                "closed": [0.0001, 0.0002],
                "priceFixed": 0.2,
                "lambdaCold": 0.3,
                "batchCold": 0.3,
            }
        },
        "overheads": {"ioPerRow": 3e-5, "splitPerRow": 4e-6, "mergePerRow": 1e-7},
        "requests": {"fast.part": {"get": 5, "put": 4}},
    }


def test_an_early_row_costs_its_cell_and_a_closed_row_the_closed_figure():
    model = parse_model(small_model())
    rows = [
        option(american=False),
        option(years=0.5, strike=10.0),  # scale 10 x 0.2 x 0.71 = 1.4: cell (0, 0)
        option(years=2.0, strike=100.0),  # scale 28: cell (1, 1)
        None,
    ]
    assert list(model.row_seconds(rows, "lsm", greeks=False)) == pytest.approx(
        [0.0001, 0.001, 0.004, 0.0]
    )
    assert list(model.row_seconds(rows, "lsm", greeks=True)) == pytest.approx(
        [0.0002, 1.0, 4.0, 0.0]
    )
    with pytest.raises(ModelError, match="no cost model for engine 'mc'"):
        model.row_seconds(rows, "mc", greeks=False)


def test_a_malformed_table_is_refused():
    broken = copy.deepcopy(small_model())
    broken["engines"]["lsm"]["early"]["price"] = [[0.001, 0.002]]
    with pytest.raises(ModelError, match=r"early cells must be \(2, 2\)"):
        parse_model(broken)
    broken = copy.deepcopy(small_model())
    del broken["overheads"]
    with pytest.raises(ModelError, match="malformed"):
        parse_model(broken)
    broken = copy.deepcopy(small_model())
    broken["engines"]["lsm"]["axes"] = {"colour": [1.0], "scale": [10.0]}
    with pytest.raises(ModelError, match="unknown axes"):
        parse_model(broken)


def test_the_checked_in_model_covers_every_engine_and_costs_more_for_harder_rows():
    model = load_model()
    assert set(model.engines) == set(ENGINE_NAMES)
    for name in ENGINE_NAMES:
        table = model.engine(name)
        assert table.price_fixed > 0 and table.lambda_cold > 0
        assert np.all(table.early[1] >= 0)
    easy = [option(years=0.1, strike=20.0, vol=0.2)] * 10
    hard = [option(years=4.0, strike=200.0, vol=0.5, spot=150.0)] * 10
    lsm = lambda rows, g=False: float(model.row_seconds(rows, "lsm", g).sum())  # noqa: E731
    assert lsm(hard) > lsm(easy)
    assert lsm(hard, True) > lsm(hard)
    mc = float(model.row_seconds(hard, "mc", False).sum())
    assert mc > 50 * lsm(hard)  # QuantLib's Monte Carlo: seconds per option


def test_between_cell_centres_the_log_of_the_cost_is_interpolated():
    document = small_model()
    document["engines"]["lsm"]["axes"] = {"scale": [10.0]}
    document["engines"]["lsm"]["centres"] = {"scale": [1.0, 100.0]}
    document["engines"]["lsm"]["early"] = {"price": [0.01, 100.0], "greeks": [0.01, 100.0]}
    model = parse_model(document)
    # strike x 0.2 x 1 year: scale 0.5, 1, 10, 100, 200 (cost grows like the scale squared)
    rows = [option(strike=k) for k in (2.5, 5.0, 50.0, 500.0, 1000.0)]
    assert list(model.row_seconds(rows, "lsm", False)) == pytest.approx(
        [0.01, 0.01, 1.0, 100.0, 100.0], rel=1e-2
    )
    document["engines"]["lsm"]["centres"] = {"scale": [100.0, 1.0]}
    with pytest.raises(ModelError, match="increasing centre per bin"):
        parse_model(document)
