"""Fault injection for ``simulate``: what goes wrong, and where it is made to go wrong.

Faults live here, in the local tools, never in the image's code: ``install`` patches the
runtime's functions inside an emulated Lambda container (a worker process) or an emulated
Batch container (``python -m runtime.tools.faulty_job``), and then the real handler or
entrypoint runs. The emulator (``runtime.tools.emulator``) decides what AWS does next.

- ``part-error:N`` (both paths): pricing part N raises an application error, every attempt;
- ``part-kill:N`` (both paths): the process pricing part N is killed (SIGKILL), every attempt;
- ``merge-kill[:K]`` (both paths): the merging process is killed after claiming the merge
  lock and before publishing, on the first K merge attempts (default 1); on the normal
  path this is its host being reclaimed, which Batch's retry strategy retries;
- ``spot:N[:K]`` (normal path): child N's host is reclaimed (Spot) on its first K attempts.
"""

from __future__ import annotations

import contextvars
import inspect
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

PART_ERROR = "part-error"
PART_KILL = "part-kill"
MERGE_KILL = "merge-kill"
SPOT = "spot"
KINDS = (PART_ERROR, PART_KILL, MERGE_KILL, SPOT)
# The job definition's retry strategy: attempts per job (only host failures are retried).
BATCH_ATTEMPTS = 3

FAULT_HELP = (
    "inject a fault (repeatable): part-error:N (part N raises on every attempt), "
    "part-kill:N (the process pricing part N is killed, every attempt), merge-kill[:K] "
    "(the merging process is killed after claiming the lock, K times, default 1), "
    "spot:N[:K] (normal path: child N's host is reclaimed on its first K attempts, default 1)"
)


class InjectedFault(Exception):
    """The application error ``part-error`` raises inside the pricing of a part."""


@dataclass(frozen=True)
class Fault:
    kind: str
    part: int | None = None
    times: int = 1  # spot, merge-kill: how many attempts it happens to

    def __str__(self) -> str:
        if self.kind == MERGE_KILL:
            return MERGE_KILL if self.times == 1 else f"{MERGE_KILL}:{self.times}"
        if self.kind == SPOT and self.times != 1:
            return f"{SPOT}:{self.part}:{self.times}"
        return f"{self.kind}:{self.part}"


def parse_fault(text: str) -> Fault:
    """A fault from its command-line spelling; ValueError names what is wrong."""
    kind, _, rest = text.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown fault {text!r}: use one of {', '.join(KINDS)}")
    if kind == MERGE_KILL:
        if rest and not rest.isdigit():
            raise ValueError(f"fault {text!r}: expected merge-kill or merge-kill:K (K attempts)")
        times = int(rest) if rest else 1
        if not 1 <= times <= BATCH_ATTEMPTS:
            raise ValueError(f"fault {text!r}: K must be 1 to {BATCH_ATTEMPTS} (the attempts)")
        return Fault(MERGE_KILL, None, times)
    fields = rest.split(":") if rest else []
    most = 2 if kind == SPOT else 1
    if not fields or len(fields) > most or not all(f.isdigit() for f in fields):
        shape = f"{kind}:N" + ("[:K]" if kind == SPOT else "")
        raise ValueError(f"fault {text!r}: expected {shape} with N a part number (0, 1, ...)")
    times = int(fields[1]) if len(fields) > 1 else 1
    if kind == SPOT and not 1 <= times <= BATCH_ATTEMPTS:
        raise ValueError(f"fault {text!r}: K must be 1 to {BATCH_ATTEMPTS} (the job's attempts)")
    return Fault(kind, int(fields[0]), times)


def check_faults(faults: list[Fault], path: str) -> None:
    """Faults that cannot happen on ``path`` are refused, not ignored."""
    for fault in faults:
        if fault.kind == SPOT and path != "normal":
            raise ValueError(f"fault {fault}: Spot reclaims happen on the normal path only")


def kill_this_process() -> None:
    """Die as a killed container does: no cleanup, no exception, no last words."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(faults: list[Fault], state_dir: Path | None) -> None:
    """Patch this process's runtime so the faults happen. ``state_dir`` remembers the
    faults that happen once (merge-kill) across processes."""
    part_faults = {(f.kind, f.part) for f in faults if f.kind in (PART_ERROR, PART_KILL, SPOT)}
    if part_faults:
        _patch_price_part(part_faults)
    for fault in faults:
        if fault.kind == MERGE_KILL:
            _patch_merge(state_dir, fault.times)


def _patch_price_part(part_faults: set[tuple[str, int | None]]) -> None:
    from runtime.protocol.steps import JobSteps

    price_part = JobSteps.price_part
    # Whatever else the step takes (its fence, its actor, whether to merge), the part is
    # its ``index`` argument: read by name, so the fault follows the protocol's signature.
    signature = inspect.signature(price_part)

    def faulty_price_part(self, *args, **kwargs):
        index = signature.bind(self, *args, **kwargs).arguments["index"]
        if (PART_ERROR, index) in part_faults:
            raise InjectedFault(f"injected fault part-error:{index}")
        if (PART_KILL, index) in part_faults or (SPOT, index) in part_faults:
            kill_this_process()
        return price_part(self, *args, **kwargs)

    JobSteps.price_part = faulty_price_part  # type: ignore[method-assign]


_MERGING: contextvars.ContextVar[bool] = contextvars.ContextVar("merging", default=False)


def _patch_merge(state_dir: Path | None, times: int) -> None:
    """Kill the process when a merge, holding the lock, is about to write the result."""
    from runtime.adapters.s3 import ObjectStore
    from runtime.protocol.steps import JobSteps

    merge, put = JobSteps.merge, ObjectStore.put

    def faulty_merge(self, *args, **kwargs):
        token = _MERGING.set(True)
        try:
            return merge(self, *args, **kwargs)
        finally:
            _MERGING.reset(token)

    def faulty_put(self, bucket, key, body, *args, **kwargs):
        if _MERGING.get() and key.endswith("-result") and happens(state_dir, MERGE_KILL, times):
            kill_this_process()
        return put(self, bucket, key, body, *args, **kwargs)

    JobSteps.merge = faulty_merge  # type: ignore[method-assign]
    ObjectStore.put = faulty_put  # type: ignore[method-assign]


def happens(state_dir: Path | None, name: str, times: int) -> bool:
    """True the first ``times`` times it is asked in a simulation, whichever process asks."""
    if state_dir is None:
        return True
    for n in range(1, times + 1):
        try:
            os.close(os.open(state_dir / f"{name}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        return True
    return False


def happened(state_dir: Path, name: str) -> int:
    """How many times ``name`` happened so far."""
    return len(list(state_dir.glob(f"{name}.*")))
