"""The user's cancel (``jobs cancel``: a command for the function): the running attempt ends
``cancelled`` with one job event, nothing of it publishes, and its Batch jobs are stopped."""

from __future__ import annotations

import boto3

from runtime.adapters.lambda_handler import command, handle_command, handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET
from tests.helpers import (
    FAST_KEY,
    NORMAL_KEY,
    fast_parts,
    fence_of,
    job_env,
    read,
    recorded_jobs,
    run_children,
    run_job,
    run_manager,
    status_of,
    upload,
)


def cancel(steps, key: str, fence=None, actor: str = "req-cancel"):
    return handle_command(steps, command("cancel", key, str(fence) if fence else None), actor)


def test_cancel_stops_remaining_parts_and_nothing_publishes(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    parts = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, parts[0])
    assert cancel(steps, FAST_KEY, fence_of(s3, FAST_KEY)).action == "cancelled"
    assert {handle_object(steps, INPUT_BUCKET, p).action for p in parts[1:]} == {"stopped"}
    assert read(s3, keys.result_key(FAST_KEY)) is None
    status = status_of(s3, FAST_KEY)
    assert (status["state"], status["partsDone"], status["outbox"]) == ("cancelled", 1, [])
    assert cancel(steps, FAST_KEY).action == "duplicate"
    assert [e["state"] for e in events] == ["cancelled"]


def test_a_command_delivered_twice_cancels_once(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, FAST_KEY)
    payload = command("cancel", FAST_KEY, str(fence_of(s3, FAST_KEY)))
    assert handle_command(steps, payload, "req-1").action == "cancelled"
    # Lambda's retry of the same invocation (its step was applied: nothing changes).
    assert handle_command(steps, payload, "req-1").action == "cancelled"
    assert status_of(s3, FAST_KEY)["state"] == "cancelled"
    assert [e["state"] for e in events] == ["cancelled"]


def test_a_cancel_meant_for_another_upload_changes_nothing(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=30)
    upload(s3, FAST_KEY, sample_bytes)
    handle_object(steps, INPUT_BUCKET, FAST_KEY)
    seen = fence_of(s3, FAST_KEY)  # the user looked at A
    upload(s3, FAST_KEY, sample_bytes)  # B replaces it before the command arrives
    handle_object(steps, INPUT_BUCKET, FAST_KEY)
    assert cancel(steps, FAST_KEY, seen).action == "stopped"
    status = status_of(s3, FAST_KEY)
    assert status["state"] == "running" and status["token"] != seen.token
    assert [e["state"] for e in events] == ["superseded"]
    assert handle_command(steps, command("cancel", FAST_KEY, "nonsense"), "r").action == "ignored"
    assert handle_command(steps, command("pause", FAST_KEY), "r").action == "ignored"


def test_cancel_of_a_normal_job_stops_its_batch_jobs(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=40)
    upload(s3, NORMAL_KEY, sample_bytes)
    run_manager(steps, s3, NORMAL_KEY)
    jobs = recorded_jobs(s3, NORMAL_KEY)
    fence = fence_of(s3, NORMAL_KEY)
    assert cancel(steps, NORMAL_KEY, fence).action == "cancelled"
    described = boto3.client("batch").describe_jobs(jobs=[j["jobId"] for j in jobs.values()])
    assert {job["statusReason"] for job in described["jobs"]} == {f"job {fence} is cancelled"}
    # Children that started anyway stop without pricing; nothing publishes.
    assert run_children(steps, jobs["array"], NORMAL_KEY) == ["stopped"] * 3
    assert run_job(steps, job_env(jobs["merge"]), NORMAL_KEY).action == "stopped"
    assert read(s3, keys.result_key(NORMAL_KEY)) is None
    assert status_of(s3, NORMAL_KEY)["state"] == "cancelled"
    assert [e["state"] for e in events] == ["cancelled"]
