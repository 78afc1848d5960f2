"""The job lifecycle: every rule that changes a job's state lives in this file.

A job is one attempt at pricing one upload. Its state is the status object users read,
``<input key>-status.json``; this module decides every change of it, and knows nothing of
S3, Lambda or Batch: a *fact* comes in (an upload began, a part was priced, a result was
published, the user cancelled...), and a *decision* goes out (the next status document, or
a refusal saying why). The adapters apply the document with a compare-and-swap
(``runtime.protocol.ledger``) and perform the effects the document carries.

    running -> done | failed | superseded | cancelled        failed -> running (retry)

The guarantees, and where they come from:

- **Fencing.** Every attempt has an identity, its ``Fence`` (the upload's token and the
  attempt number, which grows with every retry). Every actor presents the fence it acts for;
  a fact whose fence is not the status' current one is refused (``Outcome.FENCED``), and its
  actor takes back what it wrote. So a late part, merge, failure record or Batch event of an
  older attempt or an older upload changes nothing.
- **Idempotent steps.** Every fact that changes the state names its ``step``; the document
  remembers the last steps it applied. A writer whose conditional write committed but whose
  response was lost finds its step there and knows its write stands (``Outcome.REPLAYED``).
- **Publication tied to the status.** ``-result``/``-error`` stay only while the status
  names them (``resultVersion``); the adapters remove every other version (``reconcile``).
- **Exactly one event per terminal state.** A transition into a terminal state puts its job
  event into the document's ``outbox`` in the same write; the event leaves the outbox only
  once EventBridge accepted it, so whoever touches the job next delivers it if the writer
  died or EventBridge refused. A lease (``outboxClaim``) keeps two actors from delivering
  it at once.
- **The plan is fixed when the job begins.** ``plan`` (engine, Greeks, bounds, part size
  and the time limits parts are sized for) is recorded by the first actor; every later
  actor of the job follows it, whatever its own container's settings are. So is ``route``,
  the auto lane's choice of path.
- **Costs only grow.** ``cost`` is what the job's usage records add up to: set with the
  terminal state (so its event carries it), and afterwards by ``Costs`` facts, which
  replace it only with a total of more records (late ones), never fewer.

Documents are plain JSON (camelCase keys, ISO 8601 UTC times). Decisions never mutate the
document they are given.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from runtime.protocol.events import job_event_detail

RUNNING = "running"
DONE = "done"
FAILED = "failed"
SUPERSEDED = "superseded"
CANCELLED = "cancelled"
TERMINAL_STATES = (DONE, FAILED, SUPERSEDED, CANCELLED)

SCHEMA = 2
# Steps remembered for idempotence: far more than the writers a job has at one instant.
REMEMBERED_STEPS = 64
# The status lists at most this many missing parts: enough to act on, small to read.
MAX_LISTED_MISSING = 50
# How long an actor may hold the outbox while it delivers (PutEvents with its retries, and
# TerminateJob calls, take seconds); a claim older than this is void.
OUTBOX_LEASE_SECONDS = 90.0


class Outcome(StrEnum):
    """What a decision did with a fact."""

    BEGUN = "begun"  # a new job for this upload
    REPLACED = "replaced"  # a new job replaced an older upload's job
    APPLIED = "applied"  # the state changed as the fact asked
    REPLAYED = "replayed"  # this step was applied before (a retry, or a lost response)
    UNCHANGED = "unchanged"  # nothing to change (a duplicate, or progress already known)
    FENCED = "fenced"  # the fact is about another attempt or another upload
    ENDED = "ended"  # the job is already in a terminal state
    OLDER = "older"  # the upload is older than the one the status describes
    REFUSED = "refused"  # not allowed in this state (retry of a job that is not failed)


@dataclass(frozen=True, order=True)
class Fence:
    """One attempt of one upload's job: what every actor of it presents."""

    token: str
    attempt: int = 1

    def __str__(self) -> str:
        return f"{self.token}.{self.attempt}"

    @classmethod
    def parse(cls, text: str) -> Fence:
        """The fence ``str(fence)`` wrote; ValueError for anything else."""
        token, dot, attempt = text.strip().rpartition(".")
        if not dot or not token or not attempt.isdigit() or int(attempt) < 1:
            raise ValueError(f"{text!r} is not a job fence such as 1a2b3c.2")
        return cls(token, int(attempt))

    @classmethod
    def of(cls, document: Mapping) -> Fence:
        return cls(str(document["token"]), int(document.get("attempt", 1)))


