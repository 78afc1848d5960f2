"""Emulated AWS Batch: the jobs the runtime submitted (moto only records them) run here as
processes, ``capacity`` at a time, in the order Batch's scheduler would start them.

- Units: a plain job, or each child of an array job, takes one slot (one vCPU-sized
  container of the compute environment; ``capacity`` is its size). Whenever a slot frees,
  the next unit is the one ``runtime.tools.batch_scheduler`` picks: the higher-priority
  queue's first (urgent 10, normal 1), FIFO within a FIFO queue, by usage per weight within
  a fair-share queue (a job's share: its ``JOB_SHARE`` variable, since moto drops
  ``shareIdentifier``). The timeline shows one line when each unit starts
  (``child 3 started (queue urgent, share risk)``), and ``on_started`` is called then.
- Dependencies: a job becomes runnable when every job it depends on SUCCEEDED; a job whose
  dependency failed fails without running ("Dependent Job failed").
- Terminated jobs: a job the runtime terminated (moto keeps the reason) fails without
  running, with that reason; an array terminated part-way runs none of its waiting children.
- The retry strategy: a unit keeps its slot across attempts; host failures ("Host EC2*")
  are retried up to BATCH_ATTEMPTS attempts, anything else exits.
- Failures: each FAILED job (or child) is handed to ``on_failed`` with its reason and
  attempts, as the stack's rule hands Batch's state change to the function; an array job
  fails once all its children finished, if one failed or it was terminated.

Processes are ``python -m runtime.entrypoint`` (the image's entrypoint) with the job's
environment, or ``python -m runtime.tools.faulty_job`` when a fault applies to the unit.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.environment import AWS_BATCH_JOB_ARRAY_INDEX, BATCH_ROLE, JOB_SHARE, BatchContext
from runtime.tools.aws_events import batch_attempt
from runtime.tools.batch_scheduler import QueuePolicy, Unit, next_unit
from runtime.tools.faults import (
    BATCH_ATTEMPTS,
    MERGE_KILL,
    PART_ERROR,
    PART_KILL,
    SPOT,
    Fault,
    happened,
)
from runtime.tools.local_cloud import (
    QUEUE_LANES,
    RETRY_STATUS_REASONS,
    job_environment,
    job_queues,
    submitted_jobs,
)
from runtime.tools.timeline import Timeline

_KILLED_EXIT_CODE = 137  # what Batch reports for a container killed by SIGKILL

# A job's states here (Batch's, folded): SUBMITTED (its dependencies not all done),
# RUNNABLE, RUNNING (a unit started), SUCCEEDED, FAILED, and PAST (submitted before this
# emulator started: never run).
SUBMITTED, RUNNABLE, RUNNING, SUCCEEDED, FAILED, PAST = (
    "SUBMITTED",
    "RUNNABLE",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "PAST",
)
# A unit that never ran because its job was terminated or failed first.
SKIPPED = "SKIPPED"


@dataclass(eq=False)
class BatchJob:
    """A submitted Batch job as the emulator runs it."""

    description: dict
    sequence: int  # discovery order: the queues' FIFO order
    queue: str  # the queue's name
    state: str = SUBMITTED
    tasks: list[Task] = field(default_factory=list)
    terminated: str | None = None  # the reason, once the runtime terminated it

    @property
    def job_id(self) -> str:
        return self.description["jobId"]

    @property
    def environment(self) -> dict[str, str]:
        return job_environment(self.description)

    @property
    def role(self) -> str:
        return self.environment.get(BATCH_ROLE) or "manager"

    @property
    def size(self) -> int | None:
        return (self.description.get("arrayProperties") or {}).get("size")


@dataclass(eq=False)
class Task:
    """One unit of a job: the job itself, or one of its array children."""

    job: BatchJob
    index: int | None
    state: str = SUBMITTED  # then RUNNABLE, RUNNING, SUCCEEDED, FAILED or SKIPPED

    @property
    def role(self) -> str:
        return self.job.role

    @property
    def share(self) -> str:
        return self.job.environment.get(JOB_SHARE, "")

    @property
    def input_key(self) -> str:
        return (self.job.description.get("parameters") or {}).get("S3key", "")

    @property
    def label(self) -> str:
        return self.role + (f" {self.index}" if self.index is not None else "")

    @property
    def unit(self) -> Unit:
        name = self.job.job_id + (f":{self.index}" if self.index is not None else "")
        return Unit(name, self.job.queue, self.share, (self.job.sequence, self.index or 0))


# (description, reason, attempts, array index): a job or child that FAILED.
FailureSink = Callable[[dict, str, list[dict], int | None], None]


class EmulatedBatch:
    """The Batch service: the local queues, ``capacity`` slots, and the jobs submitted
    since it started (earlier ones are never run)."""

    def __init__(
        self,
        client: Any,
        containers: JobContainers,
        timeline: Timeline,
        capacity: int,
        fair_share: Mapping[str, float] | None = None,
        on_started: Callable[[Task], None] | None = None,
        on_failed: FailureSink | None = None,
    ) -> None:
        self.client = client
        self.containers = containers
        self.timeline = timeline
        self.capacity = capacity
        self.fair_share = dict(fair_share) if fair_share is not None else None
        self.on_started = on_started
        self.on_failed = on_failed
        self.jobs: dict[str, BatchJob] = {}
        self.started: list[Unit] = []  # every unit started, in order: fair-share usage
        self.running: dict[Future, Task] = {}
        self.pool = ThreadPoolExecutor(max_workers=capacity)
        self._sequence = itertools.count()
        self.policies: dict[str, QueuePolicy] = {}
        self._queue_names: dict[str, str] = {}
        self._read_queues()
        for description in submitted_jobs(client):  # not this emulator's to run
            self.jobs[description["jobId"]] = BatchJob(description, -1, "", state=PAST)

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    @property
    def idle(self) -> bool:
        """No unit is running."""
        return not self.running

    # -- the queues -----------------------------------------------------------------------

    def _read_queues(self) -> None:
        """The queues' priorities, as created; every queue shares the fair-share weights
        (the stack attaches one scheduling policy to both)."""
        for queue in job_queues(self.client):
            name = queue["jobQueueName"]
            self._queue_names[queue["jobQueueArn"]] = name
            self._queue_names[name] = name
            self.policies[name] = QueuePolicy(queue.get("priority", 1), self.fair_share)

    def _queue_of(self, description: dict) -> str:
        queue = description.get("jobQueue", "")
        if queue not in self._queue_names:
            self._read_queues()  # a queue created after this emulator started
        return self._queue_names.get(queue, queue)

    # -- discovering and resolving jobs ---------------------------------------------------

    def discover(self) -> int:
        """Take in the jobs submitted since the last look; how many there were."""
        found = 0
        for description in submitted_jobs(self.client):
            if description["jobId"] in self.jobs:
                continue
            job = BatchJob(description, next(self._sequence), self._queue_of(description))
            indexes = range(job.size) if job.size else [None]
            job.tasks = [Task(job, index) for index in indexes]
            self.jobs[job.job_id] = job
            found += 1
        return found

    def _waiting(self) -> list[BatchJob]:
        return [
            job
            for job in self.jobs.values()
            if job.state in (SUBMITTED, RUNNABLE, RUNNING)
            and any(task.state in (SUBMITTED, RUNNABLE) for task in job.tasks)
        ]

    def _resolve(self) -> None:
        """Fail what the runtime terminated, then make runnable the jobs whose dependencies
        all succeeded (and fail those whose dependency did not)."""
        waiting = self._waiting()
        reasons = self._terminated([job.job_id for job in waiting])
        for job in waiting:
            if reasons.get(job.job_id):
                self._terminate(job, reasons[job.job_id])
        for job in sorted(self.jobs.values(), key=lambda job: job.sequence):
            if job.state != SUBMITTED:
                continue
            unmet = self._unmet_dependency(job)
            if unmet is None:
                job.state = RUNNABLE
                for task in job.tasks:
                    task.state = RUNNABLE
                if job.size:
                    self.timeline.add("batch", f"array job of {job.size} children")
            elif unmet:
                self._fail_unstarted(job, f"Dependent Job failed: {unmet}")

    def _unmet_dependency(self, job: BatchJob) -> str | None:
        """None: every dependency succeeded; "": one is still to finish; else the id of
        one that failed (or is not this emulator's)."""
        waiting = False
        for dependency in job.description.get("dependsOn") or []:
            other = self.jobs.get(dependency["jobId"])
            if other is None or other.state in (FAILED, PAST):
                return dependency["jobId"]
            if other.state != SUCCEEDED:
                waiting = True
        return "" if waiting else None

    def _terminated(self, job_ids: list[str]) -> dict[str, str]:
        """The reason the runtime gave for each of these jobs it terminated (moto keeps
        it as the job's status reason)."""
        reasons: dict[str, str] = {}
        for start in range(0, len(job_ids), 100):  # DescribeJobs takes 100 ids at most
            found = self.client.describe_jobs(jobs=job_ids[start : start + 100])["jobs"]
            reasons.update(
                {job["jobId"]: job["statusReason"] for job in found if job.get("statusReason")}
            )
        return reasons

    def _terminate(self, job: BatchJob, reason: str) -> None:
        """TerminateJob on a job that has not (entirely) started: what waits never runs."""
        job.terminated = reason
        for task in job.tasks:
            if task.state in (SUBMITTED, RUNNABLE):
                task.state = SKIPPED
        if all(task.state == SKIPPED for task in job.tasks):
            self._fail_unstarted(job, reason)
        else:
            self._settle(job)

    def _fail_unstarted(self, job: BatchJob, reason: str) -> None:
        job.state = FAILED
        for task in job.tasks:
            task.state = SKIPPED
        self.timeline.add(f"batch {job.role}", f"FAILED without running: {reason}")
        self._failed(job.description, reason, [], None)

    # -- running units --------------------------------------------------------------------

    def dispatch(self) -> None:
        """Start units while a slot is free and one is runnable, in the scheduler's order
        (what the runtime terminated is read once, before)."""
        self._resolve()
        while len(self.running) < self.capacity:
            runnable = {
                task.unit: task
                for job in self.jobs.values()
                if job.state in (RUNNABLE, RUNNING)
                for task in job.tasks
                if task.state == RUNNABLE
            }
            unit = next_unit(runnable, self.policies, self.started)
            if unit is None:
                return
            self._start(runnable[unit])

    def _start(self, task: Task) -> None:
        task.state = RUNNING
        task.job.state = RUNNING
        self.started.append(task.unit)
        lane = QUEUE_LANES.get(task.job.queue, task.job.queue)
        share = f", share {task.share}" if task.share else ""
        self.timeline.add("batch", f"{task.label} started (queue {lane}{share})")
        future = self.pool.submit(self.containers.run, task.job.description, task.index)
        self.running[future] = task
        if self.on_started is not None:
            self.on_started(task)

    def wait(self) -> None:
        """Wait until a running unit finishes (at least one), and take in its outcome."""
        if not self.running:
            return
        finished, _ = wait(self.running, return_when=FIRST_COMPLETED)
        order = {task: n for n, task in enumerate(self.running.values())}
        for future in sorted(finished, key=lambda f: order[self.running[f]]):
            task = self.running.pop(future)
            succeeded, attempts = future.result()
            task.state = SUCCEEDED if succeeded else FAILED
            if not succeeded:
                self._failed(
                    task.job.description, attempts[-1]["statusReason"], attempts, task.index
                )
            self._settle(task.job)

    def _settle(self, job: BatchJob) -> None:
        """A job whose units all finished is SUCCEEDED or FAILED (an array once)."""
        if job.state in (SUCCEEDED, FAILED) or any(
            task.state in (SUBMITTED, RUNNABLE, RUNNING) for task in job.tasks
        ):
            return
        if not job.size:
            job.state = job.tasks[0].state if job.tasks[0].state == SUCCEEDED else FAILED
            return
        failed = [task.index for task in job.tasks if task.state == FAILED]
        if not failed and job.terminated is None:
            job.state = SUCCEEDED
            return
        job.state = FAILED
        reason = job.terminated or f"Array Child Job failed: children {failed}"
        self.timeline.add("batch", f"array job FAILED: {reason}")
        self._failed(job.description, reason, [], None)

    def _failed(
        self, description: dict, reason: str, attempts: list[dict], index: int | None
    ) -> None:
        if self.on_failed is not None:
            self.on_failed(description, reason, attempts, index)


class JobContainers:
    """Batch's containers: one unit's attempts as processes, under the job definition's
    retry strategy, with the simulation's faults."""

    def __init__(
        self,
        environment: dict[str, str],
        faults: list[Fault],
        state_dir: Path,
        log_dir: Path,
        timeline: Timeline,
    ) -> None:
        self.environment = environment
        self.faults = faults
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.timeline = timeline

    def run(self, description: dict, index: int | None) -> tuple[bool, list[dict]]:
        """One job (or array child) under the retry strategy: whether it succeeded, and
        its failed attempts as DescribeJobs lists them."""
        environment = job_environment(description)
        role = environment.get(BATCH_ROLE) or "manager"
        part = _part_of(environment, index)
        actor = f"batch {role}" + (f" {index}" if index is not None else "")
        attempts: list[dict] = []
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            faults = self._faults_for(role, part, attempt)
            merge_kills = happened(self.state_dir, MERGE_KILL)
            started = time.time()
            done = self._run_process(description, index, attempt, faults)
            tries = f" (attempt {attempt}/{BATCH_ATTEMPTS})" if attempt > 1 else ""
            if done.returncode == 0:
                self.timeline.add(actor, _last_message(done) + tries)
                return True, attempts
            host_failure = any(f.kind == SPOT for f in faults) or (
                role == "merge" and happened(self.state_dir, MERGE_KILL) > merge_kills
            )
            code = _KILLED_EXIT_CODE if done.returncode < 0 else done.returncode
            if host_failure:
                reason = f"Host EC2 (instance i-0{uuid.uuid4().hex[:16]}) terminated."
                container_reason = None
            else:
                reason = "Essential container in task exited"
                container_reason = (
                    "OutOfMemoryError: Container killed" if done.returncode < 0 else None
                )
            attempts.append(batch_attempt(started, code, reason, container_reason))
            message = _last_message(done) if done.returncode > 0 else "killed"
            self.timeline.add(actor, f"FAILED{tries}: {message}, exit code {code}: {reason}")
            if not any(fnmatch.fnmatchcase(reason, r) for r in RETRY_STATUS_REASONS):
                break  # the retry strategy: anything but a host failure exits
        return False, attempts

    def _faults_for(self, role: str, part: int | None, attempt: int) -> list[Fault]:
        active = []
        for fault in self.faults:
            if fault.kind in (PART_ERROR, PART_KILL) and role == "child" and fault.part == part:
                active.append(fault)
            elif fault.kind == SPOT and role == "child" and fault.part == part:
                if attempt <= fault.times:
                    active.append(fault)
            elif fault.kind == MERGE_KILL and role == "merge":
                active.append(fault)
        return active

    def _run_process(
        self, description: dict, index: int | None, attempt: int, faults: list[Fault]
    ) -> subprocess.CompletedProcess:
        job_id = description["jobId"] + (f":{index}" if index is not None else "")
        process_env = {
            **os.environ,
            **self.environment,
            **job_environment(description),
            "AWS_BATCH_JOB_ID": job_id,
            "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        }
        if index is not None:
            process_env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        parameters = description.get("parameters", {})
        args = [parameters.get("S3bucket", ""), parameters.get("S3key", "")]
        command = [sys.executable, "-m", "runtime.entrypoint", *args]
        if faults:
            fault_args = [f"--fault={fault}" for fault in faults]
            command = [
                sys.executable,
                "-m",
                "runtime.tools.faulty_job",
                *fault_args,
                f"--state-dir={self.state_dir}",
                "--",
                *args,
            ]
        done = subprocess.run(command, env=process_env, capture_output=True, text=True, check=False)
        log = self.log_dir / f"batch-{job_id.replace(':', '-')}-{attempt}.log"
        log.write_text(done.stderr or "")
        return done


def _part_of(environment: dict[str, str], index: int | None) -> int | None:
    """The part a child prices: its index, or the one PART_INDEXES maps it to."""
    array = {AWS_BATCH_JOB_ARRAY_INDEX: str(index)} if index is not None else {}
    return BatchContext.from_env({**environment, **array}).part_index


def _last_message(process: subprocess.CompletedProcess) -> str:
    """The job's last log line's message (the runtime logs JSON lines)."""
    lines = (process.stderr or process.stdout or "").strip().splitlines()
    for line in reversed(lines):
        try:
            message = json.loads(line).get("message")
        except (ValueError, AttributeError):
            continue
        if message:
            # "part-priced s3://bucket/key: detail": the timeline knows the upload already.
            return re.sub(r"^(\S+) s3://[^:]*: ", r"\1: ", str(message))
    return lines[-1] if lines else f"exit code {process.returncode}"
