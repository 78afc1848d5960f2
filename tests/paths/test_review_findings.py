"""Regression tests from the hostile review of the third wave: each failed before its fix.

A duplicate start after a deploy that turned the budget guard on; an ``auto/`` upload that
failed before its admission, then retried; a key too long for a status, delivered twice and
uploaded twice; ``jobs result`` after a re-upload whose event is on its way; a price table
lowered between two attempts. (A deleted key with "+" in it: tests/paths/test_batch_path.py.)
"""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest

from runtime.tools.jobs import CommandError, Jobs, Target
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.explorer.world import Pending, World
from tests.helpers import run_manager, s3_notification, status_of, upload
from tests.paths.test_trust import book, run, settled


@pytest.fixture
def world(aws):
    return World(boto3.client("s3", region_name="us-east-1"))


def test_a_duplicate_start_after_the_guard_is_turned_on_leaves_a_split_job_running(world):
    key = "fast/g/book.csv"
    world.threshold = 2
    world.upload(key, book(4))
    first = run(world, "s3")  # the start splits the file in two parts
    assert world.status(key)["partsTotal"] == 2
    run(world, "s3", key="part-00000")
    world.max_job_usd = 1e-9  # a deploy turns the budget guard on
    world.pending.insert(0, Pending("s3", first.event, world.request_id()))  # S3 redelivers
    run(world, "s3", key=key.split("/")[1])
    settled(world)
    status = world.status(key)
    assert status["state"] == "done", status["error"]
    assert status["rows"] == 4


def test_the_retry_of_an_auto_upload_that_never_reached_admission_plans_its_route(world):
    key = "auto/r/book.csv"
    world.auto_fast_seconds = 0  # every auto/ upload goes to the normal path
    world.upload(key, book(4))
    assert world.dead_letter(0)  # EventBridge could not deliver the Object Created event
    settled(world)
    assert world.status(key)["state"] == "failed"
    assert world.command("retry", key)
    settled(world)
    status = world.status(key)
    assert status["state"] == "done"
    assert status["route"]["path"] == "normal" and status["route"]["reason"]
    assert status["plan"]["runner"] == "normal"


def test_a_key_too_long_for_a_status_gets_one_event_per_upload(make_steps, s3, events):
    from runtime.adapters import lambda_handler

    key = "fast/" + "x" * (1013 - len("fast/") - len(".csv")) + ".csv"
    steps = make_steps()
    upload(s3, key, b"id\n1\n")
    first = s3_notification(
        INPUT_BUCKET, key, s3.head_object(Bucket=INPUT_BUCKET, Key=key)["VersionId"]
    )
    lambda_handler.handle(steps, first, "req-1")
    lambda_handler.handle(steps, first, "req-2")  # S3 delivers the same event again
    assert len(events) == 1
    upload(s3, key, b"id\n1\n")  # a second upload of the same key
    second = s3_notification(
        INPUT_BUCKET, key, s3.head_object(Bucket=INPUT_BUCKET, Key=key)["VersionId"]
    )
    lambda_handler.handle(steps, second, "req-3")
    ids = [event["eventId"] for event in events]
    events.clear()  # (the fixture checks every event names a status; these have none)
    assert len(ids) == len(set(ids)) == 2


