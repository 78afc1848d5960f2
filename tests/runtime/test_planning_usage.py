"""Usage records and their cost: a job's cost is the sum of its steps' attempts."""

from __future__ import annotations

import pytest

from runtime.planning.prices import default_prices
from runtime.planning.usage import (
    EC2,
    FAILED,
    FARGATE,
    FARGATE_SPOT,
    INTERRUPTED,
    LAMBDA,
    SPOT,
    SUCCEEDED,
    Cost,
    UsageError,
    UsageRecord,
    batch_attempts,
    lambda_billed_ms,
    record_cost,
    total_cost,
)
from runtime.tools import aws_events

PRICES = default_prices("us-east-1", "x86_64")


def lambda_record(step: str, seconds: float, **extra) -> UsageRecord:
    return UsageRecord(step=step, capacity=LAMBDA, seconds=seconds, memory_mb=1769, **extra)


def batch_record(step: str, capacity: str, seconds: float, **extra) -> UsageRecord:
    return UsageRecord(
        step=step, capacity=capacity, seconds=seconds, memory_mb=2048, vcpus=1.0, **extra
    )


def test_lambda_bills_every_started_millisecond_of_memory_init_included_and_the_request():
    assert lambda_billed_ms(0.0101) == 11
    assert lambda_billed_ms(0.010) == 10
    cost = record_cost(lambda_record("part-00000", 1.2344, init_seconds=0.5), PRICES)
    billed = 1.735  # 1.2344 + 0.5 s, rounded up to the millisecond
    assert cost.lambda_gb_seconds == pytest.approx(billed * 1769 / 1024)
    expected = billed * 1769 / 1024 * PRICES.lambda_usd_per_gb_second + 0.20 / 1e6
    assert cost.usd == pytest.approx(expected)
    assert cost.lambda_requests == 1 and cost.attempts == 1


def test_fargate_bills_a_minute_at_least_and_spot_gets_its_discount():
    short = record_cost(batch_record("merge", FARGATE, 12.2), PRICES)
    hourly = PRICES.fargate_usd_per_vcpu_hour + 2 * PRICES.fargate_usd_per_gb_hour
    assert short.batch_usd == pytest.approx(60 * hourly / 3600)
    assert short.batch_vcpu_seconds == 60 and short.batch_gb_seconds == 120
    spot = record_cost(batch_record("merge", FARGATE_SPOT, 12.2), PRICES)
    assert spot.batch_usd == pytest.approx(short.batch_usd * (1 - PRICES.fargate_spot_discount))


def test_ec2_charges_the_jobs_vcpu_share_of_the_instance_and_spot_its_discount():
    on_demand = record_cost(batch_record("part-00001", EC2, 100.0), PRICES)
    assert on_demand.batch_usd == pytest.approx(100 * PRICES.ec2_usd_per_vcpu_hour / 3600)
    spot = record_cost(batch_record("part-00001", SPOT, 100.0), PRICES)
    assert spot.batch_usd == pytest.approx(on_demand.batch_usd * (1 - PRICES.ec2_spot_discount))
    assert spot.by_capacity == {SPOT: {"vcpuSeconds": 100.0, "usd": spot.batch_usd}}


def simulated_normal_job() -> list[UsageRecord]:
    """A Batch job: the manager, three parts (part 1 interrupted on Spot once, then
    retried; part 2 failed once by an error, then retried) and the merge."""
    requests = {"s3_get_requests": 5, "s3_put_requests": 4}
    return [
        batch_record("manager", SPOT, 4.0, s3_get_requests=4, s3_put_requests=6),
        batch_record("part-00000", SPOT, 30.0, **requests),
        batch_record("part-00001", SPOT, 17.5, outcome=INTERRUPTED),
        batch_record("part-00001", SPOT, 31.0, attempt=2, **requests),
        batch_record("part-00002", SPOT, 2.0, outcome=FAILED, s3_get_requests=3),
        batch_record("part-00002", SPOT, 29.0, attempt=2, **requests),
        batch_record("merge", SPOT, 3.0, s3_get_requests=6, s3_put_requests=5, events_published=1),
    ]


