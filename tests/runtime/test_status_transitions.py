"""The job lifecycle's pure table (``runtime.protocol.lifecycle.decide``): every transition,
fencing, step replay, the outbox's claim and lease, monotone progress, and documents that
are never mutated."""

from __future__ import annotations

import copy
import json

import pytest

from runtime.protocol import lifecycle
from runtime.protocol.events import job_event_detail
from runtime.protocol.lifecycle import (
    OUTBOX_LEASE_SECONDS,
    Begin,
    Cancel,
    ClaimOutbox,
    Costs,
    Delivered,
    Fence,
    Outcome,
    Plan,
    Progress,
    Publish,
    Reopen,
    Upload,
    decide,
)

T0 = 1_795_510_000.0  # 2026-11-24T08:46:40Z
PLAN = Plan(engine="lsm", threshold=10, max_parts=100)
CONTEXT = {"resultBucket": "results", "region": "eu-west-1"}


def upload(token: str = "a", version: str = "v1", sequencer: str | None = None) -> Upload:
    return Upload("in", "fast/x/book.csv", version, token, "fast", sequencer)


def begin(token: str = "a", at: float = T0, **fields) -> Begin:
    versions = fields.pop("versions", ())
    return Begin(f"begin:{token}", upload(token, **fields), PLAN, at, versions=versions)


def running(token: str = "a", **fields) -> dict:
    document = decide(None, begin(token)).document
    assert document is not None
    return {**document, **fields}


def ended(state: str, token: str = "a", **fields) -> dict:
    fact = Publish(f"publish:{token}", Fence(token), T0 + 5, lifecycle.FAILED, error="boom")
    document = running(token, **fields)
    if state == lifecycle.CANCELLED:
        return decide(document, Cancel("cancel:1", T0 + 5), CONTEXT).document
    if state == lifecycle.SUPERSEDED:
        replaced = decide(document, begin("z", T0 + 5), CONTEXT).document
        return {**document, "state": lifecycle.SUPERSEDED, "outbox": replaced["outbox"]}
    if state == lifecycle.DONE:
        fact = Publish(f"publish:{token}", Fence(token), T0 + 5, lifecycle.DONE, rows=3)
    return decide(document, fact, CONTEXT).document


# -- the table, row by row ------------------------------------------------------------------


def test_a_first_begin_starts_attempt_one_of_generation_one():
    decision = decide(None, begin("a", sequencer="0A"))
    status = decision.document
    assert decision.outcome is Outcome.BEGUN and decision.current is None
    assert (status["state"], status["token"], status["attempt"], status["generation"]) == (
        "running",
        "a",
        1,
        1,
    )
    assert status["plan"] == PLAN.to_dict() and status["sequencer"] == "0A"
    assert status["startedAt"] == "2026-11-24T08:46:40.000Z" and status["finishedAt"] is None
    assert (status["outbox"], status["steps"]) == ([], ["begin:a"])


@pytest.mark.parametrize("state", ["running", *lifecycle.TERMINAL_STATES])
def test_a_begin_of_the_same_upload_changes_nothing(state):
    current = running("a") if state == "running" else ended(state)
    again = Begin("begin:a-again", upload("a"), PLAN, T0 + 9)
    decision = decide(current, again)
    assert (decision.outcome, decision.document, decision.status) == (
        Outcome.UNCHANGED,
        None,
        current,
    )


def test_a_newer_upload_supersedes_a_running_job_and_owes_its_event_and_stops():
    current = running("a", generation=4, batchJobs={"manager": "m-1", "array": "a-1"})
    decision = decide(current, begin("b", T0 + 60), CONTEXT)
    status = decision.document
    assert decision.outcome is Outcome.REPLACED
    assert (status["token"], status["generation"], status["supersedes"]) == ("b", 5, "a")
    event, stop = status["outbox"]
    assert (event["id"], event["detail"]["state"], event["detail"]["token"]) == (
        "event:a.1:superseded",
        "superseded",
        "a",
    )
    assert event["detail"]["error"] == "superseded by a newer upload (b)"
    assert (stop["kind"], stop["jobs"]) == ("terminate", ["a-1", "m-1"])


