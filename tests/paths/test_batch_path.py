"""The normal path's real Batch job code against moto (S3, and Batch without Docker)."""

from __future__ import annotations

import boto3
import pytest

from runtime.adapters import batch_job
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.core.pricing import price_table
from runtime.tools import simulate
from runtime.tools.local_cloud import INPUT_BUCKET, JOB_DEFINITION, JOB_QUEUE, RESULT_BUCKET
from tests.conftest import serialised
from tests.helpers import all_keys, read, status_of, upload

KEY = "normal/20261124-0900/portfolio.csv"
MANAGER_ENV = {"JOB_QUEUE": JOB_QUEUE, "JOB_DEFINITION": JOB_DEFINITION, "BATCH_MAX_ATTEMPTS": "3"}


def submitted_jobs() -> list[dict]:
    return simulate.submitted_jobs(boto3.client("batch"))


def run_submitted(pipeline, array_job: dict, merge_job: dict, attempt: int = 1) -> list[str]:
    """Run the array children and then the merge job, as Batch would after submission."""
    outcomes = []
    for index in range(array_job["arrayProperties"]["size"]):
        env = {
            **MANAGER_ENV,
            **simulate.job_environment(array_job),
            "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
            "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        }
        outcomes.append(batch_job.run(pipeline, INPUT_BUCKET, KEY, env).action)
    merge_env = {**MANAGER_ENV, **simulate.job_environment(merge_job)}
    outcomes.append(batch_job.run(pipeline, INPUT_BUCKET, KEY, merge_env).action)
    return outcomes


def test_manager_submits_one_array_job_and_a_dependent_merge_then_exits(
    make_pipeline, s3, sample_bytes
):
    pipeline = make_pipeline(threshold=10)
    upload(s3, KEY, sample_bytes)

    outcome = batch_job.run(pipeline, INPUT_BUCKET, KEY, MANAGER_ENV)
    assert outcome.action == "split" and "10 parts" in outcome.detail
    array_job, merge_job = submitted_jobs()
    assert array_job["arrayProperties"]["size"] == 10
    assert merge_job["dependsOn"] == [{"jobId": array_job["jobId"]}]
    assert array_job["parameters"] == {"S3bucket": INPUT_BUCKET, "S3key": KEY}
    assert simulate.job_environment(array_job)["BATCH_ROLE"] == "child"
    assert simulate.job_environment(merge_job)["BATCH_ROLE"] == "merge"
    token = simulate.job_environment(array_job)["JOB_TOKEN"]
    # Parts are outside the input bucket's normal/ prefix, so they start no keys.
    assert [k for k in all_keys(s3, INPUT_BUCKET) if k != KEY] == []
    assert len([k for k in all_keys(s3, RESULT_BUCKET) if "/parts/" in k]) == 10

    outcomes = run_submitted(pipeline, array_job, merge_job)
    assert outcomes == ["part-priced"] * 10 + ["merged"]
    expected = price_table(read_table(sample_bytes), serialised()).csv
    assert read(s3, keys.result_key(KEY)) == expected
    assert status_of(s3, KEY)["state"] == "done"
    assert all_keys(s3, RESULT_BUCKET) == sorted([keys.result_key(KEY), keys.status_key(KEY)])
    assert not [k for k in all_keys(s3, RESULT_BUCKET) if token in k]


def test_a_single_part_file_is_priced_by_the_manager_itself(make_pipeline, s3, sample_bytes):
    pipeline = make_pipeline(threshold=100)
    upload(s3, KEY, sample_bytes)
    assert batch_job.run(pipeline, INPUT_BUCKET, KEY, MANAGER_ENV).action == "priced"
    assert submitted_jobs() == []
    assert read(s3, keys.result_key(KEY)).count(b"\n") == 101


def test_retried_children_and_duplicate_jobs_give_one_identical_result(
    make_pipeline, s3, sample_bytes
):
    pipeline = make_pipeline(threshold=30)
    upload(s3, KEY, sample_bytes)
    batch_job.run(pipeline, INPUT_BUCKET, KEY, MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    child0 = {
        **MANAGER_ENV,
        **simulate.job_environment(array_job),
        "AWS_BATCH_JOB_ARRAY_INDEX": "0",
    }
    batch_job.run(pipeline, INPUT_BUCKET, KEY, child0)
    batch_job.run(pipeline, INPUT_BUCKET, KEY, {**child0, "AWS_BATCH_JOB_ATTEMPT": "2"})
    outcomes = run_submitted(pipeline, array_job, merge_job)
    assert outcomes[-1] == "merged"
    result = read(s3, keys.result_key(KEY))
    # A duplicate merge job and a duplicate EventBridge event change nothing.
    assert run_submitted(pipeline, array_job, merge_job)[-1] == "skipped"
    assert batch_job.run(pipeline, INPUT_BUCKET, KEY, MANAGER_ENV).action == "duplicate"
    assert read(s3, keys.result_key(KEY)) == result
    assert len(submitted_jobs()) == 2


def test_a_child_failing_on_its_last_attempt_fails_the_job_visibly(make_pipeline, s3, sample_bytes):
    def broken(options):
        raise RuntimeError("disk full")

    upload(s3, KEY, sample_bytes)
    batch_job.run(make_pipeline(threshold=50), INPUT_BUCKET, KEY, MANAGER_ENV)
    array_job, _ = submitted_jobs()
    child = {**MANAGER_ENV, **simulate.job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": "1"}
    failing = make_pipeline(threshold=50, engine=broken)

    with pytest.raises(batch_job.BatchJobError, match="part-00001 failed, attempt 1"):
        batch_job.run(failing, INPUT_BUCKET, KEY, {**child, "AWS_BATCH_JOB_ATTEMPT": "1"})
    status = status_of(s3, KEY)
    assert status["state"] == "running" and not status["failed_parts"][0]["final"]

    with pytest.raises(batch_job.BatchJobError):
        batch_job.run(failing, INPUT_BUCKET, KEY, {**child, "AWS_BATCH_JOB_ATTEMPT": "3"})
    status = status_of(s3, KEY)
    assert status["state"] == "failed"
    assert "part-00001 failed on its last attempt" in status["error"]
    assert "disk full" in status["failed_parts"][0]["error"]
    assert read(s3, keys.result_key(KEY)) is None


def test_a_merge_job_with_missing_parts_fails_and_names_them(make_pipeline, s3, sample_bytes):
    pipeline = make_pipeline(threshold=50)
    upload(s3, KEY, sample_bytes)
    batch_job.run(pipeline, INPUT_BUCKET, KEY, MANAGER_ENV)
    _, merge_job = submitted_jobs()
    with pytest.raises(batch_job.BatchJobError, match="cannot merge: only 0/2 parts done"):
        batch_job.run(
            pipeline, INPUT_BUCKET, KEY, {**MANAGER_ENV, **simulate.job_environment(merge_job)}
        )
    status = status_of(s3, KEY)
    assert status["state"] == "failed" and status["missing_parts"] == [0, 1]


def test_more_parts_than_batch_allows_grow_the_part_size(make_pipeline, s3):
    from runtime.tools.generate import generate_portfolio

    pipeline = make_pipeline(threshold=1)
    upload(s3, KEY, generate_portfolio(10_050))
    outcome = batch_job.run(pipeline, INPUT_BUCKET, KEY, MANAGER_ENV)
    assert "5025 parts" in outcome.detail  # 10,050 parts of 1 row would exceed 10,000
    array_job, _ = submitted_jobs()
    assert array_job["arrayProperties"]["size"] == 5025


def test_batch_main_reports_bad_arguments_without_a_traceback(capsys):
    assert batch_job.main(["only-one"], {"RESULT_BUCKET": "b"}) == 2


def test_an_url_encoded_key_from_eventbridge_finds_the_upload(make_pipeline, s3, sample_bytes):
    key = "normal/my job/a+b book.csv"
    upload(s3, key, sample_bytes)
    outcome = batch_job.run(
        make_pipeline(threshold=100), INPUT_BUCKET, "normal/my+job/a%2Bb+book.csv", MANAGER_ENV
    )
    assert outcome.action == "priced"
    assert read(s3, keys.result_key(key)) is not None
