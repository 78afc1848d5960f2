"""The status object of each upload, and the effects its lifecycle decisions carry.

``apply`` reads ``<input key>-status.json``, asks ``lifecycle.decide`` for the next document
and writes it with a compare-and-swap (``If-Match`` its ETag, ``If-None-Match: *`` when it
is new), backing off with jitter when another writer won. A write whose response was lost
looks refused; deciding again, the lifecycle finds the step in the document it wrote.

``settle`` performs what a job owes the world once its state changed, and is safe to call
by anyone, any number of times: it delivers the outbox (job events, stops of Batch jobs),
removes every ``-result``/``-error`` version the status does not name, and, once a job is
done, its temporary objects.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from runtime.core import keys
from runtime.protocol import costs, lifecycle
from runtime.protocol.events import EventSink
from runtime.protocol.lifecycle import (
    ClaimOutbox,
    Decision,
    Delivered,
    Fact,
    Fence,
    Outcome,
)

log = logging.getLogger(__name__)

# Compare-and-swap attempts before giving up (the caller's retry tries again), and the
# backoff between them: 200 writers finishing at one instant settle within a few seconds.
SWAP_ATTEMPTS = 30
_BACKOFF_FIRST = 0.01
# Outbox claims in one settle: entries that arrive while one actor delivers are its too.
_DELIVERY_ROUNDS = 3
_BACKOFF_CAP = 1.0
# Object metadata naming the attempt that wrote a -result or -error version.
TOKEN_METADATA = "job-token"
ATTEMPT_METADATA = "job-attempt"


class ConcurrentUpdateError(RuntimeError):
    """Too many writers raced for the status object; the caller's retry will try again."""


class OutboxBusy(RuntimeError):
    """Another actor holds the outbox; a recovery that must see it delivered tries later."""


class BatchControl(Protocol):
    def terminate(self, job_ids: list[str], reason: str) -> None:
        """Stop these Batch jobs (queued ones are cancelled, running ones terminated)."""


