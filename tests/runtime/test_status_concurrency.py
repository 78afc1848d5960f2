"""The job lifecycle with actors acting at once (``runtime.protocol.lifecycle.decide``):
fencing, step replay, monotone progress, the outbox's claim and lease, and documents that
are never mutated."""

from __future__ import annotations

import copy
import json

import pytest

from runtime.protocol import lifecycle
from runtime.protocol.lifecycle import (
    OUTBOX_LEASE_SECONDS,
    Cancel,
    ClaimOutbox,
    Costs,
    Delivered,
    Fence,
    Outcome,
    Progress,
    Publish,
    Reopen,
    decide,
)

from .lifecycle_cases import CONTEXT, T0, begin, ended, running

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