@dataclass(frozen=True)
class Upload:
    """The object a job prices: one version of one key."""

    bucket: str
    key: str
    version: str  # the version id (or the ETag in an unversioned bucket)
    token: str
    path: str  # the lane: fast | normal | urgent | auto
    # S3's event sequencer: orders two events of one key (None when the fact has none).
    sequencer: str | None = None


@dataclass(frozen=True)
class Plan:
    """How a job prices, fixed when it begins."""

    engine: str
    threshold: int
    max_parts: int
    runner: str = "fast"  # where the parts run: fast (Lambda) or normal (Batch)
    greeks: bool = False
    bounds: bool = False
    queue: str = ""  # Batch: the lane's job queue
    share: str = ""  # Batch fair share: the share identifier
    # What parts are sized for (the threshold being a ceiling): the runner's time limit and
    # the CPU a part gets. 0: not recorded (a job begun before sizing), the threshold alone.
    lambda_memory_mb: int = 0
    lambda_timeout_seconds: int = 0
    job_vcpus: int = 0
    job_timeout_seconds: int = 0

    def to_dict(self) -> dict:
        return {
            "engine": self.engine,
            "threshold": self.threshold,
            "maxParts": self.max_parts,
            "runner": self.runner,
            "greeks": self.greeks,
            "bounds": self.bounds,
            "queue": self.queue,
            "share": self.share,
            "lambdaMemoryMb": self.lambda_memory_mb,
            "lambdaTimeoutSeconds": self.lambda_timeout_seconds,
            "jobVcpus": self.job_vcpus,
            "jobTimeoutSeconds": self.job_timeout_seconds,
        }

    @classmethod
    def from_dict(cls, found: Mapping) -> Plan:
        return cls(
            engine=str(found["engine"]),
            threshold=int(found["threshold"]),
            max_parts=int(found["maxParts"]),
            runner=str(found.get("runner", "fast")),
            greeks=bool(found.get("greeks", False)),
            bounds=bool(found.get("bounds", False)),
            queue=str(found.get("queue", "")),
            share=str(found.get("share", "")),
            lambda_memory_mb=int(found.get("lambdaMemoryMb", 0)),
            lambda_timeout_seconds=int(found.get("lambdaTimeoutSeconds", 0)),
            job_vcpus=int(found.get("jobVcpus", 0)),
            job_timeout_seconds=int(found.get("jobTimeoutSeconds", 0)),
        )

    @property
    def sized(self) -> bool:
        """Whether parts are sized from the planner's estimate (the limits are recorded)."""
        if self.runner == "fast":
            return self.lambda_timeout_seconds > 0 and self.lambda_memory_mb > 0
        return self.job_timeout_seconds > 0 and self.job_vcpus > 0


# -- facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    """An actor found an upload and asks for its job (a start, an admission, or a failure
    route about an upload that may never have reached a job)."""

    step: str
    upload: Upload
    plan: Plan
    at: float
    # The key's version ids, newest first: which of two uploads is newer, when no
    # sequencer tells.
    versions: tuple[str, ...] = ()
    batch_jobs: Mapping[str, str] = field(default_factory=dict)
    team: str = ""  # the upload's team (its metadata, or the share it runs in): metrics
    route: Mapping | None = None  # the auto lane's choice: {path, reason}


@dataclass(frozen=True)
class Progress:
    """Counters of a running attempt: advisory, monotone, never a change of state."""

    fence: Fence
    at: float
    rows: int | None = None
    parts_total: int | None = None
    parts_done: int | None = None
    missing_parts: tuple[int, ...] | None = None
    failed_part: Mapping | None = None  # {part, error, final}
    cleared_part: int | None = None  # a part priced after it had failed
    # Batch job ids by role; a role already recorded with another id is not overwritten
    # (``Outcome.REFUSED``: the caller's job is a duplicate and must be stopped).
    batch_jobs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Publish:
    """A result (state done) or an error (state failed) was written; end the attempt."""

    step: str
    fence: Fence
    at: float
    state: str  # DONE | FAILED
    result: str | None = None  # s3:// URI of the object written (None: nothing written)
    result_version: str | None = None
    error: str | None = None
    rows: int | None = None
    rows_with_errors: int | None = None
    parts_total: int | None = None
    parts_done: int | None = None
    failed_part: Mapping | None = None
    cost: Mapping | None = None  # the job's usage records so far, totalled (the event's)


@dataclass(frozen=True)
class Cancel:
    """The user's cancel of the running attempt (``fence`` None: whatever runs now)."""

    step: str
    at: float
    fence: Fence | None = None
    reason: str = "cancelled by the user"
    cost: Mapping | None = None


