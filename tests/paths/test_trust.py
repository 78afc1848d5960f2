"""Every failure of issue 18's review, replayed through the real handlers against moto in
the explorer's world (Lambda's retries and on-failure records, Batch, EventBridge as the
stack wires them): each ends in the state the user must see, with its one job event.

The explorer (tests/explorer) searches for the next such failure; these are the ones found.
"""

from __future__ import annotations

import boto3
import pytest

from runtime.core import keys
from runtime.protocol import lifecycle
from tests.explorer.machine import check_always, check_settled, drain
from tests.explorer.world import RESULT, Faults, Pending, World


def book(rows: int, start: int = 1) -> bytes:
    from tests.explorer.machine import _book

    return _book(rows, start)


FAST = "fast/trust/book.csv"
NORMAL = "normal/trust/book.csv"


@pytest.fixture
def world(aws) -> World:
    return World(boto3.client("s3", region_name="us-east-1"))


NO_FAULTS = Faults()


def run(world: World, kind: str | None = None, faults: Faults = NO_FAULTS, **match) -> Pending:
    """Run the first pending invocation of ``kind`` whose event holds ``match``'s text."""
    for index, item in enumerate(world.pending):
        text = repr(item.event)
        if (kind is None or item.kind == kind) and all(str(v) in text for v in match.values()):
            world.invoke(index, faults)
            return item
    raise AssertionError(f"nothing pending like {kind} {match}: {world.pending}")


def job(world: World, role: str, faults: Faults = NO_FAULTS, host_failure: bool = False) -> str:
    """Place the first runnable Batch job of ``role``."""
    for index, record in enumerate(world.runnable()):
        if record.environment.get("BATCH_ROLE") == role:
            world.run_batch(index, faults, host_failure)
            return record.job_id
    raise AssertionError(f"no runnable {role} job: {[j.job_id for j in world.runnable()]}")


def settled(world: World) -> None:
    drain(world)
    check_always(world)
    check_settled(world)


def states(world: World, key: str) -> list[str]:
    return [d["state"] for d in world.delivered if d["inputKey"] == key]


def result_rows(world: World, key: str) -> int:
    found = world.current(keys.result_key(key))
    assert found is not None, f"{key} has no result"
    return found[0].count(b"\n") - 1


# -- 1: a duplicate start after a settings change -------------------------------------------


def test_1_a_duplicate_start_in_a_redeployed_container_follows_the_jobs_plan(world):
    world.threshold = 3
    world.upload(FAST, book(7))
    upload_event = run(world, "s3")  # splits into parts of 3 rows
    world.threshold = 2  # a deploy: new containers split by 2
    world.pending.append(Pending("s3", upload_event.event, world.request_id()))
    run(world, "s3", key="trust/book.csv")  # the duplicate start: the plan says 3
    settled(world)
    status = world.status(FAST)
    assert status["state"] == "done" and status["partsTotal"] == 3
    assert result_rows(world, FAST) == 7
    assert states(world, FAST) == ["done"]


def test_1_a_retried_manager_in_a_redeployed_container_follows_the_jobs_plan(world):
    world.threshold = 3
    world.upload(NORMAL, book(7))
    run(world, "eventbridge")
    job(world, "manager", Faults(kill_after_writing="part-00002.csv"), host_failure=True)
    world.threshold = 2  # the job definition changed; the manager's retry runs with it
    job(world, "manager")
    settled(world)
    assert world.status(NORMAL)["partsTotal"] == 3
    assert result_rows(world, NORMAL) == 7
    assert states(world, NORMAL) == ["done"]


# -- 2 and 3: a merge killed after publishing --------------------------------------------------


def test_2_a_killed_merge_of_an_older_upload_leaves_the_newer_result(world):
    world.upload(NORMAL, book(4))  # A: split into 2 parts
    run(world, "eventbridge")
    job(world, "manager")
    job(world, "child")
    job(world, "child")
    world.upload(NORMAL, book(1))  # B, priced by its manager at once
    run(world, "eventbridge")
    job(world, "manager")
    assert world.status(NORMAL)["state"] == "done"
    job(world, "merge", Faults(kill_after_writing="-result"))  # A's merge: out of memory
    settled(world)
    assert world.status(NORMAL)["rows"] == 1 and result_rows(world, NORMAL) == 1


def test_3_a_cancelled_jobs_merge_killed_after_publishing_leaves_nothing(world):
    world.upload(NORMAL, book(4))
    run(world, "eventbridge")
    job(world, "manager")
    job(world, "child")
    job(world, "child")
    job(world, "merge", Faults(kill_after_writing="-result"))
    assert world.command("cancel", NORMAL)
    run(world, "command")
    settled(world)
    assert world.status(NORMAL)["state"] == "cancelled"
    assert world.current(keys.result_key(NORMAL)) is None
    assert states(world, NORMAL) == ["cancelled"]


