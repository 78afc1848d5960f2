"""The command line's habits: flags before or after a job command, the environment's
stand-ins for --stack and --endpoint-url, typos reported with their command's usage,
``-o -`` for standard output, results never written into the source tree, ``jobs result``,
and a ``--help`` with defaults and an example for every command."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from runtime.cli import CommandError
from runtime.core import keys
from runtime.tools.cli import _parser as tools_parser
from runtime.tools.jobs import Jobs, Target, target_from_args
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from runtime.tools.simulate import default_result_path
from tests.helpers import upload

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "runtime" / "sample" / "EquityOption-100.csv"
KEY = "fast/20261206-1200/book.csv"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def parse(*argv: str):
    return tools_parser().parse_args(["jobs", *argv])


@pytest.mark.parametrize(
    "argv",
    [
        ("--endpoint-url", "http://127.0.0.1:5000", "show", KEY),
        ("show", KEY, "--endpoint-url", "http://127.0.0.1:5000"),
    ],
)
def test_where_flags_work_before_and_after_the_job_command(argv):
    args = parse(*argv)
    assert args.endpoint_url == "http://127.0.0.1:5000" and args.key == KEY


def test_a_flag_after_the_command_does_not_erase_one_given_before():
    args = parse("--stack", "eu-west-1", "list", "--region", "eu-west-1")
    assert (args.stack, args.region) == ("eu-west-1", "eu-west-1")


def test_the_environment_stands_in_for_stack_and_endpoint_and_a_flag_wins(monkeypatch):
    outputs = {"resultBucket": "results-from-stack", "region": "eu-west-1"}
    monkeypatch.setenv("MC_PRICING_STACK", "eu-west-1")
    seen = []
    target = target_from_args(parse("list"), outputs=lambda stack: seen.append(stack) or outputs)
    assert seen == ["eu-west-1"] and target.result_bucket == "results-from-stack"

    embedded = target_from_args(parse("list", "--endpoint-url", "http://127.0.0.1:5000"))
    assert embedded.endpoint_url == "http://127.0.0.1:5000"  # the flag, not the stack

    monkeypatch.setenv("MC_PRICING_ENDPOINT_URL", "http://127.0.0.1:5000")
    with pytest.raises(CommandError, match="are both set"):
        target_from_args(parse("list"))
    monkeypatch.delenv("MC_PRICING_STACK")
    assert target_from_args(parse("list")).endpoint_url == "http://127.0.0.1:5000"


def test_a_typo_in_a_flag_shows_the_sub_commands_usage():
    done = run("simulate", str(SAMPLE), "--path", "fast", "--treshold", "10")
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "usage: python -m runtime simulate" in err and "--treshold" in err
    nested = run("jobs", "show", KEY, "--jsn")
    assert "usage: python -m runtime jobs show" in nested.stderr.decode()


def test_price_writes_its_result_to_standard_output_with_dash():
    done = run("price", str(SAMPLE), "--engine", "qdfp", "-o", "-")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("id,") and len(lines) == 101
    assert not (ROOT / "-").exists()
    assert "-> standard output" in done.stderr.decode()


def test_generate_writes_to_standard_output_with_dash():
    done = run("generate", "--rows", "3", "-o", "-")
    assert done.returncode == 0 and len(done.stdout.decode().splitlines()) == 4


def test_simulate_puts_the_samples_results_outside_the_source_tree_one_folder_per_lane(tmp_path):
    fast, normal = (default_result_path(SAMPLE, lane) for lane in ("fast", "normal"))
    assert fast != normal
    for path in (fast, normal):
        assert ROOT not in path.parents and Path(tempfile.gettempdir()) in path.parents
    book = tmp_path / "book.csv"
    assert default_result_path(book, "fast") == tmp_path / "book.csv-result"


def test_simulate_prints_its_result_line_on_standard_output(tmp_path):
    book = tmp_path / "book.csv"
    book.write_bytes(b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:6]))
    done = run("simulate", str(book), "--path", "fast", "--engine", "qdfp")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == f"result: 5 rows -> {book}-result"
    assert (tmp_path / "book.csv-result").exists()


def test_jobs_result_downloads_the_version_the_status_names_and_only_when_done(
    make_steps, s3, sample_bytes, tmp_path, capsysbinary
):
    lines: list[str] = []
    jobs = Jobs(Target(INPUT_BUCKET, RESULT_BUCKET, region="us-east-1"), lines.append)
    upload(s3, KEY, sample_bytes)
    make_steps(threshold=1000).start(INPUT_BUCKET, KEY, "req-1")
    published = s3.get_object(Bucket=RESULT_BUCKET, Key=keys.result_key(KEY))["Body"].read()
    # an object written over the result later (not by the job) is not the job's result
    s3.put_object(Bucket=RESULT_BUCKET, Key=keys.result_key(KEY), Body=b"forged\n")

    out = tmp_path / "mine.csv"
    assert jobs.result(KEY, out) == 0
    assert out.read_bytes() == published
    assert jobs.result(f"s3://{INPUT_BUCKET}/{KEY}", Path("-")) == 0
    assert capsysbinary.readouterr().out == published

    upload(s3, KEY, b"id,strike\n1,2\n")  # a re-upload that fails: its job has no result
    make_steps(threshold=1000).start(INPUT_BUCKET, KEY, "req-2")
    with pytest.raises(CommandError, match=r"no result for .*: the job is failed: missing"):
        jobs.result(KEY, tmp_path / "stale.csv")
    assert not (tmp_path / "stale.csv").exists()


def help_texts() -> list[tuple[str, ...]]:
    commands = [("price",), ("simulate",), ("submit",), ("generate",), ("jobs",), ("plan",)]
    commands += [("jobs", name) for name in ("list", "show", "result", "cancel", "retry")]
    return commands


@pytest.mark.parametrize("command", help_texts(), ids=" ".join)
def test_every_help_shows_defaults_and_an_example(command):
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "example:" in text and f"python -m runtime {' '.join(command)}" in text
    if command == ("plan",):
        assert "the stack's" in text  # its settings' defaults are the stack's
    elif command != ("jobs",):
        assert "(default:" in text


def test_bench_is_not_a_command_any_more_but_its_module_is():
    assert run("bench").returncode == 2
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", "--help"],
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0 and b"python -m benchmarks.bench" in done.stdout


def test_a_reader_that_goes_away_is_not_a_traceback():
    """``mc-pricing jobs list | head -1``: the rest of the output has nowhere to go."""
    program = (
        "import runtime.cli as cli\n"
        "def main(argv):\n"
        "    for line in range(100_000):\n"
        "        print(line, flush=True)\n"
        "    return 0\n"
        "cli.main = main\n"
        "cli.console()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    child.stdout.read(10)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait() == 141 and "Traceback" not in err


def test_simulate_keep_writes_the_result_before_it_serves(tmp_path, monkeypatch, capsys):
    from runtime.tools import simulate as simulate_module

    book = tmp_path / "book.csv"
    book.write_bytes(b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:4]))
    seen = []

    def serve(cloud, why):  # instead of waiting for Ctrl-C: what is there by then
        seen.append((tmp_path / "book.csv-result").exists())

    monkeypatch.setattr(simulate_module, "serve_until_interrupted", serve)
    code = simulate_module.simulate(book, "fast", None, 2, "qdfp", None, keep=True)
    assert code == 0 and seen == [True]
    assert f"result: 3 rows -> {book}-result" in capsys.readouterr().out
