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
from runtime.core.options import OptionSpec, Quote
from runtime.planning.meter import RequestCounter, request_totals
from runtime.protocol.lifecycle import Fence
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


def _steps(counter: RequestCounter, events: _Events):
    """The job steps the stack runs, on a counted S3 client and moto's Batch."""
    import boto3

    from runtime.adapters.batch_queue import BatchQueue
    from runtime.adapters.s3 import ObjectStore
    from runtime.environment import RuntimeConfig
    from runtime.protocol.steps import JobSteps
    from runtime.tools.local_cloud import JOB_DEFINITION, JOB_QUEUE, RESULT_BUCKET

    config = RuntimeConfig(
        result_bucket=RESULT_BUCKET,
        threshold=THRESHOLD,
        job_queue=JOB_QUEUE,
        job_definition=JOB_DEFINITION,
    )
    return JobSteps(
        ObjectStore(counter.install(boto3.client("s3"))),
        config,
        engine=_quick_engine,
        events=events,
        batch=BatchQueue(JOB_DEFINITION, JOB_QUEUE, boto3.client("batch")),
    )


def _begin(steps, path: str, key: str):
    """What the adapters run for an upload: the fast path's start; the normal path's
    admission (the function) and its manager job, which splits."""
    from runtime.tools.local_cloud import INPUT_BUCKET

    if path == FAST:
        return steps.start(INPUT_BUCKET, key, "bench-start")
    info = steps.store.head(INPUT_BUCKET, key)
    admitted = steps.admit(INPUT_BUCKET, key, "bench-admit", info.version if info else None)
    manager = admitted.status["batchJobs"]["manager"]
    return steps.manage(Fence.of(admitted.status), INPUT_BUCKET, key, manager)


def _one_job(path: str, parts: int) -> dict[str, dict[str, int]]:
    from runtime.tools.local_cloud import INPUT_BUCKET

    counter = RequestCounter()
    events = _Events()
    steps = _steps(counter, events)
    key = f"{path}/plan-{parts}/book.csv"
    steps.store.put(INPUT_BUCKET, key, generate_portfolio(parts * THRESHOLD, seed=5))
    found: dict[str, dict[str, int]] = {}

    before = counter.snapshot()
    outcome = _begin(steps, path, key)
    found["start"] = _counts(counter, before)
    manifest, fence = outcome.manifest, outcome.fence
    assert manifest is not None and fence is not None and manifest.parts == parts, outcome
    part_counts = []
    for index in range(parts):
        before = counter.snapshot()
        steps.load_manifest(path, manifest.token)  # as the adapters find the job
        steps.price_part(manifest, fence, index, f"worker-{index}", merge=path == FAST)
        part_counts.append(_counts(counter, before))
    if path == FAST:  # the last part merges: the merge is what it sent beyond a part's
        last, typical = part_counts[-1], part_counts[0]
        found["merge"] = {k: last[k] - typical[k] for k in last}
    else:
        before = counter.snapshot()
        steps.load_manifest(path, manifest.token)
        steps.merge(manifest, fence, "merge-job")
        found["merge"] = _counts(counter, before)
    found["part"] = part_counts[0]
    found["events"] = {"put": events.published, "get": 0}
    return found


def _single(path: str) -> dict[str, int]:
    """A file within one part: the start step (the manager) prices it at once."""
    from runtime.tools.local_cloud import INPUT_BUCKET

    counter = RequestCounter()
    steps = _steps(counter, _Events())
    key = f"{path}/plan-single/book.csv"
    steps.store.put(INPUT_BUCKET, key, generate_portfolio(THRESHOLD, seed=5))
    before = counter.snapshot()
    _begin(steps, path, key)
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


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json

    argparse.ArgumentParser(
        prog="python -m benchmarks.protocol_requests",
        description="Count the S3 requests of each job protocol step on the real steps "
        "against moto (what the planner prices; calibrate_planner stores them).",
        epilog="example: python -m benchmarks.protocol_requests",
    ).parse_args(argv)
    print(json.dumps(measure_requests(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
