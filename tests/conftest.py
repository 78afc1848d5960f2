"""Shared fixtures: an in-process AWS (moto) with the stack's buckets, queue and definition."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import boto3
import pytest

from runtime.adapters.batch_queue import BatchQueue
from runtime.adapters.s3 import ObjectStore
from runtime.engines import get_engine
from runtime.environment import RuntimeConfig
from runtime.protocol.steps import JobSteps
from runtime.tools.local_cloud import JOB_DEFINITION, JOB_QUEUE, RESULT_BUCKET, create_stack

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "runtime" / "sample" / "EquityOption-100.csv"


@pytest.fixture
def sample_bytes() -> bytes:
    return SAMPLE.read_bytes()


@pytest.fixture
def aws(monkeypatch):
    """moto in this process; Batch records jobs without Docker."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # Each S3 request is atomic in AWS; moto's in-process backend is not safe under
    # concurrent requests (it may close an object's buffer while another thread reads it),
    # so the tests that race threads against it get one request at a time, as S3 serves them.
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    unlocked = BotocoreStubber.process_request

    def one_at_a_time(self, request):
        with lock:
            return unlocked(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    with mock_aws(config={"batch": {"use_docker": False}}):
        create_stack(boto3.client("s3"), boto3.client("iam"), boto3.client("batch"))
        yield


def serialised(engine_name: str = "qdfp"):
    """A real engine behind a lock: QuantLib's global evaluation date is not thread-safe,
    and these tests run S3 protocol steps on threads to make them race."""
    engine = get_engine(engine_name)
    lock = threading.Lock()

    def price(options: Sequence, greeks: bool = False):
        with lock:
            return engine(options, greeks=greeks) if greeks else engine(options)

    return price


class RecordedEvents(list):
    """An event sink that keeps the job events the steps publish, in order."""

    def publish(self, detail: dict) -> None:
        self.append(detail)

    def states(self) -> list[tuple[str, str]]:
        return [(event["inputKey"], event["state"]) for event in self]


@pytest.fixture
def events() -> Iterator[RecordedEvents]:
    """The job events the steps publish; a test fails if any terminal state of an attempt
    (its eventId) was published twice."""
    recorded = RecordedEvents()
    yield recorded
    ids = [event["eventId"] for event in recorded]
    assert len(ids) == len(set(ids)), f"a job event was published more than once: {ids}"


@pytest.fixture
def make_steps(aws, events):
    def make(threshold: int = 10, max_parts: int = 1000, engine=None, **config) -> JobSteps:
        return JobSteps(
            ObjectStore(boto3.client("s3")),
            RuntimeConfig(
                **{
                    "result_bucket": RESULT_BUCKET,
                    "threshold": threshold,
                    "max_parts": max_parts,
                    "job_queue": JOB_QUEUE,
                    "job_definition": JOB_DEFINITION,
                    **config,
                }
            ),
            engine=engine or serialised(),
            events=events,
            batch=BatchQueue(JOB_DEFINITION, JOB_QUEUE, boto3.client("batch")),
        )

    return make


@pytest.fixture
def s3(aws):
    return boto3.client("s3")