@dataclass(frozen=True)
class Costs:
    """The job's usage records, totalled again (``usage.Cost.to_dict``): records that came
    after its cost was set (a late part, the last actor's own, a Batch event's). About the
    upload's job, whatever its attempt or state; idempotent, and only ever grows it."""

    token: str
    cost: Mapping


@dataclass(frozen=True)
class Reopen:
    """The user's retry: a failed attempt runs again as the next attempt."""

    step: str
    at: float
    fence: Fence | None = None
    force: bool = False  # past the budget guard
    # An auto/ job that failed before its admission planned it has no route: its retry
    # brings one, and the plan of the path it chose. Ignored once the job has a route.
    route: Mapping | None = None
    plan: Plan | None = None


@dataclass(frozen=True)
class ClaimOutbox:
    """An actor takes the outbox to deliver what it holds (or keeps its own claim)."""

    claimant: str
    at: float


@dataclass(frozen=True)
class Delivered:
    """These outbox entries were delivered; the claim ends."""

    claimant: str
    ids: tuple[str, ...]


Fact = Begin | Progress | Publish | Cancel | Reopen | ClaimOutbox | Delivered | Costs


@dataclass(frozen=True)
class Decision:
    """The next document (None: leave the status as it is) and what happened."""

    outcome: Outcome
    document: dict | None = None
    reason: str = ""
    # The document the decision was made on (what the caller's fact met).
    current: dict | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome in (
            Outcome.BEGUN,
            Outcome.REPLACED,
            Outcome.APPLIED,
            Outcome.REPLAYED,
        )

    @property
    def status(self) -> dict | None:
        """The status after the decision: the new document, or the one met."""
        return self.document if self.document is not None else self.current


# -- the table ----------------------------------------------------------------------------


def decide(current: dict | None, fact: Fact, context: Mapping | None = None) -> Decision:
    """The decision for ``fact`` on the status document ``current`` (None: no status yet).

    ``context`` carries what a fact needs to build events (``resultBucket``, ``region``)."""
    context = context or {}
    step = getattr(fact, "step", None)
    if current is not None and step and step in current.get("steps", []):
        return Decision(Outcome.REPLAYED, None, "this step was applied already", current)
    state = current.get("state") if current is not None else None
    rule = _TRANSITIONS.get((type(fact), state)) or _TRANSITIONS.get((type(fact), ANY))
    if rule is None:
        return Decision(Outcome.REFUSED, None, f"not allowed when the job is {state}", current)
    decision = rule(current, fact, context)
    if decision.current is None and current is not None:
        decision = Decision(decision.outcome, decision.document, decision.reason, current)
    return decision


ANY = object()


def _begin_fresh(current: dict | None, fact: Begin, context: Mapping) -> Decision:
    return Decision(Outcome.BEGUN, _new_document(fact, generation=1), "a new job", current)


