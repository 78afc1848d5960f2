"""What a job costs, the auto lane, the budget guard and parts that fit, through the real
handlers in the explorer's world (Lambda's retries and on-failure records, Batch's retry
strategy and state-change events, EventBridge), against moto.

A job's ``cost`` is the sum of its actors' usage records (every Lambda invocation and Batch
attempt, retries and interruptions included), priced by the stack's table."""

from __future__ import annotations

import json

import boto3
import pytest

from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.planning import plan as planner
from runtime.planning.paths import FAST, NORMAL
from runtime.planning.prices import default_prices
from runtime.planning.usage import INTERRUPTED, UsageRecord, record_cost, total_cost
from runtime.pricing import price_table
from runtime.protocol import lifecycle, parts
from tests.explorer.world import INPUT, RESULT, Faults, Pending, World
from tests.paths.test_trust import book, job, run, settled, states

FAST_KEY = "fast/costs/book.csv"
NORMAL_KEY = "normal/costs/book.csv"
AUTO_KEY = "auto/costs/book.csv"


@pytest.fixture
def world(aws) -> World:
    return World(boto3.client("s3", region_name="us-east-1"))


def records(world: World, key: str) -> list[dict]:
    """The usage record documents of the key's current job, every actor and attempt."""
    status = world.status(key)
    prefix = keys.usage_prefix(status["plan"]["runner"], status["token"])
    listed = world.s3.list_objects_v2(Bucket=RESULT, Prefix=prefix).get("Contents", [])
    found = [world.s3.get_object(Bucket=RESULT, Key=item["Key"]) for item in listed]
    return [json.loads(item["Body"].read()) for item in found]


def usage(world: World, key: str) -> list[UsageRecord]:
    return [UsageRecord.from_dict(document["record"]) for document in records(world, key)]


def assert_costs_add_up(world: World, key: str) -> dict:
    """The status' cost is its records' total at the stack's prices (us-east-1, x86_64)."""
    cost = world.status(key)["cost"]
    expected = total_cost(usage(world, key), default_prices("us-east-1", "x86_64")).to_dict()
    assert cost == expected
    return cost


def event(world: World, key: str, state: str) -> dict:
    (found,) = [d for d in world.delivered if d["inputKey"] == key and d["state"] == state]
    return found


# -- costs add up -----------------------------------------------------------------------------


def test_a_fast_jobs_cost_is_its_start_and_parts_the_last_of_which_merged(world):
    world.threshold = 3
    world.upload(FAST_KEY, book(7))  # 3 parts
    settled(world)
    steps = sorted(record.step for record in usage(world, FAST_KEY))
    assert steps == ["part-00000", "part-00001", "part-00002+merge", "start"]
    cost = assert_costs_add_up(world, FAST_KEY)
    assert (cost["lambdaRequests"], cost["attempts"], cost["retries"]) == (4, 4, 0)
    assert cost["lambdaGbSeconds"] > 0 and cost["batchVcpuSeconds"] == 0
    assert cost["s3PutRequests"] > 0 and cost["eventsPublished"] == 1
    # Each record is priced the same way the job is: the parts' costs add up to the job's.
    prices = default_prices()
    summed = sum(record_cost(r, prices).usd for r in usage(world, FAST_KEY))
    assert cost["usd"] == pytest.approx(summed, abs=1e-9)  # the document rounds to 1e-10
    # The event carries the cost when the merge committed: its own invocation up to then.
    sent = event(world, FAST_KEY, "done")["cost"]
    assert sent["attempts"] == 4 and sent["usd"] <= cost["usd"]


def test_a_normal_jobs_cost_is_its_admission_manager_children_and_merge(world):
    world.threshold = 2
    world.upload(NORMAL_KEY, book(4))  # 2 parts
    settled(world)
    found = sorted((r.step, r.capacity) for r in usage(world, NORMAL_KEY))
    assert found == [
        ("admit", "LAMBDA"),
        ("manager", "EC2"),
        ("merge", "EC2"),
        ("part-00000", "EC2"),
        ("part-00001", "EC2"),
    ]
    cost = assert_costs_add_up(world, NORMAL_KEY)
    assert (cost["lambdaRequests"], cost["attempts"]) == (1, 5)
    assert cost["batchVcpuSeconds"] > 0 and cost["byCapacity"]["EC2"]["vcpuSeconds"] > 0
    assert event(world, NORMAL_KEY, "done")["cost"]["attempts"] == 5


def test_a_child_interrupted_twice_by_spot_then_succeeding_counts_three_attempts(world):
    world.threshold = 2
    world.upload(NORMAL_KEY, book(4))
    run(world, "eventbridge")
    job(world, "manager")
    for _ in range(2):  # the host goes away under child 0: Batch retries it
        job(world, "child", Faults(kill_after=1), host_failure=True)
    settled(world)
    assert world.status(NORMAL_KEY)["state"] == "done"
    child = sorted(
        (r.attempt, r.outcome) for r in usage(world, NORMAL_KEY) if r.step == "part-00000"
    )
    assert child == [(1, INTERRUPTED), (2, INTERRUPTED), (3, "succeeded")]
    estimated = [d for d in records(world, NORMAL_KEY) if d["estimated"]]
    assert len(estimated) == 2  # their length is the third attempt's: no event tells it
    cost = assert_costs_add_up(world, NORMAL_KEY)
    assert (cost["attempts"], cost["retries"], cost["interruptions"]) == (7, 2, 2)