def test_3_a_merge_that_publishes_while_the_cancel_commits_takes_its_result_back(world):
    world.upload(FAST, book(4))
    world.threshold = 2
    run(world, "s3", key="trust/book.csv")
    run(world, "s3", key="part-00000")
    assert world.command("cancel", FAST)
    # The last part's merge writes its result, then the cancel commits, then the merge's
    # status step is refused: it takes its result back.
    item = next(i for i, p in enumerate(world.pending) if "part-00001" in repr(p.event))
    original = world.s3.put_object

    def cancel_in_between(**arguments):
        answer = original(**arguments)
        if arguments["Key"].endswith("-result"):
            world.s3.put_object = original
            run(world, "command")
        return answer

    world.s3.put_object = cancel_in_between
    world.invoke(item, Faults())
    world.s3.put_object = original
    settled(world)
    assert world.status(FAST)["state"] == "cancelled"
    assert world.versions(keys.result_key(FAST)) == []


# -- 4: a lost response after a committed conditional write -------------------------------------


@pytest.mark.parametrize("path", [FAST, NORMAL])
def test_4_a_lost_response_on_the_final_status_write_keeps_the_result(world, path):
    world.upload(path, book(1))
    if path == NORMAL:
        run(world, "eventbridge")
        job(world, "manager", Faults(lose_response_writing="-status.json"))
    else:
        run(world, "s3", Faults(lose_response_writing="-status.json"))
    settled(world)
    status = world.status(path)
    assert status["state"] == "done"
    assert world.versions(keys.result_key(path)) == [status["resultVersion"]]
    assert states(world, path) == ["done"]


def test_4_a_lost_response_on_cancel_and_on_retry_still_cancels_and_retries(world):
    world.upload(FAST, book(3))
    world.threshold = 1
    run(world, "s3", key="trust/book.csv")
    assert world.command("cancel", FAST)
    run(world, "command", Faults(lose_response_writing="-status.json"))
    assert world.status(FAST)["state"] == "cancelled"
    world.upload(FAST, b"id,price\n1,2\n")  # a file that fails
    drain(world)
    assert world.status(FAST)["state"] == "failed"
    assert world.command("retry", FAST)
    run(world, "command", Faults(lose_response_writing="-status.json"))
    settled(world)
    status = world.status(FAST)
    assert status["attempt"] == 2 and status["state"] == "failed"
    assert states(world, FAST).count("failed") == 2  # one per attempt


# -- 5 and 7: retries, and late failures of the first attempt ----------------------------------


def test_5_a_retried_unsplit_normal_job_whose_new_manager_dies_ends_failed(world):
    world.upload(NORMAL, book(1))
    run(world, "eventbridge")
    job(world, "manager", Faults(kill_after=1))  # out of memory: FAILED
    run(world, "batch-event")
    assert world.status(NORMAL)["state"] == "failed"
    assert world.command("retry", NORMAL)
    run(world, "command")
    job(world, "manager", Faults(kill_after=1))
    run(world, "batch-event")
    settled(world)
    status = world.status(NORMAL)
    assert (status["state"], status["attempt"]) == ("failed", 2)
    assert states(world, NORMAL) == ["failed", "failed"]


def test_7_late_and_duplicate_failures_of_the_first_attempt_leave_the_retry_alone(world):
    world.upload(NORMAL, book(4))
    run(world, "eventbridge")
    job(world, "manager")
    job(world, "child", Faults(kill_after=1))  # out of memory
    failure = world.pending[-1]
    run(world, "batch-event", role="child")  # the child's failure ends attempt 1
    assert world.status(NORMAL)["state"] == "failed"
    assert world.command("retry", NORMAL)
    run(world, "command")
    # The first attempt's failures again: a duplicate event, and the array's own.
    world.pending.append(Pending("batch-event", failure.event, world.request_id()))
    while any(p.kind == "batch-event" for p in world.pending):
        run(world, "batch-event")
    assert world.status(NORMAL)["state"] == "running"
    settled(world)
    status = world.status(NORMAL)
    assert (status["state"], status["attempt"]) == ("done", 2)
    assert states(world, NORMAL) == ["failed", "done"]


def test_7_a_redelivered_on_failure_record_of_the_first_attempt_leaves_the_retry_alone(world):
    world.threshold = 2
    world.upload(FAST, book(4))
    run(world, "s3", key="trust/book.csv")
    for _ in range(3):  # part 0 is killed on every attempt
        run(world, "s3", Faults(kill_after=1), key="part-00000")
    record = run(world, "sqs")  # Lambda's on-failure record: attempt 1 failed
    assert world.status(FAST)["state"] == "failed"
    assert world.command("retry", FAST)
    run(world, "command")
    world.pending.append(Pending("sqs", record.event, world.request_id(), receive=2))
    run(world, "sqs")  # SQS delivers the record again
    assert world.status(FAST)["state"] == "running"
    settled(world)
    assert world.status(FAST)["state"] == "done"
    assert states(world, FAST) == ["failed", "done"]


# -- 8 and 9: re-uploads that never reached a job -------------------------------------------------


