"""Every Batch job the runtime submits with fair share carries its share twice: in SubmitJob
(``shareIdentifier``, which Batch schedules by) and in its environment (``JOB_SHARE``, which
state-change events, metrics and the local emulator read; moto drops the former)."""

from __future__ import annotations

from runtime.adapters.batch_queue import BatchQueue
from runtime.core.manifest import Manifest
from runtime.environment import BATCH_VARIABLES, JOB_SHARE, LAMBDA_VARIABLES
from runtime.protocol.lifecycle import Fence, Plan


class RecordingBatch:
    def __init__(self) -> None:
        self.requests: list[dict] = []

    def submit_job(self, **request) -> dict:
        self.requests.append(request)
        return {"jobId": f"job-{len(self.requests)}"}


def environment(request: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}


def submitted(plan: Plan) -> list[dict]:
    client = RecordingBatch()
    queue = BatchQueue("pricing", "pricing-jobs", client=client, stack_name="stack")
    fence = Fence("t0k3n", 2)
    queue.submit_manager(fence, "in", "normal/x/book.csv", plan)
    manifest = Manifest(
        token="t0k3n",
        runner="normal",
        input_bucket="in",
        input_key="normal/x/book.csv",
        version="v1",
        engine="lsm",
        rows=6,
        part_rows=[2, 2, 2],
        result_header=["id"],
    )
    queue.submit_parts(manifest, fence, plan, None)
    return client.requests


def test_with_fair_share_every_job_carries_its_share_in_the_request_and_environment():
    plan = Plan("lsm", 2, 200, runner="normal", queue="pricing-urgent-fs", share="risk")
    requests = submitted(plan)
    assert [r["jobName"] for r in requests] == [
        "manager-t0k3n-2",
        "price-t0k3n-2",
        "merge-t0k3n-2",
    ]
    for request in requests:
        assert request["shareIdentifier"] == "risk"
        assert request["jobQueue"] == "pricing-urgent-fs"
        assert environment(request)[JOB_SHARE] == "risk"
        assert environment(request)["JOB_FENCE"] == "t0k3n.2"


def test_on_fifo_queues_no_job_carries_a_share():
    for request in submitted(Plan("lsm", 2, 200, runner="normal")):
        assert "shareIdentifier" not in request
        assert JOB_SHARE not in environment(request)
        assert request["jobQueue"] == "pricing-jobs"  # the default queue


def test_the_share_is_set_by_the_runtime_not_by_the_stack():
    assert JOB_SHARE not in LAMBDA_VARIABLES | BATCH_VARIABLES
