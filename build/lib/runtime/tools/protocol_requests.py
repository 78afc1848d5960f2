"""S3 requests per job protocol step, counted on the real steps against moto in-process.

The planner prices a job's S3 requests from these counts (runtime/planning/paths.py). Each
step runs as the adapters run it: the fast path's start (split), parts (the last one merges)
and the normal path's parts and merge job, for two part counts, so a per-part slope and a
fixed part can be told apart. The counter is the one the stack uses
(``runtime.planning.meter.RequestCounter``), hooked on the store's client from outside.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from unittest import mock

from runtime.core.keys import FAST
from runtime.core.manifest import BATCH_MAX_ARRAY_SIZE
from runtime.core.options import OptionSpec, Quote
from runtime.planning.meter import RequestCounter, request_totals
from runtime.tools.generate import generate_portfolio

_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
THRESHOLD = 10


def _quick_engine(options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]:
    return [Quote(price=1.0, std_error=0.0)] * len(options)


class _Events:
    def __init__(self) -> None:
        self.published = 0

    def publish(self, detail: dict) -> None:
        self.published += 1


def _counts(counter: RequestCounter, before: dict[str, int]) -> dict[str, int]:
    totals = request_totals(before, counter.snapshot())
    return {"get": totals["s3_get_requests"], "put": totals["s3_put_requests"]}


def _one_job(path: str, parts: int) -> dict[str, dict[str, int]]:
    import boto3

    from runtime.adapters.s3 import ObjectStore
    from runtime.environment import RuntimeConfig
    from runtime.protocol.steps import JobSteps
    from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET

    counter = RequestCounter()
    store = ObjectStore(counter.install(boto3.client("s3")))
    events = _Events()
    config = RuntimeConfig(result_bucket=RESULT_BUCKET, threshold=THRESHOLD)
    steps = JobSteps(store, config, engine=_quick_engine, events=events)
    key = f"{path}/plan-{parts}/book.csv"
    store.put(INPUT_BUCKET, key, generate_portfolio(parts * THRESHOLD, seed=5))
    found: dict[str, dict[str, int]] = {}

    before = counter.snapshot()
    max_parts = config.max_parts if path == FAST else BATCH_MAX_ARRAY_SIZE
    outcome = steps.start(INPUT_BUCKET, key, max_parts=max_parts)
    found["start"] = _counts(counter, before)
    manifest = outcome.manifest
    assert manifest is not None and manifest.parts == parts, outcome
    part_counts = []
    for index in range(parts):
        before = counter.snapshot()
        claimant = f"claimant-{index}" if path == FAST else None
        steps.load_manifest(path, manifest.token)  # as the adapters find the job
        steps.price_part(manifest, index, claimant=claimant)
        part_counts.append(_counts(counter, before))
    if path == FAST:  # the last part merges: the merge is what it sent beyond a part's
        last, typical = part_counts[-1], part_counts[0]
        found["merge"] = {k: last[k] - typical[k] for k in last}
    else:
        before = counter.snapshot()
        steps.load_manifest(path, manifest.token)
        steps.merge(manifest, "merge-job")
        found["merge"] = _counts(counter, before)
    found["part"] = part_counts[0]
    found["events"] = {"put": events.published, "get": 0}
    return found


def _single(path: str) -> dict[str, int]:
    """A file within one part: the start step prices it at once."""
    import boto3

    from runtime.adapters.s3 import ObjectStore
    from runtime.environment import RuntimeConfig
    from runtime.protocol.steps import JobSteps
    from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET

    counter = RequestCounter()
    store = ObjectStore(counter.install(boto3.client("s3")))
    config = RuntimeConfig(result_bucket=RESULT_BUCKET, threshold=THRESHOLD)
    steps = JobSteps(store, config, engine=_quick_engine, events=_Events())
    key = f"{path}/plan-single/book.csv"
    store.put(INPUT_BUCKET, key, generate_portfolio(THRESHOLD, seed=5))
    before = counter.snapshot()
    steps.start(INPUT_BUCKET, key, max_parts=config.max_parts)
    return _counts(counter, before)


def measure_requests() -> dict[str, dict[str, float]]:
    """Requests per step: ``start``/``merge`` as fixed + per part, ``part``, ``single``."""
    from moto import mock_aws

    from runtime.tools.local_cloud import create_stack

    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, _CREDENTIALS))
        os.environ.pop("AWS_ENDPOINT_URL", None)
        stack.enter_context(mock_aws(config={"batch": {"use_docker": False}}))
        import boto3

        create_stack(boto3.client("s3"), boto3.client("iam"), boto3.client("batch"))
        result: dict[str, dict[str, float]] = {}
        for path in ("fast", "normal"):
            small, large = _one_job(path, 2), _one_job(path, 6)
            for step in ("start", "merge"):
                slope = {k: (large[step][k] - small[step][k]) / 4 for k in ("get", "put")}
                result[f"{path}.{step}"] = {
                    "get": small[step]["get"] - 2 * slope["get"],
                    "put": small[step]["put"] - 2 * slope["put"],
                    "getPerPart": slope["get"],
                    "putPerPart": slope["put"],
                }
            result[f"{path}.part"] = {k: float(v) for k, v in large["part"].items()}
            result[f"{path}.single"] = {k: float(v) for k, v in _single(path).items()}
        result["events"] = {"perJob": float(small["events"]["put"])}
    return result
