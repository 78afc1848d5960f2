"""Emulated AWS Lambda: the stack's function in warm containers, with Lambda's asynchronous
retries and its on-failure route.

- Containers: ``workers`` worker processes (started on first use), each running the real
  handler invocation after invocation with a context carrying ``aws_request_id``; a
  container that dies is replaced, as Lambda replaces a crashed execution environment.
- Retries (``after_invocation``): an asynchronous invocation that raised, or whose container
  died, is retried twice (3 attempts) with the same request id; after the last one the
  on-failure destination gets Lambda's record, which the event source mapping delivers to the
  same function as an SQS batch, again (ApproximateReceiveCount + 1) while the function
  reports the record failed, MAX_RECEIVES receives at most, then the record is parked.

Which events become invocations (S3, EventBridge, Batch) is the emulator's
(``runtime.tools.emulator``); the events' shapes are ``runtime.tools.aws_events``'.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from runtime.tools.aws_events import FUNCTION_ARN, on_failure_record, receive_again, sqs_batch
from runtime.tools.faults import Fault
from runtime.tools.local_cloud import FUNCTION_NAME
from runtime.tools.timeline import Timeline

# Lambda's asynchronous invocation config in the stack: 2 retries.
LAMBDA_ATTEMPTS = 3
# The failure queues' redrive policy: a record still failing after 5 receives is parked.
MAX_RECEIVES = 5
FAST_FAILURES = "pricing-local-fast-failures"


@dataclass
class Invocation:
    """One asynchronous invocation of the function, as Lambda's queue holds it."""

    kind: str  # s3 | eventbridge | command | on-failure | batch-event
    event: dict
    label: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempt: int = 1
    receive: int = 1


class _Context:
    """The part of Lambda's context object the handler reads."""

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id
        self.function_name = FUNCTION_NAME
        self.invoked_function_arn = FUNCTION_ARN


def _lambda_container(
    connection: Any, environment: dict[str, str], faults: list[Fault], state_dir: str, log: str
) -> None:
    """One warm Lambda container: the real handler, invocation after invocation."""
    stream = open(log, "a", buffering=1)  # noqa: SIM115 - the container's log stream
    # Lambda sends both standard streams to the log stream (the jobs' metric lines too)
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    sys.stdout = sys.stderr = stream
    os.environ.update(environment)
    from runtime.tools.faults import install

    install(faults, Path(state_dir))
    from runtime.adapters.lambda_handler import handler

    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        event, request_id = message
        try:
            result = handler(event, _Context(request_id))
        except Exception as exc:  # Lambda reports it as the invocation's error
            connection.send(("error", {"errorType": type(exc).__name__, "errorMessage": str(exc)}))
        else:
            connection.send(("ok", result))


@dataclass(frozen=True)
class ContainerSpec:
    """What every container of the function gets: its environment, the faults to install,
    where faults that happen once are remembered, and where the log streams go."""

    environment: dict[str, str]
    faults: list[Fault]
    state_dir: Path
    log_dir: Path


class _Container:
    def __init__(self, spec: ContainerSpec) -> None:
        context = get_context("spawn")
        self.connection, child = context.Pipe()
        log = spec.log_dir / f"lambda-{uuid.uuid4().hex[:8]}.log"
        self.process = context.Process(
            target=_lambda_container,
            args=(child, spec.environment, spec.faults, str(spec.state_dir), str(log)),
            daemon=True,
        )
        self.process.start()
        child.close()

    def invoke(self, event: dict, request_id: str) -> tuple[str, Any]:
        try:
            self.connection.send((event, request_id))
            return self.connection.recv()
        except (EOFError, OSError):
            self.process.join(10)
            code = self.process.exitcode
            status = "signal: killed" if code == -9 else f"exit status {code}"
            message = f"RequestId: {request_id} Error: Runtime exited with error: {status}"
            return "died", {"errorType": "Runtime.ExitError", "errorMessage": message}

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class LambdaService:
    """Warm containers (started on first use), ``workers`` of them at a time.
    ``on_invoked(invocation, kind, payload)`` is called after each invocation, before its
    container takes the next one."""

    def __init__(
        self,
        spec: ContainerSpec,
        workers: int,
        on_invoked: Callable[[Invocation, str, Any], None] | None = None,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.on_invoked = on_invoked
        self.idle: queue.Queue[_Container] = queue.Queue()
        self.started = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def _container(self) -> _Container:
        with self.lock:
            if self.idle.empty() and self.started < self.workers:
                self.started += 1
                return _Container(self.spec)
        return self.idle.get()

    def _call(self, invocation: Invocation) -> tuple[str, Any]:
        container = self._container()
        kind, payload = container.invoke(invocation.event, invocation.request_id)
        if kind == "died":  # Lambda replaces a crashed container
            container.stop()
            container = _Container(self.spec)
        if self.on_invoked is not None:
            self.on_invoked(invocation, kind, payload)
        self.idle.put(container)
        return kind, payload

    def submit(self, invocation: Invocation) -> Future:
        return self.pool.submit(self._call, invocation)

    def close(self) -> None:
        self.pool.shutdown()
        while not self.idle.empty():
            self.idle.get().stop()


def after_invocation(
    timeline: Timeline, invocation: Invocation, kind: str, payload: Any
) -> Invocation | None:
    """What Lambda does after an invocation ended (``kind`` ok, error or died): shows the
    outcome in ``timeline`` and returns the invocation to run next for it, if any: the same
    event again (a retry, or an SQS record received once more), or the on-failure record."""
    actor = f"lambda {invocation.label}"
    tries = f" (attempt {invocation.attempt}/{LAMBDA_ATTEMPTS})" if invocation.attempt > 1 else ""
    if invocation.kind == "on-failure":
        failed = kind != "ok" or payload.get("batchItemFailures")
        receive = f"receive {invocation.receive}"
        if not failed:
            timeline.add(actor, f"on-failure record handled ({receive})")
            return None
        timeline.add(actor, f"on-failure record FAILED ({receive}): {error_text(payload)}")
        if invocation.receive >= MAX_RECEIVES:
            timeline.add("sqs", f"{invocation.label}: parked after {MAX_RECEIVES} receives")
            return None
        invocation.receive += 1  # the message becomes visible again: one more receive
        receive_again(invocation.event, invocation.receive)
        return invocation
    if kind == "ok":
        for outcome in payload.get("outcomes", []):
            timeline.add(actor, f"{outcome['action']}: {outcome['detail']}{tries}")
        return None
    timeline.add(actor, f"FAILED{tries}: {error_text(payload)}")
    if invocation.attempt < LAMBDA_ATTEMPTS:
        invocation.attempt += 1  # same event, same request id
        return invocation
    timeline.add("lambda", f"{invocation.label}: retries exhausted, to the on-failure queue")
    record = on_failure_record(invocation.event, invocation.request_id, payload, invocation.attempt)
    return Invocation(
        "on-failure", sqs_batch(record, str(uuid.uuid4()), 1, FAST_FAILURES), invocation.label
    )


def error_text(payload: Any) -> str:
    """One line for an invocation's error (or a batch the function reported failed)."""
    if isinstance(payload, dict) and "errorType" in payload:
        return f"{payload['errorType']}: {payload.get('errorMessage', '')}"
    if isinstance(payload, dict) and payload.get("batchItemFailures"):
        return "the function reported the record failed"
    return str(payload)
