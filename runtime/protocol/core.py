"""What every protocol step shares: its context (S3, the ledger, Batch, the engines) and
the two ways a job leaves its mark, publishing a result or an error, and settling.

Steps never decide a state themselves: they read what the world holds, hand a fact to
``runtime.protocol.lifecycle`` through the ledger, and act on the decision.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from runtime.core import keys
from runtime.core.csvio import FileError
from runtime.core.manifest import Manifest
from runtime.engines import Engine
from runtime.environment import RuntimeConfig
from runtime.planning.settings import PlanSettings
from runtime.planning.usage import FAILED as USAGE_FAILED
from runtime.planning.usage import SUCCEEDED as USAGE_SUCCEEDED
from runtime.protocol import costs, lifecycle
from runtime.protocol.events import EventSink
from runtime.protocol.ledger import ConcurrentUpdateError, Ledger, publication_metadata
from runtime.protocol.lifecycle import Costs, Decision, Fence, Outcome, Publish

log = logging.getLogger(__name__)


class Action(StrEnum):
    """What a step did: the answer adapters log, return and test."""

    PRICED = "priced"  # an unsplit file priced and published
    SPLIT = "split"  # parts written (and, on Batch, their jobs submitted)
    SUBMITTED = "submitted"  # a Batch manager job submitted for an upload
    PART_PRICED = "part-priced"
    PART_FAILED = "part-failed"  # recorded; a retry follows
    MERGED = "merged"
    INCOMPLETE = "incomplete"  # a merge with parts still missing
    REJECTED = "rejected"  # the file cannot be priced: its job failed, or its key
    FAILED = "failed"
    CANCELLED = "cancelled"
    REOPENED = "reopened"
    DUPLICATE = "duplicate"  # done before, or by another actor of the same attempt
    STOPPED = "stopped"  # the attempt ended or was fenced out: nothing done
    SUPERSEDED = "superseded"  # the upload is older than the one its key's status has
    IGNORED = "ignored"  # not a job's object, by rule


@dataclass(frozen=True)
class StepOutcome:
    action: Action
    detail: str = ""
    manifest: Manifest | None = None
    status: dict | None = None
    fence: Fence | None = None


class BatchService(Protocol):
    """What the protocol asks of AWS Batch (``runtime.adapters.batch_queue``)."""

    def submit_manager(self, fence: Fence, bucket: str, key: str, plan: lifecycle.Plan) -> str: ...

    def submit_parts(
        self, manifest: Manifest, fence: Fence, plan: lifecycle.Plan, parts: list[int] | None
    ) -> dict[str, str]: ...

    def submit_merge(self, manifest: Manifest, fence: Fence, plan: lifecycle.Plan) -> str: ...

    def terminate(self, job_ids: list[str], reason: str) -> None: ...


@dataclass(frozen=True)
class JobRef:
    """The job an actor acts for: enough to publish for it."""

    input_bucket: str
    input_key: str
    fence: Fence
    manifest: Manifest | None = None
    runner: str = ""  # where its parts run (and its work area is): fast | normal

    @classmethod
    def of(cls, status: Mapping, manifest: Manifest | None = None) -> JobRef:
        bucket, _, key = str(status["input"]).removeprefix("s3://").partition("/")
        runner = str((status.get("plan") or {}).get("runner", ""))
        return cls(bucket, key, Fence.of(status), manifest, runner)


class _LoggedEvents:
    def publish(self, detail: dict) -> None:
        log.info("job event (not published): %s", detail)


class JobCore:
    def __init__(
        self,
        store: Any,
        config: RuntimeConfig,
        engine: Engine | None = None,
        events: EventSink | None = None,
        batch: BatchService | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        # Parallel S3 writes when a splitter uploads hundreds of parts.
        self.upload_threads = 16
        self._engine = engine
        self._engines: dict[str, Engine] = {}
        self._batch = batch
        self.ledger = Ledger(
            store,
            config.result_bucket,
            events if events is not None else _LoggedEvents(),
            lambda: self._batch,
            {"resultBucket": config.result_bucket, "region": config.region},
            clock,
            sleep,
        )
        self.usage = costs.UsageLog(store, config.result_bucket, config.prices)
        # What this process's S3 requests are counted with (None: not a botocore client)
        self.requests = costs.request_counter(getattr(store, "client", None))

    @property
    def bucket(self) -> str:
        return self.config.result_bucket

    @property
    def batch(self) -> BatchService:
        if self._batch is None:
            raise RuntimeError("this step needs AWS Batch, and no Batch client was given")
        return self._batch

    def engine(self, name: str) -> Engine:
        """The injected engine (tests), or ``name`` on every vCPU; a job prices with the
        engine its plan names, whatever this container's ENGINE says."""
        if self._engine is not None:
            return self._engine
        if name not in self._engines:
            from runtime.engines.parallel import parallel_engine

            self._engines[name] = parallel_engine(name, self.config.cpu_limits)
        return self._engines[name]

    # -- reading ----------------------------------------------------------------------

    def status(self, input_key: str) -> dict | None:
        return self.ledger.read(input_key)

    def load_manifest(self, runner: str, token: str) -> Manifest | None:
        found = self.store.get_json(self.bucket, keys.manifest_key(runner, token))
        return Manifest.from_dict(found) if found else None

    def plan_from_config(self, lane: str, share: str = "") -> lifecycle.Plan:
        """The plan a new job of ``lane`` gets from this container's settings."""
        config = self.config
        settings = config.plan_settings()
        queue = config.urgent_job_queue if lane == keys.URGENT else config.job_queue
        return lifecycle.Plan(
            engine=config.engine,
            threshold=config.threshold,
            max_parts=config.max_parts,
            runner=keys.NORMAL if lane in keys.BATCH_LANES else keys.FAST,
            greeks=config.greeks,
            bounds=config.bounds,
            queue=queue if lane in keys.BATCH_LANES else "",
            share=share,
            lambda_memory_mb=settings.lambda_memory_mb,
            lambda_timeout_seconds=settings.lambda_timeout_seconds,
            job_vcpus=settings.job_vcpus,
            job_timeout_seconds=settings.job_timeout_seconds,
        )

    def plan_settings(self, plan: lifecycle.Plan) -> PlanSettings:
        """The planner's settings for a job: this container's, with what the job's plan
        fixed when it began (engine, Greeks, part size, time limits)."""
        settings = replace(
            self.config.plan_settings(),
            engine=plan.engine,
            greeks=plan.greeks,
            threshold=plan.threshold,
            max_parts=plan.max_parts,
        )
        recorded = {
            "lambda_memory_mb": plan.lambda_memory_mb,
            "lambda_timeout_seconds": plan.lambda_timeout_seconds,
            "job_vcpus": plan.job_vcpus,
            "job_timeout_seconds": plan.job_timeout_seconds,
        }
        return replace(settings, **{name: value for name, value in recorded.items() if value})

    # -- usage and cost ---------------------------------------------------------------

    def acting(self, input_key: str, token: str, runner: str, step: str) -> None:
        """The running actor (a Lambda invocation, a Batch attempt) works on this job."""
        costs.act(input_key, token, runner, step)

    @contextlib.contextmanager
    def metered(self, actor: costs.Actor) -> Iterator[costs.Actor]:
        """Run an actor's work: its usage record is written when it ends, by a return or
        an exception (a process that dies writes nothing: the route that reports its death
        records it). Recording never fails the work."""
        actor.meter.start()
        with costs.acting(actor):
            try:
                yield actor
            except Exception:
                self.finish_actor(actor, USAGE_FAILED)
                raise
            self.finish_actor(actor, USAGE_SUCCEEDED)

    def finish_actor(self, actor: costs.Actor, outcome: str) -> None:
        """Write the actor's record, then, if its job has ended, total its cost again (one
        GET of the status when it runs): the record may have come after the last total,
        and no other actor would count it."""
        try:
            if self.usage.write(actor, outcome):
                self.update_cost(actor.input_key, actor.token, actor.runner)
        except (ConcurrentUpdateError, OSError, ValueError, RuntimeError) as exc:
            log.warning("usage of %s not recorded: %s", actor.name, exc)
        except Exception as exc:  # botocore's errors: metering never fails a job
            log.warning("usage of %s not recorded: %s: %s", actor.name, type(exc).__name__, exc)

    def job_cost(self, input_key: str, token: str, runner: str) -> dict | None:
        """The job's cost now: the running actor's record so far (when it works on this
        job) written first, then every record totalled. None when the records cannot be
        read: a job ends all the same, and a later actor totals them (``update_cost``)."""
        actor = costs.current_actor()
        try:
            if actor is not None and actor.token == token:
                self.usage.write(actor, USAGE_SUCCEEDED)
            return self.usage.cost(runner, token).to_dict()
        except Exception as exc:  # botocore's errors: metering never fails a job
            log.warning("cost of %s not totalled: %s: %s", input_key, type(exc).__name__, exc)
            return None

    def recount_cost(self, runner: str, token: str) -> None:
        """Total again the cost of a job whose work area is gone, named by its token alone
        (a late event of one of its parts): the retry of an invocation that died between
        writing its usage record and totalling it finds no job to act for, and this is
        the one chance to count that record. Its records name the job's key."""
        try:
            found = self.store.list_keys(self.bucket, keys.usage_prefix(runner, token))
            document = self.store.get_json(self.bucket, found[0]) if found else None
            if document and document.get("inputKey"):
                self.update_cost(str(document["inputKey"]), token, runner)
        except Exception as exc:  # botocore's errors: metering never fails a job
            log.warning("cost of job %s not totalled: %s: %s", token, type(exc).__name__, exc)

    def update_cost(self, input_key: str, token: str, runner: str) -> None:
        """Total the cost of a job that ended again (records came after its cost was set);
        a running job's cost is set when it ends, so no part writes its status for it."""
        status = self.status(input_key)
        if status is None or status.get("token") != token or status["state"] == lifecycle.RUNNING:
            return
        cost = self.usage.cost(runner, token).to_dict()
        self.ledger.apply(input_key, Costs(token, cost))

    def runner_of(self, job: JobRef) -> str:
        if job.runner:
            return job.runner
        if job.manifest is not None:
            return job.manifest.runner
        status = self.status(job.input_key) or {}
        return str((status.get("plan") or {}).get("runner") or keys.FAST)

    # -- leaving a mark ---------------------------------------------------------------

    def publish(
        self,
        job: JobRef,
        state: str,
        body: bytes | str,
        actor: str,
        **fields: Any,
    ) -> Decision:
        """Write ``-result`` (state done) or ``-error`` (state failed), then end the attempt
        in the status. If the status does not name what we wrote (the attempt ended or
        was fenced out meanwhile, or this is a retry of a publish that committed), the
        version we wrote is taken back."""
        if state == lifecycle.DONE:
            key, content, content_type = keys.result_key(job.input_key), body, "text/csv"
        else:
            key, content_type = keys.error_key(job.input_key), "text/plain"
            content = (str(body).rstrip("\n") + "\n").encode()
            fields.setdefault("error", str(body))
        written = self.store.put(
            self.bucket,
            key,
            content,  # type: ignore[arg-type]
            content_type,
            metadata=publication_metadata(job.fence),
        )
        runner = self.runner_of(job)
        self.acting(job.input_key, job.fence.token, runner, "")
        decision = self.ledger.apply(
            job.input_key,
            Publish(
                step=f"publish:{job.fence}:{actor}",
                fence=job.fence,
                at=self.clock(),
                state=state,
                result=f"s3://{self.bucket}/{key}",
                result_version=written.version,
                cost=self.job_cost(job.input_key, job.fence.token, runner),
                **fields,
            ),
        )
        status = decision.status or {}
        if status.get("resultVersion") != written.version or not decision.accepted:
            self.store.delete_version(self.bucket, key, written.version)
        self.settle(job.input_key, actor)
        return decision

    def settle(self, input_key: str, actor: str) -> dict | None:
        return self.ledger.settle(input_key, actor)

    def refused(self, decision: Decision, job: JobRef, what: str, actor: str) -> StepOutcome:
        """The outcome of an actor whose fact the lifecycle did not accept: it settles the
        job (delivering what a dead actor left, taking back what nobody names)."""
        status = self.settle(job.input_key, actor)
        action = Action.DUPLICATE if decision.outcome is Outcome.ENDED else Action.STOPPED
        return StepOutcome(action, f"{what}: {decision.reason}", job.manifest, status, job.fence)

    def fail(
        self,
        job: JobRef,
        reason: str,
        actor: str,
        failed_part: dict | None = None,
        action: Action = Action.FAILED,
    ) -> StepOutcome:
        """End a running attempt ``failed``: its ``-error`` says why, and so does the event."""
        status = self.status(job.input_key)
        why = lifecycle.why_not_running(status, job.fence)
        if why:
            ours = status is not None and Fence.of(status) == job.fence
            self.settle(job.input_key, actor)
            state = Action.DUPLICATE if ours else Action.STOPPED
            return StepOutcome(state, f"{job.input_key}: {why}", job.manifest, status, job.fence)
        decision = self.publish(job, lifecycle.FAILED, reason, actor, failed_part=failed_part)
        if not decision.accepted:
            return self.refused(decision, job, job.input_key, actor)
        return StepOutcome(action, reason, job.manifest, decision.status, job.fence)

    def upload_body(self, status: dict, limits: bool = True) -> bytes | None:
        """The bytes of exactly the upload the job prices, or None once it is gone (a
        newer upload may be current: a job prices its own version all the same). Without
        ``limits`` (a job that split already: its manifest decided) ``maxBytes`` is not
        checked again."""
        bucket, _, key = status["input"].removeprefix("s3://").partition("/")
        version = status["version"]
        info = self.store.head(bucket, key)
        if info is None or (info.version or info.etag) != version:
            versions = self.store.versions(bucket, key)
            info = self.store.head(bucket, key, version) if version in versions else None
        if info is None:
            return None
        if limits and info.size > self.config.max_bytes:
            raise FileError(
                f"file is {info.size} bytes, over the configured limit of "
                f"{self.config.max_bytes} bytes"
            )
        return self.store.get_exact(bucket, key, info)

    def finished_parts(self, manifest: Manifest) -> set[int]:
        """The parts whose result exists."""
        results = keys.results_prefix(manifest.runner, manifest.token)
        done = keys.indexes_in(self.store.list_keys(self.bucket, results), results, ".csv")
        return done & set(range(manifest.parts))
