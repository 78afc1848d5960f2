"""Measuring a step: its record, the cold start, and the S3 requests a client sends."""

from __future__ import annotations

import boto3

from runtime.adapters.s3 import ObjectStore
from runtime.planning.meter import (
    MeterContext,
    RequestCounter,
    StepMeter,
    process_age_seconds,
    request_totals,
    s3_request_class,
)
from runtime.planning.usage import EC2, FARGATE_SPOT, INTERRUPTED, LAMBDA
from runtime.tools.local_cloud import RESULT_BUCKET


def test_s3_operations_fall_in_their_price_class_and_deletes_are_free():
    assert [s3_request_class(op) for op in ("PutObject", "ListObjectsV2", "CopyObject")] == [
        "put",
        "put",
        "put",
    ]
    assert s3_request_class("GetObject") == s3_request_class("HeadObject") == "get"
    assert s3_request_class("DeleteObjects") is None


def test_the_counter_counts_what_an_object_store_sends_installed_from_outside(aws):
    counter = RequestCounter()
    store = ObjectStore(counter.install(counter.install(boto3.client("s3"))))  # once only
    before = counter.snapshot()
    store.put(RESULT_BUCKET, "a/x.csv", b"1")
    store.put_if_absent(RESULT_BUCKET, "a/y.csv", b"2")
    store.get(RESULT_BUCKET, "a/x.csv")
    store.head(RESULT_BUCKET, "a/missing.csv")
    store.list_keys(RESULT_BUCKET, "a/")
    store.delete(RESULT_BUCKET, ["a/x.csv"])
    totals = request_totals(before, counter.snapshot())
    assert totals == {
        "s3_put_requests": 3,  # two PUTs and a LIST
        "s3_get_requests": 2,  # a GET and a HEAD (of a missing key: still billed)
        "events_published": 0,
        "sqs_requests": 0,
    }


class Clock:
    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def test_a_step_becomes_a_record_and_only_the_first_lambda_step_carries_the_cold_start(
    monkeypatch,
):
    monkeypatch.setattr(StepMeter, "_cold", True)
    context = MeterContext(LAMBDA, 1769, 1.0)
    counter = RequestCounter()
    first = StepMeter(
        context, counter, clock=Clock(10.0, 12.5), cpu=Clock(1.0, 3.0), age=lambda: 0.8
    )
    record = first.start().finish("part-00002")
    assert (record.seconds, record.cpu_seconds, record.init_seconds) == (2.5, 2.0, 0.8)
    assert record.capacity == LAMBDA and record.memory_mb == 1769
    warm = StepMeter(context, counter, clock=Clock(0.0, 1.0), cpu=Clock(0.0, 1.0), age=lambda: 9.0)
    assert warm.start().finish("part-00003", outcome=INTERRUPTED).init_seconds == 0.0


def test_the_context_comes_from_lambdas_variables_or_the_ones_the_stack_gives_a_batch_job():
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}
    assert MeterContext.from_environ(lambda_env) == MeterContext(LAMBDA, 3538, 2.0)
    batch_env = {
        "AWS_BATCH_JOB_ID": "j",
        "CAPACITY": "fargate_spot",
        "JOB_VCPUS": "2",
        "JOB_MEMORY_MB": "4096",
        "AWS_BATCH_JOB_ATTEMPT": "3",
    }
    assert MeterContext.from_environ(batch_env) == MeterContext(FARGATE_SPOT, 4096, 2.0, 3)
    # unreadable values fall back to the stack's defaults: metering never stops a job
    assert MeterContext.from_environ({"AWS_BATCH_JOB_ID": "j", "JOB_VCPUS": "x"}) == MeterContext(
        EC2, 1792, 1.0, 1
    )
    assert MeterContext.from_environ({}) is None


def test_this_process_knows_its_age():
    age = process_age_seconds()
    assert age is None or age >= 0
    assert process_age_seconds("/nonexistent/stat") is None
