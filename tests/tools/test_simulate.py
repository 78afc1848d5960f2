"""The whole platform on one machine: both paths end to end on the embedded AWS."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.engines.parallel import parallel_engine
from runtime.planning.decide import usd_text
from runtime.pricing import price_table
from runtime.tools.generate import generate_portfolio
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET, local_cloud
from runtime.tools.simulate import Timeline, run_fast_path, run_simulation, runtime_environment
from tests.conftest import SAMPLE

ENGINE = "lsm"  # a Monte Carlo engine, so identical results mean identical seeds per option


@pytest.fixture(scope="module")
def whole_file_result() -> bytes:
    return price_table(read_table(SAMPLE.read_bytes()), parallel_engine(ENGINE)).csv


# Each Batch job is a fresh process (as Batch starts a container per job), so the normal
# path gets fewer parts than the fast path's warm containers.
@pytest.mark.parametrize(
    ("path", "threshold", "parts"), [("fast", 10, 10), ("fast", 7, 15), ("normal", 30, 4)]
)
def test_sample_through_each_path_equals_price_on_the_whole_file(
    path, threshold, parts, whole_file_result
):
    outcome = run_simulation(
        SAMPLE.read_bytes(), SAMPLE.name, path, threshold=threshold, workers=2, engine=ENGINE
    )
    assert outcome.error is None
    assert outcome.status["state"] == "done" and outcome.status["partsTotal"] == parts
    assert outcome.result == whole_file_result
    merged = [m for m in outcome.timeline.messages() if m.startswith("merged")]
    assert merged == [f"merged: 100 rows from {parts} parts"]
    if path == "fast":
        assert outcome.timeline.count("lambda") == parts + 1  # the splitter and each part
    else:
        # EventBridge's Object Created event: the function admits the upload.
        assert outcome.timeline.messages("lambda")[0].startswith("submitted: manager job ")
        assert outcome.timeline.count("batch child") == parts
        assert outcome.timeline.events[-2][1] == "batch merge"
    # The one job event, as the stack's default bus carries it.
    (event,) = outcome.job_events
    assert (event["state"], event["rows"], event["parts"]) == ("done", 100, parts)
    assert [m for _, actor, m in outcome.timeline.events if actor == "event"] == [
        f"Pricing Job State Change: done {outcome.input_key}: 100 rows (0 with errors), "
        f"{parts} part(s), {event['seconds']} s, {usd_text(event['cost']['usd'])} estimated"
    ]


def test_four_thousand_rows_through_the_normal_path_merge_in_order():
    data = generate_portfolio(4_000)
    outcome = run_simulation(data, "big.csv", "normal", threshold=1000, workers=2, engine="qdfp")
    assert outcome.status["state"] == "done" and outcome.status["partsTotal"] == 4
    result = read_table(outcome.result, is_result=True)
    assert [record[0] for record in result.records] == [str(i) for i in range(1, 4_001)]
    assert all(record[-1] == "" for record in result.records)


def test_a_rejected_file_makes_simulate_fail_with_the_reason(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,strike\n1,2\n")
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "simulate", str(bad), "--path", "fast"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the job failed: ") and "missing required column(s)" in last
    assert "Traceback" not in done.stderr


def aws_cli(cloud, *args: str) -> subprocess.CompletedProcess:
    """The workshop's way of using the platform: the aws command line."""
    env = {**os.environ, **cloud.environment}
    return subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", cloud.endpoint, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_aws_s3_cp_in_and_out_like_the_workshop(tmp_path):
    key = "fast/20261124-0900/EquityOption-100.csv"
    with local_cloud() as cloud:
        cloud.create_stack()
        up = aws_cli(cloud, "s3", "cp", str(SAMPLE), f"s3://{INPUT_BUCKET}/{key}")
        assert up.returncode == 0, up.stderr
        environment = runtime_environment(cloud, threshold=25, engine="qdfp")
        run_fast_path(cloud, environment, key, workers=2, timeline=Timeline())
        out = tmp_path / "result.csv"
        down = aws_cli(cloud, "s3", "cp", f"s3://{RESULT_BUCKET}/{keys.result_key(key)}", str(out))
        assert down.returncode == 0, down.stderr
        assert len(read_table(out.read_bytes(), is_result=True).records) == 100


def test_submit_waits_for_the_deployed_flow_and_downloads_the_result(tmp_path):
    from runtime.tools.submit import submit

    out = tmp_path / "result.csv"
    args = argparse.Namespace(
        input=SAMPLE,
        stack=None,
        path="fast",
        input_bucket=INPUT_BUCKET,
        result_bucket=RESULT_BUCKET,
        wait=True,
        timeout=120,
        out=out,
    )
    with local_cloud() as cloud:
        cloud.create_stack()
        s3 = cloud.client("s3")

        def lambda_service() -> None:  # stands in for S3 notifications + Lambda
            for _ in range(600):
                listed = s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix="fast/").get("Contents")
                if listed:
                    environment = runtime_environment(cloud, threshold=30, engine="qdfp")
                    run_fast_path(cloud, environment, listed[0]["Key"], 2, Timeline())
                    return
                time.sleep(0.1)

        service = threading.Thread(target=lambda_service)
        service.start()
        assert submit(args) == 0
        service.join()
    expected = price_table(read_table(SAMPLE.read_bytes()), parallel_engine("qdfp")).csv
    assert out.read_bytes() == expected


def test_submit_reads_bucket_names_from_the_stack(monkeypatch):
    from runtime.tools import submit

    def fake_pulumi(command, **kwargs):
        assert command == ["pulumi", "stack", "output", "--json", "--stack", "us-east-1"]
        return subprocess.CompletedProcess(
            command, 0, '{"inputBucket": "in", "resultBucket": "out"}', ""
        )

    monkeypatch.setattr(submit.shutil, "which", lambda name: "/usr/bin/pulumi")
    assert submit.stack_buckets("us-east-1", run=fake_pulumi) == ("in", "out")


def test_submit_without_pulumi_or_flags_explains_what_to_do(monkeypatch):
    from runtime.cli import CommandError
    from runtime.tools import submit

    monkeypatch.setattr(submit.shutil, "which", lambda name: None)
    with pytest.raises(CommandError, match="pulumi CLI is not on PATH"):
        submit.stack_buckets("us-east-1")


def test_greeks_through_the_split_path_equal_price_greeks_on_the_whole_file():
    outcome = run_simulation(
        SAMPLE.read_bytes(),
        SAMPLE.name,
        "fast",
        threshold=40,
        workers=2,
        engine="qdfp",
        greeks=True,
    )
    assert outcome.status["state"] == "done"
    whole = price_table(read_table(SAMPLE.read_bytes()), parallel_engine("qdfp"), greeks=True).csv
    assert outcome.result == whole
    assert read_table(outcome.result, is_result=True).header[-6:-1] == [
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
    ]
