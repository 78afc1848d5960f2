"""The explorer in CI: the real handlers against moto (the S3 the tests trust) and against
the in-memory double (more steps in the same time). ``benchmarks/explore.py`` runs it for
100,000 steps and more."""

from __future__ import annotations

import os

import boto3
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from moto import mock_aws

from tests.explorer.machine import LifecycleExplorer
from tests.explorer.memory_s3 import MemoryS3

_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


class MotoExplorer(LifecycleExplorer):
    """A fresh moto AWS for every example."""

    def make_s3(self):
        self.mock = mock_aws()
        self.mock.start()
        return boto3.client("s3", region_name="us-east-1")

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if hasattr(self, "mock"):
                self.mock.stop()


class MemoryExplorer(LifecycleExplorer):
    def make_s3(self):
        return MemoryS3()


def test_the_lifecycle_keeps_its_promises_against_moto(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    examples = int(os.environ.get("EXPLORER_MOTO_EXAMPLES", "10"))
    run_state_machine_as_test(
        MotoExplorer,
        settings=settings(
            max_examples=examples,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=_HEALTH,
            database=None,
        ),
    )


def test_the_lifecycle_keeps_its_promises_in_memory():
    examples = int(os.environ.get("EXPLORER_MEMORY_EXAMPLES", "100"))
    run_state_machine_as_test(
        MemoryExplorer,
        settings=settings(
            max_examples=examples,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=_HEALTH,
            database=None,
        ),
    )
