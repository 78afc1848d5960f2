"""Issue 19's benchmark runs end to end and prints every figure it promises (tiny sets)."""

from __future__ import annotations

import pytest

from benchmarks import audit


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(
        audit,
        "SIZES",
        {
            "broad": (12, 12),
            "stress": (9, 9),
            "boundary": (3, 3),
            "dividends": (3, 3),
            "implied": (6, 6),
            "alone": (4, 4),
        },
    )


def test_the_audit_prints_coverage_bounds_stress_time_greeks_and_implied(tiny, capsys):
    assert audit.main(["--sections", "coverage,bounds,stress,greeks,implied"]) == 0
    out = capsys.readouterr().out
    for figure in (
        "within 1.96 se",
        "the interval contains the reference for",
        "bound violations",
        "Slowest row, each priced alone on one core",
        "delta within",
        "Implied volatility",
    ):
        assert figure in out, figure
    assert "**0 bound violations**" in out  # issue 19's own stress rows come first


def test_coverage_counts_a_reference_equal_price_as_z_zero():
    import datetime as dt

    from runtime.core.options import OptionSpec, Quote

    day = dt.date(2024, 1, 2)
    option = OptionSpec(day, day, dt.date(2025, 1, 2), False, 36.0, 40.0, 0.06, 0.2)
    quotes = [Quote(4.5, 0.01), Quote(4.5 + 1e-12, 1e-15), Quote(4.6, 0.01), Quote(4.5, 0.0)]
    result = audit.coverage([option] * 4, quotes, [4.5] * 4)
    assert result.exact == 1 and list(result.z) == [0.0, 0.0, pytest.approx(10.0)]
    assert result.misses == 1  # 0.1 off with a bar of 0.01: beyond max(0.02, 3 bars)