def _begin_over(current: dict, fact: Begin, context: Mapping) -> Decision:
    """A start met a status: the same upload's job (a duplicate or a crashed start's
    retry), or another upload's, which the newer of the two owns."""
    if current.get("token") == fact.upload.token:
        return Decision(Outcome.UNCHANGED, None, f"the job is {current['state']}", current)
    if not _is_newer(fact, current):
        return Decision(Outcome.OLDER, None, "a newer upload of this key is priced", current)
    document = _new_document(fact, generation=int(current.get("generation", 1)) + 1)
    outbox = list(current.get("outbox", []))
    if current.get("state") == RUNNING:
        document["supersedes"] = current["token"]
        replaced = _ended(
            current,
            SUPERSEDED,
            fact.at,
            error=f"superseded by a newer upload ({fact.upload.token})",
        )
        outbox.extend(_ending_effects(replaced, context))
    document["outbox"] = outbox
    return Decision(Outcome.REPLACED, document, "a newer upload replaced the job", current)


def _progress(current: dict, fact: Progress, context: Mapping) -> Decision:
    refusal = _fenced(current, fact.fence)
    if refusal:
        return refusal
    document = copy.deepcopy(current)
    if fact.rows is not None:
        document["rows"] = fact.rows
    if fact.parts_total is not None:
        document["partsTotal"] = fact.parts_total
    # Part results only accumulate while an attempt runs: a lower count comes from a worker
    # that looked earlier, and never wins.
    if fact.parts_done is not None and fact.parts_done >= int(document.get("partsDone", 0)):
        document["partsDone"] = fact.parts_done
        if fact.missing_parts is not None:
            document["missingParts"] = list(fact.missing_parts)[:MAX_LISTED_MISSING]
    if fact.failed_part is not None:
        document["failedParts"] = _with_failure(document, fact.failed_part, fact.fence)
    if fact.cleared_part is not None:
        document["failedParts"] = [
            failure
            for failure in document.get("failedParts", [])
            if not (
                failure.get("part") == fact.cleared_part
                and failure.get("attempt") == fact.fence.attempt
                and not failure.get("final")
            )
        ]
    jobs = dict(document.get("batchJobs", {}))
    for role, job_id in fact.batch_jobs.items():
        if jobs.get(role, job_id) != job_id:
            return Decision(
                Outcome.REFUSED, None, f"the {role} job is {jobs[role]}, not {job_id}", current
            )
        jobs[role] = job_id
    document["batchJobs"] = jobs
    if _same_counters(document, current):
        return Decision(Outcome.UNCHANGED, None, "nothing new", current)
    document["updatedAt"] = iso(fact.at)
    return Decision(Outcome.APPLIED, document, "progress recorded", current)


def _publish(current: dict, fact: Publish, context: Mapping) -> Decision:
    refusal = _fenced(current, fact.fence)
    if refusal:
        return refusal
    if fact.state not in (DONE, FAILED):
        raise ValueError(f"a job publishes done or failed, not {fact.state}")
    fields: dict = {
        "result": fact.result,
        "resultVersion": fact.result_version,
    }
    for name, value in (
        ("rows", fact.rows),
        ("rowsWithErrors", fact.rows_with_errors),
        ("partsTotal", fact.parts_total),
        ("partsDone", fact.parts_done),
    ):
        if value is not None:
            fields[name] = value
    if fact.failed_part is not None:
        fields["failedParts"] = _with_failure(current, fact.failed_part, fact.fence)
    if _grows(current, fact.cost):
        fields["cost"] = dict(fact.cost)  # type: ignore[arg-type]
    document = _ended(current, fact.state, fact.at, error=fact.error, **fields)
    document["outbox"] = list(current.get("outbox", [])) + _ending_effects(document, context)
    return Decision(Outcome.APPLIED, _remember(document, fact.step), fact.state, current)


def _cancel(current: dict, fact: Cancel, context: Mapping) -> Decision:
    refusal = _fenced(current, fact.fence or Fence.of(current))
    if refusal:
        return refusal
    document = _ended(current, CANCELLED, fact.at, error=fact.reason, result=None)
    document["resultVersion"] = None
    if _grows(current, fact.cost):
        document["cost"] = dict(fact.cost)  # type: ignore[arg-type]
    document["outbox"] = list(current.get("outbox", [])) + _ending_effects(document, context)
    return Decision(Outcome.APPLIED, _remember(document, fact.step), CANCELLED, current)


