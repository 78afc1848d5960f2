"""``simulate``: the deployed event flow on this machine, against the embedded AWS.

Only the cloud's plumbing is emulated here, never the handlers' logic:
- S3 notifications: after each invocation, new ``fast/**.csv`` objects become S3 events
  for Lambda-style invocations, run concurrently in worker processes (warm containers);
- EventBridge: an upload under ``normal/`` starts the manager job as a process;
- Batch: the jobs the manager submitted (read back from moto's Batch API) run as
  processes, array children with ``AWS_BATCH_JOB_ARRAY_INDEX``, the merge job only after
  every child succeeded, as ``dependsOn`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
    wait,
)
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import quote_plus

from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.engines import DEFAULT_ENGINE
from runtime.tools.local_cloud import (
    INPUT_BUCKET,
    JOB_DEFINITION,
    JOB_QUEUE,
    RESULT_BUCKET,
    LocalCloud,
    job_environment,
    local_cloud,
    submitted_jobs,
)


@dataclass
class Timeline:
    """What happened when, relative to the upload."""

    started: float = field(default_factory=time.perf_counter)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    def add(self, actor: str, message: str) -> None:
        entry = (time.perf_counter() - self.started, actor, message)
        self.events.append(entry)
        if self.echo:
            self.echo(format_event(entry))

    def count(self, actor_prefix: str) -> int:
        return sum(1 for _, actor, _ in self.events if actor.startswith(actor_prefix))


def format_event(entry: tuple[float, str, str]) -> str:
    seconds, actor, message = entry
    return f"{seconds:8.2f}s  {actor:<14} {message}"


def runtime_environment(cloud: LocalCloud, threshold: int | None, engine: str) -> dict[str, str]:
    """The environment the Pulumi program gives Lambda and the job definition."""
    environment = {
        **cloud.environment,
        "RESULT_BUCKET": RESULT_BUCKET,
        "ENGINE": engine,
        "JOB_QUEUE": JOB_QUEUE,
        "JOB_DEFINITION": JOB_DEFINITION,
        "BATCH_MAX_ATTEMPTS": "1",
        # Each simulated invocation or job prices on one core, as a 1-vCPU container would;
        # the concurrency comes from running several of them.
        "PRICING_WORKERS": "1",
    }
    if threshold is not None:
        environment["THRESHOLD"] = str(threshold)
    return environment


# -- fast path: S3 notifications to Lambda invocations ----------------------------------


def s3_event(bucket: str, key: str) -> dict:
    """An S3 notification as Lambda receives it (keys URL-encoded, as S3 sends them)."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
            }
        ]
    }


def _init_lambda_container(environment: dict[str, str]) -> None:
    os.environ.update(environment)


def _invoke_lambda(event: dict) -> dict:
    from runtime.adapters.lambda_handler import handler

    return handler(event, None)


def run_fast_path(
    cloud: LocalCloud, environment: dict[str, str], key: str, workers: int, timeline: Timeline
) -> None:
    """Invoke the handler for ``key``, then for every ``fast/`` object the invocations write."""
    s3 = cloud.client("s3")
    seen = {key}
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_lambda_container,
        initargs=(environment,),
    ) as pool:
        pending: dict[Future, str] = {pool.submit(_invoke_lambda, s3_event(INPUT_BUCKET, key)): key}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                invoked_key = pending.pop(future)
                name = invoked_key.rsplit("/", 1)[-1]
                try:
                    for outcome in future.result()["outcomes"]:
                        timeline.add(f"lambda {name}", f"{outcome['action']}: {outcome['detail']}")
                except Exception as exc:  # the invocation failed: Lambda would retry it
                    timeline.add(f"lambda {name}", f"FAILED: {type(exc).__name__}: {exc}")
            for new_key in _new_csv_keys(s3, seen):
                seen.add(new_key)
                pending[pool.submit(_invoke_lambda, s3_event(INPUT_BUCKET, new_key))] = new_key


def _new_csv_keys(s3, seen: set[str]) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=INPUT_BUCKET, Prefix="fast/"):
        keys.extend(
            item["Key"]
            for item in page.get("Contents", [])
            if item["Key"].endswith(".csv") and item["Key"] not in seen
        )
    return sorted(keys)


# -- normal path: EventBridge to the Batch manager, then the jobs it submitted ----------


def _run_job(
    environment: dict[str, str], job: dict, index: int | None = None
) -> subprocess.CompletedProcess:
    process_env = {
        **os.environ,
        **environment,
        **job_environment(job),
        "AWS_BATCH_JOB_ID": job["jobId"],
    }
    if index is not None:
        process_env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    parameters = job.get("parameters", {})
    args = [parameters.get("S3bucket", ""), parameters.get("S3key", "")]
    return subprocess.run(
        [sys.executable, "-m", "runtime.entrypoint", *args],
        env=process_env,
        capture_output=True,
        text=True,
        check=False,
    )


def _last_line(process: subprocess.CompletedProcess) -> str:
    """The job's last log line, without the level and logger name."""
    lines = (process.stderr or process.stdout or "").strip().splitlines()
    if not lines:
        return f"exit code {process.returncode}"
    level, _, message = lines[-1].partition(" ")
    return message.partition(": ")[2] if level in ("INFO", "ERROR") else lines[-1]


