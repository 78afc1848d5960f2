"""What a job used: one usage record per actor and attempt, and the job's cost from them.

An *actor* is one process's work for a job: a Lambda invocation (``lambda-<request id>``)
or one attempt of a Batch job (``batch-<job id>``, an array child's id included). It
measures itself (``planning.meter.StepMeter``, a ``RequestCounter`` on its S3 client, the
job events it published) and writes one record per attempt into the job's work area:

    <runner>/_work/<token>/usage/<actor>-<attempt>.json

The same actor writing again overwrites its own record (the actor that ends a job writes
it before it commits, then again when it is done), so nothing is counted twice. A Batch
attempt knows its number (``AWS_BATCH_JOB_ATTEMPT``); Lambda keeps the request id across
its retries and does not say which attempt an invocation is, so an invocation claims the
lowest free number with a conditional write (``If-None-Match: *``), and a retry takes the
next one.

Attempts that died without a word are recorded by the route that reports their death:
the "Batch Job State Change" FAILED event's ``attempts`` (measured start and stop), a Batch
job's next attempt (the stack retries only host interruptions, so every earlier attempt was
one; its length is unknown and estimated as this attempt's), and Lambda's on-failure record
(an attempt killed by its timeout ran the whole timeout; one killed otherwise, for which
no figure exists, counts its request and no duration). Estimated records say so, and a
measured record of the same attempt replaces one.

The job's cost is the sum of all its records, each at the prices it was written with (a
deploy that changes ``priceTable`` never reprices an attempt that ran before it): taken by the
actor that ends the job just before it commits (the job event carries it), and again by
every actor once it has written its record, if the job has ended by then (one GET of the
status), with a ``lifecycle.Costs`` fact that replaces the figure only with a total of more
records. So the last record written is always counted. Records are kept when the work area
is cleaned up (the bucket's lifecycle rule expires them with the rest): totals only grow.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.core import keys
from runtime.planning.meter import RequestCounter, StepMeter
from runtime.planning.prices import PriceTable, PriceTableError
from runtime.planning.usage import (
    INTERRUPTED,
    Cost,
    UsageError,
    UsageRecord,
    record_cost,
)

log = logging.getLogger(__name__)

# Attempt numbers a Lambda invocation may claim: Lambda makes at most 3 attempts of an
# asynchronous event; the rest leaves room for duplicates of a record's own write.
_MAX_LAMBDA_SLOTS = 10
# Records read at once when a job's cost is totalled (hundreds of parts).
_READERS = 16
# Records already read, by key and ETag (a record's content changes only with its ETag).
_CACHE_LIMIT = 20_000
_read_records: dict[tuple[str, str], tuple[UsageRecord, PriceTable | None] | None] = {}

_ACTOR: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("usage_actor", default=None)
# One request counter per client (per botocore event emitter): containers build their steps
# once, the tests and the explorer build them per invocation around the same client.
_COUNTERS: weakref.WeakKeyDictionary[Any, RequestCounter] = weakref.WeakKeyDictionary()


def request_counter(client: Any) -> RequestCounter | None:
    """The counter of ``client``'s HTTP requests (None for a client that is no botocore
    client, such as the explorer's in-memory S3)."""
    emitter = getattr(getattr(client, "meta", None), "events", None)
    if emitter is None or not hasattr(emitter, "register"):
        return None
    counter = _COUNTERS.get(emitter)
    if counter is None:
        counter = _COUNTERS[emitter] = RequestCounter()
        counter.install(client)
    return counter


