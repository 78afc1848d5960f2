"""Command-line edges: output checked before pricing, plain progress lines off a terminal,
positive row counts."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from runtime.progress import progress_bar
from tests.conftest import ROOT, SAMPLE


def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRICING_WORKERS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_price_into_a_missing_directory_fails_before_pricing(tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "out.csv"
    done = run("price", str(SAMPLE), "-o", str(out), "--engine", "mc")  # mc: minutes if it priced
    assert done.returncode == 1
    assert (
        done.stderr.strip() == f"error: cannot write {out}: directory {out.parent} does not exist"
    )
    assert "priced" not in done.stderr


def test_generate_needs_a_positive_row_count(tmp_path):
    for rows in ("0", "-3", "ten"):
        done = run("generate", "--rows", rows, "-o", str(tmp_path / "g.csv"))
        assert done.returncode == 2 and "--rows" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "g.csv").exists()


def test_without_a_terminal_progress_is_a_plain_line_every_few_seconds():
    stream = io.StringIO()  # not a terminal, like a CI log
    now = [0.0]
    with progress_bar(100, "option", stream=stream, clock=lambda: now[0], every=5.0) as advance:
        for _ in range(10):
            now[0] += 2.0
            advance(10)
    assert stream.getvalue().splitlines() == [
        "progress: 30 of 100 options",
        "progress: 60 of 100 options",
        "progress: 90 of 100 options",
        "progress: 100 of 100 options",
    ]


def test_on_a_terminal_progress_is_one_line_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    now = [0.0]
    with progress_bar(100, "option", stream=stream, clock=lambda: now[0]) as advance:
        for _ in range(4):
            now[0] += 1.0
            advance(25)
    redraws = stream.getvalue().split("\r")[1:]
    assert redraws[-1] == "100 of 100 options (100 %), 25.0 per second\x1b[K\n"
    assert all(not text.endswith("\n") for text in redraws[:-1])  # one line, redrawn


def test_price_prints_progress_lines_into_a_pipe(tmp_path):
    out = tmp_path / "out.csv"
    done = run("price", str(SAMPLE), "-o", str(out), "--engine", "qdfp")
    assert done.returncode == 0
    lines = done.stderr.strip().splitlines()
    assert lines[-2] == "progress: 100 of 100 options"
    assert lines[-1].startswith("priced 100 of 100 rows (0 with errors) with qdfp")
    assert "\r" not in done.stderr  # no bar redraws in a log


def test_price_gives_the_first_releases_bytes_for_the_workshops_file(tmp_path):
    # tests/fixtures/EquityOption-100.qdfp-result-v1.csv is the first release's simulate
    # output for the sample (qdfp: deterministic): the CSV contract has not moved.
    out = tmp_path / "out.csv"
    assert run("price", str(SAMPLE), "-o", str(out), "--engine", "qdfp").returncode == 0
    expected = ROOT / "tests" / "fixtures" / "EquityOption-100.qdfp-result-v1.csv"
    assert out.read_bytes() == expected.read_bytes()
