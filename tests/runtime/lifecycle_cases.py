"""Shared cases of the job lifecycle tests (test_status_*.py): a plan, a context, and
status documents built through ``decide`` itself (running, or ended in a state)."""

from __future__ import annotations

from runtime.protocol import lifecycle
from runtime.protocol.lifecycle import (
    Begin,
    Cancel,
    Fence,
    Plan,
    Publish,
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
