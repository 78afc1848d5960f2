"""What a file holds survives the split: line breaks inside quoted fields, the Greeks, and a
machine failure is never turned into row errors."""

from __future__ import annotations

import pytest

from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.pricing import price_table
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.conftest import serialised
from tests.helpers import FAST_KEY, fast_parts, read, run_batch_job, status_of, upload


@pytest.mark.parametrize("path", ["fast", "normal"])
def test_line_breaks_inside_quoted_fields_keep_rows_in_equal_rows_out(
    make_steps, s3, path, sample_bytes
):
    lines = sample_bytes.decode().splitlines()
    header = lines[0] + ",note"
    rows = [f'{line},"a\r{i}\r\nb\nc"' for i, line in enumerate(lines[1:21])]
    data = ("\r\n".join([header, *rows]) + "\r\n").encode()
    key = f"{path}/20261124-0900/notes.csv"
    upload(s3, key, data)
    steps = make_steps(threshold=3)
    if path == "fast":
        manifest = handle_object(steps, INPUT_BUCKET, key).manifest
        for part in fast_parts(s3, manifest.token):
            handle_object(steps, INPUT_BUCKET, part)
    else:
        assert run_batch_job(steps, s3, key)[-1] == "merged"
    result = read_table(read(s3, keys.result_key(key)), is_result=True)
    assert len(result.records) == 20
    assert [r[9] for r in result.records] == [f"a\r{i}\r\nb\nc" for i in range(20)]
    assert status_of(s3, key)["rows"] == 20


def test_greeks_on_a_split_job_and_a_greek_named_column_rejected_cleanly(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=40, greeks=True)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    assert status_of(s3, FAST_KEY)["plan"]["greeks"] is True
    for part in fast_parts(s3, manifest.token):
        handle_object(steps, INPUT_BUCKET, part)
    result = read_table(read(s3, keys.result_key(FAST_KEY)), is_result=True)
    assert result.header[-7:] == ["stdError", "delta", "gamma", "vega", "theta", "rho", "error"]
    assert len(result.records) == 100 and all(r[-1] == "" for r in result.records)
    whole = price_table(read_table(sample_bytes), serialised(), greeks=True).csv
    assert read(s3, keys.result_key(FAST_KEY)) == whole  # the same with or without parts

    clash = sample_bytes.replace(b"maturityDate", b"maturityDate,delta", 1)
    upload(s3, "fast/x/clash.csv", clash)
    assert handle_object(steps, INPUT_BUCKET, "fast/x/clash.csv").action == "rejected"
    assert b"delta" in read(s3, keys.error_key("fast/x/clash.csv"))
    assert status_of(s3, "fast/x/clash.csv")["state"] == "failed"


def test_a_split_job_follows_its_plan_whatever_the_pricing_container_says(
    make_steps, s3, sample_bytes
):
    """The plan is fixed when the job begins: parts priced by a container with other
    settings (a deploy in between) still price with the job's Greeks and engine."""
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(make_steps(threshold=40, greeks=True), INPUT_BUCKET, FAST_KEY).manifest
    other = make_steps(threshold=10, greeks=False)
    for part in fast_parts(s3, manifest.token):
        handle_object(other, INPUT_BUCKET, part)
    whole = price_table(read_table(sample_bytes), serialised(), greeks=True).csv
    assert read(s3, keys.result_key(FAST_KEY)) == whole
    assert status_of(s3, FAST_KEY)["partsTotal"] == 3


def test_a_machine_failure_is_not_turned_into_row_errors(make_steps, s3, sample_bytes):
    def out_of_memory(options, greeks=False):
        raise MemoryError

    upload(s3, FAST_KEY, sample_bytes)
    with pytest.raises(MemoryError):  # Lambda retries; no result of 100 failed rows
        handle_object(make_steps(threshold=200, engine=out_of_memory), INPUT_BUCKET, FAST_KEY)
    assert read(s3, keys.result_key(FAST_KEY)) is None
    assert status_of(s3, FAST_KEY)["state"] == "running"