def test_8_a_re_upload_whose_manager_never_ran_ends_failed(world):
    world.upload(NORMAL, book(1))
    settled(world)
    world.upload(NORMAL, book(4))
    run(world, "eventbridge")
    world.give_up(0)  # the queue's RUNNABLE limit cancels B's manager
    settled(world)
    status = world.status(NORMAL)
    assert status["state"] == "failed" and "manager" in status["error"]
    assert world.current(keys.result_key(NORMAL)) is None  # not A's
    assert states(world, NORMAL) == ["done", "failed"]


@pytest.mark.parametrize("path", [FAST, NORMAL])
def test_9_a_re_upload_deleted_before_its_event_ends_failed(world, path):
    world.upload(path, book(1))
    settled(world)
    world.upload(path, book(4))
    world.delete(path)
    settled(world)
    status = world.status(path)
    assert status["state"] == "failed" and "deleted" in status["error"]
    assert world.current(keys.result_key(path)) is None
    assert states(world, path) == ["done", "failed"]


# -- 10 and 11: retry and cancel ---------------------------------------------------------------


def test_10_a_cancelled_retry_brings_no_older_error_back(world):
    world.upload(FAST, b"id,price\n1,2\n")
    settled(world)
    world.upload(FAST, b"id,strike\n1,2\n")
    settled(world)
    assert world.command("retry", FAST)
    run(world, "command")
    assert world.status(FAST)["state"] == "failed"  # the file still fails
    assert world.command("retry", FAST)
    world.threshold = 1
    settled(world)
    assert world.versions(keys.error_key(FAST)) == [world.status(FAST)["resultVersion"]]
    assert world.current(keys.error_key(FAST))[1]["job-attempt"] == "3"


def test_11_a_cancel_during_the_managers_split_stops_the_jobs_it_submits(world):
    world.upload(NORMAL, book(4))
    run(world, "eventbridge")
    original = world.batch.submit_job

    def cancel_first(**request):
        if request["jobName"].startswith("price-"):
            world.batch.submit_job = original
            assert world.command("cancel", NORMAL)
            run(world, "command")
        return original(**request)

    world.batch.submit_job = cancel_first
    job(world, "manager")
    world.batch.submit_job = original
    submitted = [j for j in world.batch.jobs.values() if j.environment["BATCH_ROLE"] != "manager"]
    assert submitted and all(j.terminated for j in submitted)
    settled(world)
    assert world.status(NORMAL)["state"] == "cancelled"
    assert states(world, NORMAL) == ["cancelled"]


# -- and what was left open: EventBridge refusing, a superseded job's Batch jobs ----------------


def test_an_event_eventbridge_refuses_for_a_while_is_delivered_once_it_takes_it(world):
    world.upload(FAST, book(1))
    world.events.refusing = True
    for _ in range(3):
        run(world, "s3")
    assert world.status(FAST)["state"] == "done" and world.status(FAST)["outbox"]
    run(world, "sqs")  # the on-failure record: still refused, back to the queue
    world.events.refusing = False
    settled(world)
    assert states(world, FAST) == ["done"]


def test_a_superseded_jobs_batch_jobs_are_stopped(world):
    world.upload(NORMAL, book(4))
    run(world, "eventbridge")
    job(world, "manager")
    world.upload(NORMAL, book(1))
    run(world, "eventbridge")  # B begins: A is superseded, its jobs terminated
    stopped = [j for j in world.batch.jobs.values() if j.terminated]
    assert {j.environment["BATCH_ROLE"] for j in stopped} == {"child", "merge"}
    settled(world)
    assert states(world, NORMAL) == ["superseded", "done"]


def test_the_status_names_one_result_version_and_no_other_stays(world):
    world.upload(FAST, book(1))
    settled(world)
    for _ in range(3):
        world.upload(FAST, book(1, start=5))
        settled(world)
    status = world.status(FAST)
    assert status["generation"] == 4
    assert world.versions(keys.result_key(FAST)) == [status["resultVersion"]]
    assert lifecycle.Fence.of(status).attempt == 1
    assert RESULT


def test_a_start_killed_in_its_split_whose_upload_is_then_deleted_ends_failed(world):
    world.threshold = 2
    world.upload(FAST, book(7))
    run(world, "s3", Faults(kill_after_writing="part-00001.csv"))  # 2 of 4 parts written
    world.delete(FAST)
    settled(world)  # the start's retry finds no upload and an unfinished split
    status = world.status(FAST)
    assert status["state"] == "failed" and "deleted" in status["error"]
    assert states(world, FAST) == ["failed"]


def test_an_urgent_upload_while_the_lane_is_off_fails_and_so_does_its_retry(world):
    world.urgent = False
    world.upload("urgent/trust/book.csv", book(1))
    settled(world)
    status = world.status("urgent/trust/book.csv")
    assert status["state"] == "failed" and "urgent lane is off" in status["error"]
    assert world.command("retry", "urgent/trust/book.csv")
    settled(world)
    status = world.status("urgent/trust/book.csv")
    assert (status["state"], status["attempt"]) == ("failed", 2)
    assert "urgent lane is off" in status["error"]
    assert not world.batch.jobs  # nothing went to the normal queue instead