def run_normal_path(
    cloud: LocalCloud, environment: dict[str, str], key: str, workers: int, timeline: Timeline
) -> None:
    """The manager job for ``key``, then its array children and merge job as processes."""
    manager = {
        "jobId": "manager",
        "parameters": {"S3bucket": INPUT_BUCKET, "S3key": key},
    }
    done = _run_job(environment, manager)
    timeline.add("batch manager", _last_line(done))
    if done.returncode != 0:
        return
    batch = cloud.client("batch")
    submitted = submitted_jobs(batch)
    array_jobs = [job for job in submitted if "arrayProperties" in job]
    merge_jobs = [job for job in submitted if job.get("dependsOn")]
    for array_job in array_jobs:
        size = array_job["arrayProperties"]["size"]
        timeline.add("batch", f"array job of {size} children, {workers} at a time")
        # Threads suffice: each child is its own process, as a Batch container would be.
        failed = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            children = {pool.submit(_run_job, environment, array_job, i): i for i in range(size)}
            for child in as_completed(children):
                index, done = children[child], child.result()
                line = _last_line(done)
                timeline.add(
                    f"batch child {index}", line if done.returncode == 0 else f"FAILED: {line}"
                )
                if done.returncode != 0:
                    failed.append(index)
        if failed:
            timeline.add("batch", f"children {sorted(failed)} failed: the merge job does not run")
            return
    for merge_job in merge_jobs:
        done = _run_job(environment, merge_job)
        timeline.add("batch merge", _last_line(done))


# -- the command ------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationResult:
    input_key: str
    result: bytes | None
    error: str | None
    status: dict | None
    timeline: Timeline
    wall_seconds: float


def run_simulation(
    data: bytes,
    name: str,
    path: str,
    threshold: int | None = None,
    workers: int = 4,
    engine: str = DEFAULT_ENGINE,
    echo: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Upload ``data`` under ``<path>/<timestamp job id>/<name>`` and run the whole flow."""
    with local_cloud() as cloud:
        cloud.create_stack()
        environment = runtime_environment(cloud, threshold, engine)
        key = f"{path}/{time.strftime('%Y%m%d-%H%M%S')}/{name}"
        timeline = Timeline(echo=echo)
        store = ObjectStore(cloud.client("s3"))
        store.put(INPUT_BUCKET, key, data)
        timeline.add("user", f"uploaded s3://{INPUT_BUCKET}/{key} ({len(data)} bytes)")
        if path == keys.FAST:
            run_fast_path(cloud, environment, key, workers, timeline)
        else:
            run_normal_path(cloud, environment, key, workers, timeline)
        wall = time.perf_counter() - timeline.started
        error = store.get(RESULT_BUCKET, keys.error_key(key))
        status = store.get_json(RESULT_BUCKET, keys.status_key(key))
        return SimulationResult(
            input_key=key,
            result=store.get(RESULT_BUCKET, keys.result_key(key)),
            error=error.decode() if error else None,
            status=status,
            timeline=timeline,
            wall_seconds=wall,
        )


def simulate(
    input_path: Path,
    path: str,
    threshold: int | None,
    workers: int,
    engine: str,
    out: Path | None,
) -> int:
    """The ``simulate`` command: exit 0 only with a complete result."""
    from runtime.cli import CommandError, read_input
    from runtime.core.csvio import FileError, read_table
    from runtime.tools.local_cloud import LocalCloudUnavailable

    data = read_input(input_path)
    if workers < 1:
        raise CommandError("--workers must be at least 1")
    if threshold is not None and threshold < 1:
        raise CommandError("--threshold must be at least 1")
    print(f"simulating the {path} path for {input_path} (engine {engine})", file=sys.stderr)
    try:
        outcome = run_simulation(
            data, input_path.name, path, threshold, workers, engine, echo=_stderr
        )
    except LocalCloudUnavailable as exc:
        raise CommandError(str(exc)) from exc
    status = outcome.status or {}
    print(
        f"wall time {outcome.wall_seconds:.2f} s; {outcome.timeline.count('lambda')} Lambda "
        f"invocations, {status.get('parts_total', 0)} part(s), state {status.get('state')}",
        file=sys.stderr,
    )
    if outcome.error:
        raise CommandError(f"the pipeline rejected {input_path}: {outcome.error.strip()}")
    if outcome.result is None:
        raise CommandError(f"no result was published for {input_path}; status: {status}")
    try:
        expected = len(read_table(data).records)
    except FileError as exc:  # the pipeline accepted what the local reader refuses
        raise CommandError(f"{input_path}: {exc}") from exc
    got = len(read_table(outcome.result, is_result=True).records)
    out = out or input_path.with_name(input_path.name + "-result")
    out.write_bytes(outcome.result)
    if got != expected:
        raise CommandError(f"incomplete result: {got} of {expected} rows (written to {out})")
    print(f"result: {got} rows -> {out}", file=sys.stderr)
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
