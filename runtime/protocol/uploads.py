"""Steps for a user's upload: begin its job, then price it at once or split it into parts.

- ``start`` (the fast lane, in the Lambda function): begin, then price or split here;
- ``admit`` (the Batch lanes, in the function): begin, then submit the manager job with the
  job's fence, on the lane's queue, with its fair-share identifier; an ``auto/`` upload is
  planned first, and runs as a fast upload or as a normal one, as the planner says;
- ``manage`` (the Batch manager): price or split, then submit the array and merge jobs.

A job's plan (engine, Greeks, part size, the time limits parts are sized for, the auto
lane's route) is fixed when it begins, and the manifest of a split is written once: a
duplicate start, a retry, or a container with other settings reads them and does the same
work. Before anything is priced, the budget guard (``maxJobUsd``) may end the job
``failed``; a retry with ``--force`` (the status' ``force``) passes it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from runtime import logs
from runtime.core import keys
from runtime.core.csvio import FileError, Table, read_table, result_header, write_csv
from runtime.core.manifest import BATCH_MAX_ARRAY_SIZE, Manifest, plan_parts
from runtime.planning import plan as planner
from runtime.pricing import price_table
from runtime.protocol import lifecycle
from runtime.protocol.core import Action, JobCore, JobRef, StepOutcome
from runtime.protocol.lifecycle import Begin, Fence, Outcome, Progress, Upload

log = logging.getLogger(__name__)

DELETED = "the upload was deleted before it could be priced"
# The version of a scheduled run whose copy was never made (its job can only fail).
NOT_STARTED = "not-started"
URGENT_OFF = "the urgent lane is off in this stack (urgentMaxVcpus = 0)"
# Object metadata naming the team an upload belongs to (fair share).
TEAM_METADATA = "team"
DEFAULT_SHARE = "default"


class Uploads(JobCore):
    # -- the fast lane ----------------------------------------------------------------

    def start(
        self,
        bucket: str,
        key: str,
        actor: str,
        version: str | None = None,
        sequencer: str | None = None,
    ) -> StepOutcome:
        """An upload under ``fast/``: begin its job, then price it here or split it."""
        refused = self._refuse_key(bucket, key, version)
        if refused:
            return refused
        plan = self.plan_from_config(keys.FAST)
        begun = self._begin(bucket, key, version, sequencer, plan, actor, step="start")
        if isinstance(begun, StepOutcome):
            return begun
        return self.run_upload(begun, actor, guard=True)

    # -- scheduled runs ----------------------------------------------------------------

    def run_schedule(
        self, bucket: str, schedule: str, book: str, path: str, scheduled_time: str, actor: str
    ) -> StepOutcome:
        """A schedule's run: copy the standing book ``books/<book>`` to the run's key, an
        ordinary upload of ``path`` whose own event starts its job. The copy is created
        once (``If-None-Match: *``): a repeated delivery of one run starts nothing more. A
        missing book ends the run ``failed``, saying so."""
        try:
            key = keys.scheduled_key(path, schedule, book, scheduled_time)
        except keys.NotAJobKey as exc:
            return StepOutcome(Action.IGNORED, f"schedule {schedule!r}: {exc}")
        logs.annotate(inputKey=key)
        found = self.store.get_with_metadata(bucket, f"{keys.BOOKS}/{book}")
        if found is None:
            reason = f"the book s3://{bucket}/{keys.BOOKS}/{book} does not exist"
            return self.fail_upload(bucket, key, reason, actor, version=NOT_STARTED)
        body, metadata = found
        created = self.store.put_if_absent(bucket, key, body, metadata)
        detail = f"{schedule}: {key}" + ("" if created else " (started before)")
        return StepOutcome(Action.SUBMITTED, detail)

    def schedule_failed(
        self,
        bucket: str,
        schedule: str,
        book: str,
        path: str,
        scheduled_time: str,
        reason: str,
        actor: str,
    ) -> StepOutcome:
        """A run Scheduler could not start (its dead letter), or whose start failed on every
        attempt: unless its copy exists (then its job has its own state), it ends ``failed``."""
        try:
            key = keys.scheduled_key(path, schedule, book, scheduled_time)
        except keys.NotAJobKey as exc:
            return StepOutcome(Action.IGNORED, f"schedule {schedule!r}: {exc}")
        if self.store.head(bucket, key) is not None or self.status(key) is not None:
            status = self.settle(key, actor)  # what its own route may have left undelivered
            return StepOutcome(Action.DUPLICATE, f"{key}: the run started", None, status)
        return self.fail_upload(bucket, key, f"the scheduled run {reason}", actor, NOT_STARTED)

    # -- the Batch lanes --------------------------------------------------------------

    def admit(
        self,
        bucket: str,
        key: str,
        actor: str,
        version: str | None = None,
        sequencer: str | None = None,
    ) -> StepOutcome:
        """An upload under ``normal/`` or ``urgent/``: begin its job and submit its manager
        job; the manager's id is in the status before it runs, so whatever happens to it
        (never placed, cancelled in the queue, killed) ends this job. Under ``auto/``: the
        planner chooses the path first (``admit_auto``)."""
        refused = self._refuse_key(bucket, key, version)
        if refused:
            return refused
        lane = keys.path_of(key)
        info = self.store.head(bucket, key)
        if lane == keys.AUTO:
            return self.admit_auto(bucket, key, actor, version, sequencer, info)
        plan = self.plan_from_config(lane, self._share(info.metadata if info else {}))
        begun = self._begin(bucket, key, version, sequencer, plan, actor, info, step="admit")
        if isinstance(begun, StepOutcome):
            return begun
        job = JobRef.of(begun[0])
        if lane == keys.URGENT and not plan.queue:
            return self.fail(job, URGENT_OFF, actor)
        return self.submit_manager(begun[0], actor)

    def admit_auto(
        self,
        bucket: str,
        key: str,
        actor: str,
        version: str | None,
        sequencer: str | None,
        info: object,
    ) -> StepOutcome:
        """An upload under ``auto/``: plan it, then begin its job on the path the planner
        chooses (``route`` in the status says which and why): the fast path when it is
        estimated to finish within ``autoFastSeconds`` on Lambda, else the normal path. A
        duplicate event follows the route its job took."""
        share = self._share(getattr(info, "metadata", None) or {})
        current = (info.version or info.etag) if info is not None else None  # type: ignore[attr-defined]
        status = self.status(key) if current else None
        table: Table | None = None
        estimate: planner.Plan | None = None
        route: dict | None = None
        lane = keys.FAST
        if current and not (status and status.get("token") == keys.job_token(bucket, key, current)):
            try:
                table = self._read_upload(bucket, key, info)
            except FileError as exc:
                begun = self._begin(
                    bucket, key, version, sequencer, self.plan_from_config(lane, share), actor,
                    info, step="admit",
                )  # fmt: skip
                if isinstance(begun, StepOutcome):
                    return begun
                return self.fail(JobRef.of(begun[0]), str(exc), actor, action=Action.REJECTED)
            if table is not None:
                base = self.plan_from_config(keys.FAST, share)
                estimate = self.estimate(base, table, (keys.FAST, keys.NORMAL))
                lane = estimate.auto_path or keys.NORMAL
                route = {"path": lane, "reason": estimate.auto_reason}
        plan = self.plan_from_config(lane, share)
        begun = self._begin(
            bucket, key, version, sequencer, plan, actor, info, step="admit", route=route
        )
        if isinstance(begun, StepOutcome):
            return begun
        status = begun[0]
        if lifecycle.plan_of(status).runner == keys.FAST:
            return self.run_upload(begun, actor, guard=True, table=table, estimate=estimate)
        return self.submit_manager(status, actor, table=table, estimate=estimate)

    def submit_manager(
        self,
        status: dict,
        actor: str,
        table: Table | None = None,
        estimate: planner.Plan | None = None,
    ) -> StepOutcome:
        """Submit the job's manager once (its id recorded in the status), after the budget
        guard."""
        job = JobRef.of(status)
        fence = job.fence
        if status.get("batchJobs", {}).get("manager"):
            return StepOutcome(Action.DUPLICATE, "the manager job was submitted", None, status)
        refusal = self._guard_upload(status, actor, table, estimate)
        if refusal is not None:
            return refusal
        plan = lifecycle.plan_of(status)
        manager = self.batch.submit_manager(fence, job.input_bucket, job.input_key, plan)
        recorded = self.ledger.apply(
            job.input_key, Progress(fence, self.clock(), batch_jobs={"manager": manager})
        )
        if not recorded.accepted and recorded.outcome is not Outcome.UNCHANGED:
            self.batch.terminate([manager], f"a duplicate of job {fence}'s manager")
            return self.refused(recorded, job, "manager", actor)
        return StepOutcome(Action.SUBMITTED, f"manager job {manager}", None, recorded.status)

    def manage(self, fence: Fence, bucket: str, key: str, actor: str) -> StepOutcome:
        """The Batch manager: price the upload, or split it and submit one array job (a
        child per part) and one merge job that depends on it."""
        self.acting(key, fence.token, keys.NORMAL, "manager")
        status = self.status(key)
        job = JobRef(bucket, key, fence, runner=keys.NORMAL)
        reason = lifecycle.why_not_running(status, fence)
        if reason or status is None:
            self.settle(key, actor)
            return StepOutcome(Action.STOPPED, f"manager: {reason}", None, status, fence)
        recorded = status.get("batchJobs", {}).get("manager")
        if recorded and recorded != actor:
            return StepOutcome(Action.DUPLICATE, f"the manager is job {recorded}", None, status)
        outcome = self.run_upload((status, fence), actor, max_parts=BATCH_MAX_ARRAY_SIZE)
        manifest = outcome.manifest
        if outcome.action is not Action.SPLIT or manifest is None:
            return outcome
        return self.submit_parts(job, manifest, lifecycle.plan_of(status), actor, None, outcome)

    def submit_parts(
        self,
        job: JobRef,
        manifest: Manifest,
        plan: lifecycle.Plan,
        actor: str,
        parts: list[int] | None,
        outcome: StepOutcome | None = None,
    ) -> StepOutcome:
        """Submit the pricing job(s) of ``parts`` (None: all) and the merge job, once per
        attempt: jobs already recorded are not submitted again, and jobs submitted for an
        attempt that ended meanwhile are stopped at once."""
        status = self.status(job.input_key)
        reason = lifecycle.why_not_running(status, job.fence)
        if reason or status is None:
            self.settle(job.input_key, actor)
            return StepOutcome(Action.STOPPED, f"submit: {reason}", manifest, status, job.fence)
        if status.get("batchJobs", {}).get("merge"):
            return StepOutcome(Action.DUPLICATE, "jobs submitted already", manifest, status)
        indexes = parts if parts is not None else list(range(manifest.parts))
        submitted = (
            self.batch.submit_parts(manifest, job.fence, plan, parts)
            if indexes
            else {"merge": self.batch.submit_merge(manifest, job.fence, plan)}
        )
        recorded = self.ledger.apply(
            job.input_key, Progress(job.fence, self.clock(), batch_jobs=submitted)
        )
        if not recorded.accepted and recorded.outcome is not Outcome.UNCHANGED:
            self.batch.terminate(list(submitted.values()), f"job {job.fence} ended")
            return self.refused(recorded, job, "submit", actor)
        jobs = ", ".join(f"{role} job {job_id}" for role, job_id in submitted.items())
        detail = f"{(outcome.detail + ': ') if outcome else ''}{jobs}"
        return StepOutcome(Action.SPLIT, detail, manifest, recorded.status, job.fence)

    # -- beginning --------------------------------------------------------------------

    def _refuse_key(self, bucket: str, key: str, version: str | None) -> StepOutcome | None:
        """The answer by rule for a key that cannot be a job (docs/protocol.md)."""
        problem = keys.upload_problem(key)
        if not problem:
            return None
        if len(key.encode()) > keys.MAX_UPLOAD_KEY_BYTES:
            # No status or error object fits beside it: the job event is the answer.
            self._event_without_status(bucket, key, version, f"cannot be priced: {problem}")
            return StepOutcome(Action.REJECTED, problem)
        return StepOutcome(Action.IGNORED, f"{key}: {problem}")

    def _begin(
        self,
        bucket: str,
        key: str,
        version: str | None,
        sequencer: str | None,
        plan: lifecycle.Plan,
        actor: str,
        info: object = None,
        step: str = "start",
        route: Mapping | None = None,
    ) -> tuple[dict, Fence] | StepOutcome:
        """The job of the key's current upload, begun if no step did yet: (status, fence)
        to go on with, or the outcome for an event that has nothing more to do.

        The current version is priced, whatever version the event names: an event for
        an older version still makes the latest upload priced, should its own event be
        lost; the latest's event is then a duplicate."""
        info = info if info is not None else self.store.head(bucket, key)
        if info is None:
            return self._vanished(bucket, key, version, sequencer, actor)
        current_version = info.version or info.etag  # type: ignore[attr-defined]
        if current_version != version:
            sequencer = None  # the event's sequencer is about another version
        team = self._team(getattr(info, "metadata", None) or {}, plan.share)
        upload, decision = self._apply_begin(
            bucket, key, current_version, sequencer, plan, team=team, route=route
        )
        fence = Fence(upload.token, 1)
        logs.annotate(token=upload.token, inputKey=key)
        if decision.outcome is Outcome.OLDER:
            return StepOutcome(Action.SUPERSEDED, f"{key}: {decision.reason}")
        status = decision.status or {}
        if status.get("token") == upload.token:
            self.acting(key, upload.token, lifecycle.plan_of(status).runner, step)
        if decision.outcome in (Outcome.BEGUN, Outcome.REPLACED):
            self.settle(key, actor)  # the replaced job's event, its stale results
            return status, fence
        if lifecycle.owns(status, fence):  # a duplicate event, or a crashed start's retry
            return status, fence
        # Settled as this step's actor: the retry of an invocation that died delivering the
        # job's event holds the same claim on the outbox, and delivers it at once.
        self.settle(key, actor)
        return StepOutcome(
            Action.DUPLICATE,
            f"upload {upload.token}: the job is "
            f"{status.get('state')} (attempt {status.get('attempt')})",
            None,
            status,
        )

    def _apply_begin(
        self,
        bucket: str,
        key: str,
        version: str,
        sequencer: str | None,
        plan: lifecycle.Plan,
        team: str = "",
        route: Mapping | None = None,
    ) -> tuple[Upload, lifecycle.Decision]:
        """The Begin fact of the upload ``version`` of ``key``, applied to its status (with
        the key's version listing, which orders it against the status' upload)."""
        upload = Upload(
            bucket, key, version, keys.job_token(bucket, key, version), keys.path_of(key), sequencer
        )
        fact = Begin(
            step=f"begin:{upload.token}",
            upload=upload,
            plan=plan,
            at=self.clock(),
            versions=tuple(self.store.versions(bucket, key)),
            team=team,
            route=route,
        )
        return upload, self.ledger.apply(key, fact)

    def _vanished(
        self, bucket: str, key: str, version: str | None, sequencer: str | None, actor: str
    ) -> StepOutcome:
        """The key has no current object: the event's upload was deleted (perhaps after
        its job began, by a start that then died). Unless a newer upload owns the key, that
        upload ends ``failed``; a job that got as far as its parts carries on without it."""
        return self.fail_upload(bucket, key, DELETED, actor, version, sequencer)

    def fail_upload(
        self,
        bucket: str,
        key: str,
        reason: str,
        actor: str,
        version: str | None = None,
        sequencer: str | None = None,
    ) -> StepOutcome:
        """End the first attempt of the upload ``version`` of ``key`` (None: the current
        one) ``failed``, beginning its job if no step ever did (an event that never reached
        a job, an upload deleted before its event). An older upload than the one the
        key's status describes was superseded already, and nothing is written for it."""
        refused = self._refuse_key(bucket, key, version)
        if refused:
            return refused
        info = self.store.head(bucket, key)
        current = (info.version or info.etag) if info else None
        if not version and not current:  # no version named, no current object: an
            # unversioned bucket's deleted upload, which can only be the status' own
            version = (self.status(key) or {}).get("version")
        version = version or current or "deleted"
        plan = self.plan_from_config(keys.path_of(key))
        upload, decision = self._apply_begin(bucket, key, version, sequencer, plan)
        if decision.outcome is Outcome.OLDER:
            return StepOutcome(Action.SUPERSEDED, f"{key}: the failure is about an older upload")
        status = decision.status or {}
        fence = Fence(upload.token, 1)
        if status.get("token") == upload.token and "plan" in status:
            self.acting(key, upload.token, lifecycle.plan_of(status).runner, "failure")
        if decision.outcome not in (Outcome.BEGUN, Outcome.REPLACED) and reason == DELETED:
            # The job of an upload that vanished: one that got as far as its parts carries
            # on without it (they are copies); one that never split can never finish.
            runner = lifecycle.plan_of(status).runner if "plan" in status else keys.FAST
            manifest = self.load_manifest(runner, upload.token)
            if lifecycle.owns(status, fence) and manifest and self._split_complete(manifest):
                self.settle(key, actor)
                return StepOutcome(Action.DUPLICATE, f"{key}: its parts carry on", None, status)
        return self.fail(JobRef(bucket, key, fence), reason, actor)

    # -- pricing or splitting an upload -----------------------------------------------

    def run_upload(
        self,
        begun: tuple[dict, Fence],
        actor: str,
        max_parts: int | None = None,
        guard: bool = False,
        table: Table | None = None,
        estimate: planner.Plan | None = None,
    ) -> StepOutcome:
        """Price the job's upload (exactly the version its status names) at once, or
        split it into parts sized for the runner's time limit (the threshold a ceiling).
        With ``guard``, the budget guard runs first (the Batch lanes' admission ran it)."""
        status, fence = begun
        job = JobRef.of(status)
        plan = lifecycle.plan_of(status)
        # A job that split already (this is a duplicate event, or a retry of a start that
        # died after splitting) follows its manifest: its parts are being priced, so neither
        # the guard nor this container's part sizes or limits may decide anything any more.
        split = self.load_manifest(plan.runner, fence.token)
        if table is None:
            read = self._read_job_upload(status, actor, limits=split is None)
            if isinstance(read, StepOutcome):
                return read
            table = read
        if guard and split is None:
            over = self.over_budget(status, table, estimate)
            if over:
                return self.fail(job, over, actor)
        rows = len(table.records)
        size = split.part_rows[0] if split else self.part_rows(plan, table, max_parts)
        if split is None and rows <= size:
            priced = price_table(
                table, self.engine(plan.engine), greeks=plan.greeks, bounds=plan.bounds
            )
            decision = self.publish(
                job,
                lifecycle.DONE,
                priced.csv,
                actor,
                rows=rows,
                rows_with_errors=priced.errors,
                parts_total=1,
                parts_done=1,
            )
            if decision.accepted:
                return StepOutcome(Action.PRICED, f"{rows} rows", None, decision.status, fence)
            return self.refused(decision, job, "price", actor)
        limit = max_parts or plan.max_parts
        manifest = split or self._manifest(job, plan.runner, table, plan, size, limit, fence)
        self._write_parts(manifest, table, fence.attempt)
        self.ledger.apply(
            job.input_key,
            Progress(
                fence,
                self.clock(),
                rows=manifest.rows,
                parts_total=manifest.parts,
                # Missing parts are recorded with the count they go with (monotone): none
                # done yet, so a re-run split never lowers a count a part raised.
                parts_done=0,
                missing_parts=tuple(lifecycle.missing_parts(manifest.parts, [])),
            ),
        )
        return StepOutcome(Action.SPLIT, f"{manifest.parts} parts", manifest, None, fence)

    # -- the planner: part sizes, the budget guard ------------------------------------

    def estimate(self, plan: lifecycle.Plan, table: Table, paths: Sequence[str]) -> planner.Plan:
        """The planner's estimate for a job's file on ``paths``, from a sample of its rows
        (``planning.plan.SAMPLE_ROWS``), with the job's plan over this container's
        settings."""
        return planner.plan_table(table, self.plan_settings(plan), paths=paths)

    def part_rows(self, plan: lifecycle.Plan, table: Table, max_parts: int | None) -> int:
        """Rows per part: the largest size up to the threshold whose every part the planner
        expects to finish within half the runner's time limit (docs/cost.md). A job begun
        without its limits recorded splits at the threshold."""
        if not plan.sized:
            return plan.threshold
        path = keys.FAST if plan.runner == keys.FAST else keys.NORMAL
        planned = self.estimate(plan, table, (path,)).paths[path]
        if not planned.available or planned.part_rows < 1:
            return plan.threshold
        if planned.parts <= 1:
            return max(planned.part_rows, len(table.records))
        return planned.part_rows

    def over_budget(
        self, status: Mapping, table: Table, estimate: planner.Plan | None = None
    ) -> str | None:
        """Why the budget guard stops the job before it prices anything, or None: off
        (``maxJobUsd`` 0), passed, or a retry with ``--force``."""
        if self.config.max_job_usd <= 0 or status.get("force"):
            return None
        path = str((status.get("route") or {}).get("path") or status.get("path"))
        if path not in planner.PATH_NAMES:
            path = keys.FAST
        if estimate is None or path not in estimate.paths:
            estimate = self.estimate(lifecycle.plan_of(status), table, (path,))
        return estimate.budget.get(path)

    def _guard_upload(
        self,
        status: dict,
        actor: str,
        table: Table | None = None,
        estimate: planner.Plan | None = None,
    ) -> StepOutcome | None:
        """The budget guard where the upload has not been read yet (the Batch lanes'
        admission, a retry of a job that never split): it is read only when the guard is
        on. The outcome of a job it ended, or None to go on."""
        if self.config.max_job_usd <= 0 or status.get("force"):
            return None
        if table is None:
            read = self._read_job_upload(status, actor)
            if isinstance(read, StepOutcome):
                return read
            table = read
        over = self.over_budget(status, table, estimate)
        return self.fail(JobRef.of(status), over, actor) if over else None

    def _read_job_upload(
        self, status: dict, actor: str, limits: bool = True
    ) -> Table | StepOutcome:
        """The table of exactly the upload the job is for, or the outcome of the job ended
        because it is gone or cannot be read (``limits``: this container's ``maxRows`` and
        ``maxBytes``, which a job that split already is past)."""
        plan = lifecycle.plan_of(status)
        try:
            body = self.upload_body(status, limits=limits)
            if body is None:
                return self.fail(JobRef.of(status), DELETED, actor)
            return read_table(
                body,
                max_rows=self.config.max_rows if limits else None,
                greeks=plan.greeks,
                bounds=plan.bounds,
            )
        except FileError as exc:
            return self.fail(JobRef.of(status), str(exc), actor, action=Action.REJECTED)

    def _read_upload(self, bucket: str, key: str, info: object) -> Table | None:
        """The table of exactly the upload ``info`` describes (None once it is gone);
        FileError for a file that cannot be read."""
        size = getattr(info, "size", 0)
        if size > self.config.max_bytes:
            raise FileError(
                f"file is {size} bytes, over the configured limit of {self.config.max_bytes} bytes"
            )
        body = self.store.get_exact(bucket, key, info)
        if body is None:
            return None
        return read_table(
            body,
            max_rows=self.config.max_rows,
            greeks=self.config.greeks,
            bounds=self.config.bounds,
        )

    def _manifest(
        self,
        job: JobRef,
        runner: str,
        table: Table,
        plan: lifecycle.Plan,
        size: int,
        max_parts: int,
        fence: Fence,
    ) -> Manifest:
        """The job's manifest: the one written first, whoever wrote it (its parts are the
        sizes it records, so duplicates and retries split the same way)."""
        existing = self.load_manifest(runner, fence.token)
        if existing is not None:
            return existing
        ranges = plan_parts(len(table.records), size, max_parts)
        bodies = [_part_body(table, rows) for rows in ranges]
        status = self.status(job.input_key) or {}
        manifest = Manifest(
            token=fence.token,
            runner=runner,
            input_bucket=job.input_bucket,
            input_key=job.input_key,
            version=str(status.get("version", "")),
            engine=plan.engine,
            rows=len(table.records),
            part_rows=[len(rows) for rows in ranges],
            result_header=result_header(table.header, greeks=plan.greeks, bounds=plan.bounds),
            greeks=plan.greeks,
            bounds=plan.bounds,
            split_attempt=fence.attempt,
            part_sha256=[_digest(body) for body in bodies],
        )
        key = keys.manifest_key(runner, fence.token)
        if self.store.put_if_absent(self.bucket, key, _json(manifest.to_dict())):
            return manifest
        return self.load_manifest(runner, fence.token) or manifest

    def _write_parts(
        self, manifest: Manifest, table: Table, attempt: int, only: list[int] | None = None
    ) -> None:
        """Write the parts (``only`` those) for ``attempt``, as the manifest planned them,
        skipping those already there as written (a retried splitter, a duplicate start); one
        that something else wrote over is written again, so its event comes."""
        bucket = manifest.part_bucket(self.bucket)

        def write(index: int) -> None:
            key = manifest.part_key(index, attempt)
            rows = manifest.part_range(index)
            body = _part_body(table, rows)
            if manifest.part_sha256 and _digest(body) != manifest.part_sha256[index]:
                raise RuntimeError(f"{keys.part_name(index)} differs from the manifest's")
            if self.store.head(bucket, key) is not None and self.store.get(bucket, key) == body:
                return
            self.store.put(bucket, key, body)

        indexes = only if only is not None else range(manifest.parts)
        if self.upload_threads <= 1:
            # In order, in this thread: a failure stops the rest at once (a pool would go on
            # writing what was already submitted to it)
            for index in indexes:
                write(index)
            return
        with ThreadPoolExecutor(self.upload_threads) as pool:
            list(pool.map(write, indexes))

    def _split_complete(self, manifest: Manifest) -> bool:
        """Whether every part of the split was written: a split that died half-way leaves
        parts that nothing would ever write once its upload is gone."""
        bucket = manifest.part_bucket(self.bucket)
        prefix = manifest.part_key(0).rpartition("/")[0] + "/"
        written = keys.indexes_in(self.store.list_keys(bucket, prefix), prefix, ".csv")
        return written >= set(range(manifest.parts))

    def _team(self, metadata: Mapping[str, str], share: str) -> str:
        """The upload's team for metrics: its ``team`` metadata, else its share."""
        return str(metadata.get(TEAM_METADATA, "")).strip() or share

    def _share(self, metadata: Mapping[str, str]) -> str:
        """The fair-share identifier of an upload: its ``team`` metadata when the stack
        knows that team, else the default share ('' when fair share is off)."""
        if not self.config.fair_share:
            return ""
        team = metadata.get(TEAM_METADATA, "").strip()
        return team if team in self.config.fair_share else DEFAULT_SHARE

    def _event_without_status(
        self, bucket: str, key: str, version: str | None, reason: str
    ) -> None:
        """The one job event of an upload that cannot have a status: its token names the
        upload (its version), and a marker keeps a duplicate delivery from publishing it
        again (a crash between the two repeats the same eventId, which consumers drop)."""
        info = self.store.head(bucket, key)
        upload = (info.version or info.etag) if info is not None else (version or "gone")
        token = keys.job_token(bucket, key, str(upload))
        marker = keys.published_marker_key(keys.path_of(key), token)
        if self.store.head(self.bucket, marker) is not None:
            return
        now = self.clock()
        status = {
            "input": f"s3://{bucket}/{key}",
            "token": token,
            "attempt": 1,
            "state": lifecycle.FAILED,
            "path": keys.path_of(key),
            "error": reason,
            "engine": self.config.engine,
            "startedAt": lifecycle.iso(now),
            "finishedAt": lifecycle.iso(now),
            "seconds": 0.0,
        }
        from runtime.protocol.events import job_event_detail

        self.ledger.events.publish(
            job_event_detail(status, self.bucket, self.config.region, event_id=f"{token}.1:failed")
        )
        self.store.put(self.bucket, marker, b"")


def _part_body(table: Table, rows: range) -> bytes:
    return write_csv(table.header, table.records[rows.start : rows.stop])


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _json(document: dict) -> bytes:
    import json

    return json.dumps(document, indent=2, sort_keys=True).encode()
