"""Steps for a split job: price a part, record a part's failure, merge the parts.

Part results are shared by every attempt of a job (its manifest is written once, and
prices are deterministic), so a retry re-prices only what is missing. Every step presents
its attempt's fence: a part or merge of an attempt that ended, or of an older upload,
stops without pricing, and a merge that lost takes back what it published.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging

from runtime.core import keys
from runtime.core.csvio import read_table, write_csv
from runtime.core.manifest import Manifest, merge_results
from runtime.pricing import price_table
from runtime.protocol import lifecycle
from runtime.protocol.core import Action, JobCore, JobRef, StepOutcome
from runtime.protocol.ledger import ConcurrentUpdateError
from runtime.protocol.lifecycle import Fence, Progress

log = logging.getLogger(__name__)


class PartLost(RuntimeError):
    """A part object is gone: no retry can price it, so the job fails."""


class Parts(JobCore):
    def price_part(
        self, manifest: Manifest, fence: Fence, index: int, actor: str, merge: bool
    ) -> StepOutcome:
        """Price part ``index`` unless its result exists (a duplicate or a retry); then,
        with ``merge`` (the fast path), merge if it was the last one."""
        if not 0 <= index < manifest.parts:
            return StepOutcome(Action.IGNORED, f"{keys.part_name(index)}: the job has no such part")
        self.acting(manifest.input_key, fence.token, manifest.runner, keys.part_name(index))
        job = JobRef(manifest.input_bucket, manifest.input_key, fence, manifest)
        status = self.status(manifest.input_key)
        reason = lifecycle.why_not_running(status, fence)
        if reason:
            self.settle(manifest.input_key, actor)
            return StepOutcome(
                Action.STOPPED, f"{keys.part_name(index)}: {reason}", manifest, status, fence
            )
        result_key = keys.part_result_key(manifest.runner, manifest.token, index)
        if self.store.head(self.bucket, result_key) is None:
            table = read_table(self._part_body(manifest, index, fence.attempt))
            priced = price_table(
                table,
                self.engine(manifest.engine),
                greeks=manifest.greeks,
                bounds=manifest.bounds,
            )
            self.store.put(self.bucket, result_key, priced.csv)
        done = self.finished_parts(manifest)
        self.record_progress(job, done, cleared=index)
        if not merge or len(done) < manifest.parts:
            detail = f"{keys.part_name(index)}: {len(done)}/{manifest.parts} parts done"
            return StepOutcome(Action.PART_PRICED, detail, manifest, None, fence)
        return self.merge(manifest, fence, actor)

    def _part_body(self, manifest: Manifest, index: int, attempt: int) -> bytes:
        """The part exactly as the splitter wrote it: the attempt's copy, else the split's,
        even if something wrote over it (the manifest holds each part's SHA-256)."""
        bucket = manifest.part_bucket(self.bucket)
        expected = manifest.part_sha256[index] if manifest.part_sha256 else None
        for key in dict.fromkeys((manifest.part_key(index, attempt), manifest.part_key(index))):
            body = self.store.get(bucket, key)
            if body is not None and (expected is None or _digest(body) == expected):
                return body
            for version in self.store.versions(bucket, key):  # newest first
                older = self.store.get(bucket, key, version)
                if older is not None and _digest(older) == expected:
                    log.warning("%s was written over; priced the splitter's version", key)
                    return older
        raise PartLost(f"{keys.part_name(index)}: the part object is gone or was replaced")

    def record_progress(self, job: JobRef, done: set[int], cleared: int | None = None) -> None:
        """Write finished parts into a running attempt's status. Progress is advisory:
        when hundreds of parts race for the object, a later part's count wins, and one
        that cannot get through is logged, never a failure of the part."""
        manifest = job.manifest
        assert manifest is not None
        try:
            self.ledger.apply(
                job.input_key,
                Progress(
                    job.fence,
                    self.clock(),
                    parts_done=len(done),
                    missing_parts=tuple(lifecycle.missing_parts(manifest.parts, done)),
                    cleared_part=cleared,
                ),
            )
        except ConcurrentUpdateError:
            log.warning("progress of %s not recorded: too many concurrent writers", job.fence)

    def part_failed(
        self, manifest: Manifest, fence: Fence, index: int, error: str, final: bool, actor: str
    ) -> StepOutcome:
        """Make a part's failure visible; ``final`` (no retry follows) fails the attempt."""
        self.acting(manifest.input_key, fence.token, manifest.runner, keys.part_name(index))
        job = JobRef(manifest.input_bucket, manifest.input_key, fence, manifest)
        failure = {
            "part": index,
            "error": error,
            "final": final,
            "at": lifecycle.iso(self.clock()),
        }
        if final:
            return self.fail(
                job, f"{keys.part_name(index)} failed: {error}", actor, failed_part=failure
            )
        decision = self.ledger.apply(
            manifest.input_key, Progress(fence, self.clock(), failed_part=failure)
        )
        if not decision.accepted:
            return self.refused(decision, job, keys.part_name(index), actor)
        return StepOutcome(
            Action.PART_FAILED, f"{keys.part_name(index)}: {error}", manifest, None, fence
        )

    # -- the merge --------------------------------------------------------------------

    def merge(self, manifest: Manifest, fence: Fence, actor: str) -> StepOutcome:
        """Merge once every part result exists; exactly one claimant per attempt wins the
        lock, and a claimant that crashed resumes on its retry (it carries the same
        name: Lambda keeps the request id, Batch the job id)."""
        self.acting(manifest.input_key, fence.token, manifest.runner, "merge")
        job = JobRef(manifest.input_bucket, manifest.input_key, fence, manifest)
        status = self.status(manifest.input_key)
        reason = lifecycle.why_not_running(status, fence)
        if reason:
            self.settle(manifest.input_key, actor)
            return StepOutcome(Action.STOPPED, f"merge: {reason}", manifest, status, fence)
        missing = sorted(set(range(manifest.parts)) - self.finished_parts(manifest))
        if missing:  # checked before the claim, so a merge that cannot run holds no lock
            return StepOutcome(
                Action.INCOMPLETE, f"parts {missing[:10]} have no result", manifest, None, fence
            )
        lock = keys.lock_key(manifest.runner, manifest.token, fence.attempt)
        claimed = self.store.put_if_absent(self.bucket, lock, actor.encode())
        if not claimed and self.store.get(self.bucket, lock) != actor.encode():
            return StepOutcome(
                Action.DUPLICATE, f"merge claimed by another worker ({actor} lost)", manifest
            )
        part_results = [
            self.store.get(self.bucket, keys.part_result_key(manifest.runner, manifest.token, i))
            for i in range(manifest.parts)
        ]
        lost = [i for i, part in enumerate(part_results) if part is None]
        if lost:
            return StepOutcome(
                Action.INCOMPLETE, f"parts {lost[:10]} have no result", manifest, None, fence
            )
        header = write_csv(manifest.result_header, [])
        merged = merge_results(header, part_results)  # type: ignore[arg-type]
        decision = self.publish(
            job,
            lifecycle.DONE,
            merged,
            actor,
            rows=manifest.rows,
            rows_with_errors=_rows_with_errors(merged),
            parts_total=manifest.parts,
            parts_done=manifest.parts,
        )
        if not decision.accepted:
            return self.refused(decision, job, "merge", actor)
        detail = f"{manifest.rows} rows from {manifest.parts} parts"
        return StepOutcome(Action.MERGED, detail, manifest, decision.status, fence)


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _rows_with_errors(result: bytes) -> int:
    """Rows whose last column (``error``) is set. Fields may be as long as the input's
    (an error text quotes a value), so the csv module's field limit does not apply."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, len(result)))
    try:
        reader = csv.reader(io.StringIO(result.decode("utf-8"), newline=""))
        next(reader, None)
        return sum(1 for record in reader if record and record[-1])
    finally:
        csv.field_size_limit(previous)