def test_jobs_result_refuses_while_a_newer_upload_waits_for_its_job(make_steps, s3, tmp_path):
    key = "normal/j/book.csv"
    upload(s3, key, book(2))
    run_manager(make_steps(threshold=100), s3, key)
    assert status_of(s3, key)["state"] == "done"
    upload(s3, key, book(3))  # re-uploaded: its event is on its way
    jobs = Jobs(Target(INPUT_BUCKET, RESULT_BUCKET, region="us-east-1"), print)
    with pytest.raises(CommandError, match="newer upload, not priced yet"):
        jobs.result(key, tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_a_jobs_cost_never_shrinks_when_a_deploy_lowers_prices(world):
    key = "fast/c/book.csv"
    world.max_job_usd = 1e-9  # the budget guard fails the first attempt
    world.upload(key, book(4))
    settled(world)
    first = world.status(key)
    assert first["state"] == "failed" and first["cost"]["usd"] > 0
    world.max_job_usd = 0
    world.price_table = json.dumps(
        {
            "lambdaUsdPerGbSecond": 0,
            "lambdaUsdPerMillionRequests": 0,
            "s3UsdPerThousandPut": 0,
            "s3UsdPerThousandGet": 0,
            "eventsUsdPerMillion": 0,
        }
    )
    assert world.command("retry", key)
    settled(world)
    second = world.status(key)
    assert second["state"] == "done"
    assert second["cost"]["usd"] >= first["cost"]["usd"]
    assert second["cost"]["attempts"] > first["cost"]["attempts"]


def test_a_late_part_event_counts_a_record_its_dead_writer_never_totalled(make_steps, s3):
    """Found by the explorer: an invocation killed between writing its usage record and
    totalling the job's cost. Its retry finds the job's work area gone and acts for no job;
    it totals the cost again from the token its part key names."""
    from runtime.adapters import lambda_handler
    from runtime.core import keys
    from runtime.planning.usage import UsageRecord
    from runtime.protocol.costs import JobOf

    key = "fast/late/book.csv"
    upload(s3, key, book(4))
    steps = make_steps(threshold=2)
    split = steps.start(INPUT_BUCKET, key, "req-start")
    for index in range(split.manifest.parts):
        steps.price_part(split.manifest, split.fence, index, f"worker-{index}", merge=True)
    done = status_of(s3, key)
    assert done["state"] == "done"
    before = done.get("cost") or {"attempts": 0, "usd": 0.0}
    token = done["token"]
    # the record of an invocation that died before it could total it
    late = UsageRecord(step="part-00001", capacity="LAMBDA", seconds=1.5, memory_mb=1769)
    assert steps.usage.add(JobOf(key, token, keys.FAST), "lambda-dead", late)
    assert (status_of(s3, key).get("cost") or {"attempts": 0})["attempts"] == before["attempts"]

    part = keys.fast_part_key(token, 1, 1)
    lambda_handler.handle(steps, s3_notification(INPUT_BUCKET, part), "req-retry")
    after = status_of(s3, key)["cost"]
    assert after["attempts"] == before["attempts"] + 1
    assert after["usd"] > before["usd"]


@dataclasses.dataclass
class LimitedWorld(World):
    """The explorer's world with the file limits as settings (a deploy may lower them)."""

    max_rows: int = 100_000
    max_bytes: int = 10_000_000

    def config(self):
        return dataclasses.replace(
            super().config(), max_rows=self.max_rows, max_bytes=self.max_bytes
        )


@pytest.fixture
def limited(aws):
    return LimitedWorld(boto3.client("s3", region_name="us-east-1"))


@pytest.mark.parametrize("setting", [("max_rows", 3), ("max_bytes", 50)])
def test_a_duplicate_start_after_the_limits_are_lowered_leaves_a_split_job_running(
    limited, setting
):
    key = "fast/g/book.csv"
    limited.threshold = 2
    limited.upload(key, book(4))
    first = run(limited, "s3")  # splits into two parts
    assert limited.status(key)["partsTotal"] == 2
    run(limited, "s3", key="part-00000")
    setattr(limited, *setting)  # a deploy lowers maxRows or maxBytes
    limited.pending.insert(0, Pending("s3", first.event, limited.request_id()))
    run(limited, "s3", key=key.split("/")[1])
    settled(limited)
    status = limited.status(key)
    assert status["state"] == "done", status["error"]


def test_the_retry_of_an_unplanned_auto_upload_over_the_byte_limit_says_why(limited):
    from tests.paths.test_trust import NO_FAULTS

    key = "auto/r/book.csv"
    limited.max_bytes = 50  # the book is bigger
    limited.upload(key, book(4))
    assert limited.dead_letter(0)
    settled(limited)
    assert limited.status(key)["state"] == "failed"
    limited.steps(NO_FAULTS).retry(key, "retry-1", "cli")  # must not raise
    status = limited.status(key)
    assert status["attempt"] == 2
    assert status["state"] == "failed" and "bytes" in status["error"]
