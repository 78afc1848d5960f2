"""Scheduled runs through the real handlers: EventBridge Scheduler's payload in, an ordinary
job out (tests/explorer's world plays Scheduler, Lambda and Batch)."""

from __future__ import annotations

import boto3
import pytest

from runtime.core import keys
from runtime.tools.aws_events import sqs_batch
from tests.explorer.machine import check_always, check_settled, drain
from tests.explorer.world import INPUT, Pending, World
from tests.paths.test_trust import NO_FAULTS, book, run, states

AT = "2026-12-01T22:30:00Z"


@pytest.fixture
def world(aws) -> World:
    return World(boto3.client("s3", region_name="us-east-1"))


def settled(world: World) -> None:
    drain(world)
    check_always(world)
    check_settled(world)


@pytest.mark.parametrize("path", ["fast", "normal", "urgent"])
def test_a_run_prices_a_copy_of_the_book_under_a_job_id_made_of_its_time(world, path):
    world.s3.put_object(
        Bucket=INPUT, Key="books/eod/risk.csv", Body=book(4), Metadata={"team": "risk"}
    )
    world.fire_schedule("eod-risk", "eod/risk.csv", path, AT)
    settled(world)
    key = f"{path}/eod-risk-20261201T2230Z/risk.csv"
    copy = world.s3.head_object(Bucket=INPUT, Key=key)
    assert copy["Metadata"] == {"team": "risk"}
    assert world.status(key)["state"] == "done"
    assert states(world, key) == ["done"]


def test_a_run_delivered_twice_is_one_job(world):
    world.s3.put_object(Bucket=INPUT, Key="books/eod.csv", Body=book(2))
    world.fire_schedule("eod", "eod.csv", "normal", AT)
    fired = world.pending[-1]
    world.pending.append(Pending("schedule", fired.event, world.request_id()))
    settled(world)
    key = keys.scheduled_key("normal", "eod", "eod.csv", AT)
    versions = world.s3.list_object_versions(Bucket=INPUT, Prefix=key)["Versions"]
    assert len(versions) == 1
    assert states(world, key) == ["done"]


def test_a_missing_book_ends_the_run_failed_saying_so(world):
    world.fire_schedule("eod", "eod.csv", "fast", AT)
    settled(world)
    key = keys.scheduled_key("fast", "eod", "eod.csv", AT)
    status = world.status(key)
    assert status["state"] == "failed"
    assert "books/eod.csv does not exist" in status["error"]
    assert states(world, key) == ["failed"]


def test_a_run_scheduler_could_not_deliver_ends_failed(world):
    world.s3.put_object(Bucket=INPUT, Key="books/eod.csv", Body=book(2))
    world.fire_schedule("eod", "eod.csv", "normal", AT)
    fired = world.pending.pop()
    # The schedules' dead-letter queue delivers the run with Scheduler's error code.
    error = {"stringValue": "AWS.Scheduler.InternalServerError", "dataType": "String"}
    batch = sqs_batch(fired.event, "m-1", 1, "explorer-schedule-failures", {"ERROR_CODE": error})
    world.pending.append(Pending("sqs", batch, world.request_id()))
    run(world, "sqs")
    settled(world)
    key = keys.scheduled_key("normal", "eod", "eod.csv", AT)
    status = world.status(key)
    assert status["state"] == "failed" and "Scheduler" in status["error"]


@pytest.mark.parametrize(
    ("path", "schedule", "book_key", "at"),
    [
        ("books", "eod", "eod.csv", AT),
        ("fast", "e od", "eod.csv", AT),
        ("fast", "eod", "../eod.csv", AT),
        ("fast", "eod", "eod.txt", AT),
        ("fast", "eod", "eod.csv", "yesterday"),
    ],
)
def test_a_run_that_cannot_make_a_key_is_refused_by_rule(path, schedule, book_key, at):
    with pytest.raises(keys.NotAJobKey):
        keys.scheduled_key(path, schedule, book_key, at)


def test_a_run_that_found_no_book_while_another_delivery_copied_it_leaves_that_job(world):
    """A delivery reads that the book is missing; meanwhile the book arrives and a
    duplicate delivery of the same run copies it and its job begins; the first delivery
    then records its failure: it must not replace the real upload's job."""
    world.fire_schedule("eod", "eod.csv", "normal", AT)
    first = world.begin(0, NO_FAULTS)
    world.advance(first, 1)  # it looked for the book: missing
    world.s3.put_object(Bucket=INPUT, Key="books/eod.csv", Body=book(2))
    world.fire_schedule("eod", "eod.csv", "normal", AT)
    run(world, "schedule")  # the duplicate copies the book; its upload's job begins
    run(world, "eventbridge")
    world.finish(0)  # the first delivery fails its "not started" run
    settled(world)
    key = keys.scheduled_key("normal", "eod", "eod.csv", AT)
    assert world.status(key)["state"] == "done"