def _reopen(current: dict, fact: Reopen, context: Mapping) -> Decision:
    fence = fact.fence or Fence.of(current)
    if fence != Fence.of(current):
        return Decision(Outcome.FENCED, None, f"the job is at attempt {current.get('attempt')}")
    document = copy.deepcopy(current)
    document["attempts"] = [
        *current.get("attempts", []),
        {
            "attempt": fence.attempt,
            "state": current["state"],
            "error": current.get("error"),
            "finishedAt": current.get("finishedAt"),
        },
    ]
    document.update(
        attempt=fence.attempt + 1,
        state=RUNNING,
        error=None,
        result=None,
        resultVersion=None,
        failedParts=[],
        batchJobs={},
        finishedAt=None,
        seconds=None,
        updatedAt=iso(fact.at),
        force=bool(fact.force or current.get("force", False)),
    )
    if fact.route is not None and fact.plan is not None and not current.get("route"):
        document.update(route=dict(fact.route), plan=fact.plan.to_dict())
    return Decision(Outcome.APPLIED, _remember(document, fact.step), "reopened", current)


def _not_failed(current: dict | None, fact: Fact, context: Mapping) -> Decision:
    state = current["state"] if current else "absent"
    return Decision(Outcome.REFUSED, None, f"only a failed job can be retried ({state})", current)


def _no_job(current: dict | None, fact: Fact, context: Mapping) -> Decision:
    return Decision(Outcome.REFUSED, None, "there is no job", current)


def _ended_already(current: dict, fact: Fact, context: Mapping) -> Decision:
    fence = getattr(fact, "fence", None)
    if fence is not None and fence != Fence.of(current):
        return _fenced(current, fence) or Decision(Outcome.FENCED, None, "another attempt")
    return Decision(Outcome.ENDED, None, f"the job is {current['state']}", current)


def _claim(current: dict | None, fact: ClaimOutbox, context: Mapping) -> Decision:
    if current is None or not current.get("outbox"):
        return Decision(Outcome.UNCHANGED, None, "nothing to deliver", current)
    claim = current.get("outboxClaim") or {}
    if claim and claim.get("by") != fact.claimant and float(claim.get("until", 0)) > fact.at:
        return Decision(Outcome.REFUSED, None, f"delivery is claimed by {claim['by']}", current)
    document = copy.deepcopy(current)
    document["outboxClaim"] = {"by": fact.claimant, "until": fact.at + OUTBOX_LEASE_SECONDS}
    return Decision(Outcome.APPLIED, document, "claimed", current)


def _costs(current: dict | None, fact: Costs, context: Mapping) -> Decision:
    if current is None:
        return Decision(Outcome.REFUSED, None, "there is no job", current)
    if current.get("token") != fact.token:
        return Decision(Outcome.FENCED, None, "a newer upload of the same key replaced this job")
    if cost_order(fact.cost) <= cost_order(current.get("cost")):
        return Decision(Outcome.UNCHANGED, None, "no more usage than recorded", current)
    document = copy.deepcopy(current)
    # Not a change of state: updatedAt stays (the job commands watch it for outcomes).
    document["cost"] = dict(fact.cost)
    return Decision(Outcome.APPLIED, document, "cost recorded", current)


def _grows(current: Mapping, cost: Mapping | None) -> bool:
    """Whether ``cost`` may replace the document's: a total of at least as many records (a
    terminal step whose listing missed a record another actor's total had keeps that one)."""
    return cost is not None and cost_order(cost) >= cost_order(current.get("cost"))


def cost_order(cost: Mapping | None) -> tuple[int, float]:
    """How far a cost document got: records counted (each is one attempt of one actor),
    then USD. A total of more records replaces one of fewer; never the other way."""
    if not cost:
        return (-1, -1.0)
    return (int(cost.get("attempts", 0)), float(cost.get("usd", 0.0)))


