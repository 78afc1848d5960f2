"""The job protocol's steps, shared by the Lambda and Batch adapters.

``start`` handles a user's upload: it prices a small file at once, or splits a large one
into parts and returns the manifest for the caller to dispatch. ``price_part`` prices one
part; ``merge`` joins the part results once all are present; ``fail``, ``fail_upload`` and
``cancel`` end a job from the failure paths and the job commands. Every step is idempotent,
so duplicate and late events and retries give the same objects, and no step waits.

What makes a result always the latest upload's (docs/protocol.md, "Job states"):

- the status object is the one place a job's state changes, by compare-and-swap; a newer
  upload of the same key takes it over (generation + 1) and the older job is superseded;
- a job publishes (``-result`` or ``-error``) by writing the object first and then moving
  its status from ``running`` to terminal; when that move is refused (superseded or
  cancelled meanwhile) it deletes exactly the object version it wrote, so a stale job never
  leaves its result behind;
- parts and merges of a job that no longer owns its status stop without pricing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from runtime import logs
from runtime.core import keys
from runtime.core.csvio import FileError, read_table, result_header, write_csv
from runtime.core.keys import FAST
from runtime.core.manifest import Manifest, merge_results, plan_parts
from runtime.core.pricing import price_table
from runtime.engines import Engine
from runtime.environment import RuntimeConfig
from runtime.protocol import status as states
from runtime.protocol.events import EventSink, job_event_detail
from runtime.protocol.status import ConcurrentUpdateError, JobStatus

log = logging.getLogger(__name__)

# Parallel S3 writes when a splitter uploads hundreds of parts.
_UPLOAD_THREADS = 16


@dataclass(frozen=True)
class Outcome:
    """What a step did, for logs, return values and tests."""

    # priced | split | part-priced | merged | rejected | failed | cancelled | duplicate |
    # superseded | stopped | skipped | ignored
    action: str
    detail: str = ""
    manifest: Manifest | None = None
    status: dict | None = None


@dataclass(frozen=True)
class _Job:
    """Which job a step acts for: enough to own (or fail to own) its status."""

    input_bucket: str
    input_key: str
    token: str
    generation: int
    manifest: Manifest | None = field(default=None, compare=False)


class _NullSink:
    def publish(self, detail: dict) -> None:
        log.info("job event (not published): %s", detail)


class JobSteps:
    def __init__(
        self,
        store,
        config: RuntimeConfig,
        engine: Engine | None = None,
        events: EventSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.events = events if events is not None else _NullSink()
        self.clock = clock
        self._engine = engine
        self._engines: dict[str, Engine] = {}

    @property
    def bucket(self) -> str:
        return self.config.result_bucket

    def engine(self, name: str) -> Engine:
        """The injected engine (tests), or ``name`` on every vCPU; a job's parts all price
        with the engine its manifest names, whatever this container's ENGINE says."""
        if self._engine is not None:
            return self._engine
        if name not in self._engines:
            from runtime.engines.parallel import parallel_engine

            self._engines[name] = parallel_engine(name)
        return self._engines[name]

    # -- reading ----------------------------------------------------------------------

    def status(self, input_key: str) -> dict | None:
        return self.store.get_json(self.bucket, keys.status_key(input_key))

    def load_manifest(self, path: str, token: str) -> Manifest | None:
        found = self.store.get_json(self.bucket, keys.manifest_key(path, token))
        return Manifest.from_dict(found) if found else None

    def _stopped(self, job: _Job, publisher: bool = False) -> str | None:
        """Why ``job`` must not go on (it no longer owns its status, or it ended), or None.
        A ``publisher`` (a merge, a failure) that is stopped also takes back whatever it
        published and the status does not show: it may have died between writing its
        result and ending its status, and its retry is the one to clean up."""
        current = self.status(job.input_key)
        owned = current is not None and current.get("token") == job.token
        if owned and current["state"] == states.RUNNING:
            return None
        if publisher:
            self._take_back(job, keep=current.get("result_version") if owned else None)
        if not owned:
            return "a newer upload of the same key replaced this job"
        return f"the job is {current['state']}"

    def _take_back(self, job: _Job, keep: str | None = None) -> None:
        """Delete every version of ``-result`` and ``-error`` that ``job`` wrote but its
        status does not name (``keep``), so an orphan of it can never stay current."""
        for key in (keys.result_key(job.input_key), keys.error_key(job.input_key)):
            for version in self.store.versions(self.bucket, key):
                if version == keep:
                    continue
                found = self.store.head(self.bucket, key, version)
                if found is not None and found.metadata.get("job-token") == job.token:
                    self.store.delete_version(self.bucket, key, version)

    # -- a user's upload --------------------------------------------------------------

    def start(
        self, bucket: str, key: str, max_parts: int, batch_jobs: dict[str, str] | None = None
    ) -> Outcome:
        """Price ``key`` now, or split it into at most ``max_parts`` parts. ``batch_jobs``
        names the Batch manager job doing it, so its failure event finds this job."""
        path = keys.path_of(key)
        problem = keys.upload_problem(key)
        if problem:
            if len(key.encode()) > keys.MAX_UPLOAD_KEY_BYTES:
                # No status or error object fits beside it: the job event is the answer.
                self._emit_without_status(bucket, key, path, f"cannot be priced: {problem}")
                return Outcome("rejected", problem)
            return Outcome("ignored", f"{key}: {problem}")
        info = self.store.head(bucket, key)
        if info is None:
            return self._vanished(bucket, key, path)
        version = info.version or info.etag
        token, written, current = self._begin(bucket, key, path, version, batch_jobs)
        logs.annotate(token=token, inputKey=key)
        if written is None:
            if not current or current.get("token") != token:
                # A retry of a start that died publishing: nothing of ours may stay.
                self._take_back(_Job(bucket, key, token, 0))
                return Outcome("superseded", f"{key}: a newer upload of this key is priced")
            if current["state"] != states.RUNNING:
                return Outcome("duplicate", f"upload {token} already {current['state']}")
            written = current  # a duplicate event, or the retry of a start that crashed
        job = _Job(bucket, key, token, int(written["generation"]))
        try:
            if info.size > self.config.max_bytes:
                raise FileError(
                    f"file is {info.size} bytes, over the configured limit of "
                    f"{self.config.max_bytes} bytes"
                )
            body = self.store.get_exact(bucket, key, info)
            if body is None:  # deleted meanwhile; a newer upload's event supersedes us
                if version in self.store.versions(bucket, key):
                    return Outcome("skipped", f"s3://{bucket}/{key} could not be read now")
                return self.fail(job, "the upload was deleted before it could be priced")
            table = read_table(body, max_rows=self.config.max_rows, greeks=self.config.greeks)
        except FileError as exc:
            return self._publish(job, "error", str(exc), rows=0, action="rejected")

        rows = len(table.records)
        if rows <= self.config.threshold:
            priced = price_table(table, self.engine(self.config.engine), greeks=self.config.greeks)
            return self._publish(
                job,
                "result",
                priced.csv,
                rows=rows,
                rows_with_errors=priced.errors,
                parts_total=1,
                parts_done=1,
                action="priced",
            )
        return self._split(job, path, version, table, max_parts, float(written["started_at"]))

    def _begin(
        self,
        bucket: str,
        key: str,
        path: str,
        version: str,
        batch_jobs: dict[str, str] | None = None,
    ) -> tuple[str, dict | None, dict | None]:
        """Take the key's status for the upload at ``version`` unless it has it already or
        a newer upload does: (token, what was written or None, what was there before). A
        running job of an older upload is superseded, and its one event published here."""
        token = keys.job_token(bucket, key, version)
        now = self.clock()
        fresh = self._new_status(bucket, key, path, version, now)
        fresh.batch_jobs = dict(batch_jobs or {})
        seen: dict = {}
        written = self.store.update_json(
            self.bucket,
            keys.status_key(key),
            states.begin(fresh, self._newer_than(bucket, key, version), seen),
        )
        if "replaced" in seen:
            replaced = dict(seen["replaced"], state=states.SUPERSEDED, finished_at=now)
            replaced["seconds"] = round(now - float(replaced.get("started_at") or now), 3)
            replaced["error"] = f"superseded by a newer upload ({token})"
            self._emit(replaced)
        return token, written, seen.get("current")

    def _split(
        self, job: _Job, path: str, version: str, table, max_parts: int, started_at: float
    ) -> Outcome:
        plan = plan_parts(len(table.records), self.config.threshold, max_parts)
        bodies = [write_csv(table.header, table.records[rows.start : rows.stop]) for rows in plan]
        manifest = Manifest(
            token=job.token,
            path=path,
            input_bucket=job.input_bucket,
            input_key=job.input_key,
            version=version,
            engine=self.config.engine,
            rows=len(table.records),
            part_rows=[len(rows) for rows in plan],
            part_keys=[
                keys.fast_part_key(job.token, i)
                if path == FAST
                else keys.batch_part_key(job.token, i)
                for i in range(len(plan))
            ],
            result_header=result_header(table.header, greeks=self.config.greeks),
            started_at=started_at,
            generation=job.generation,
            greeks=self.config.greeks,
            part_sha256=[_digest(body) for body in bodies],
        )
        # Manifest and status first: the first part may finish before the last is written.
        self.store.put_json(self.bucket, keys.manifest_key(path, job.token), manifest.to_dict())
        self.store.update_json(
            self.bucket,
            keys.status_key(job.input_key),
            states.progress(
                job.token,
                self.clock(),
                rows=manifest.rows,
                parts_total=manifest.parts,
                missing_parts=states.missing_parts(manifest.parts, []),
            ),
        )
        part_bucket = job.input_bucket if path == FAST else self.bucket

        def upload(index: int) -> None:
            self.store.put(part_bucket, manifest.part_keys[index], bodies[index])

        with ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
            list(pool.map(upload, range(manifest.parts)))
        return Outcome("split", f"{manifest.parts} parts", manifest)

    def _newer_than(self, bucket: str, key: str, version: str) -> Callable[[dict], bool]:
        """Whether our upload is newer than the one a status describes. S3 lists a key's
        versions newest first; this matters only when two uploads' starts race."""

        def newer(current: dict) -> bool:
            other = current.get("version")
            if not other or other == version:
                return True
            order = self.store.versions(bucket, key)
            if version not in order or other not in order:
                return True  # unversioned, or the other version is gone: ours is current
            return order.index(version) < order.index(other)

        return newer

    def _vanished(self, bucket: str, key: str, path: str) -> Outcome:
        """The event's object is gone: a late duplicate, or an upload deleted too soon
        (perhaps after its job began, by a start that then died)."""
        reason = "the upload was deleted before it could be priced"
        current = self.status(key)
        if current is None:
            return self.fail_upload(bucket, key, reason)
        split = self.load_manifest(path, current["token"]) is not None
        if current["state"] == states.RUNNING and not split:
            # Its start began the job and died before splitting (this is its retry), or
            # the job never got further: nothing else would ever end it.
            return self.fail_job(key, current["token"], reason, path)
        return Outcome("skipped", f"s3://{bucket}/{key} no longer exists")

    # -- parts ------------------------------------------------------------------------

    def price_part(self, manifest: Manifest, index: int, claimant: str | None) -> Outcome:
        """Price part ``index`` unless its result exists (a duplicate or a retry); then,
        with a ``claimant``, merge if it was the last one (the fast path)."""
        if not 0 <= index < manifest.parts:
            return Outcome("ignored", f"{keys.part_name(index)}: the job has no such part")
        job = self._job(manifest)
        stopped = self._stopped(job)
        if stopped:
            return Outcome("stopped", f"{keys.part_name(index)}: {stopped}", manifest)
        result_key = keys.part_result_key(manifest.path, manifest.token, index)
        if self.store.head(self.bucket, result_key) is None:
            body = self._part_body(manifest, index)
            table = read_table(body)  # written by the splitter: cannot raise FileError
            priced = price_table(table, self.engine(manifest.engine), greeks=manifest.greeks)
            self.store.put(self.bucket, result_key, priced.csv)
        self.store.delete(
            self.bucket, [keys.part_failure_key(manifest.path, manifest.token, index)]
        )
        done = self.finished_parts(manifest)
        self.record_progress(manifest, done)
        if claimant is None or len(done) < manifest.parts:
            detail = f"{keys.part_name(index)}: {len(done)}/{manifest.parts} parts done"
            return Outcome("part-priced", detail, manifest)
        return self.merge(manifest, claimant)

    def _part_body(self, manifest: Manifest, index: int) -> bytes:
        """The part exactly as the splitter wrote it, even if something wrote over it."""
        bucket = manifest.input_bucket if manifest.path == FAST else self.bucket
        key = manifest.part_keys[index]
        expected = manifest.part_sha256[index] if manifest.part_sha256 else None
        body = self.store.get(bucket, key)
        if body is not None and (expected is None or _digest(body) == expected):
            return body
        for version in self.store.versions(bucket, key):  # newest first
            older = self.store.get(bucket, key, version)
            if older is not None and _digest(older) == expected:
                log.warning("%s was written over; priced the splitter's version", key)
                return older
        raise PartLost(f"{keys.part_name(index)}: the part object is gone or was replaced")

    def finished_parts(self, manifest: Manifest) -> set[int]:
        """The parts whose result exists."""
        results = keys.results_prefix(manifest.path, manifest.token)
        done = keys.indexes_in(self.store.list_keys(self.bucket, results), results, ".csv")
        return done & set(range(manifest.parts))

    def record_progress(self, manifest: Manifest, done: set[int]) -> None:
        """Write finished and failed parts into a running job's status. Progress is
        advisory: when hundreds of parts race for the object, a later part's count wins."""
        try:
            self.store.update_json(
                self.bucket,
                keys.status_key(manifest.input_key),
                states.count_parts(
                    manifest.token,
                    self.clock(),
                    done=len(done),
                    missing=states.missing_parts(manifest.parts, sorted(done)),
                    failed=self._failures(manifest),
                ),
            )
        except ConcurrentUpdateError:
            log.warning("progress of %s not recorded: too many concurrent writers", manifest.token)

    def _failures(self, manifest: Manifest) -> list[dict]:
        prefix = keys.failures_prefix(manifest.path, manifest.token)
        listed = self.store.list_keys(self.bucket, prefix)
        failures = []
        for index in sorted(keys.indexes_in(listed, prefix, ".json")):
            found = self.store.get_json(
                self.bucket, keys.part_failure_key(manifest.path, manifest.token, index)
            )
            if found:
                failures.append(found)
        return failures

    def record_part_failure(
        self, manifest: Manifest, index: int, error: str, final: bool
    ) -> Outcome:
        """Make a part's failure visible; ``final`` (no retry follows) fails the job."""
        stopped = self._stopped(self._job(manifest))
        if stopped:  # a late report of a job that already ended or was replaced
            return Outcome("stopped", f"{keys.part_name(index)}: {stopped}", manifest)
        failure = {"part": index, "error": error, "final": final, "at": self.clock()}
        self.store.put_json(
            self.bucket, keys.part_failure_key(manifest.path, manifest.token, index), failure
        )
        if not final:
            self.record_progress(manifest, self.finished_parts(manifest))
            return Outcome("part-failed", f"{keys.part_name(index)}: {error}", manifest)
        return self.fail(
            self._job(manifest), f"{keys.part_name(index)} failed: {error}", manifest=manifest
        )

    # -- the merge --------------------------------------------------------------------

    def merge(self, manifest: Manifest, claimant: str) -> Outcome:
        """Merge once every part result exists; exactly one claimant wins the lock, and a
        claimant that crashed resumes on its retry (it carries the same name)."""
        job = self._job(manifest)
        stopped = self._stopped(job, publisher=True)
        if stopped:
            return Outcome("stopped", f"merge: {stopped}", manifest)
        missing = sorted(set(range(manifest.parts)) - self.finished_parts(manifest))
        if missing:  # checked before the claim, so a merge that cannot run holds no lock
            return Outcome("incomplete", f"parts {missing[:10]} have no result", manifest)
        lock = keys.lock_key(manifest.path, manifest.token)
        claimed = self.store.put_if_absent(self.bucket, lock, claimant.encode())
        if not claimed and self.store.get(self.bucket, lock) != claimant.encode():
            return Outcome("duplicate", f"merge claimed by another worker ({claimant} lost)")
        part_results = [
            self.store.get(self.bucket, keys.part_result_key(manifest.path, manifest.token, i))
            for i in range(manifest.parts)
        ]
        missing = [i for i, part in enumerate(part_results) if part is None]
        if missing:
            return Outcome("incomplete", f"parts {missing[:10]} have no result", manifest)
        header = write_csv(manifest.result_header, [])
        merged = merge_results(header, part_results)  # type: ignore[arg-type]
        return self._publish(
            job,
            "result",
            merged,
            rows=manifest.rows,
            rows_with_errors=_rows_with_errors(merged),
            parts_total=manifest.parts,
            parts_done=manifest.parts,
            action="merged",
            detail=f"{manifest.rows} rows from {manifest.parts} parts",
        )

    # -- ending a job -----------------------------------------------------------------

    def fail(self, job: _Job, reason: str, manifest: Manifest | None = None) -> Outcome:
        """End a running job ``failed``: its ``-error`` says why, and so does the event."""
        stopped = self._stopped(job, publisher=True)
        if stopped:
            return Outcome("stopped", f"{job.input_key}: {stopped}")
        fields: dict = {}
        if manifest is not None:
            fields["failed_parts"] = self._failures(manifest)
        return self._publish(job, "error", reason, action="failed", **fields)

    def fail_job(self, input_key: str, token: str, reason: str, path: str) -> Outcome:
        """``fail`` by token, as the failure paths know it (a Batch job's environment)."""
        current = self.status(input_key)
        if current is None or current.get("token") != token:
            return Outcome("skipped", f"{input_key}: job {token} no longer owns the status")
        if current["state"] != states.RUNNING:
            return Outcome("duplicate", f"{input_key}: job {token} already {current['state']}")
        manifest = self.load_manifest(path, token)
        bucket = current["input"].removeprefix("s3://").partition("/")[0]
        job = _Job(bucket, input_key, token, int(current.get("generation", 1)), manifest)
        return self.fail(job, reason, manifest)

    def fail_upload(
        self, bucket: str, key: str, reason: str, version: str | None = None
    ) -> Outcome:
        """End the job of the upload at ``key`` ``failed``, starting its status if no step
        ever did (an event that never reached a job, a manager that died early).
        ``version`` is the upload the failure is about: an older one than the key's
        current upload is superseded already, and nothing is written for it."""
        path = keys.path_of(key)
        problem = keys.upload_problem(key)
        if problem and len(key.encode()) > keys.MAX_UPLOAD_KEY_BYTES:
            self._emit_without_status(bucket, key, path, f"cannot be priced: {problem}")
            return Outcome("rejected", problem)
        if problem:
            return Outcome("ignored", f"{key}: {problem}")
        info = self.store.head(bucket, key)
        current_version = (info.version or info.etag) if info else None
        if version and current_version and version != current_version:
            return Outcome("superseded", f"{key}: the failure is about an older upload")
        version = current_version or version or "deleted"
        token, written, before = self._begin(bucket, key, path, version)
        current = written or before
        if current is None or current.get("token") != token:
            return Outcome("superseded", f"{key}: a newer upload owns the status")
        if current["state"] != states.RUNNING:
            return Outcome("duplicate", f"{key}: already {current['state']}")
        job = _Job(bucket, key, token, int(current.get("generation", 1)))
        return self.fail(job, reason, self.load_manifest(path, token))

    def cancel(self, input_key: str) -> Outcome:
        """The user's cancel: a running job ends ``cancelled``; nothing of it publishes."""
        current = self.status(input_key)
        if current is None:
            return Outcome("skipped", f"{input_key}: no job")
        if current["state"] != states.RUNNING:
            return Outcome("duplicate", f"{input_key}: the job is already {current['state']}")
        seen: dict = {}
        written = self.store.update_json(
            self.bucket,
            keys.status_key(input_key),
            states.cancel(current["token"], self.clock(), seen),
        )
        if written is None:
            return Outcome("duplicate", f"{input_key}: the job ended meanwhile")
        self._emit(written)
        return Outcome("cancelled", f"{input_key}: job {written['token']}", status=written)

    def reopen(self, input_key: str) -> Outcome:
        """A failed job runs again (the retry command): its ``-error`` goes, parts stay."""
        current = self.status(input_key)
        if current is None or current["state"] != states.FAILED:
            state = current["state"] if current else "absent"
            return Outcome("skipped", f"{input_key}: only a failed job can be retried ({state})")
        written = self.store.update_json(
            self.bucket,
            keys.status_key(input_key),
            states.reopen(current["token"], self.clock()),
        )
        if written is None:
            return Outcome("skipped", f"{input_key}: the job changed meanwhile")
        if current.get("result_version"):
            self.store.delete_version(
                self.bucket, keys.error_key(input_key), current["result_version"]
            )
        path = current["path"]
        token = current["token"]
        # The retry's merge is a new claimant: a claim left by a merge that failed must go.
        stale = self.store.list_keys(self.bucket, keys.failures_prefix(path, token))
        self.store.delete(self.bucket, [*stale, keys.lock_key(path, token)])
        return Outcome(
            "reopened", input_key, self.load_manifest(path, token), status=self.status(input_key)
        )

    # -- publishing -------------------------------------------------------------------

    def _publish(
        self,
        job: _Job,
        kind: str,
        body: bytes | str,
        action: str,
        detail: str = "",
        **fields: object,
    ) -> Outcome:
        """Write ``-result`` (kind "result") or ``-error``, then end the job in the status;
        if the job no longer owns it, take exactly our object version back."""
        if kind == "result":
            key, other, state = (
                keys.result_key(job.input_key),
                keys.error_key(job.input_key),
                states.DONE,
            )
            content, content_type = body, "text/csv"
        else:
            key, other, state = (
                keys.error_key(job.input_key),
                keys.result_key(job.input_key),
                states.FAILED,
            )
            content, content_type = (str(body).rstrip("\n") + "\n").encode(), "text/plain"
            fields.setdefault("error", str(body))
        written_object = self.store.put(
            self.bucket,
            key,
            content,  # type: ignore[arg-type]
            content_type,
            metadata={"job-token": job.token, "job-generation": str(job.generation)},
        )
        seen: dict = {}
        status = self.store.update_json(
            self.bucket,
            keys.status_key(job.input_key),
            states.finish(
                job.token,
                state,
                self.clock(),
                seen,
                result=f"s3://{self.bucket}/{key}",
                result_version=written_object.version,
                **fields,
            ),
        )
        if status is None:
            self.store.delete_version(self.bucket, key, written_object.version)
            current = seen.get("current")
            if current is None or current.get("token") != job.token:
                return Outcome(
                    "superseded", f"{job.input_key}: a newer upload replaced job {job.token}"
                )
            return Outcome(
                "duplicate", f"{job.input_key}: job {job.token} already {current['state']}"
            )
        self._remove_older(other, job.generation)
        self._emit(status)
        if state == states.DONE and job.manifest is not None:
            self._clean_up(job.manifest)
        return Outcome(
            action, detail or status.get("error") or f"{status['rows']} rows", job.manifest, status
        )

    def _remove_older(self, key: str, generation: int) -> None:
        """Remove what an older upload published at ``key`` (its -result when we failed,
        its -error when we succeeded), version by version, never a newer upload's."""
        for _ in range(100):  # each pass removes one version; older ones may surface
            info = self.store.head(self.bucket, key)
            if info is None or int(info.metadata.get("job-generation", "0")) >= generation:
                return
            if info.version is None:
                self.store.delete(self.bucket, [key])
                return
            self.store.delete_version(self.bucket, key, info.version)

    def _emit(self, status: dict) -> None:
        self.events.publish(job_event_detail(status, self.bucket, self.config.region))

    def _new_status(self, bucket: str, key: str, path: str, version: str, now: float) -> JobStatus:
        return JobStatus(
            input=f"s3://{bucket}/{key}",
            token=keys.job_token(bucket, key, version),
            state=states.RUNNING,
            path=path,
            engine=self.config.engine,
            version=version,
            started_at=now,
            updated_at=now,
        )

    def _emit_without_status(self, bucket: str, key: str, path: str, reason: str) -> None:
        now = self.clock()
        status = self._new_status(bucket, key, path, "unprocessable", now)
        status.state, status.error, status.finished_at, status.seconds = (
            states.FAILED,
            reason,
            now,
            0.0,
        )
        self._emit(status.to_dict())

    def _clean_up(self, manifest: Manifest) -> None:
        """Remove temporary objects; the lock goes last so late duplicates still see it."""
        if manifest.path == FAST:
            self.store.delete(manifest.input_bucket, manifest.part_keys)
        prefix = keys.work_prefix(manifest.path, manifest.token)
        lock = keys.lock_key(manifest.path, manifest.token)
        leftovers = [k for k in self.store.list_keys(self.bucket, prefix) if k != lock]
        self.store.delete(self.bucket, leftovers)
        self.store.delete(self.bucket, [lock])

    def _job(self, manifest: Manifest) -> _Job:
        return _Job(
            manifest.input_bucket,
            manifest.input_key,
            manifest.token,
            manifest.generation,
            manifest,
        )


class PartLost(RuntimeError):
    """A part object is gone: no retry can price it, so the job fails."""


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _rows_with_errors(result: bytes) -> int:
    reader = csv.reader(io.StringIO(result.decode("utf-8"), newline=""))
    next(reader, None)
    return sum(1 for record in reader if record and record[-1])