@pytest.mark.parametrize("state", lifecycle.TERMINAL_STATES)
def test_a_newer_upload_replaces_an_ended_job_without_superseding_it(state):
    current = ended(state)
    decision = decide(current, begin("b", T0 + 60), CONTEXT)
    assert decision.outcome is Outcome.REPLACED
    assert decision.document["supersedes"] is None
    # What the ended job still owed stays owed; nothing new is added for it.
    assert decision.document["outbox"] == current["outbox"]


def test_an_older_upload_never_replaces_the_newer_one():
    current = running("b", version="v2")
    older = begin("a", version="v1", versions=("v2", "v1"))
    assert decide(current, older).outcome is Outcome.OLDER
    newer = begin("c", version="v3", versions=("v3", "v2", "v1"))
    assert decide(current, newer).outcome is Outcome.REPLACED
    # An upload the key no longer lists (deleted for good, or a scheduled run that never
    # made its copy) never replaces one it lists...
    gone = begin("d", version="gone", versions=("v2",))
    assert decide(current, gone).outcome is Outcome.OLDER
    # ...but replaces one the key does not list either: the fact is the latest word.
    assert decide(running("b", version="also-gone"), gone).outcome is Outcome.REPLACED


@pytest.mark.parametrize(
    ("theirs", "ours", "newer"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6", True),
        ("0055AED6DCD90281E6", "0055AED6DCD90281E5", False),
        # Of different lengths: the shorter is right-padded with zeros (S3's rule), so a
        # longer sequencer is not newer for its length alone.
        ("0062", "006201", True),
        ("006300", "0064", True),
        ("0064", "006300", False),
    ],
)
def test_sequencers_order_two_uploads_of_a_key_before_versions(theirs, ours, newer):
    current = running("a", sequencer=theirs)
    fact = begin("b", version="v2", sequencer=ours, versions=("v1", "v2"))  # versions disagree
    expected = Outcome.REPLACED if newer else Outcome.OLDER
    assert decide(current, fact).outcome is expected


@pytest.mark.parametrize(
    "fact",
    [
        Progress(Fence("a"), T0, parts_done=1),
        Publish("publish:a", Fence("a"), T0, lifecycle.DONE),
        Cancel("cancel:1", T0),
        Reopen("retry:1", T0),
    ],
    ids=["progress", "publish", "cancel", "reopen"],
)
def test_a_fact_about_a_job_that_does_not_exist_is_refused(fact):
    decision = decide(None, fact)
    assert (decision.outcome, decision.document) == (Outcome.REFUSED, None)


def test_publish_ends_the_attempt_with_its_one_event():
    current = running("a", rows=100, partsTotal=2, missingParts=[1], batchJobs={"merge": "m"})
    fact = Publish(
        "publish:a.1:merge",
        Fence("a"),
        T0 + 12.5,
        lifecycle.DONE,
        result="s3://results/k-result",
        result_version="rv1",
        rows=100,
        rows_with_errors=2,
        parts_total=2,
        parts_done=2,
    )
    status = decide(current, fact, CONTEXT).document
    assert (status["state"], status["resultVersion"], status["seconds"]) == ("done", "rv1", 12.5)
    assert (status["rowsWithErrors"], status["missingParts"], status["error"]) == (2, [], None)
    (event,) = status["outbox"]  # a done job stops nothing
    detail = event["detail"]
    assert (detail["eventId"], detail["resultKey"], detail["region"]) == (
        "a.1:done",
        "s3://results/k-result",
        "eu-west-1",
    )
    assert status["steps"][-1] == "publish:a.1:merge"