def _delivered(current: dict | None, fact: Delivered, context: Mapping) -> Decision:
    if current is None:
        return Decision(Outcome.UNCHANGED, None, "no status", current)
    document = copy.deepcopy(current)
    document["outbox"] = [e for e in current.get("outbox", []) if e["id"] not in fact.ids]
    if (current.get("outboxClaim") or {}).get("by") == fact.claimant:
        document["outboxClaim"] = None
    if document == current:
        return Decision(Outcome.UNCHANGED, None, "delivered before", current)
    return Decision(Outcome.APPLIED, document, "delivered", current)


_TransitionRule = Callable[[dict | None, Fact, Mapping], Decision]

# (fact, state) -> rule. ``None`` is "no status yet"; ``ANY`` matches any state. Whatever is
# not listed is refused: a fact that met a state it has no rule for changes nothing.
_TRANSITIONS: dict[tuple[type, object], _TransitionRule] = {
    (Begin, None): _begin_fresh,
    (Begin, ANY): _begin_over,
    (Progress, RUNNING): _progress,
    (Publish, RUNNING): _publish,
    (Cancel, RUNNING): _cancel,
    (Reopen, FAILED): _reopen,
    (Reopen, ANY): _not_failed,
    (ClaimOutbox, ANY): _claim,
    (Delivered, ANY): _delivered,
    (Costs, None): _costs,
    (Costs, ANY): _costs,
    **{(kind, None): _no_job for kind in (Progress, Publish, Cancel)},
    **{(kind, s): _ended_already for kind in (Progress, Publish, Cancel) for s in TERMINAL_STATES},
}


# -- reading a document -------------------------------------------------------------------


def owns(document: dict | None, fence: Fence) -> bool:
    """Whether ``fence`` is the document's current, running attempt."""
    return document is not None and Fence.of(document) == fence and document["state"] == RUNNING


def why_not_running(document: dict | None, fence: Fence) -> str | None:
    """Why an actor of ``fence`` must stop (None: it may go on)."""
    if document is None:
        return "the job has no status"
    if document.get("token") != fence.token:
        return "a newer upload of the same key replaced this job"
    if int(document.get("attempt", 1)) != fence.attempt:
        return f"attempt {fence.attempt} was replaced by attempt {document.get('attempt')}"
    if document["state"] != RUNNING:
        return f"the job is {document['state']}"
    return None


def plan_of(document: Mapping) -> Plan:
    return Plan.from_dict(document["plan"])


def missing_parts(total: int, done: set[int] | list[int]) -> list[int]:
    present = set(done)
    return [i for i in range(total) if i not in present][:MAX_LISTED_MISSING]