@dataclass
class Actor:
    """One process's work for one job, and what it used."""

    name: str  # lambda-<request id> | batch-<job id>
    meter: StepMeter
    attempt: int | None = None  # a Batch attempt's number; Lambda: claimed on first write
    # A Batch attempt after host interruptions: the attempts before it (no record of their own)
    earlier_attempts: int = 0
    input_key: str = ""
    token: str = ""
    runner: str = ""
    role: str = ""  # what its record's step says, when not the steps it ran (a failure route)
    steps: list[str] = field(default_factory=list)
    events_published: int = 0
    key: str | None = None  # its record's key, once written
    writes: int = 0  # PUTs of its own record (conditional ones that failed included)
    earlier_written: bool = False
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex)

    def act(self, input_key: str, token: str, runner: str, step: str) -> None:
        """The job this actor works for, and one more step of it. An invocation acts for
        one job (S3 and the failure queues deliver one record per invocation); should it
        act for another, that one's usage is not attributed."""
        if not self.token:
            self.input_key, self.token, self.runner = input_key, token, runner
        elif token != self.token:
            return
        if step and step not in self.steps:
            self.steps.append(step)

    def record(self, outcome: str) -> UsageRecord:
        """What it used so far, the write about to be made included."""
        found = self.meter.finish(self.role or "+".join(self.steps) or "invocation", outcome)
        return replace(
            found,
            s3_put_requests=found.s3_put_requests + self.writes + 1,
            events_published=found.events_published + self.events_published,
        )


@contextlib.contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Inside, the protocol's steps tell ``actor`` which job they act for."""
    reset = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(reset)


def current_actor() -> Actor | None:
    return _ACTOR.get()


def act(input_key: str, token: str, runner: str, step: str) -> None:
    """The running actor (if any) works for this job, on this step."""
    actor = _ACTOR.get()
    if actor is not None:
        actor.act(input_key, token, runner, step)


def play(role: str) -> None:
    """The running actor is a failure route or a command (``batch-event``, ``on-failure``,
    ``retry``...): its record says so, whatever steps of the job it ran."""
    actor = _ACTOR.get()
    if actor is not None and not actor.role:
        actor.role = role


def published_event() -> None:
    """The running actor published one job event (one PutEvents entry)."""
    actor = _ACTOR.get()
    if actor is not None:
        actor.events_published += 1