def test_a_failed_publish_names_the_part_and_stops_the_batch_jobs():
    current = running("a", batchJobs={"array": "arr", "merge": "m"})
    failure = {"part": 3, "error": "OOM", "final": True, "at": "x"}
    fact = Publish(
        "publish:a.1:x", Fence("a"), T0 + 1, lifecycle.FAILED, error="part-00003 failed: OOM",
        failed_part=failure,
    )  # fmt: skip
    status = decide(current, fact, CONTEXT).document
    assert status["failedParts"] == [{**failure, "attempt": 1}]
    event, stop = status["outbox"]
    assert event["detail"]["failedParts"][0]["part"] == 3
    assert (stop["id"], stop["jobs"], stop["reason"]) == (
        "terminate:a.1",
        ["arr", "m"],
        "job a.1 is failed",
    )
    with pytest.raises(ValueError, match="not cancelled"):
        decide(current, Publish("publish:2", Fence("a"), T0, lifecycle.CANCELLED))


def test_cancel_ends_a_running_attempt_and_publishes_nothing():
    current = running("a", result="s3://r/k-result", resultVersion="v9")
    status = decide(current, Cancel("cancel:1", T0 + 3), CONTEXT).document
    assert (status["state"], status["error"], status["result"], status["resultVersion"]) == (
        "cancelled",
        "cancelled by the user",
        None,
        None,
    )
    assert [entry["id"] for entry in status["outbox"]] == ["event:a.1:cancelled"]


def test_reopen_runs_a_failed_attempt_again_as_the_next_one():
    failed = ended(lifecycle.FAILED, batchJobs={"merge": "m"}, rows=100, partsDone=7)
    decision = decide(failed, Reopen("retry:1", T0 + 60, Fence("a", 1), force=True))
    status = decision.document
    assert decision.outcome is Outcome.APPLIED
    assert (status["state"], status["attempt"], status["error"], status["batchJobs"]) == (
        "running",
        2,
        None,
        {},
    )
    assert (status["rows"], status["partsDone"], status["force"]) == (100, 7, True)
    assert status["attempts"] == [
        {"attempt": 1, "state": "failed", "error": "boom", "finishedAt": failed["finishedAt"]}
    ]
    assert status["outbox"] == failed["outbox"]  # attempt 1's event is still owed


@pytest.mark.parametrize("state", ["running", "done", "superseded", "cancelled"])
def test_only_a_failed_job_can_be_reopened(state):
    current = running("a") if state == "running" else ended(state)
    assert decide(current, Reopen("retry:1", T0)).outcome is Outcome.REFUSED


@pytest.mark.parametrize("state", lifecycle.TERMINAL_STATES)
@pytest.mark.parametrize(
    "fact",
    [
        Progress(Fence("a"), T0, parts_done=5),
        Publish("publish:late", Fence("a"), T0, lifecycle.DONE),
        Cancel("cancel:late", T0),
    ],
    ids=["progress", "publish", "cancel"],
)
def test_an_ended_attempt_takes_no_more_facts(state, fact):
    current = ended(state)
    decision = decide(current, fact)
    assert (decision.outcome, decision.document, decision.status) == (Outcome.ENDED, None, current)


# -- fencing and replay ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fence", "reason"),
    [
        (Fence("old", 1), "a newer upload of the same key replaced this job"),
        (Fence("a", 1), "attempt 1 was replaced by attempt 2"),
        (Fence("a", 3), "attempt 3 was replaced by attempt 2"),
    ],
)
@pytest.mark.parametrize("state", ["running", "failed"])
def test_a_fact_of_another_attempt_or_upload_is_fenced(fence, reason, state):
    current = running("a", attempt=2, state=state)
    for fact in (
        Progress(fence, T0, parts_done=9, failed_part={"part": 1, "error": "late", "final": True}),
        Publish(f"publish:{fence}", fence, T0, lifecycle.FAILED, error="late"),
        Cancel("cancel:1", T0, fence),
    ):
        decision = decide(current, fact)
        assert (decision.outcome, decision.document, decision.reason) == (
            Outcome.FENCED,
            None,
            reason,
        ), fact
    reopened = decide(current, Reopen("retry:1", T0, fence))
    assert reopened.outcome is (Outcome.FENCED if state == "failed" else Outcome.REFUSED)
    assert reopened.document is None


