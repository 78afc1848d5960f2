"""What every protocol step shares: its context (S3, the ledger, Batch, the engines) and
the two ways a job leaves its mark, publishing a result or an error, and settling.

Steps never decide a state themselves: they read what the world holds, hand a fact to
``runtime.protocol.lifecycle`` through the ledger, and act on the decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from runtime.core import keys
from runtime.core.csvio import FileError
from runtime.core.manifest import Manifest
from runtime.engines import Engine
from runtime.environment import RuntimeConfig
from runtime.protocol import lifecycle
from runtime.protocol.events import EventSink
from runtime.protocol.ledger import Ledger, publication_metadata
from runtime.protocol.lifecycle import Decision, Fence, Outcome, Publish

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

    @classmethod
    def of(cls, status: Mapping, manifest: Manifest | None = None) -> JobRef:
        bucket, _, key = str(status["input"]).removeprefix("s3://").partition("/")
        return cls(bucket, key, Fence.of(status), manifest)


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
        )

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
        decision = self.ledger.apply(
            job.input_key,
            Publish(
                step=f"publish:{job.fence}:{actor}",
                fence=job.fence,
                at=self.clock(),
                state=state,
                result=f"s3://{self.bucket}/{key}",
                result_version=written.version,
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

    def upload_body(self, status: dict) -> bytes | None:
        """The bytes of exactly the upload the job prices, or None once it is gone (a
        newer upload may be current: a job prices its own version all the same)."""
        bucket, _, key = status["input"].removeprefix("s3://").partition("/")
        version = status["version"]
        info = self.store.head(bucket, key)
        if info is None or (info.version or info.etag) != version:
            versions = self.store.versions(bucket, key)
            info = self.store.head(bucket, key, version) if version in versions else None
        if info is None:
            return None
        if info.size > self.config.max_bytes:
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
