"""The stateful explorer: Hypothesis plays users, S3, Lambda, EventBridge and Batch in any
order, with faults, against the real handlers, and checks the platform's promises.

Rules are what can happen next: an upload or a re-upload, a deleted upload, a settings
change (a deploy), a pending invocation run (perhaps killed after any S3 call, or losing
the response of a committed conditional write), a Batch job placed (perhaps killed: a host
reclaimed and retried, or out of memory), a queue giving up on a job, an event delivered
again, an event EventBridge could not deliver, EventBridge refusing PutEvents, a cancel, a
retry, time passing. After every step ``check_always``; whenever nothing is left to run,
and at the end after draining everything, ``check_settled``:

- I1 every terminal state of an attempt has exactly one job event (a repeat only where an
  actor died between EventBridge's acceptance and clearing its outbox, with the same
  ``eventId``);
- I2 when the latest upload's job is done, ``-result`` is that upload's, rows in order;
- I3 no ``-result``/``-error`` version exists that the status does not name;
- I4 every key's latest upload has a terminal state (no job left running with no actor);
- I5 the user's uploads are never modified;
- I7 a settled job's ``cost`` is the total of its usage records (every actor's, late ones
  included), each priced by the table of when it was written;
- I8 a job's cost only grows: no attempt once counted is dropped, across deploys that
  change prices. (I6, an attempt ended only by its own actors, is
  checked on every status written: ``world.check_own_attempt``.)
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from runtime.core import keys
from runtime.planning.prices import default_prices
from runtime.planning.usage import Cost
from runtime.protocol import lifecycle
from tests.explorer.world import INPUT, RESULT, Faults, World

SAMPLE = Path(__file__).resolve().parents[2] / "runtime" / "sample" / "EquityOption-100.csv"
_LINES = SAMPLE.read_bytes().splitlines(keepends=True)


def _book(rows: int, start: int = 1) -> bytes:
    return b"".join([_LINES[0], *_LINES[start : start + rows]])


BODIES = (
    _book(1),
    _book(4),
    _book(7, start=10),
    _book(5, start=40) + b"99,10/26/2022,10/28/2022,Call,22.2,-5,0.047,0.10,01/16/2023\n",
    b"id,price\n1,2\n",  # a file error: required columns missing
)
KEYS = (
    "fast/a/book.csv",
    "fast/b/BOOK.CSV",
    "normal/c/book.csv",
    "urgent/d/book.csv",
    "auto/e/book.csv",
)
T = TypeVar("T")


class Chooser(Protocol):
    """Where the explorer's choices come from: Hypothesis (which shrinks a failure to its
    shortest form) or a seeded random generator (the long benchmark runs)."""

    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


class DataChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)


def _faults(chooser: Chooser) -> Faults:
    kind = chooser.choice(("none", "none", "kill", "lose"))
    if kind == "kill":
        return Faults(kill_after=chooser.integer(1, 40))
    if kind == "lose":
        return Faults(lose_response=chooser.integer(1, 6))
    return Faults()


def _upload(world: World, chooser: Chooser) -> str:
    key, body = chooser.choice(KEYS), chooser.choice(range(len(BODIES)))
    world.upload(key, BODIES[body])
    return f"upload {key} body {body}"


def _book_upload(world: World, chooser: Chooser) -> str:
    body = chooser.choice(range(len(BODIES)))
    world.s3.put_object(Bucket=INPUT, Key="books/eod.csv", Body=BODIES[body])
    return f"book eod.csv body {body}"


def _schedule(world: World, chooser: Chooser) -> str:
    path = chooser.choice(("fast", "normal", "urgent"))
    at = chooser.choice(("2026-12-01T22:30:00Z", "2026-12-02T22:30:00Z"))
    world.fire_schedule("eod", "eod.csv", path, at)
    return f"schedule eod {path} {at}"


def _delete(world: World, chooser: Chooser) -> str:
    key = chooser.choice(KEYS)
    if key in world.keys_uploaded() and key not in world.deleted:
        world.delete(key)
    return f"delete {key}"


# Prices a deploy may set: the defaults, every price halved, or nothing at all.
_DEFAULT_PRICES = default_prices("us-east-1", "x86_64").to_dict()
_USD = [name for name in _DEFAULT_PRICES if "Usd" in name]
PRICE_TABLES = (
    "",
    json.dumps({name: _DEFAULT_PRICES[name] / 2 for name in _USD}),
    json.dumps(dict.fromkeys(_USD, 0)),
)


def _deploy(world: World, chooser: Chooser) -> str:
    world.threshold = chooser.integer(1, 6)
    world.greeks = chooser.choice((False, True))
    # The auto lane's line: 0 sends every auto/ upload to the normal path.
    world.auto_fast_seconds = chooser.choice((60, 0))
    # The budget guard: off, or a limit every job is over (it fails all but forced retries).
    world.max_job_usd = chooser.choice((0.0, 0.0, 1e-9))
    world.price_table = chooser.choice(PRICE_TABLES)
    return (
        f"deploy threshold {world.threshold} greeks {world.greeks} "
        f"autoFastSeconds {world.auto_fast_seconds} maxJobUsd {world.max_job_usd} "
        f"prices {PRICE_TABLES.index(world.price_table)}"
    )


def _command(name: str) -> Callable[[World, Chooser], str]:
    def act(world: World, chooser: Chooser) -> str:
        key = chooser.choice(KEYS)
        force = chooser.choice((False, True))
        return f"{name} {key}: {world.command(name, key, force)}"

    return act


def _invoke(world: World, chooser: Chooser) -> str:
    if not world.pending:
        return "invoke: nothing pending"
    index, faults = chooser.integer(0, 50), _faults(chooser)
    item = world.pending[index % len(world.pending)]
    world.invoke(index, faults)
    return f"invoke {item.kind} {item.request_id} attempt {item.attempt} {faults}"


def _run_batch(world: World, chooser: Chooser) -> str:
    runnable = world.runnable()
    if not runnable:
        return "batch: nothing runnable"
    index, faults = chooser.integer(0, 50), _faults(chooser)
    host_failure = chooser.choice((False, True))
    job = runnable[index % len(runnable)]
    world.run_batch(index, faults, host_failure)
    return f"batch {job.job_id} {job.environment.get('BATCH_ROLE')} {faults} -> {job.state}"


def _begin(world: World, chooser: Chooser) -> str:
    """An invocation or a Batch job starts and pauses before its first S3 call."""
    index, faults = chooser.integer(0, 50), _faults(chooser)
    if world.pending and chooser.choice((True, False)):
        item = world.pending[index % len(world.pending)]
        world.begin(index, faults)
        return f"begin {item.kind} {item.request_id} attempt {item.attempt} {faults}"
    runnable = world.runnable()
    if not runnable:
        return "begin: nothing to start"
    job = runnable[index % len(runnable)]
    world.begin_batch(index, faults, host_failure=chooser.choice((False, True)))
    return f"begin batch {job.job_id} {job.environment.get('BATCH_ROLE')} {faults}"


def _advance(world: World, chooser: Chooser) -> str:
    """An execution in flight makes a few more S3 calls, then pauses (or ends)."""
    if not world.in_flight:
        return "advance: nothing in flight"
    index, calls = chooser.integer(0, 20), chooser.integer(1, 6)
    label = world.in_flight[index % len(world.in_flight)].label
    world.advance(index, calls)
    return f"advance {label} by {calls} S3 calls"


def _finish(world: World, chooser: Chooser) -> str:
    if not world.in_flight:
        return "finish: nothing in flight"
    index = chooser.integer(0, 20)
    label = world.in_flight[index % len(world.in_flight)].label
    world.advance(index, None)
    return f"finish {label}"


def _kill(world: World, chooser: Chooser) -> str:
    if not world.in_flight:
        return "kill: nothing in flight"
    index = chooser.integer(0, 20)
    label = world.in_flight[index % len(world.in_flight)].label
    world.kill(index)
    return f"kill {label} where it waits"


def _give_up(world: World, chooser: Chooser) -> str:
    return f"batch gives up: {world.give_up(chooser.integer(0, 50))}"


def _duplicate(world: World, chooser: Chooser) -> str:
    return f"deliver again: {world.duplicate(chooser.integer(0, 200))}"


def _undeliverable(world: World, chooser: Chooser) -> str:
    return f"undeliverable: {world.dead_letter(chooser.integer(0, 50))}"


def _eventbridge(world: World, chooser: Chooser) -> str:
    world.events.refusing = chooser.choice((False, True))
    return f"eventbridge refusing {world.events.refusing}"


def _time(world: World, chooser: Chooser) -> str:
    seconds = chooser.choice((1, 30, 120))
    world.clock += seconds
    return f"{seconds} s pass"


# What can happen next, with how often: the pipeline's own work most, so jobs get far.
ACTIONS: dict[str, tuple[int, Callable[[World, Chooser], str]]] = {
    "upload": (4, _upload),
    "delete": (1, _delete),
    "book": (1, _book_upload),
    "schedule": (1, _schedule),
    "deploy": (1, _deploy),
    "cancel": (1, _command("cancel")),
    "retry": (1, _command("retry")),
    "invoke": (8, _invoke),
    "run_batch": (4, _run_batch),
    "begin": (3, _begin),
    "advance": (6, _advance),
    "finish": (2, _finish),
    "kill": (1, _kill),
    "give_up": (1, _give_up),
    "duplicate": (2, _duplicate),
    "undeliverable": (1, _undeliverable),
    "eventbridge": (1, _eventbridge),
    "time": (1, _time),
}
_WEIGHTED = tuple(name for name, (weight, _) in ACTIONS.items() for _ in range(weight))


def step(world: World, chooser: Chooser) -> str:
    """One thing happens; the line says what."""
    name = chooser.choice(_WEIGHTED)
    return ACTIONS[name][1](world, chooser)


class LifecycleExplorer(RuleBasedStateMachine):
    """Subclasses say which S3 the world uses (``make_s3``)."""

    def make_s3(self):  # pragma: no cover - subclasses give one
        raise NotImplementedError

    @initialize()
    def start(self) -> None:
        self.world = World(self.make_s3())
        self.trace: list[str] = []

    @rule(data=st.data())
    def happen(self, data: st.DataObject) -> None:
        self.trace.append(step(self.world, DataChooser(data)))

    @invariant()
    def always(self) -> None:
        if hasattr(self, "world"):
            check_always(self.world)
            if self.world.quiet() and not self.world.events.refusing:
                check_settled(self.world)

    def teardown(self) -> None:
        if hasattr(self, "world"):
            try:
                drain(self.world)
                check_always(self.world)
                check_settled(self.world)
            finally:
                self.world.close()


def walk(seed: int, steps: int, make_s3: Callable[[], object]) -> tuple[int, list[str]]:
    """One seeded run of ``steps`` steps and its drain: (steps run, the trace). An
    AssertionError names the broken promise; the seed replays it."""
    world = World(make_s3())
    chooser = RandomChooser(random.Random(seed))
    trace: list[str] = []
    try:
        for _ in range(steps):
            trace.append(step(world, chooser))
            check_always(world)
            if world.quiet() and not world.events.refusing:
                check_settled(world)
        drain(world)
        check_always(world)
        check_settled(world)
    finally:
        world.close()
    return world.steps_run, trace


def drain(world: World, rounds: int = 2_000) -> None:
    """Deliver everything, without faults, as AWS eventually does once EventBridge works
    again (and an operator redrives what was parked): the end of every run."""
    world.events.refusing = False
    for _ in range(rounds):
        if world.in_flight:
            world.advance(0, None)
        elif world.pending:
            world.invoke(0, Faults())
        elif world.runnable():
            world.run_batch(0, Faults(), host_failure=False)
        elif world.parked:
            world.pending.extend(world.parked)
            world.parked.clear()
            for item in world.pending:
                for record in item.event.get("Records", []):
                    record.get("attributes", {})["ApproximateReceiveCount"] = "1"
                item.receive = 1
        else:
            return
        world.clock += 100  # past any outbox lease: a dead claimant's events go out
    raise AssertionError(f"still not quiet after {rounds} deliveries: {world.pending[:3]}")


# -- the promises -----------------------------------------------------------------------


def check_always(world: World) -> None:
    # I5: every upload is byte for byte what the user wrote.
    for upload in world.uploads:
        found = world.s3.get_object(Bucket=INPUT, Key=upload.key, VersionId=upload.version)
        assert found["Body"].read() == upload.body, f"I5: {upload.key} was modified"
    # A done status is backed by its result: the named version exists and is the job's.
    for key in world.keys_uploaded():
        status = world.status(key)
        if status is None or status["state"] != lifecycle.DONE:
            continue
        upload = next(u for u in world.uploads if u.key == key and u.version == status["version"])
        expected = world.expected(upload, lifecycle.plan_of(status).greeks)
        assert expected is not None, f"{key}: done, but its upload cannot be priced"
        found = world.s3.get_object(
            Bucket=RESULT, Key=keys.result_key(key), VersionId=status["resultVersion"]
        )["Body"].read()
        assert found == expected, f"I2: {key}: the result the status names is not the upload's"
    # I8: a job's cost only grows: no attempt once counted is ever dropped. (Its dollars
    # may fall only where a measured record corrects the estimate of the same attempt; a
    # deploy that changes prices never lowers them: tests/paths/test_review_findings.py.)
    for key in world.keys_uploaded():
        status = world.status(key)
        cost = (status or {}).get("cost")
        if not cost:
            continue
        seen = world.costs_seen.get((key, status["token"]), 0)
        assert int(cost["attempts"]) >= seen, f"I8: {key}: attempts went from {seen} to {cost}"
        world.costs_seen[(key, status["token"])] = int(cost["attempts"])
    # I1, so far: a job event only for a terminal state reached, once (or a known repeat).
    counts = Counter(detail["eventId"] for detail in world.delivered)
    for event_id, count in counts.items():
        assert event_id in world.terminal_states, f"I1: event {event_id} for no terminal state"
        assert count == 1 or event_id in world.may_repeat, f"I1: event {event_id} x{count}"


def check_settled(world: World) -> None:
    delivered = {detail["eventId"] for detail in world.delivered}
    missing = world.terminal_states - delivered
    assert not missing, f"I1: terminal states without their event: {sorted(missing)}"
    for key in world.scheduled_runs - set(world.keys_uploaded()):  # never copied: failed
        status = world.status(key)
        assert status is not None and status["state"] == "failed", f"I4: run {key}: {status}"
    for key in world.keys_uploaded():
        latest = [u for u in world.uploads if u.key == key][-1]
        status = world.status(key)
        assert status is not None, f"I4: {key} has no status"
        assert status["state"] in lifecycle.TERMINAL_STATES, f"I4: {key} is {status['state']}"
        assert status["version"] == latest.version, (
            f"I4: {key}: the status is about version {status['version']}, the latest upload "
            f"is {latest.version}"
        )
        assert not status.get("outbox"), f"I1: {key}: undelivered {status['outbox']}"
        named = status.get("resultVersion")
        for name in (keys.result_key(key), keys.error_key(key)):
            for version in world.versions(name):
                assert version == named, f"I3: {name} version {version} is not the status'"
        current = world.current(keys.result_key(key))
        if status["state"] == lifecycle.DONE:
            expected = world.expected(latest, lifecycle.plan_of(status).greeks)
            assert current is not None and current[0] == expected, f"I2: {key}: wrong result"
        else:
            assert current is None, f"I3: {key} is {status['state']} but has a -result"
        error = world.current(keys.error_key(key))
        assert (error is not None) == (status["state"] == lifecycle.FAILED), (
            f"I3: {key} is {status['state']}, -error {'present' if error else 'absent'}"
        )
        recorded = world.job_cost(status).to_dict()
        found = status.get("cost") or Cost().to_dict()
        assert (found["attempts"], found["usd"]) == (recorded["attempts"], recorded["usd"]), (
            f"I7: {key}: the status' cost {found} is not its records' {recorded}"
        )