class Ledger:
    def __init__(
        self,
        store: Any,
        bucket: str,
        events: EventSink,
        batch: Callable[[], BatchControl | None],
        context: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.events = events
        self.batch = batch
        self.context = dict(context)
        self.clock = clock
        self.sleep = sleep

    def read(self, input_key: str) -> dict | None:
        return self.store.get_json(self.bucket, keys.status_key(input_key))

    def apply(self, input_key: str, fact: Fact) -> Decision:
        """Decide ``fact`` on the current status and write the decision."""
        key = keys.status_key(input_key)
        delay = _BACKOFF_FIRST
        for _ in range(SWAP_ATTEMPTS):
            current, etag = self.store.get_json_tagged(self.bucket, key)
            decision = lifecycle.decide(current, fact, self.context)
            if decision.document is None:
                return decision
            if self.store.put_json_if(self.bucket, key, decision.document, etag):
                return decision
            # Another writer won, or our write committed and its answer was lost (the SDK's
            # retry then fails the condition): deciding again on what is there now, the
            # lifecycle finds our step in it and answers REPLAYED.
            self.sleep(random.uniform(0, delay))
            delay = min(_BACKOFF_CAP, delay * 2)
        raise ConcurrentUpdateError(f"s3://{self.bucket}/{key}: too many concurrent writers")

    # -- effects --------------------------------------------------------------------------

    def settle(self, input_key: str, claimant: str) -> dict | None:
        """Deliver the outbox, then take back unnamed results; clean up a done job.

        Whoever settles a job is responsible for its outbox: one that finds it held by
        another actor raises OutboxBusy, so that it comes back after the lease, since that
        actor may have died holding it."""
        self.deliver(input_key, claimant)
        status = self.reconcile(input_key)
        if status is not None and status["state"] == lifecycle.DONE and not status["outbox"]:
            self._clean_up(status)
        return status

    def deliver(self, input_key: str, claimant: str) -> None:
        """Claim the outbox, perform its entries, clear them; again while entries came in
        meanwhile (they would otherwise wait for the next actor)."""
        for _ in range(_DELIVERY_ROUNDS):
            claimed = self.apply(input_key, ClaimOutbox(claimant, self.clock()))
            if claimed.outcome is Outcome.UNCHANGED:
                return
            if claimed.outcome is Outcome.REFUSED:
                raise OutboxBusy(f"{input_key}: {claimed.reason}")
            delivered: list[str] = []
            try:
                for entry in (claimed.status or {}).get("outbox", []):
                    self._perform(entry)
                    delivered.append(entry["id"])
            except Exception:
                # What was delivered leaves the outbox and the claim ends even when a
                # delivery failed, so the next actor (first of all this one's retry, which
                # may present another claimant) delivers the rest at once, not after the
                # lease. (A process that dies here holds the claim until the lease ends.)
                self.apply(input_key, Delivered(claimant, tuple(delivered)))
                raise
            self.apply(input_key, Delivered(claimant, tuple(delivered)))

    def _perform(self, entry: dict) -> None:
        if entry["kind"] == "event":
            self.events.publish(entry["detail"])  # raises when EventBridge refuses
            costs.published_event()
        elif entry["kind"] == "terminate":
            control = self.batch()
            if control is None:
                raise RuntimeError("stopping Batch jobs needs a Batch client")
            control.terminate(list(entry["jobs"]), entry["reason"])
        else:
            log.warning("unknown outbox entry %s: dropped", entry)

    def reconcile(self, input_key: str) -> dict | None:
        """Remove every version of ``-result`` and ``-error`` that the status does not
        name, except those the running attempt is writing now. The versions are listed
        before the status is read, so a version written by a newer attempt after the
        listing is never seen, and one listed is judged by a status at least as new."""
        listed = {
            key: self.store.versions(self.bucket, key)
            for key in (keys.result_key(input_key), keys.error_key(input_key))
        }
        status = self.read(input_key)
        if not any(listed.values()):
            return status
        named = (status or {}).get("resultVersion")
        running = status is not None and status["state"] == lifecycle.RUNNING
        current = Fence.of(status) if status is not None else None
        for key, versions in listed.items():
            for version in versions:
                if version == named:
                    continue
                if running:
                    info = self.store.head(self.bucket, key, version)
                    if info is not None and written_by(info.metadata) == current:
                        continue  # the running attempt's result, about to be named
                self.store.delete_version(self.bucket, key, version)
        return status

    def _clean_up(self, status: dict) -> None:
        """Remove a done job's temporary objects; the merge locks last, so a late
        duplicate still finds them (lifecycle rules expire whatever a lost job left)."""
        token = status["token"]
        runner = lifecycle.plan_of(status).runner
        if runner == keys.FAST:
            input_bucket = status["input"].removeprefix("s3://").partition("/")[0]
            parts = self.store.list_keys(input_bucket, keys.fast_parts_prefix(token))
            self.store.delete(input_bucket, parts)
        usage = keys.usage_prefix(runner, token)
        # The usage records stay (the bucket's lifecycle rule expires them): a late record
        # is totalled with all the others, so the job's cost only ever grows.
        leftovers = [
            key
            for key in self.store.list_keys(self.bucket, keys.work_prefix(runner, token))
            if not key.startswith(usage)
        ]
        locks = [key for key in leftovers if key.endswith(".lock")]
        self.store.delete(self.bucket, [key for key in leftovers if key not in locks])
        self.store.delete(self.bucket, locks)


def publication_metadata(fence: Fence) -> dict[str, str]:
    return {TOKEN_METADATA: fence.token, ATTEMPT_METADATA: str(fence.attempt)}


def written_by(metadata: Mapping[str, str]) -> Fence | None:
    token, attempt = metadata.get(TOKEN_METADATA), metadata.get(ATTEMPT_METADATA, "1")
    if not token or not attempt.isdigit():
        return None
    return Fence(token, int(attempt))
