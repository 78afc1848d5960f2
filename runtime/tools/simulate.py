"""``simulate``: the deployed event flow on this machine, against the embedded AWS.

The emulator (``runtime.tools.emulator``) plays S3 notifications, Lambda (warm containers,
async retries, the on-failure destination and its event source mapping), EventBridge and
Batch (the normal and urgent queues and their priorities, FIFO or fair share between teams,
``capacity`` job slots, retry strategy, dependencies, job state change events); the
handlers are the real ones. Faults (``runtime.tools.faults``) make parts fail or processes
die, so the failure paths can be watched. The job events the runtime publishes, and when
each Batch job or child starts, are shown in the timeline.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.adapters.s3 import ObjectStore
from runtime.core import keys
from runtime.engines import DEFAULT_ENGINE
from runtime.protocol.uploads import TEAM_METADATA
from runtime.tools.emulator import Emulator, Timeline, format_event, runtime_environment
from runtime.tools.faults import Fault, check_faults
from runtime.tools.jobs import cost_lines
from runtime.tools.local_cloud import (
    INPUT_BUCKET,
    RESULT_BUCKET,
    LocalCloud,
    existing_cloud,
    local_cloud,
    serve_until_interrupted,
)

__all__ = [
    "SimulationResult",
    "Timeline",
    "format_event",
    "run_fast_path",
    "run_simulation",
    "runtime_environment",
    "simulate",
]


def run_fast_path(
    cloud: LocalCloud, environment: dict[str, str], key: str, workers: int, timeline: Timeline
) -> None:
    """What the stack does with an upload already in the input bucket."""
    with Emulator(cloud, environment, timeline, workers, watch={key}) as emulator:
        emulator.run([emulator.upload_event(key)])


@dataclass(frozen=True)
class SimulationResult:
    input_key: str
    result: bytes | None
    error: str | None
    status: dict | None
    timeline: Timeline
    wall_seconds: float
    job_events: list[dict]
    invocations: int
    endpoint: str


@contextlib.contextmanager
def _cloud(endpoint: str | None) -> Iterator[LocalCloud]:
    if endpoint:
        with existing_cloud(endpoint) as cloud:
            yield cloud
    else:
        with local_cloud() as cloud:
            yield cloud


def run_simulation(
    data: bytes,
    name: str,
    path: str,
    threshold: int | None = None,
    workers: int = 4,
    engine: str = DEFAULT_ENGINE,
    echo: Callable[[str], None] | None = None,
    faults: list[Fault] | None = None,
    endpoint: str | None = None,
    on_invoked: Callable[..., None] | None = None,
    keep: Callable[[LocalCloud, SimulationResult], None] | None = None,
    logs: Path | None = None,
    greeks: bool = False,
    *,
    capacity: int | None = None,
    fair_share: Mapping[str, float] | None = None,
    team: str | None = None,
    on_started: Callable[..., None] | None = None,
    bounds: bool = False,
) -> SimulationResult:
    """Upload ``data`` under ``<path>/<timestamp job id>/<name>`` (with ``team`` as its
    ``team`` metadata) and run the whole flow (against the server at ``endpoint``, or a
    fresh embedded one): ``workers`` Lambda containers, ``capacity`` Batch slots (default
    ``workers``), fair share between the teams of ``fair_share`` (team -> weight; None:
    FIFO queues). ``keep`` is called with the cloud and the outcome before the cloud stops."""
    check_faults(list(faults or []), path)
    with _cloud(endpoint) as cloud:
        cloud.create_stack()
        teams = tuple(fair_share or ())
        environment = runtime_environment(cloud, threshold, engine, greeks, teams, bounds)
        key = f"{path}/{time.strftime('%Y%m%d-%H%M%S')}/{name}"
        timeline = Timeline(echo=echo)
        store = ObjectStore(cloud.client("s3"))
        with Emulator(
            cloud,
            environment,
            timeline,
            workers,
            faults,
            watch={key},
            on_invoked=on_invoked,
            logs=logs,
            capacity=capacity,
            fair_share=fair_share,
            on_started=on_started,
        ) as emulator:
            metadata = {TEAM_METADATA: team} if team else None
            store.put(INPUT_BUCKET, key, data, metadata=metadata)
            of_team = f", team {team}" if team else ""
            timeline.add("user", f"uploaded s3://{INPUT_BUCKET}/{key} ({len(data)} bytes{of_team})")
            emulator.run([emulator.upload_event(key)])
            emulator.drain_job_events()
            wall = time.perf_counter() - timeline.started
            error = store.get(RESULT_BUCKET, keys.error_key(key))
            outcome = SimulationResult(
                input_key=key,
                result=store.get(RESULT_BUCKET, keys.result_key(key)),
                error=error.decode() if error else None,
                status=store.get_json(RESULT_BUCKET, keys.status_key(key)),
                timeline=timeline,
                wall_seconds=wall,
                job_events=list(emulator.job_events),
                invocations=emulator.invocations,
                endpoint=cloud.endpoint,
            )
        if keep is not None:
            keep(cloud, outcome)
        return outcome


def simulate(
    input_path: Path,
    path: str,
    threshold: int | None,
    workers: int,
    engine: str,
    out: Path | None,
    faults: list[Fault] | None = None,
    endpoint: str | None = None,
    keep: bool = False,
    logs: Path | None = None,
    greeks: bool = False,
    capacity: int | None = None,
    fair_share: Mapping[str, float] | None = None,
    team: str | None = None,
    bounds: bool = False,
) -> int:
    """The ``simulate`` command: exit 0 only with a complete result; otherwise one line with
    the status' reason (failed, cancelled, superseded) or what is missing."""
    from runtime.cli import CommandError, read_input, writable_output, write_output
    from runtime.core.csvio import FileError, read_table
    from runtime.tools.local_cloud import LocalCloudUnavailable

    data = read_input(input_path)
    out = writable_output(out or default_result_path(input_path, path))
    if workers < 1:
        raise CommandError("--workers must be at least 1")
    if capacity is not None and capacity < 1:
        raise CommandError("--capacity must be at least 1")
    if threshold is not None and threshold < 1:
        raise CommandError("--threshold must be at least 1")
    try:
        check_faults(list(faults or []), path)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    injected = f", faults {', '.join(map(str, faults))}" if faults else ""
    shares = ", ".join(f"{t}={w:g}" for t, w in fair_share.items()) if fair_share else ""
    shared = f", fair share {shares}" if shares else ""
    slots = f", {capacity or workers} Batch slot(s)" if path != "fast" else ""
    print(
        f"simulating the {path} path for {input_path} (engine {engine}{slots}{shared}{injected})",
        file=sys.stderr,
    )

    def deliver(outcome: SimulationResult) -> None:
        """The result and its line, or the CommandError that says why there is none."""
        if logs is not None:
            print(f"logs: {logs}/ (one file per container and Batch job attempt)", file=sys.stderr)
        status = outcome.status or {}
        state = status.get("state")
        if state in ("failed", "cancelled", "superseded"):
            reason = " ".join(str(status.get("error") or "no reason recorded").split())
            raise CommandError(f"the job {state}: {reason}")
        if outcome.result is None:
            raise CommandError(f"no result was published for {input_path}; state {state}")
        try:
            expected = len(read_table(data).records)
        except FileError as exc:  # the pipeline accepted what the local reader refuses
            raise CommandError(f"{input_path}: {exc}") from exc
        got = len(read_table(outcome.result, is_result=True).records)
        written = write_output(out, outcome.result)
        if got != expected:
            raise CommandError(
                f"incomplete result: {got} of {expected} rows (written to {written})"
            )
        # the outcome on standard output, unless the result itself went there
        print(
            f"result: {got} rows -> {written}",
            file=sys.stderr if written == "standard output" else sys.stdout,
            flush=True,
        )

    kept_error: list[CommandError] = []

    def keep_serving(cloud: LocalCloud, outcome: SimulationResult) -> None:
        # the result first: the embedded AWS then serves until Ctrl-C
        _summary(outcome)
        try:
            deliver(outcome)
        except CommandError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            kept_error.append(exc)
        serve_until_interrupted(cloud, " (kept after the simulation)")

    try:
        outcome = run_simulation(
            data,
            input_path.name,
            path,
            threshold,
            workers,
            engine,
            echo=_stderr,
            faults=faults,
            endpoint=endpoint,
            keep=keep_serving if keep else None,
            logs=logs,
            greeks=greeks,
            bounds=bounds,
            capacity=capacity,
            fair_share=fair_share,
            team=team,
        )
    except LocalCloudUnavailable as exc:
        raise CommandError(str(exc)) from exc
    if keep:
        return 1 if kept_error else 0  # said before the embedded AWS served
    _summary(outcome)
    deliver(outcome)
    return 0


def default_result_path(input_path: Path, path: str) -> Path:
    """``INPUT-result`` beside the input; for a file of the project itself (the sample), a
    folder per lane in the system's temporary folder: the source tree stays as it is, and
    one lane's result never replaces another's."""
    package = Path(__file__).resolve().parents[1]
    if package in input_path.resolve().parents:
        folder = Path(tempfile.gettempdir()) / "mc-pricing" / path
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{input_path.name}-result"
    return input_path.with_name(input_path.name + "-result")


def _summary(outcome: SimulationResult) -> None:
    status = outcome.status or {}
    print(
        f"wall time {outcome.wall_seconds:.2f} s; {outcome.invocations} Lambda "
        f"invocations, {status.get('partsTotal', 0)} part(s), state {status.get('state')}, "
        f"{len(outcome.job_events)} job event(s)",
        file=sys.stderr,
    )
    if status.get("route"):
        print(f"route: {status['route'].get('reason')}", file=sys.stderr)
    # What this machine measured, priced as on AWS: an estimate (docs/cost.md).
    for line in cost_lines(status.get("cost")):
        print(line, file=sys.stderr)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
