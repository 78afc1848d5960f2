"""The job lifecycle's pure table (``runtime.protocol.lifecycle.decide``): every transition,
row by row. Fencing, replay, the outbox and purity: test_status_concurrency.py; reading a
document and its cost: test_status_documents.py."""

from __future__ import annotations

import pytest

from runtime.protocol import lifecycle
from runtime.protocol.lifecycle import (
    Begin,
    Cancel,
    Fence,
    Outcome,
    Progress,
    Publish,
    Reopen,
    decide,
)

from .lifecycle_cases import CONTEXT, PLAN, T0, begin, ended, running, upload

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


def test_a_listing_older_than_the_current_upload_never_takes_the_key_back():
    """An actor listed the key (v1 only), stalled, and v2's job began meanwhile: its v2 is
    missing from that listing, but v2's own listing put v1 below it (found by the explorer:
    the older upload replaced the newer job, whose parts were then lost)."""
    current = decide(None, begin("b", version="v2", versions=("v2", "v1"))).document
    assert current["olderVersions"] == ["v1"]
    stale = begin("a", version="v1", versions=("v1",))
    assert decide(current, stale).outcome is Outcome.OLDER
    # Without its own listing (a status written before it was kept), the listing decides.
    assert decide({**current, "olderVersions": []}, stale).outcome is Outcome.REPLACED


def test_a_listing_more_uploads_out_of_date_than_the_status_keeps_never_takes_the_key_back():
    listing = tuple(f"v{n}" for n in range(22, 0, -1))  # v22 (newest) .. v1
    current = decide(None, begin("b", version="v22", versions=listing)).document
    assert len(current["olderVersions"]) == 20 and current["olderVersionsTruncated"]
    stale = begin("a", version="v1", versions=("v1",))  # listed before v2 existed
    assert decide(current, stale).outcome is Outcome.OLDER


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