def test_a_step_applied_before_is_replayed_not_applied_twice():
    current = running("a")
    fact = Publish("publish:a.1:req-1", Fence("a"), T0 + 1, lifecycle.DONE, rows=3)
    done = decide(current, fact, CONTEXT).document
    replay = decide(done, fact, CONTEXT)
    assert (replay.outcome, replay.document, replay.accepted) == (Outcome.REPLAYED, None, True)
    cancel = Cancel("cancel:req-7", T0 + 2)
    cancelled = decide(running("a"), cancel, CONTEXT).document
    assert decide(cancelled, cancel).outcome is Outcome.REPLAYED
    reopened = decide(ended(lifecycle.FAILED), Reopen("retry:req-8", T0)).document
    again = decide(reopened, Reopen("retry:req-8", T0 + 1))
    assert again.outcome is Outcome.REPLAYED and again.status["attempt"] == 2
    # Steps are remembered within a bound.
    many = running("a", steps=[f"s{i}" for i in range(200)])
    reopened = decide({**many, "state": "failed"}, Reopen("retry:x", T0)).document
    assert len(reopened["steps"]) == lifecycle.REMEMBERED_STEPS and reopened["steps"][-1] == (
        "retry:x"
    )


# -- progress -------------------------------------------------------------------------------


def test_counts_of_parts_never_go_back():
    current = running("a", partsTotal=10, partsDone=7, missingParts=[7, 8, 9])
    late = decide(current, Progress(Fence("a"), T0 + 1, parts_done=5, missing_parts=(5, 6, 7)))
    assert late.outcome is Outcome.UNCHANGED and late.document is None
    newer = decide(current, Progress(Fence("a"), T0 + 2, parts_done=9, missing_parts=(9,)))
    assert (newer.document["partsDone"], newer.document["missingParts"]) == (9, [9])
    assert newer.document["updatedAt"] == "2026-11-24T08:46:42.000Z"
    # Missing parts go with a count: a split reports none done with all of them missing.
    split = decide(running("a"), Progress(Fence("a"), T0, parts_total=3, missing_parts=(0, 1, 2)))
    assert split.document["missingParts"] == []
    split = decide(
        running("a"), Progress(Fence("a"), T0, parts_total=3, parts_done=0, missing_parts=(0, 1))
    )
    assert split.document["missingParts"] == [0, 1]
    listed = decide(running("a"), Progress(Fence("a"), T0, parts_done=0, missing_parts=range(99)))
    assert len(listed.document["missingParts"]) == lifecycle.MAX_LISTED_MISSING


def test_part_failures_are_kept_per_part_and_attempt_and_cleared_when_priced():
    current = running("a", attempt=2, failedParts=[{"part": 4, "error": "x", "attempt": 1}])
    fence = Fence("a", 2)
    failed = decide(current, Progress(fence, T0, failed_part={"part": 4, "error": "y"})).document
    failed = decide(failed, Progress(fence, T0, failed_part={"part": 1, "error": "z"})).document
    assert [(f["part"], f["attempt"]) for f in failed["failedParts"]] == [(1, 2), (4, 1), (4, 2)]
    again = decide(failed, Progress(fence, T0, failed_part={"part": 4, "error": "y2"})).document
    assert [f["error"] for f in again["failedParts"] if f["attempt"] == 2] == ["z", "y2"]
    cleared = decide(again, Progress(fence, T0, cleared_part=4)).document
    assert [(f["part"], f["attempt"]) for f in cleared["failedParts"]] == [(1, 2), (4, 1)]


def test_a_batch_role_is_recorded_once():
    current = running("a", batchJobs={"manager": "m-1"})
    same = decide(current, Progress(Fence("a"), T0, batch_jobs={"manager": "m-1"}))
    assert same.outcome is Outcome.UNCHANGED
    other = decide(current, Progress(Fence("a"), T0, batch_jobs={"manager": "m-2"}))
    assert other.outcome is Outcome.REFUSED and "m-1, not m-2" in other.reason
    more = decide(current, Progress(Fence("a"), T0, batch_jobs={"array": "a", "merge": "g"}))
    assert more.document["batchJobs"] == {"manager": "m-1", "array": "a", "merge": "g"}


