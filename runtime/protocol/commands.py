"""Steps that end or restart a job from outside its own work: the failure routes (Lambda's
on-failure records, Batch's state-change events, dead letters) and the user's commands
(cancel, retry).

Every failure is about one attempt of one upload: a route that knows the attempt presents
its fence, and one about an upload event (which is always about the upload's first
attempt) begins that upload's job if no step ever did, so no upload is left without a
state.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from runtime.core import keys
from runtime.core.csvio import FileError, read_table
from runtime.protocol import lifecycle
from runtime.protocol.core import Action, JobRef, StepOutcome
from runtime.protocol.lifecycle import Cancel, Fence, Outcome, Reopen
from runtime.protocol.parts import Parts
from runtime.protocol.uploads import DELETED, URGENT_OFF, Uploads

log = logging.getLogger(__name__)


class Commands(Uploads, Parts):
    def fail_fence(self, input_key: str, fence: Fence, reason: str, actor: str) -> StepOutcome:
        """``fail`` for a route that knows the attempt (a Batch job's environment, the
        key of a fast part, a command's payload)."""
        status = self.status(input_key)
        if status is None:
            return StepOutcome(Action.STOPPED, f"{input_key}: no job", None, None, fence)
        runner = lifecycle.plan_of(status).runner if "plan" in status else keys.NORMAL
        self.acting(input_key, fence.token, runner, "failure")
        job = JobRef.of(status, self.load_manifest(runner, fence.token))
        return self.fail(
            JobRef(job.input_bucket, input_key, fence, job.manifest, runner), reason, actor
        )

    # -- the user's commands ----------------------------------------------------------

    def cancel(
        self, input_key: str, step: str, actor: str, fence: Fence | None = None
    ) -> StepOutcome:
        """The user's cancel: the running attempt ends ``cancelled``; nothing of it is
        published, and its Batch jobs are stopped."""
        current = self.status(input_key)
        cost = None
        if current is not None and current["state"] == lifecycle.RUNNING:
            runner = lifecycle.plan_of(current).runner
            self.acting(input_key, current["token"], runner, "cancel")
            cost = self.job_cost(input_key, current["token"], runner)
        decision = self.ledger.apply(input_key, Cancel(step, self.clock(), fence, cost=cost))
        status = decision.status
        if decision.accepted:
            self.settle(input_key, actor)
            return StepOutcome(Action.CANCELLED, input_key, None, self.status(input_key))
        if status is not None:
            self.settle(input_key, actor)
        action = Action.DUPLICATE if decision.outcome is Outcome.ENDED else Action.STOPPED
        return StepOutcome(action, f"{input_key}: {decision.reason}", None, status)

    def retry(
        self,
        input_key: str,
        step: str,
        actor: str,
        fence: Fence | None = None,
        force: bool = False,
    ) -> StepOutcome:
        """The user's retry of a failed attempt: the next attempt runs only what is
        missing (the parts without a result and the merge, or the whole upload when it
        never split). Safe to run again: a retry whose step committed goes on dispatching
        the same attempt."""
        route, plan = self._route_unplanned(input_key)
        decision = self.ledger.apply(
            input_key, Reopen(step, self.clock(), fence, force, route=route, plan=plan)
        )
        reopened_job = decision.status
        if reopened_job is not None and "plan" in reopened_job:
            runner = lifecycle.plan_of(reopened_job).runner
            self.acting(input_key, reopened_job["token"], runner, "retry")
        if not decision.accepted:
            return StepOutcome(
                Action.STOPPED, f"{input_key}: {decision.reason}", None, decision.status
            )
        self.settle(input_key, actor)  # the failed attempt's -error goes
        status = self.status(input_key) or {}
        reopened = Fence.of(status)
        if lifecycle.why_not_running(status, reopened) or f"{step}" not in status["steps"]:
            return StepOutcome(Action.STOPPED, f"{input_key}: the job moved on", None, status)
        return self.dispatch(status, actor)

    def _route_unplanned(self, input_key: str) -> tuple[dict | None, lifecycle.Plan | None]:
        """The route and plan of an ``auto/`` job that failed before its admission planned
        it (a dead-lettered event): planned now, as the admission would have."""
        status = self.status(input_key)
        if not status or status.get("path") != keys.AUTO or status.get("route"):
            return None, None
        if self.load_manifest(lifecycle.plan_of(status).runner, status["token"]) is not None:
            return None, None  # it split: its parts decide where it runs
        try:
            body = self.upload_body(status)
            if body is None:
                return None, None  # the retry fails saying the upload is gone
            table = read_table(body, max_rows=self.config.max_rows, greeks=self.config.greeks)
        except FileError:
            return None, None  # the retry fails saying why the file cannot be priced
        share = lifecycle.plan_of(status).share
        estimate = self.estimate(
            self.plan_from_config(keys.FAST, share), table, (keys.FAST, keys.NORMAL)
        )
        lane = estimate.auto_path or keys.NORMAL
        return {"path": lane, "reason": estimate.auto_reason}, self.plan_from_config(lane, share)

    def dispatch(self, status: dict, actor: str) -> StepOutcome:
        """Run a reopened attempt: what is missing, where its plan says."""
        fence = Fence.of(status)
        plan = lifecycle.plan_of(status)
        job = JobRef.of(status)
        if status.get("path") == keys.URGENT:  # the lane's queue now, on or off
            plan = replace(plan, queue=self.config.urgent_job_queue)
            if not plan.queue:
                return self.fail(job, URGENT_OFF, actor)
        manifest = self.load_manifest(plan.runner, fence.token)
        if manifest is None:
            # It never split: run it whole (the budget guard first, unless --force).
            if plan.runner == keys.FAST:
                return self.run_upload((status, fence), actor, guard=True)
            if plan.queue != lifecycle.plan_of(status).queue:
                status = {**status, "plan": plan.to_dict()}
            outcome = self.submit_manager(status, actor)
            if outcome.action is Action.SUBMITTED:
                return StepOutcome(Action.REOPENED, outcome.detail, None, outcome.status, fence)
            return outcome
        job = JobRef(job.input_bucket, job.input_key, fence, manifest)
        missing = sorted(set(range(manifest.parts)) - self.finished_parts(manifest))
        if plan.runner == keys.NORMAL:
            outcome = self.submit_parts(job, manifest, plan, actor, missing)
            return StepOutcome(Action.REOPENED, outcome.detail, manifest, outcome.status, fence)
        if not missing:
            return self.merge(manifest, fence, actor)
        # The job split already: its manifest, not this container's limits, decides.
        body = self.upload_body(status, limits=False)
        if body is None:
            return self.fail(job, DELETED + " (the retry needs it for its parts)", actor)
        table = read_table(body, greeks=plan.greeks, bounds=plan.bounds)
        self._write_parts(manifest, table, fence.attempt, only=missing)
        return StepOutcome(
            Action.REOPENED,
            f"{len(missing)} parts of {manifest.parts} and the merge",
            manifest,
            self.status(job.input_key),
            fence,
        )