def test_a_child_interrupted_three_times_is_counted_from_batchs_failed_event(world):
    world.threshold = 2
    world.upload(NORMAL_KEY, book(4))
    run(world, "eventbridge")
    job(world, "manager")
    for _ in range(3):
        job(world, "child", Faults(kill_after=1), host_failure=True)
    settled(world)
    status = world.status(NORMAL_KEY)
    assert status["state"] == "failed" and "Host EC2" in status["error"]
    child = {
        (r.attempt, r.outcome, r.seconds)
        for r in usage(world, NORMAL_KEY)
        if r.step == "part-00000"
    }
    # Measured from the event's startedAt/stoppedAt (a minute each in this world), which
    # replaced the estimates the later attempts had no chance to write.
    assert child == {(1, INTERRUPTED, 60.0), (2, INTERRUPTED, 60.0), (3, INTERRUPTED, 60.0)}
    assert not [d for d in records(world, NORMAL_KEY) if d["estimated"]]
    cost = assert_costs_add_up(world, NORMAL_KEY)
    assert cost["interruptions"] == 3 and cost["retries"] >= 2
    assert event(world, NORMAL_KEY, "failed")["cost"]["interruptions"] == 3


def test_lambda_retries_of_a_part_count_and_killed_attempts_come_from_the_on_failure_record(
    world,
):
    world.threshold = 2
    world.upload(FAST_KEY, book(4))
    run(world, "s3", key="fast/costs/book.csv")
    run(world, "s3", key="part-00000")
    for _ in range(3):  # part 1 is killed on every attempt: no record of its own
        run(world, "s3", Faults(kill_after=1), key="part-00001")
    run(world, "sqs")  # Lambda's on-failure record: the part fails the job
    settled(world)
    status = world.status(FAST_KEY)
    assert status["state"] == "failed"
    lost = [d for d in records(world, FAST_KEY) if d["record"]["step"] == "part-00001"]
    assert sorted(d["attempt"] for d in lost) == [1, 2, 3] and all(d["estimated"] for d in lost)
    assert {d["record"]["seconds"] for d in lost} == {0.0}  # killed, not timed out: unknown
    cost = assert_costs_add_up(world, FAST_KEY)
    # the start, part 0, part 1's three attempts, and the on-failure record's handler
    assert (cost["lambdaRequests"], cost["retries"]) == (6, 2)
    assert event(world, FAST_KEY, "failed")["cost"]["lambdaRequests"] == 6


def test_an_invocation_that_raised_records_itself_and_its_retry_takes_the_next_attempt(
    world, monkeypatch
):
    world.threshold = 2
    world.upload(FAST_KEY, book(4))
    run(world, "s3", key="fast/costs/book.csv")
    calls = []

    def flaky(*arguments, **options):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a transient failure")
        return price_table(*arguments, **options)

    monkeypatch.setattr(parts, "price_table", flaky)
    item = run(world, "s3", key="part-00000")  # raises: Lambda retries it, same request id
    retry = next(p for p in world.pending if p.request_id == item.request_id)
    world.invoke(world.pending.index(retry), Faults())
    settled(world)
    mine = sorted(
        (d["attempt"], d["record"]["outcome"])
        for d in records(world, FAST_KEY)
        if d["actor"] == f"lambda-{item.request_id}"
    )
    assert mine == [(1, "failed"), (2, "succeeded")]
    assert assert_costs_add_up(world, FAST_KEY)["retries"] == 1


def test_a_late_record_grows_the_status_cost_but_not_the_event_already_sent(world):
    world.threshold = 2
    world.upload(FAST_KEY, book(4))
    settled(world)
    sent = event(world, FAST_KEY, "done")["cost"]
    before = world.status(FAST_KEY)["cost"]
    # S3 delivers the upload's event again: the invocation finds the job done (a duplicate),
    # and is one more billed request of it.
    upload_event = next(p for p in world.delivered_events if p.kind == "s3")
    world.pending.append(Pending("s3", upload_event.event, world.request_id()))
    settled(world)
    after = assert_costs_add_up(world, FAST_KEY)
    assert after["attempts"] == before["attempts"] + 1 and after["usd"] > before["usd"]
    assert event(world, FAST_KEY, "done")["cost"] == sent and states(world, FAST_KEY) == ["done"]


# -- the auto lane ----------------------------------------------------------------------------


def auto_estimates(world: World, body: bytes) -> float:
    """The fast path's wall time the planner gives the file under the world's settings."""
    steps = world.steps(Faults())
    plan = steps.plan_from_config(keys.FAST)
    return steps.estimate(plan, read_table(body), (FAST, NORMAL)).paths[FAST].wall_seconds