# -- the outbox -----------------------------------------------------------------------------


def test_the_outbox_is_claimed_by_one_actor_at_a_time_for_a_lease():
    nothing = decide(running("a"), ClaimOutbox("me", T0))
    assert nothing.outcome is Outcome.UNCHANGED
    owed = ended(lifecycle.FAILED, batchJobs={"merge": "m"})
    claimed = decide(owed, ClaimOutbox("me", T0 + 10)).document
    assert claimed["outboxClaim"] == {"by": "me", "until": T0 + 10 + OUTBOX_LEASE_SECONDS}
    assert decide(claimed, ClaimOutbox("other", T0 + 11)).outcome is Outcome.REFUSED
    assert decide(claimed, ClaimOutbox("me", T0 + 11)).outcome is Outcome.APPLIED  # renewed
    late = T0 + 10 + OUTBOX_LEASE_SECONDS + 1
    taken = decide(claimed, ClaimOutbox("other", late)).document
    assert taken["outboxClaim"]["by"] == "other"


def test_delivered_entries_leave_the_outbox_and_the_claim_ends():
    owed = ended(lifecycle.FAILED, batchJobs={"merge": "m"})
    claimed = decide(owed, ClaimOutbox("me", T0)).document
    event, stop = (entry["id"] for entry in claimed["outbox"])
    partly = decide(claimed, Delivered("me", (event,))).document
    assert ([e["id"] for e in partly["outbox"]], partly["outboxClaim"]) == ([stop], None)
    # Another actor's report removes what it delivered, and leaves a claim it does not hold.
    reclaimed = decide(partly, ClaimOutbox("other", T0 + 1)).document
    done = decide(reclaimed, Delivered("me", (stop,))).document
    assert (done["outbox"], done["outboxClaim"]["by"]) == ([], "other")
    assert decide(done, Delivered("me", (stop,))).outcome is Outcome.UNCHANGED
    assert decide(None, Delivered("me", ())).outcome is Outcome.UNCHANGED


# -- purity ---------------------------------------------------------------------------------

FACTS = [
    begin("a"),
    begin("b", T0 + 1, version="v2"),
    Progress(Fence("a"), T0, rows=5, parts_done=2, failed_part={"part": 1, "error": "e"}),
    Progress(Fence("a"), T0, cleared_part=1, batch_jobs={"array": "x"}),
    Publish("publish:a", Fence("a"), T0, lifecycle.DONE, rows=5, failed_part=None),
    Publish("publish:b", Fence("a"), T0, lifecycle.FAILED, failed_part={"part": 0}),
    Cancel("cancel:1", T0),
    Reopen("retry:1", T0),
    ClaimOutbox("me", T0),
    Delivered("me", ("event:a.1:failed",)),
    Costs("a", {"attempts": 5, "usd": 0.5}),
    Publish("publish:c", Fence("a"), T0, lifecycle.DONE, cost={"attempts": 2, "usd": 0.1}),
]


@pytest.mark.parametrize("state", ["running", "failed", "done"])
@pytest.mark.parametrize("fact", FACTS, ids=lambda fact: type(fact).__name__)
def test_a_decision_never_mutates_the_document_it_is_given(state, fact):
    current = running("a", failedParts=[{"part": 1, "error": "e", "attempt": 1}])
    if state != "running":
        current = ended(state, failedParts=[{"part": 1, "error": "e", "attempt": 1}])
        current = decide(current, ClaimOutbox("me", T0)).document
    before = copy.deepcopy(current)
    decision = decide(current, fact, CONTEXT)
    assert current == before
    if decision.document is not None:
        json.dumps(decision.document)  # plain JSON
        assert decision.document is not current


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
