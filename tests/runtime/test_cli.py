"""The local command line, run as users run it: ``python -m runtime ...`` in a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runtime.core.csvio import read_table
from runtime.tools.generate import generate_portfolio
from tests.conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_price_writes_input_result_beside_the_input(tmp_path):
    source = tmp_path / "book.csv"
    source.write_bytes(SAMPLE.read_bytes())
    done = run_cli("price", str(source), "--engine", "qdfp")
    assert done.returncode == 0, done.stderr
    result = read_table((tmp_path / "book.csv-result").read_bytes(), is_result=True)
    assert result.header[-3:] == ["price", "stdError", "error"]
    assert len(result.records) == 100
    assert all(float(record[-3]) >= 0 and record[-1] == "" for record in result.records)
    assert "priced 100 of 100 rows (0 with errors) with qdfp" in done.stderr


def test_row_errors_do_not_fail_the_run(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    lines[2] = lines[2].replace("Call", "Swap")
    source = tmp_path / "mixed.csv"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    done = run_cli("price", str(source), "-o", str(out), "--engine", "fd")
    assert done.returncode == 0, done.stderr
    records = read_table(out.read_bytes(), is_result=True).records
    assert len(records) == 100
    assert records[1][-1] == "optionType: 'Swap' is not Call or Put" and records[1][-3] == ""
    assert "(1 with errors)" in done.stderr


def test_file_problems_are_one_line_errors_without_a_traceback(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    for args, message in [
        (["price", str(empty)], f"error: {empty}: file is empty"),
        (["price", str(tmp_path / "missing.csv")], "error: cannot read"),
        (["price", str(SAMPLE), "--engine", "nope"], "invalid choice: 'nope'"),
    ]:
        done = run_cli(*args)
        assert done.returncode != 0
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_generate_is_deterministic_and_valid(tmp_path):
    out = tmp_path / "gen.csv"
    done = run_cli("generate", "--rows", "50", "--seed", "7", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == generate_portfolio(50, seed=7)
    assert generate_portfolio(50, seed=7) != generate_portfolio(50, seed=8)
    from runtime.core.csvio import parse_rows

    rows = parse_rows(read_table(out.read_bytes()))
    assert len(rows) == 50 and all(row.error is None for row in rows)


def test_the_image_entrypoint_without_lambda_or_batch_is_the_command_line(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_LAMBDA_RUNTIME_API", "AWS_BATCH_JOB_ID")
    }
    out = tmp_path / "gen.csv"
    done = subprocess.run(
        [sys.executable, "-m", "runtime.entrypoint", "generate", "--rows", "3", "-o", str(out)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == generate_portfolio(3)


def test_price_greeks_adds_the_greek_columns(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    lines[0] += ",dividendYield,exerciseType"
    lines[1:] = [
        f"{line},{('', '0.03', '0.07')[i % 3]},{('American', 'European')[i % 2]}"
        for i, line in enumerate(lines[1:21])
    ]
    source = tmp_path / "divs.csv"
    source.write_text("\n".join(lines) + "\n")
    done = run_cli("price", str(source), "--engine", "qdfp", "--greeks")
    assert done.returncode == 0, done.stderr
    result = read_table((tmp_path / "divs.csv-result").read_bytes(), is_result=True)
    greeks = ["delta", "gamma", "vega", "theta", "rho"]
    assert result.header[-8:] == ["price", "stdError", *greeks, "error"]
    assert len(result.records) == 20
    for record in result.records:
        assert record[-1] == "" and all(float(cell) == float(cell) for cell in record[-6:-1])
    assert "priced 20 of 20 rows (0 with errors) with qdfp and Greeks" in done.stderr
    plain = run_cli("price", str(source), "--engine", "qdfp", "-o", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    header = read_table((tmp_path / "plain").read_bytes(), is_result=True).header
    assert header[-3:] == ["price", "stdError", "error"]


def test_a_greek_named_column_is_a_file_error_only_with_greeks(tmp_path):
    lines = SAMPLE.read_text().splitlines()[:4]
    lines = [lines[0] + ",Delta"] + [line + ",0.5" for line in lines[1:]]
    source = tmp_path / "delta.csv"
    source.write_text("\n".join(lines) + "\n")
    done = run_cli("price", str(source), "--engine", "qdfp", "--greeks")
    assert done.returncode == 1
    assert "column 'Delta' is reserved for the result when Greeks are requested" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "delta.csv-result").exists()
    done = run_cli("price", str(source), "--engine", "qdfp")
    assert done.returncode == 0, done.stderr
    result = read_table((tmp_path / "delta.csv-result").read_bytes(), is_result=True)
    assert result.header[-4:] == ["Delta", "price", "stdError", "error"]


def test_price_with_bounds_and_market_prices(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    source = tmp_path / "quoted.csv"
    rows = [f"{lines[0]},marketPrice"] + [
        f"{line},{2.5 if i % 2 else ''}" for i, line in enumerate(lines[1:11])
    ]
    source.write_text("\n".join(rows) + "\n")
    done = run_cli("price", str(source), "--bounds")
    assert done.returncode == 0, done.stderr
    result = read_table((tmp_path / "quoted.csv-result").read_bytes(), is_result=True)
    assert result.header[-6:] == [
        "price",
        "stdError",
        "priceLow",
        "priceHigh",
        "impliedVolatility",
        "error",
    ]
    for record in result.records:
        low, price, high = float(record[-4]), float(record[-6]), float(record[-3])
        assert low <= price <= high
        assert (record[-2] != "" or record[-1] != "") == (record[-7] == "2.5")
    assert "with lsm and bounds" in done.stderr