def test_the_auto_lane_sends_files_either_side_of_the_line_to_the_fast_and_normal_paths(world):
    world.engine_name = "mc"  # seconds per option (priced with qdfp here, planned as mc)
    world.threshold = 200
    small, large = book(1), book(60, start=20)
    quick, slow = auto_estimates(world, small), auto_estimates(world, large)
    assert quick + 2 < slow
    world.auto_fast_seconds = round((quick + slow) / 2)

    world.upload(AUTO_KEY, small)
    settled(world)
    status = world.status(AUTO_KEY)
    assert status["route"]["path"] == "fast" and status["plan"]["runner"] == "fast"
    assert "within autoFastSeconds" in status["route"]["reason"]
    assert status["state"] == "done" and not world.batch.jobs  # priced in the invocation
    done = event(world, AUTO_KEY, "done")
    assert (done["path"], done["route"]) == ("auto", status["route"])

    world.upload(AUTO_KEY, large)
    settled(world)
    status = world.status(AUTO_KEY)
    assert status["route"]["path"] == "normal" and status["plan"]["runner"] == "normal"
    assert "over autoFastSeconds" in status["route"]["reason"]
    assert status["state"] == "done" and status["rows"] == 60
    roles = {j.environment["BATCH_ROLE"] for j in world.batch.jobs.values()}
    assert roles == {"manager"}  # 60 rows fit one Batch part: the manager priced them
    assert_costs_add_up(world, AUTO_KEY)


def test_a_duplicate_auto_event_follows_the_route_its_job_took(world):
    world.upload(AUTO_KEY, book(3))
    first = run(world, "eventbridge")
    assert world.status(AUTO_KEY)["route"]["path"] == "fast"
    world.auto_fast_seconds = 0  # a deploy: new uploads would go normal
    world.pending.append(Pending("eventbridge", first.event, world.request_id()))
    settled(world)
    status = world.status(AUTO_KEY)
    assert (status["route"]["path"], status["state"]) == ("fast", "done") and not world.batch.jobs


def test_an_auto_upload_that_cannot_be_read_fails_like_any_upload(world):
    world.upload(AUTO_KEY, b"id,price\n1,2\n")
    settled(world)
    status = world.status(AUTO_KEY)
    assert status["state"] == "failed" and "reserved" in status["error"]
    assert status["route"] is None and states(world, AUTO_KEY) == ["failed"]


# -- the budget guard -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [FAST_KEY, NORMAL_KEY, AUTO_KEY])
def test_the_budget_guard_fails_a_job_before_any_part_runs_and_force_runs_it(world, key):
    world.threshold = 2
    world.max_job_usd = 1e-9
    world.upload(key, book(4))
    settled(world)
    status = world.status(key)
    assert status["state"] == "failed"
    path = (status.get("route") or {}).get("path") or keys.path_of(key)
    assert status["error"].startswith("estimated cost $")
    assert f"on the {path} path is over maxJobUsd $0.00000000100: not priced" in status["error"]
    assert "(jobs retry --force runs it anyway)" in status["error"]
    token = status["token"]
    assert (
        world.s3.list_objects_v2(Bucket=INPUT, Prefix=keys.fast_parts_prefix(token)).get("KeyCount")
        == 0
    )
    assert not world.batch.jobs and status["partsTotal"] == 0
    assert world.current(keys.result_key(key)) is None

    assert world.command("retry", key)  # without --force: the guard stops it again
    settled(world)
    assert (world.status(key)["state"], world.status(key)["attempt"]) == ("failed", 2)
    assert world.command("retry", key, force=True)
    settled(world)
    status = world.status(key)
    assert (status["state"], status["attempt"], status["force"]) == ("done", 3, True)
    assert states(world, key) == ["failed", "failed", "done"]


# -- parts that fit ---------------------------------------------------------------------------


def test_slow_rows_make_parts_smaller_than_the_threshold_and_a_duplicate_splits_the_same(world):
    world.engine_name = "mc"
    world.threshold = 200  # the ceiling
    world.planning = {"lambdaTimeoutSeconds": 12}  # 6 s per part with the margin
    body = book(40)
    world.upload(FAST_KEY, body)
    upload_event = run(world, "s3")
    status = world.status(FAST_KEY)
    assert status["plan"]["lambdaTimeoutSeconds"] == 12
    manifest = world.steps(Faults()).load_manifest("fast", status["token"])
    steps = world.steps(Faults())
    sizing = planner.plan_table(
        read_table(body), steps.plan_settings(lifecycle.plan_of(status)), paths=(FAST,)
    ).paths[FAST]
    assert manifest.part_rows[0] == sizing.part_rows < 40
    assert manifest.parts == sizing.parts > 1
    world.planning = {}  # a deploy: 900 s again, which would make one part
    world.pending.append(Pending("s3", upload_event.event, world.request_id()))
    settled(world)
    status = world.status(FAST_KEY)
    assert (status["state"], status["partsTotal"]) == ("done", manifest.parts)
