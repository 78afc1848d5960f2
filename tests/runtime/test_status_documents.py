"""Reading a job status document (fences, why an actor must stop, times, the job event's
size) and what it carries besides its state: cost, route, team, the plan's limits."""

from __future__ import annotations

import json

import pytest

from runtime.protocol import lifecycle
from runtime.protocol.events import job_event_detail
from runtime.protocol.lifecycle import (
    Begin,
    Cancel,
    Costs,
    Fence,
    Outcome,
    Plan,
    Publish,
    decide,
)

from .lifecycle_cases import CONTEXT, T0, ended, running, upload

# -- reading a document ---------------------------------------------------------------------


def test_fences_print_and_parse_as_token_dot_attempt():
    assert str(Fence("1a2b", 2)) == "1a2b.2" and Fence.parse(" 1a2b.2 ") == Fence("1a2b", 2)
    assert Fence.of(running("a", attempt=3)) == Fence("a", 3)
    for text in ("", "1a2b", "1a2b.", ".2", "1a2b.0", "1a2b.x"):
        with pytest.raises(ValueError, match="not a job fence"):
            Fence.parse(text)


def test_why_an_actor_must_stop():
    status = running("a", attempt=2)
    assert lifecycle.why_not_running(status, Fence("a", 2)) is None
    assert lifecycle.owns(status, Fence("a", 2)) and not lifecycle.owns(status, Fence("a", 1))
    assert "replaced by attempt 2" in lifecycle.why_not_running(status, Fence("a", 1))
    assert "newer upload" in lifecycle.why_not_running(status, Fence("b", 2))
    assert lifecycle.why_not_running({**status, "state": "done"}, Fence("a", 2)) == (
        "the job is done"
    )
    assert lifecycle.why_not_running(None, Fence("a")) == "the job has no status"


def test_times_are_iso_8601_utc_and_read_back():
    assert lifecycle.iso(T0 + 0.25) == "2026-11-24T08:46:40.250Z"
    assert lifecycle.epoch(lifecycle.iso(T0 + 0.25)) == T0 + 0.25
    assert lifecycle.epoch(None) is None


def test_a_job_event_stays_small_whatever_the_status_holds():
    status = running(
        "a",
        state="failed",
        error="x" * 100_000,
        failedParts=[{"part": i, "error": "y" * 5_000} for i in range(10_000)],
    )
    detail = job_event_detail(status, "results", "us-east-1", event_id="a.1:failed")
    assert len(json.dumps(detail)) < 64_000
    assert detail["failedPartsTotal"] == 10_000 and len(detail["failedParts"]) == 20
    assert detail["error"].endswith("…") and len(detail["error"]) == 2_000


# -- cost, route, team, the plan's limits -----------------------------------------------------


def cost(attempts: int, usd: float) -> dict:
    return {"attempts": attempts, "usd": usd, "estimated": True}


def test_the_job_begins_with_its_team_route_and_plan_limits_and_no_cost_yet():
    plan = Plan(
        engine="mc", threshold=200, max_parts=200, lambda_memory_mb=1769,
        lambda_timeout_seconds=900, job_vcpus=1, job_timeout_seconds=3600,
    )  # fmt: skip
    route = {"path": "normal", "reason": "normal path: estimated 7 min on Lambda, over ..."}
    fact = Begin("begin:a", upload(), plan, T0, team="risk", route=route)
    status = decide(None, fact).document
    assert (status["team"], status["route"], status["cost"]) == ("risk", route, None)
    assert lifecycle.plan_of(status) == plan and lifecycle.plan_of(status).sized
    # A plan written before part sizing splits at the threshold.
    old = {k: v for k, v in plan.to_dict().items() if k not in ("lambdaTimeoutSeconds",)}
    assert not Plan.from_dict(old).sized


def test_the_terminal_state_carries_the_cost_into_its_event():
    for fact in (
        Publish("publish:a.1:m", Fence("a"), T0 + 1, lifecycle.DONE, cost=cost(3, 0.01)),
        Cancel("cancel:1", T0 + 1, cost=cost(3, 0.01)),
    ):
        status = decide(running("a", team="risk", route=None), fact, CONTEXT).document
        (event, *_) = status["outbox"]
        assert status["cost"] == event["detail"]["cost"] == cost(3, 0.01)
        assert (event["detail"]["team"], event["detail"]["route"]) == ("risk", None)


@pytest.mark.parametrize("state", ["running", *lifecycle.TERMINAL_STATES])
def test_costs_only_grow_in_any_state_of_the_same_upload(state):
    current = running("a") if state == "running" else ended(state)
    current = {**current, "cost": cost(3, 0.01)}
    more = decide(current, Costs("a", cost(4, 0.012)), CONTEXT)
    assert more.outcome is Outcome.APPLIED and more.document["cost"] == cost(4, 0.012)
    # Not a change of state: no step, no event, no new updatedAt (the commands watch it).
    assert more.document["outbox"] == current["outbox"]
    assert more.document["updatedAt"] == current["updatedAt"]
    assert more.document["steps"] == current["steps"]
    for fewer in (cost(2, 0.5), cost(3, 0.01)):  # a total of fewer records, or the same
        assert decide(current, Costs("a", fewer)).outcome is Outcome.UNCHANGED
    assert decide(current, Costs("a", cost(3, 0.02))).outcome is Outcome.APPLIED
    assert decide(current, Costs("z", cost(9, 9.0))).outcome is Outcome.FENCED
    assert decide(None, Costs("a", cost(1, 0.1))).outcome is Outcome.REFUSED
    first = decide({**current, "cost": None}, Costs("a", cost(0, 0.0)))
    assert first.outcome is Outcome.APPLIED  # even an empty total replaces none at all


def test_a_terminal_total_of_fewer_records_keeps_the_larger_one_the_job_had():
    current = running("a", cost=cost(4, 0.02))  # a retry's: the first attempt's records
    fact = Publish("publish:a.1:m", Fence("a"), T0 + 1, lifecycle.DONE, cost=cost(3, 0.01))
    status = decide(current, fact, CONTEXT).document
    assert status["cost"] == status["outbox"][0]["detail"]["cost"] == cost(4, 0.02)
