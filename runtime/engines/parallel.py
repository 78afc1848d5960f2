"""Price a batch on every CPU the container has, with results identical to one process.

Why worker subprocesses talking over plain pipes, not ``multiprocessing.Pool`` or
``concurrent.futures.ProcessPoolExecutor``:

- AWS Lambda has no ``/dev/shm``, so anything built on POSIX semaphores (``Pool``,
  ``Queue``, ``ProcessPoolExecutor``, ``Lock``) fails there with ``OSError: [Errno 38]``.
  Anonymous pipes (``os.pipe``) work everywhere.
- ``multiprocessing``'s ``spawn`` start method re-imports the parent's ``__main__`` in every
  child; ``python -m runtime`` has an unguarded ``__main__`` and awslambdaric's bootstrap
  is not ours to guard, so a child could start a second command line or Lambda loop.
  ``python -m runtime.engines.parallel`` starts a fresh interpreter that imports only this module:
  spawn-safe by construction, and ``fork`` (unsafe with boto3's threads) is never used.
- The protocol runs on dedicated file descriptors, so anything an engine prints on stdout
  or stderr goes to the logs and cannot corrupt a message.

Workers are started once per process and kept for later batches (the part workers of a
warm Lambda reuse them too); each worker runs one engine call at a time. A batch is cut
into contiguous chunks, results are put back in input order, and since every engine prices
each option from its own terms and seed, 1 or N workers give the same floats.
``greeks`` and ``bounds`` travel with every chunk, so the Greeks and bounds are identical with
1 or N workers too.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runtime.core.options import OptionSpec, Quote
from runtime.engines import WORKER_DIED, Engine, call_engine, get_engine
from runtime.engines.cpus import NO_LIMITS, CpuLimits, available_cpus

# Below this many options per worker, starting or feeding workers costs more than it saves:
# QD+ prices an option in about 0.2 ms, lsm in 0.5 to 3 ms, QuantLib's MC in about 0.3 s.
MIN_OPTIONS_PER_WORKER = {"mc": 1, "fd": 4, "lsm": 64, "qdfp": 200}
_DEFAULT_MIN_OPTIONS = 8
CHUNKS_PER_WORKER = 4  # several chunks per worker even out options of unequal cost

# Each worker is one process doing one thing: native thread pools would oversubscribe.
_SINGLE_THREADED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def parallel_engine(engine_name: str, limits: CpuLimits = NO_LIMITS) -> Engine:
    """The engine called ``engine_name``, spread over every vCPU this container has
    (``limits``: the environment's, ``runtime.environment.cpu_limits``).

    It honours ``greeks`` and ``bounds`` when the engine itself does (see ``call_engine``)."""
    get_engine(engine_name)  # fail fast on an unknown name

    def price(
        options: Sequence[OptionSpec], greeks: bool = False, bounds: bool = False
    ) -> list[Quote]:
        return price_in_parallel(engine_name, options, greeks=greeks, bounds=bounds, limits=limits)

    return price


def price_in_parallel(
    engine_name: str,
    options: Sequence[OptionSpec],
    workers: int | None = None,
    greeks: bool = False,
    bounds: bool = False,
    limits: CpuLimits = NO_LIMITS,
) -> list[Quote]:
    """Quotes for ``options`` in input order, priced by ``engine_name`` across processes.

    ``workers`` defaults to ``available_cpus(limits=limits)``. One worker, a small batch or a
    platform where processes cannot be started price in this process instead. Raises ValueError only
    for an unknown engine name; per-option failures are error quotes, as with any engine.
    """
    engine = get_engine(engine_name)
    count = len(options)
    wanted = available_cpus(limits=limits) if workers is None else max(1, int(workers))
    minimum = MIN_OPTIONS_PER_WORKER.get(engine_name, _DEFAULT_MIN_OPTIONS)
    wanted = min(wanted, count // minimum)
    if wanted <= 1 or not sys.executable:
        return call_engine(engine, options, greeks, bounds)
    chunks = _chunks(count, wanted, minimum)
    try:
        with _POOL.lock:
            results = _POOL.run(engine_name, options, chunks, wanted, greeks, bounds)
    except OSError:
        # cannot start processes here (a sandbox, fd limits): still price, just slower
        return call_engine(engine, options, greeks, bounds)
    quotes: list[Quote] = []
    for start in sorted(results):  # a chunk that crashed its worker comes back in pieces
        quotes.extend(results[start])
    return quotes


def _chunks(count: int, workers: int, minimum: int) -> list[range]:
    """Contiguous, nearly equal chunks: about CHUNKS_PER_WORKER per worker, not too small."""
    pieces = max(workers, min(workers * CHUNKS_PER_WORKER, count // max(1, minimum)))
    pieces = min(pieces, count)
    size = math.ceil(count / pieces)
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


@dataclass(eq=False)  # identity semantics: workers are dict keys
class _Worker:
    process: subprocess.Popen[bytes]
    tasks: BinaryIO
    results: BinaryIO

    @classmethod
    def start(cls) -> _Worker:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        env = dict(os.environ)
        env.update(_SINGLE_THREADED)
        # the child must import this very package, wherever the parent found it
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runtime.engines.parallel",
                    str(task_read),
                    str(result_write),
                ],
                pass_fds=(task_read, result_write),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            for fd in (task_read, task_write, result_read, result_write):
                os.close(fd)
            raise
        os.close(task_read)
        os.close(result_write)
        return cls(process, os.fdopen(task_write, "wb"), os.fdopen(result_read, "rb"))

    def send(self, message: object) -> None:
        pickle.dump(message, self.tasks, protocol=pickle.HIGHEST_PROTOCOL)
        self.tasks.flush()

    def receive(self) -> object:
        return pickle.load(self.results)

    def stop(self) -> None:
        for stream in (self.tasks, self.results):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=5)  # EOF on its task pipe makes a worker exit
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Pool:
    """Long-lived workers; one batch at a time (callers in other threads wait their turn)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []

    def _ensure(self, size: int) -> None:
        self.workers = [w for w in self.workers if w.process.poll() is None]
        while len(self.workers) < size:
            self.workers.append(_Worker.start())

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop()
        fresh = _Worker.start()
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def run(
        self,
        engine_name: str,
        options: Sequence[OptionSpec],
        chunks: list[range],
        size: int,
        greeks: bool = False,
        bounds: bool = False,
    ) -> dict[int, list[Quote]]:
        try:
            return self._run(engine_name, options, chunks, size, greeks, bounds)
        except BaseException:
            # replies may still be in flight: never let a later batch read them
            for worker in self.workers:
                worker.stop()
            self.workers = []
            raise

    def _run(
        self,
        engine_name: str,
        options: Sequence[OptionSpec],
        chunks: list[range],
        size: int,
        greeks: bool,
        bounds: bool,
    ) -> dict[int, list[Quote]]:
        self._ensure(size)
        pending = list(reversed(chunks))
        attempts: dict[range, int] = {}
        results: dict[int, list[Quote]] = {}
        busy: dict[_Worker, range] = {}
        with selectors.DefaultSelector() as selector:

            def dispatch(worker: _Worker) -> None:
                while pending:
                    chunk = pending.pop()
                    attempts[chunk] = attempts.get(chunk, 0) + 1
                    try:
                        part = list(options[chunk.start : chunk.stop])
                        worker.send((engine_name, part, greeks, bounds))
                    except OSError:  # died while idle: retry the chunk on a fresh worker
                        pending.append(chunk)
                        worker = self._replace(worker)
                        continue
                    busy[worker] = chunk
                    selector.register(worker.results, selectors.EVENT_READ, worker)
                    return

            for worker in self.workers[:size]:
                dispatch(worker)
            while busy:
                for key, _ in selector.select():
                    worker = key.data
                    selector.unregister(worker.results)
                    chunk = busy.pop(worker)
                    try:
                        reply = worker.receive()
                    except (EOFError, OSError, pickle.UnpicklingError):
                        try:  # its pipe is closed: it is exiting, or has exited
                            code = worker.process.wait(timeout=2)
                        except subprocess.TimeoutExpired:
                            code = None
                        worker = self._replace(worker)
                        if attempts[chunk] < 2:
                            pending.append(chunk)  # a crash (e.g. out of memory): once more
                        elif len(chunk) > 1:
                            # crashed twice: one option at a time, so only the culprit fails
                            pending.extend(range(i, i + 1) for i in reversed(chunk))
                        else:
                            message = f"{WORKER_DIED} (exit code {code})"
                            results[chunk.start] = [Quote(price=None, error=message)]
                        for idle in self.workers[:size]:  # the pieces may need several
                            if idle not in busy and pending:
                                dispatch(idle)
                        continue
                    results[chunk.start] = _quotes_from(reply, len(chunk))
                    dispatch(worker)
        return results

    def shutdown(self) -> None:
        with self.lock:
            for worker in self.workers:
                worker.stop()
            self.workers = []


def _quotes_from(reply: object, expected: int) -> list[Quote]:
    if isinstance(reply, tuple) and len(reply) == 2:
        status, payload = reply
        if status == "ok" and isinstance(payload, list) and len(payload) == expected:
            return payload
        message = str(payload) if status == "error" else "the worker's reply did not match"
    else:
        message = "the worker's reply was not understood"
    return [Quote(price=None, error=f"pricing failed: {message}")] * expected


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def shutdown() -> None:
    """Stop the worker processes (they are restarted on demand)."""
    _POOL.shutdown()


def _serve(task_fd: int, result_fd: int) -> None:
    """A worker's loop: read (engine, options, greeks, bounds), write ("ok", quotes) or
    ("error", text)."""
    # Ctrl-C reaches the whole process group: the parent decides, and closing its pipes
    # ends the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(task_fd, "rb") as tasks, os.fdopen(result_fd, "wb") as results:
        while True:
            try:
                engine_name, options, greeks, bounds = pickle.load(tasks)
            except (EOFError, OSError, pickle.UnpicklingError):
                return  # the parent closed the pipe or exited
            try:
                quotes = call_engine(get_engine(engine_name), options, greeks, bounds)
                reply: tuple[str, object] = ("ok", quotes)
            except Exception as exc:  # the parent turns it into error quotes
                reply = ("error", f"{type(exc).__name__}: {exc}")
            try:
                pickle.dump(reply, results, protocol=pickle.HIGHEST_PROTOCOL)
                results.flush()
            except BrokenPipeError:
                return  # the parent is gone


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):  # the parent went away mid-reply
        _serve(int(sys.argv[1]), int(sys.argv[2]))
