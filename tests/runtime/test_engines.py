"""QuantLib engines: the workshop's Monte Carlo against accurate references."""

from __future__ import annotations

import pytest

from runtime.core.csvio import parse_rows, read_table
from runtime.engines import get_engine
from tests.conftest import SAMPLE

# Longstaff-Schwartz exercises calls early where it never should, so it prices them low;
# the workshop's figure is "up to 0.15 too low" on this kind of portfolio.
LSM_CALL_LOW_BIAS = 0.15


@pytest.fixture(scope="module")
def sample_options():
    return [row.option for row in parse_rows(read_table(SAMPLE.read_bytes()))]


def test_the_two_references_agree(sample_options):
    qdfp = get_engine("qdfp")(sample_options)
    fd = get_engine("fd")(sample_options)
    worst = max(abs(a.price - b.price) for a, b in zip(qdfp, fd, strict=True))
    assert worst < 0.01


def test_mc_is_within_a_few_standard_errors_of_the_reference(sample_options):
    options = sample_options[:8]  # about 0.5 s each: a small sample keeps the suite fast
    references = get_engine("qdfp")(options)
    for option, quote, reference in zip(
        options, get_engine("mc")(options), references, strict=True
    ):
        assert quote.std_error is not None and 0 <= quote.std_error <= 0.05
        slack = 4 * quote.std_error + 0.005
        low_bias = LSM_CALL_LOW_BIAS if option.is_call else 0.0
        assert reference.price - slack - low_bias <= quote.price <= reference.price + slack, option


def test_mc_gives_the_same_price_alone_or_in_any_batch(sample_options):
    engine = get_engine("mc")
    alone = engine([sample_options[2]])[0]
    in_batch = engine([sample_options[5], sample_options[2]])[1]
    assert alone == in_batch


def test_an_option_quantlib_cannot_price_is_a_row_error(sample_options):
    import dataclasses
    import datetime as dt

    # Settlement after maturity passes no CSV check when built directly: QuantLib refuses.
    broken = dataclasses.replace(sample_options[0], maturity=dt.date(2000, 1, 1))
    good, bad = get_engine("qdfp")([sample_options[0], broken])
    assert good.price is not None and good.error is None
    assert bad.price is None and bad.error.startswith("pricing failed:")


def test_unknown_engine_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown engine 'fast'.*lsm, mc"):
        get_engine("fast")
