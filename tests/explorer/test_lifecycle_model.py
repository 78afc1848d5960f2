"""The pure state machine, explored alone: any sequence of facts from any actors (current,
late, duplicate, replayed) on one key's status, thousands of steps a second.

What must hold whatever came in: an attempt reaches at most one terminal state, each
terminal state puts exactly one job event (with its id) into the outbox, only a newer
upload replaces a job, a step applied twice changes nothing the second time, a job's cost
only grows (late usage records add to it, a stale total never replaces a larger one), and
``decide`` never changes the document it is given.
"""

from __future__ import annotations

import copy
from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from runtime.protocol import lifecycle
from runtime.protocol.lifecycle import (
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
)

PLAN = Plan(engine="lsm", threshold=2, max_parts=4)
# Uploads of one key, oldest first: their versions' order is the key's version list.
UPLOADS = [Upload("in", "fast/k.csv", f"v{i}", f"token{i}", "fast") for i in range(3)]
VERSIONS = tuple(u.version for u in reversed(UPLOADS))  # newest first, as S3 lists them
tokens = st.integers(0, len(UPLOADS) - 1)
attempts = st.integers(1, 3)
steps = st.sampled_from([f"step-{i}" for i in range(6)])


class LifecycleModel(RuleBasedStateMachine):
    @initialize()
    def empty(self) -> None:
        self.document: dict | None = None
        self.clock = 1_000.0
        self.ends: Counter[tuple[str, int]] = Counter()  # terminal transitions per attempt
        self.queued: Counter[str] = Counter()  # event ids put into the outbox
        self.newest_begun = -1
        self.costs_seen: dict[str, tuple[int, float]] = {}  # token -> its cost's order

    def apply(self, fact) -> lifecycle.Decision:
        before = copy.deepcopy(self.document)
        decision = lifecycle.decide(self.document, fact, {"resultBucket": "out"})
        assert self.document == before, "decide changed the document it was given"
        if decision.document is not None:
            old_ids = {e["id"] for e in (self.document or {}).get("outbox", [])}
            for entry in decision.document.get("outbox", []):
                if entry["id"] not in old_ids and entry["kind"] == "event":
                    self.queued[entry["detail"]["eventId"]] += 1
            self.document = decision.document
        self.clock += 1
        return decision

    @rule(upload=tokens, step=steps)
    def begin(self, upload: int, step: str) -> None:
        decision = self.apply(Begin(step, UPLOADS[upload], PLAN, self.clock, VERSIONS))
        if decision.outcome in (Outcome.BEGUN, Outcome.REPLACED):
            assert upload > self.newest_begun, "an older upload replaced a newer one's job"
            self.newest_begun = upload

    @rule(upload=tokens, attempt=attempts, step=steps, done=st.booleans())
    def publish(self, upload: int, attempt: int, step: str, done: bool) -> None:
        fence = Fence(UPLOADS[upload].token, attempt)
        state = lifecycle.DONE if done else lifecycle.FAILED
        running = lifecycle.owns(self.document, fence)
        decision = self.apply(Publish(step, fence, self.clock, state, "s3://out/k", "r1"))
        if decision.outcome is Outcome.APPLIED:
            assert running, "a publish was applied for an attempt that was not running"
            self.ends[(fence.token, fence.attempt)] += 1

    @rule(step=steps, cancel_current=st.booleans())
    def cancel(self, step: str, cancel_current: bool) -> None:
        fence = Fence.of(self.document) if (self.document and cancel_current) else None
        if self.document is not None and self.document["state"] == lifecycle.RUNNING:
            current = Fence.of(self.document)
            if self.apply(Cancel(step, self.clock, fence)).outcome is Outcome.APPLIED:
                self.ends[(current.token, current.attempt)] += 1
        else:
            self.apply(Cancel(step, self.clock, fence))

    @rule(step=steps)
    def reopen(self, step: str) -> None:
        self.apply(Reopen(step, self.clock))

    @rule(upload=tokens, attempt=attempts, done=st.integers(0, 5))
    def progress(self, upload: int, attempt: int, done: int) -> None:
        before = (self.document or {}).get("partsDone", 0)
        fence = Fence(UPLOADS[upload].token, attempt)
        decision = self.apply(Progress(fence, self.clock, parts_done=done))
        if decision.outcome is Outcome.APPLIED:
            assert self.document["partsDone"] >= before, "progress went back"

    @rule(upload=tokens, records=st.integers(0, 8), terminal=st.booleans())
    def costs(self, upload: int, records: int, terminal: bool) -> None:
        """An actor totals the job's usage records: at the terminal state (carried by the
        publish) or after it (a Costs fact), from a listing that may be stale."""
        token = UPLOADS[upload].token
        cost = {"attempts": records, "usd": records * 0.001, "estimated": True}
        before = lifecycle.cost_order((self.document or {}).get("cost"))
        same_job = self.document is not None and self.document["token"] == token
        if terminal and self.document is not None and self.document["state"] == "running":
            fence = Fence.of(self.document)
            decision = self.apply(
                Publish(f"publish-{records}", fence, self.clock, "done", cost=cost)
            )
            if decision.outcome is Outcome.APPLIED:
                self.ends[(fence.token, fence.attempt)] += 1
            return
        decision = self.apply(Costs(token, cost))
        if decision.outcome is Outcome.APPLIED:
            assert same_job and lifecycle.cost_order(cost) > before

    @rule(claimant=st.sampled_from(["a", "b"]), wait=st.sampled_from([0, 100]))
    def deliver(self, claimant: str, wait: int) -> None:
        self.clock += wait
        claimed = self.apply(ClaimOutbox(claimant, self.clock))
        if claimed.outcome is Outcome.APPLIED:
            ids = tuple(e["id"] for e in self.document["outbox"])
            self.apply(Delivered(claimant, ids))

    @invariant()
    def promises(self) -> None:
        if not hasattr(self, "ends"):
            return
        assert all(count == 1 for count in self.ends.values()), f"two ends: {self.ends}"
        assert all(count == 1 for count in self.queued.values()), f"events: {self.queued}"
        for (token, attempt), _ in self.ends.items():
            if self.document and self.document["token"] == token:
                assert self.document["attempt"] >= attempt
        if self.document is not None:
            token = self.document["token"]
            order = lifecycle.cost_order(self.document.get("cost"))
            assert order >= self.costs_seen.get(token, (-1, -1.0)), "a job's cost went down"
            self.costs_seen[token] = order


TestLifecycleModel = LifecycleModel.TestCase
TestLifecycleModel.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