class UsageLog:
    """The usage records of jobs in the result bucket."""

    def __init__(self, store: Any, bucket: str, prices: Callable[[], PriceTable]) -> None:
        self.store = store
        self.bucket = bucket
        self.prices = prices

    # -- writing ------------------------------------------------------------------------

    def write(self, actor: Actor, outcome: str) -> str | None:
        """Write (or overwrite) the actor's record of its attempt; its key, or None for an
        actor that never acted for a job."""
        if not actor.token:
            return None
        record = actor.record(outcome)
        if actor.attempt is not None and actor.key is None:
            actor.key = self._key(actor, actor.attempt)
        if actor.key is not None:
            actor.writes += 1
            self.store.put_json(self.bucket, actor.key, self._document(actor, record))
        else:
            self._claim(actor, record)
        if actor.earlier_attempts and not actor.earlier_written:
            actor.earlier_written = True
            for attempt in range(1, actor.earlier_attempts + 1):
                earlier = replace(record, attempt=attempt, outcome=INTERRUPTED)
                earlier = replace(earlier, s3_put_requests=0, s3_get_requests=0)
                self.add(actor, actor.name, earlier, estimated=True)
        return actor.key

    def _claim(self, actor: Actor, record: UsageRecord) -> None:
        """A Lambda invocation's first write: the lowest attempt number no other attempt of
        the same request id holds (a lost answer to our own write is recognised by its
        nonce)."""
        for attempt in range(1, _MAX_LAMBDA_SLOTS + 1):
            key = self._key(actor, attempt)
            document = self._document(actor, replace(record, attempt=attempt))
            actor.writes += 1
            if self.store.put_json_if(self.bucket, key, document, None):
                actor.key, actor.attempt = key, attempt
                return
            found = self.store.get_json(self.bucket, key) or {}
            if found.get("nonce") == actor.nonce:
                actor.key, actor.attempt = key, attempt
                return
        log.warning("%s: no free usage record slot; its usage is not recorded", actor.name)

    def add(
        self,
        job: Actor | JobOf,
        actor_name: str,
        record: UsageRecord,
        estimated: bool = False,
    ) -> bool:
        """Record an attempt that could not record itself (written once: a measured record
        replaces an estimated one, never the other way). Whether it was written."""
        key = keys.usage_key(job.runner, job.token, _safe(actor_name), record.attempt)
        document = {
            "actor": actor_name,
            "attempt": record.attempt,
            "nonce": uuid.uuid4().hex,
            "estimated": estimated,
            "inputKey": job.input_key,
            "record": record.to_dict(),
            "prices": self.prices().to_dict(),
        }
        if self.store.put_json_if(self.bucket, key, document, None):
            return True
        if estimated:
            return False
        found = self.store.get_json(self.bucket, key) or {}
        if found.get("estimated"):
            self.store.put_json(self.bucket, key, document)
            return True
        return False

    def _key(self, actor: Actor, attempt: int) -> str:
        return keys.usage_key(actor.runner, actor.token, _safe(actor.name), attempt)

    def _document(self, actor: Actor, record: UsageRecord) -> dict:
        return {
            "actor": actor.name,
            "attempt": record.attempt,
            "nonce": actor.nonce,
            "estimated": False,
            "inputKey": actor.input_key,
            "record": record.to_dict(),
            # The prices of when it ran: a later deploy's price table never reprices it,
            # so a job's cost only grows (attempts on either side of a deploy each keep theirs)
            "prices": self.prices().to_dict(),
        }

    # -- reading ------------------------------------------------------------------------

    def records(self, runner: str, token: str) -> list[UsageRecord]:
        """Every record of the job."""
        return [record for record, _ in self._priced(runner, token)]

    def cost(self, runner: str, token: str) -> Cost:
        """The job's cost: every record at the prices it was written with (the stack's
        table now for a record that has none)."""
        now = self.prices()
        total = Cost()
        for record, prices in self._priced(runner, token):
            total = total + record_cost(record, prices or now)
        return total

    def _priced(self, runner: str, token: str) -> list[tuple[UsageRecord, PriceTable | None]]:
        """Every record of the job with its prices, read in parallel; those read before
        (same ETag) are not read again."""
        entries = self.store.list_etags(self.bucket, keys.usage_prefix(runner, token))
        found = {entry: _read_records[entry] for entry in entries if entry in _read_records}
        wanted = [entry for entry in entries if entry not in found]
        if len(_read_records) > _CACHE_LIMIT:
            _read_records.clear()
        if len(wanted) > 1:
            with ThreadPoolExecutor(min(_READERS, len(wanted))) as pool:
                found.update(zip(wanted, pool.map(self._read, wanted), strict=True))
        elif wanted:
            found[wanted[0]] = self._read(wanted[0])
        return [priced for entry in entries if (priced := found.get(entry)) is not None]

    def _read(self, entry: tuple[str, str]) -> tuple[UsageRecord, PriceTable | None] | None:
        key, etag = entry
        document, found_etag = self.store.get_json_tagged(self.bucket, key)
        if document is None:
            return None  # gone since the listing
        priced: tuple[UsageRecord, PriceTable | None] | None
        try:
            record = UsageRecord.from_dict(document.get("record") or {})
        except UsageError as exc:
            log.warning("s3://%s/%s is not a usage record: %s", self.bucket, key, exc)
            priced = None
        else:
            try:
                prices = PriceTable.from_dict(document["prices"]) if "prices" in document else None
            except PriceTableError:
                prices = None
            priced = (record, prices)
        if found_etag == etag:  # the listed content: what the cache may keep
            _read_records[entry] = priced
        return priced


@dataclass(frozen=True)
class JobOf:
    """A job a record is about, when it is not the running actor's."""

    input_key: str
    token: str
    runner: str


def _safe(name: str) -> str:
    """An actor name as a key segment (an array child's job id holds a colon)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
