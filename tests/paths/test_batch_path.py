"""The normal path's real Batch job code against moto (S3, and Batch without Docker)."""

from __future__ import annotations

import boto3
import pytest

from runtime.adapters import batch_job
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.core.pricing import price_table
from runtime.environment import BatchContext
from runtime.tools import local_cloud
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET, job_environment
from tests.conftest import serialised
from tests.helpers import all_keys, read, status_of, upload

KEY = "normal/20261124-0900/portfolio.csv"
MANAGER_ENV = {"AWS_BATCH_JOB_ID": "manager-1"}


def submitted_jobs() -> list[dict]:
    return local_cloud.submitted_jobs(boto3.client("batch"))


def run_job(steps, env: dict, key: str = KEY):
    """One Batch job of the normal path, with the environment Batch would give it."""
    return batch_job.run(steps, INPUT_BUCKET, key, BatchContext.from_env(env))


def run_submitted(steps, array_job: dict, merge_job: dict, attempt: int = 1) -> list[str]:
    """Run the array children and then the merge job, as Batch would after submission."""
    outcomes = []
    for index in range(array_job["arrayProperties"]["size"]):
        env = {
            **MANAGER_ENV,
            **job_environment(array_job),
            "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
            "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        }
        outcomes.append(run_job(steps, env).action)
    merge_env = {**MANAGER_ENV, **job_environment(merge_job)}
    outcomes.append(run_job(steps, merge_env).action)
    return outcomes


def test_manager_submits_one_array_job_and_a_dependent_merge_then_exits(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=10)
    upload(s3, KEY, sample_bytes)

    outcome = run_job(steps, MANAGER_ENV)
    assert outcome.action == "split" and "10 parts" in outcome.detail
    array_job, merge_job = submitted_jobs()
    assert array_job["arrayProperties"]["size"] == 10
    assert merge_job["dependsOn"] == [{"jobId": array_job["jobId"]}]
    assert array_job["parameters"] == {"S3bucket": INPUT_BUCKET, "S3key": KEY}
    assert job_environment(array_job)["BATCH_ROLE"] == "child"
    assert job_environment(merge_job)["BATCH_ROLE"] == "merge"
    token = job_environment(array_job)["JOB_TOKEN"]
    # Parts are outside the input bucket's normal/ prefix, so they start no keys.
    assert [k for k in all_keys(s3, INPUT_BUCKET) if k != KEY] == []
    assert len([k for k in all_keys(s3, RESULT_BUCKET) if "/parts/" in k]) == 10

    outcomes = run_submitted(steps, array_job, merge_job)
    assert outcomes == ["part-priced"] * 10 + ["merged"]
    expected = price_table(read_table(sample_bytes), serialised()).csv
    assert read(s3, keys.result_key(KEY)) == expected
    assert status_of(s3, KEY)["state"] == "done"
    assert all_keys(s3, RESULT_BUCKET) == sorted([keys.result_key(KEY), keys.status_key(KEY)])
    assert not [k for k in all_keys(s3, RESULT_BUCKET) if token in k]


def test_a_single_part_file_is_priced_by_the_manager_itself(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=100)
    upload(s3, KEY, sample_bytes)
    assert run_job(steps, MANAGER_ENV).action == "priced"
    assert submitted_jobs() == []
    assert read(s3, keys.result_key(KEY)).count(b"\n") == 101


def test_retried_children_and_duplicate_jobs_give_one_identical_result(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=30)
    upload(s3, KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    child0 = {
        **MANAGER_ENV,
        **job_environment(array_job),
        "AWS_BATCH_JOB_ARRAY_INDEX": "0",
    }
    run_job(steps, child0)
    run_job(steps, {**child0, "AWS_BATCH_JOB_ATTEMPT": "2"})
    outcomes = run_submitted(steps, array_job, merge_job)
    assert outcomes[-1] == "merged"
    result = read(s3, keys.result_key(KEY))
    # A duplicate merge job and a duplicate EventBridge event change nothing.
    assert run_submitted(steps, array_job, merge_job)[-1] == "skipped"
    assert run_job(steps, MANAGER_ENV).action == "duplicate"
    assert read(s3, keys.result_key(KEY)) == result
    assert len(submitted_jobs()) == 2


def test_a_child_application_error_fails_the_job_at_once_and_names_the_part(
    make_steps, s3, sample_bytes, events
):
    # The job definition retries only host failures (Spot), so an application error is
    # final on the attempt it happens: the child must say so before Batch fails the merge.
    def broken(options, greeks=False):
        raise OSError(28, "No space left on device")

    upload(s3, KEY, sample_bytes)
    run_job(make_steps(threshold=50), MANAGER_ENV)
    array_job, merge_job = submitted_jobs()
    child = {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": "1"}
    failing = make_steps(threshold=50, engine=broken)

    with pytest.raises(batch_job.BatchJobError, match="part-00001 failed, attempt 1"):
        run_job(failing, {**child, "AWS_BATCH_JOB_ATTEMPT": "1"})
    status = status_of(s3, KEY)
    assert status["state"] == "failed"
    assert status["error"].startswith("part-00001 failed: attempt 1: OSError: [Errno 28]")
    assert [(f["part"], f["final"]) for f in status["failed_parts"]] == [(1, True)]
    assert read(s3, keys.result_key(KEY)) is None
    assert b"No space left on device" in read(s3, keys.error_key(KEY))
    assert events.states() == [(KEY, "failed")]
    # The other child stops without pricing; a merge job Batch runs anyway publishes nothing.
    sibling = {**job_environment(array_job), "AWS_BATCH_JOB_ARRAY_INDEX": "0"}
    assert run_job(make_steps(threshold=50), sibling).action == "stopped"
    assert run_job(make_steps(threshold=50), job_environment(merge_job)).action == "stopped"
    assert events.states() == [(KEY, "failed")]


def test_a_merge_job_with_missing_parts_fails_and_names_them(make_steps, s3, sample_bytes):
    steps = make_steps(threshold=50)
    upload(s3, KEY, sample_bytes)
    run_job(steps, MANAGER_ENV)
    _, merge_job = submitted_jobs()
    with pytest.raises(
        batch_job.BatchJobError, match=r"cannot merge: parts \[0, 1\] have no result"
    ):
        run_job(steps, {**MANAGER_ENV, **job_environment(merge_job)})
    status = status_of(s3, KEY)
    assert status["state"] == "failed" and status["missing_parts"] == [0, 1]


def test_more_parts_than_batch_allows_grow_the_part_size(make_steps, s3):
    from runtime.tools.generate import generate_portfolio

    steps = make_steps(threshold=1)
    upload(s3, KEY, generate_portfolio(10_050))
    outcome = run_job(steps, MANAGER_ENV)
    assert "5025 parts" in outcome.detail  # 10,050 parts of 1 row would exceed 10,000
    array_job, _ = submitted_jobs()
    assert array_job["arrayProperties"]["size"] == 5025


def test_batch_main_reports_bad_arguments_and_settings_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("RESULT_BUCKET", "b")
    assert batch_job.main(["only-one"]) == 2
    monkeypatch.setenv("THRESHOLD", "many")
    assert batch_job.main(["b", "normal/x.csv"]) == 1
    assert "THRESHOLD='many' is not a whole number" in capsys.readouterr().err


def test_an_url_encoded_key_from_eventbridge_finds_the_upload(make_steps, s3, sample_bytes):
    key = "normal/my job/a+b book.csv"
    upload(s3, key, sample_bytes)
    outcome = run_job(make_steps(threshold=100), MANAGER_ENV, "normal/my+job/a%2Bb+book.csv")
    assert outcome.action == "priced"
    assert read(s3, keys.result_key(key)) is not None