def test_the_costs_of_a_simulated_job_add_up_parts_merge_and_manager_make_the_job():
    records = simulated_normal_job()
    job = total_cost(records, PRICES)
    parts = total_cost([r for r in records if r.step.startswith("part-")], PRICES)
    merge = total_cost([r for r in records if r.step == "merge"], PRICES)
    manager = total_cost([r for r in records if r.step == "manager"], PRICES)
    together = parts + merge + manager
    assert together.usd == pytest.approx(job.usd)
    assert together.to_dict() == job.to_dict()
    # every attempt is counted: the interrupted and the failed one too
    assert job.attempts == 7 and job.retries == 2 and job.interruptions == 1
    assert job.batch_vcpu_seconds == pytest.approx(4 + 30 + 17.5 + 31 + 2 + 29 + 3)
    assert job.s3_get_requests == 4 + 3 * 5 + 3 + 6 and job.events_published == 1
    assert job.requests == job.s3_get_requests + job.s3_put_requests + 1
    spot_hourly = PRICES.ec2_usd_per_vcpu_hour * (1 - PRICES.ec2_spot_discount)
    s3 = (job.s3_put_requests * 0.005 + job.s3_get_requests * 0.0004) / 1000
    assert job.usd == pytest.approx(job.batch_vcpu_seconds * spot_hourly / 3600 + s3 + 1e-6)


def test_a_fast_jobs_costs_add_up_with_retried_invocations():
    records = [
        lambda_record("start", 0.8, init_seconds=1.3, s3_get_requests=4, s3_put_requests=6),
        lambda_record("part-00000", 2.0, outcome=FAILED),
        lambda_record("part-00000", 2.1, attempt=2),
        lambda_record("part-00001", 2.05, events_published=1),
    ]
    job = total_cost(records, PRICES)
    assert job.lambda_requests == 4 and job.retries == 1
    one_by_one = Cost()
    for record in records:
        one_by_one = one_by_one + record_cost(record, PRICES)
    assert one_by_one.to_dict() == job.to_dict()
    assert job.lambda_gb_seconds == pytest.approx((0.8 + 1.3 + 2.0 + 2.1 + 2.05) * 1769 / 1024)


def test_a_cost_document_reads_back_so_stored_part_costs_can_be_summed():
    job = total_cost(simulated_normal_job(), PRICES)
    document = job.to_dict()
    assert Cost.from_dict(document).to_dict() == document
    assert {"usd", "lambdaGbSeconds", "batchVcpuSeconds", "requests"} <= set(document)
    assert document["estimated"] is True
    assert document["byCapacity"][SPOT]["vcpuSeconds"] == pytest.approx(116.5)


def test_a_record_reads_back_and_bad_records_are_refused():
    record = batch_record("part-00003", FARGATE, 12.0, attempt=2, outcome=INTERRUPTED)
    assert UsageRecord.from_dict(record.to_dict()) == record
    assert record.to_dict()["memoryMb"] == 2048
    with pytest.raises(UsageError, match="capacity 'GPU'"):
        UsageRecord(step="x", capacity="GPU", seconds=1, memory_mb=1)
    with pytest.raises(UsageError, match="seconds must be a finite number"):
        lambda_record("x", -1.0)
    with pytest.raises(UsageError, match="needs its vCPUs"):
        UsageRecord(step="x", capacity=EC2, seconds=1, memory_mb=1)
    with pytest.raises(UsageError, match="unknown usage field"):
        UsageRecord.from_dict({**record.to_dict(), "gpus": 1})


def test_batch_attempts_come_from_the_job_state_change_event_interruptions_included():
    # A job of 1 vCPU and 1792 MiB whose host was reclaimed after 600 s, then whose second
    # attempt failed after 30 s.
    description = {
        "jobId": "job-1",
        "jobName": "price-t",
        "parameters": {"S3bucket": "in", "S3key": "normal/j/book.csv"},
        "container": {
            "resourceRequirements": [
                {"value": "1", "type": "VCPU"},
                {"value": "1792", "type": "MEMORY"},
            ]
        },
    }
    attempts = [
        aws_events.batch_attempt(0, 137, reason) | {"startedAt": started, "stoppedAt": stopped}
        for reason, started, stopped in (
            ("Host EC2 (instance i-0abc) terminated.", 1795510000000, 1795510600000),
            ("Essential container in task exited", 1795510700000, 1795510730000),
        )
    ]
    reason = "Essential container in task exited"
    detail = aws_events.batch_state_change(description, reason, attempts)["detail"]
    records = batch_attempts(detail, "part-00004", SPOT)
    assert [(r.attempt, r.outcome, r.seconds) for r in records] == [
        (1, INTERRUPTED, 600.0),
        (2, FAILED, 30.0),
    ]
    assert records[0].vcpus == 1.0 and records[0].memory_mb == 1792
    detail["status"] = "SUCCEEDED"
    assert batch_attempts(detail, "part-00004", SPOT)[-1].outcome == SUCCEEDED
    with pytest.raises(UsageError):
        batch_attempts(detail, "part-00004", LAMBDA)
