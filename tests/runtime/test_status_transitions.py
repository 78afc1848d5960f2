"""The status object's pure transitions: one terminal state, newer uploads win, counts only
grow."""

from __future__ import annotations

import json

from runtime.protocol import status as states
from runtime.protocol.status import JobStatus


def running(token: str = "a", **fields) -> dict:
    return {
        **JobStatus(
            input="s3://b/k", token=token, state="running", path="fast", engine="lsm"
        ).to_dict(),
        **fields,
    }


def test_begin_supersedes_a_running_older_job_and_counts_generations():
    seen: dict = {}
    fresh = JobStatus(input="s3://b/k", token="b", state="running", path="fast", engine="lsm")
    written = states.begin(fresh, lambda current: True, seen)(running("a", generation=4))
    assert (written["token"], written["generation"], written["supersedes"]) == ("b", 5, "a")
    assert seen["replaced"]["token"] == "a"


def test_begin_leaves_the_same_upload_and_a_newer_one_alone():
    fresh = JobStatus(input="s3://b/k", token="a", state="running", path="fast", engine="lsm")
    assert states.begin(fresh, lambda current: True, {})(running("a")) is None
    older = JobStatus(input="s3://b/k", token="z", state="running", path="fast", engine="lsm")
    assert states.begin(older, lambda current: False, {})(running("a")) is None


def test_a_terminal_state_is_reached_once_and_only_by_its_own_job():
    seen: dict = {}
    done = states.finish("a", "done", 10.0, seen, rows=3)(running("a", started_at=4.0))
    assert (done["state"], done["seconds"], done["rows"]) == ("done", 6.0, 3)
    assert states.finish("a", "failed", 11.0, {})(done) is None
    assert states.finish("other", "done", 11.0, {})(running("a")) is None
    assert states.cancel("a", 12.0, {})(done) is None


def test_counts_of_parts_never_go_back():
    current = running("a", parts_done=7, missing_parts=[7, 8, 9])
    late = states.count_parts("a", 1.0, done=5, missing=[5, 6, 7, 8, 9], failed=[{"part": 9}])(
        current
    )
    assert (late["parts_done"], late["missing_parts"], late["failed_parts"]) == (
        7,
        [7, 8, 9],
        [{"part": 9}],
    )
    newer = states.count_parts("a", 2.0, done=9, missing=[9], failed=[])(late)
    assert (newer["parts_done"], newer["missing_parts"]) == (9, [9])


def test_reopen_only_a_failed_job():
    failed = running("a", state="failed", error="part-00001 failed", failed_parts=[{"part": 1}])
    reopened = states.reopen("a", 5.0)(failed)
    assert (reopened["state"], reopened["error"], reopened["failed_parts"]) == ("running", None, [])
    assert states.reopen("a", 5.0)(running("a")) is None


def test_a_job_event_stays_small_whatever_the_status_holds():
    from runtime.protocol.events import job_event_detail

    status = running(
        "a",
        state="failed",
        error="x" * 100_000,
        failed_parts=[{"part": i, "error": "y" * 5_000} for i in range(10_000)],
    )
    detail = job_event_detail(status, "results", "us-east-1")
    assert len(json.dumps(detail)) < 64_000
    assert detail["failedPartsTotal"] == 10_000 and len(detail["failedParts"]) == 20
    assert detail["error"].endswith("…") and len(detail["error"]) == 2_000