def iso(seconds: float) -> str:
    """ISO 8601 UTC, milliseconds: how the status and the job event write times."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- building documents -------------------------------------------------------------------


# Versions older than a job's upload that its status remembers (the key's listing when it
# began, newest first): enough for any late event, small enough for a status document.
_OLDER_VERSIONS = 20


def _new_document(fact: Begin, generation: int) -> dict:
    upload = fact.upload
    listed = list(fact.versions)
    older = listed[listed.index(upload.version) + 1 :] if upload.version in listed else []
    return {
        "schema": SCHEMA,
        "input": f"s3://{upload.bucket}/{upload.key}",
        "path": upload.path,
        "version": upload.version,
        "sequencer": upload.sequencer,
        "olderVersions": older[:_OLDER_VERSIONS],
        "olderVersionsTruncated": len(older) > _OLDER_VERSIONS,
        "generation": generation,
        "token": upload.token,
        "attempt": 1,
        "state": RUNNING,
        "plan": fact.plan.to_dict(),
        "engine": fact.plan.engine,
        "rows": 0,
        "rowsWithErrors": 0,
        "partsTotal": 0,
        "partsDone": 0,
        "missingParts": [],
        "failedParts": [],
        "error": None,
        "result": None,
        "resultVersion": None,
        "supersedes": None,
        "batchJobs": dict(fact.batch_jobs),
        "attempts": [],
        "force": False,
        "team": fact.team or None,
        "route": dict(fact.route) if fact.route is not None else None,
        "cost": None,
        "startedAt": iso(fact.at),
        "updatedAt": iso(fact.at),
        "finishedAt": None,
        "seconds": None,
        "outbox": [],
        "outboxClaim": None,
        "steps": [fact.step],
    }


def _ended(current: dict, state: str, at: float, error: str | None, **fields: object) -> dict:
    document = copy.deepcopy(current)
    document.update(fields, state=state, error=error, updatedAt=iso(at), finishedAt=iso(at))
    started = epoch(current.get("startedAt")) or at
    document["seconds"] = round(max(0.0, at - started), 3)
    if state == DONE:
        document.update(missingParts=[], failedParts=[], error=None)
    return document


def _ending_effects(ended: dict, context: Mapping) -> list[dict]:
    """What a terminal state owes the world: its one job event, and (for an attempt that
    did not finish its work) the stop of its Batch jobs that may still run."""
    fence = Fence.of(ended)
    effects = [
        {
            "id": f"event:{fence}:{ended['state']}",
            "kind": "event",
            "detail": job_event_detail(
                ended,
                str(context.get("resultBucket", "")),
                str(context.get("region", "")),
                event_id=f"{fence}:{ended['state']}",
            ),
        }
    ]
    jobs = sorted(set((ended.get("batchJobs") or {}).values()))
    if ended["state"] != DONE and jobs:
        effects.append(
            {
                "id": f"terminate:{fence}",
                "kind": "terminate",
                "jobs": jobs,
                "reason": f"job {fence} is {ended['state']}",
            }
        )
    return effects


def _remember(document: dict, step: str) -> dict:
    document["steps"] = [*document.get("steps", []), step][-REMEMBERED_STEPS:]
    return document


def _with_failure(document: Mapping, failure: Mapping, fence: Fence) -> list[dict]:
    """The failed parts with ``failure`` recorded (one entry per part and attempt)."""
    entry = {**failure, "attempt": fence.attempt}
    kept = [
        f
        for f in document.get("failedParts", [])
        if not (f.get("part") == entry.get("part") and f.get("attempt") == fence.attempt)
    ]
    return sorted([*kept, entry], key=lambda f: (int(f.get("part", -1)), f["attempt"]))


def _fenced(current: dict, fence: Fence) -> Decision | None:
    """The refusal for an actor of ``fence`` when the status is another attempt's."""
    if Fence.of(current) == fence:
        return None
    if current.get("token") != fence.token:
        reason = "a newer upload of the same key replaced this job"
    else:
        reason = f"attempt {fence.attempt} was replaced by attempt {current.get('attempt')}"
    return Decision(Outcome.FENCED, None, reason, current)


def _is_newer(fact: Begin, current: dict) -> bool:
    """Whether the fact's upload is newer than the one ``current`` describes: S3's event
    sequencers when both are known (they order one key's events), else the key's version
    list (newest first), else the fact's (its event is the latest word on the key)."""
    ours, theirs = fact.upload.sequencer, current.get("sequencer")
    if ours and theirs and ours != theirs:
        # Hex strings of possibly different lengths: S3's rule is to right-pad the shorter
        # one with zeros, then compare lexicographically.
        width = max(len(ours), len(theirs))
        return ours.upper().ljust(width, "0") > theirs.upper().ljust(width, "0")
    other = current.get("version")
    order = list(fact.versions)
    ours_known, theirs_known = fact.upload.version in order, other in order
    if ours_known and theirs_known:
        return order.index(fact.upload.version) < order.index(other)
    if ours_known and (
        fact.upload.version in current.get("olderVersions", ())
        or current.get("olderVersionsTruncated")
    ):
        # The fact's listing predates the current upload (its actor listed, then stalled):
        # the current job's own listing put the fact's upload below it (or listed more
        # older versions than it keeps: a newer upload's listing would name the current one).
        return False
    # An upload the key no longer lists (deleted for good, or a run that never made its
    # copy) never replaces one it lists: only the real, newer upload may.
    return ours_known or not theirs_known


_COUNTERS = (
    "rows",
    "partsTotal",
    "partsDone",
    "missingParts",
    "failedParts",
    "batchJobs",
)


def _same_counters(a: Mapping, b: Mapping) -> bool:
    return all(a.get(name) == b.get(name) for name in _COUNTERS)
