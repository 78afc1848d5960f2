"""The job protocol's working half, shared by the Lambda and Batch adapters.

``start`` handles a user's upload: it prices a small file at once, or splits a large one
into parts and returns the manifest for the caller to dispatch. ``price_part`` prices one
part; ``merge`` joins the part results once all are present. Every step is idempotent, so
duplicate events and retries give the same objects, and no step waits for another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.core.csvio import FileError, read_table, result_header, write_csv
from runtime.core.keys import FAST
from runtime.core.manifest import Manifest, merge_results, plan_parts
from runtime.core.pricing import price_table
from runtime.engines import Engine
from runtime.engines.parallel import parallel_engine
from runtime.environment import RuntimeConfig
from runtime.protocol import status as job_status
from runtime.protocol.status import JobStatus

log = logging.getLogger(__name__)

# Parallel S3 writes when a splitter uploads hundreds of parts.
_UPLOAD_THREADS = 16
# Compare-and-swap attempts on the status object before giving up (it is advisory).
_STATUS_ATTEMPTS = 20


@dataclass(frozen=True)
class Outcome:
    """What a step did, for logs, return values and tests."""

    action: str  # priced | split | part-priced | merged | rejected | duplicate | skipped
    detail: str = ""
    manifest: Manifest | None = None


class Pipeline:
    def __init__(
        self,
        store: ObjectStore,
        settings: RuntimeConfig,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.engine = engine or parallel_engine(settings.engine)
        self.clock = clock

    # -- a user's upload ---------------------------------------------------------------

    def start(self, bucket: str, key: str, max_parts: int) -> Outcome:
        """Price ``key`` now, or split it into at most ``max_parts`` parts."""
        path = keys.path_of(key)
        info = self.store.head(bucket, key)
        if info is None:
            return Outcome("skipped", f"s3://{bucket}/{key} no longer exists")
        token = keys.job_token(bucket, key, info.version or info.etag)
        current = self._read_status(key)
        if current and current[0].get("token") == token and current[0]["state"] != "running":
            return Outcome("duplicate", f"upload {token} already {current[0]['state']}")

        status = JobStatus(
            input=f"s3://{bucket}/{key}",
            token=token,
            state="running",
            path=path,
            engine=self.settings.engine,
            started_at=self.clock(),
        )
        try:
            if info.size > self.settings.max_bytes:
                raise FileError(
                    f"file is {info.size} bytes, over the configured limit of "
                    f"{self.settings.max_bytes} bytes"
                )
            body = self.store.get_version(bucket, key, info)
            if body is None:
                return Outcome("skipped", f"s3://{bucket}/{key} changed while being read")
            table = read_table(body, max_rows=self.settings.max_rows)
        except FileError as exc:
            return self._reject(key, status, str(exc))

        status.rows = len(table.records)
        if status.rows <= self.settings.threshold:
            result = price_table(table, self.engine).csv
            self.store.put(self.settings.result_bucket, keys.result_key(key), result)
            self.store.delete(self.settings.result_bucket, [keys.error_key(key)])
            status.parts_total = status.parts_done = 1
            self._finish(key, status, "done")
            return Outcome("priced", f"{status.rows} rows")

        plan = plan_parts(status.rows, self.settings.threshold, max_parts)
        manifest = Manifest(
            token=token,
            path=path,
            input_bucket=bucket,
            input_key=key,
            version=info.version or info.etag,
            engine=self.settings.engine,
            rows=status.rows,
            part_rows=[len(rows) for rows in plan],
            part_keys=[
                keys.fast_part_key(token, i) if path == FAST else keys.batch_part_key(token, i)
                for i in range(len(plan))
            ],
            result_header=result_header(table.header),
            started_at=status.started_at,
        )
        status.parts_total = manifest.parts
        status.missing_parts = job_status.missing_parts(manifest.parts, [])
        # Manifest and status first: the first part may finish before the last is written.
        self.store.put_json(
            self.settings.result_bucket, keys.manifest_key(path, token), asdict(manifest)
        )
        self._write_status(key, self._replace_unless_finished(status))
        part_bucket = bucket if path == FAST else self.settings.result_bucket

        def upload(index: int) -> None:
            records = table.records[plan[index].start : plan[index].stop]
            self.store.put(part_bucket, manifest.part_keys[index], write_csv(table.header, records))

        with ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
            list(pool.map(upload, range(manifest.parts)))
        return Outcome("split", f"{manifest.parts} parts", manifest)

    def _reject(self, key: str, status: JobStatus, message: str) -> Outcome:
        """A whole-file fault: a readable error object where the result would be."""
        bucket = self.settings.result_bucket
        self.store.put(bucket, keys.error_key(key), (message + "\n").encode(), "text/plain")
        self.store.delete(bucket, [keys.result_key(key)])  # a stale result would mislead
        status.error = message
        self._finish(key, status, "failed")
        return Outcome("rejected", message)

    # -- one part ----------------------------------------------------------------------

    def load_manifest(self, path: str, token: str) -> Manifest | None:
        found = self.store.get_json(self.settings.result_bucket, keys.manifest_key(path, token))
        return Manifest(**found[0]) if found else None

    def price_part(self, manifest: Manifest, index: int) -> Outcome:
        """Price part ``index`` unless its result already exists (a duplicate or a retry)."""
        bucket = self.settings.result_bucket
        path, token = manifest.path, manifest.token
        if self.store.head(bucket, keys.lock_key(path, token)):
            return Outcome("duplicate", f"{keys.part_name(index)}: job already merged")
        result_key = keys.part_result_key(path, token, index)
        if self.store.head(bucket, result_key) is None:
            part_bucket = manifest.input_bucket if path == FAST else bucket
            body = self.store.get(part_bucket, manifest.part_keys[index])
            if body is None:
                return Outcome("skipped", f"{keys.part_name(index)}: part object is gone")
            table = read_table(body)  # written by the splitter: cannot raise FileError
            self.store.put(bucket, result_key, price_table(table, self.engine).csv)
        self.store.delete(bucket, [keys.part_failure_key(path, token, index)])
        return Outcome("part-priced", keys.part_name(index), manifest)

    def record_failure(self, manifest: Manifest, index: int, error: str, final: bool) -> None:
        """Make a part's failure visible in the status; ``final`` when no retry follows."""
        failure = {"part": index, "error": error, "final": final, "at": self.clock()}
        self.store.put_json(
            self.settings.result_bucket,
            keys.part_failure_key(manifest.path, manifest.token, index),
            failure,
        )
        last_words = f"{keys.part_name(index)} failed on its last attempt: {error}"
        self.refresh_status(manifest, failure=last_words if final else None)

    def refresh_status(self, manifest: Manifest, failure: str | None = None) -> list[int]:
        """Recount finished and failed parts into the status; returns the finished ones.

        ``failure`` ends the job: the status becomes ``failed`` with that message.
        """
        bucket = self.settings.result_bucket
        done = [
            keys.part_index_of(k)
            for k in self.store.list_keys(
                bucket, keys.results_prefix(manifest.path, manifest.token)
            )
        ]
        failures = []
        for failure_key in self.store.list_keys(
            bucket, keys.failures_prefix(manifest.path, manifest.token)
        ):
            found = self.store.get_json(bucket, failure_key)
            if found:
                failures.append(found[0])

        def update(current: dict | None) -> dict | None:
            if current is None or current.get("token") != manifest.token:
                return None  # a newer upload owns the status now
            if current["state"] in job_status.TERMINAL_STATES:
                return None
            current.update(
                parts_done=len(done),
                missing_parts=job_status.missing_parts(manifest.parts, done),
                failed_parts=sorted(failures, key=lambda f: f["part"]),
                updated_at=self.clock(),
            )
            if failure:
                current.update(state="failed", error=failure, finished_at=self.clock())
            return current

        self._write_status(manifest.input_key, update)
        return done

    # -- the merge ---------------------------------------------------------------------

    def merge_if_complete(self, manifest: Manifest, claimant: str) -> Outcome:
        """Merge once every part result exists; exactly one claimant wins the lock.

        A claimant that won the lock and crashed may come back (a retry carries the same
        claimant name) and finish the merge; anyone else backs off.
        """
        done = self.refresh_status(manifest)
        if len(done) < manifest.parts:
            return Outcome("part-priced", f"{len(done)}/{manifest.parts} parts done", manifest)
        bucket = self.settings.result_bucket
        lock = keys.lock_key(manifest.path, manifest.token)
        claimed = self.store.put_if_absent(bucket, lock, claimant.encode())
        if not claimed and self.store.get(bucket, lock) != claimant.encode():
            return Outcome("duplicate", f"merge claimed by another worker ({claimant} lost)")
        part_results = [
            self.store.get(bucket, keys.part_result_key(manifest.path, manifest.token, i))
            for i in range(manifest.parts)
        ]
        if any(result is None for result in part_results):
            return Outcome("duplicate", "part results already cleaned up by an earlier merge")
        header = write_csv(manifest.result_header, [])
        merged = merge_results(header, part_results)  # type: ignore[arg-type]
        self.store.put(bucket, keys.result_key(manifest.input_key), merged)
        self.store.delete(bucket, [keys.error_key(manifest.input_key)])

        def finish(current: dict | None) -> dict | None:
            if current is None or current.get("token") != manifest.token:
                return None
            now = self.clock()
            current.update(
                state="done",
                parts_done=manifest.parts,
                missing_parts=[],
                failed_parts=[],
                updated_at=now,
                finished_at=now,
                seconds=round(now - manifest.started_at, 3),
            )
            return current

        self._write_status(manifest.input_key, finish)
        self._clean_up(manifest)
        return Outcome("merged", f"{manifest.rows} rows from {manifest.parts} parts", manifest)

    def _clean_up(self, manifest: Manifest) -> None:
        """Remove temporary objects; the lock goes last so late duplicates still see it."""
        bucket = self.settings.result_bucket
        if manifest.path == FAST:
            self.store.delete(manifest.input_bucket, manifest.part_keys)
        prefix = keys.work_prefix(manifest.path, manifest.token)
        lock = keys.lock_key(manifest.path, manifest.token)
        self.store.delete(bucket, [k for k in self.store.list_keys(bucket, prefix) if k != lock])
        self.store.delete(bucket, [lock])

    # -- the status object -------------------------------------------------------------

    def _read_status(self, input_key: str) -> tuple[dict, str] | None:
        return self.store.get_json(self.settings.result_bucket, keys.status_key(input_key))

    def _finish(self, input_key: str, status: JobStatus, state: str) -> None:
        status.state = state
        status.updated_at = status.finished_at = self.clock()
        status.seconds = round(status.finished_at - status.started_at, 3)
        self._write_status(input_key, self._replace_unless_finished(status))

    @staticmethod
    def _replace_unless_finished(status: JobStatus) -> Callable[[dict | None], dict | None]:
        """An update that writes ``status`` unless this same upload already finished."""

        def update(current: dict | None) -> dict | None:
            if (
                current
                and current.get("token") == status.token
                and current["state"] in job_status.TERMINAL_STATES
            ):
                return None
            return status.to_dict()

        return update

    def _write_status(self, input_key: str, update: Callable[[dict | None], dict | None]) -> None:
        """Compare-and-swap the status object so concurrent writers never lose a state."""
        key = keys.status_key(input_key)
        for _ in range(_STATUS_ATTEMPTS):
            current = self._read_status(input_key)
            document = update(current[0] if current else None)
            if document is None:
                return
            etag = current[1] if current else None
            if self.store.put_json_if(self.settings.result_bucket, key, document, etag):
                return
        log.warning("status %s not updated: too many concurrent writers", key)
