"""``python -m runtime plan FILE``: the JSON a program reads, the table a person reads, and
one line with exit code 2 for every bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.planning.command import main
from runtime.tools.generate import generate_portfolio
from tests.conftest import SAMPLE
from tests.project.test_imports import image_tree

ROOT = Path(__file__).resolve().parents[2]


def plan(*args: str, cwd: Path = ROOT) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        code = main(list(args), out, err)
    except SystemExit as exc:  # argparse
        code = int(exc.code)
    finally:
        os.chdir(previous)
    return code, out.getvalue(), err.getvalue()


def test_json_has_rows_cpu_seconds_and_each_paths_wall_time_and_price():
    code, out, err = plan(str(SAMPLE), "--json", "--stack", "us-east-1")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"rows", "cpuSeconds", "paths"}
    assert document["rows"] == 100 and document["cpuSeconds"] > 0
    assert set(document["paths"]) == {"fast", "normal", "urgent"}
    for entry in document["paths"].values():
        assert entry["wallSeconds"] > 0 and entry["usd"] > 0
        assert {"parts", "partRows", "cpuSeconds", "cost", "auto", "overBudget"} <= set(entry)
    assert document["paths"]["normal"]["capacity"] == "SPOT"  # us-east-1 runs on Spot
    assert document["paths"]["fast"]["auto"] is True


def test_the_table_names_the_settings_every_path_and_the_auto_lanes_choice(tmp_path):
    book = tmp_path / "book.csv"
    book.write_bytes(generate_portfolio(1000, seed=4))
    code, out, _ = plan(str(book), "--engine", "mc", "--max-job-usd", "0.001", "--use-fargate")
    assert code == 0
    assert "book.csv: 1,000 rows (1,000 options), engine mc; us-east-1, x86_64" in out
    assert "flags: engine, maxJobUsd, useFargate" in out
    for line in ("fast    Lambda 1769 MB", "normal  Batch Fargate", "urgent  Batch Fargate"):
        assert line in out
    assert "auto/ would take: " in out and "budget guard: estimated cost" in out
    assert "Estimates, not measurements" in out


def test_flags_override_the_stack_and_the_stack_its_defaults():
    _, out, _ = plan(str(SAMPLE), "--json", "--stack", "eu-west-1", "--urgent-max-vcpus", "0")
    document = json.loads(out)
    assert document["paths"]["normal"]["capacity"] == "EC2"
    assert document["paths"]["urgent"] == {
        "wallSeconds": None,
        "usd": None,
        "available": False,
        "reason": "urgentMaxVcpus is 0: no urgent lane",
        "auto": False,
        "overBudget": None,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "error: missing.csv: cannot read it: No such file or directory"),
        (["{bad}"], "error: {bad}: missing required column(s)"),
        (["{sample}", "--stack", "nope"], "error: no stack file Pulumi.nope.yaml"),
        (["{sample}", "--threshold", "many"], "error: plan: argument --threshold: invalid int"),
        (["{sample}", "--threshold", "0"], "error: threshold must be at least 1, got 0"),
        (["{sample}", "--engine", "fast"], "error: plan: argument --engine: invalid choice"),
        (["{sample}", "--price-table", "{"], "error: PRICE_TABLE is not JSON"),
        (["{sample}", "--region", "mars-1"], "error: no default prices for region 'mars-1'"),
        ([], "error: plan: the following arguments are required: input"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    args = [a.replace("{sample}", str(SAMPLE)).replace("{bad}", str(bad)) for a in args]
    code, out, err = plan(*args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(message.replace("{bad}", str(bad))), err


def test_in_the_image_plan_runs_without_pulumi_files_and_says_so(tmp_path):
    app = image_tree(tmp_path / "app")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(app)}
    done = subprocess.run(
        [sys.executable, "-m", "runtime.entrypoint", "plan", str(SAMPLE), "--stack", "us-east-1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no Pulumi.yaml in" in done.stdout and "the image has none" in done.stdout
    assert "fast    Lambda 1769 MB" in done.stdout
