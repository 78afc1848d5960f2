"""How many CPUs this container may really use: the smallest of every limit that applies.

``os.cpu_count()`` reports the host's CPUs, not the container's share, so pricing with that
many processes would oversubscribe a Batch job or a Lambda function. The limits read here:

- the CPU affinity mask (``os.sched_getaffinity``): cpusets, ``taskset``, Fargate's VM size;
- cgroup v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``) of this process's
  cgroup and each ancestor: Docker's ``--cpus``, Kubernetes CPU limits, ECS task CPU limits;
- cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, the same limit on older hosts;
- Lambda: CPU is proportional to the configured memory (1 vCPU per 1,769 MB), which the
  function's VM does not show as a quota, so the function's memory is a limit;
- an explicit cap (``PRICING_WORKERS``), for hosts whose limit is invisible from inside.

The last two come from the environment, which only ``runtime.environment`` reads: callers
pass them (``CpuLimits``).
  AWS Batch on EC2 gives a job CPU *shares* (a soft weight), not a quota: the job's vCPUs
  should be passed this way by the job definition to avoid oversubscribing the host.

A fractional quota is rounded down (never oversubscribe), with at least one CPU.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

LAMBDA_MB_PER_VCPU = 1769  # AWS: a function gets one full vCPU at 1,769 MB

# (Lambda memory in MB, explicit worker cap): limits the kernel does not show.
CpuLimits = tuple[int | None, int | None]
NO_LIMITS: CpuLimits = (None, None)


def available_cpus(
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
    limits: CpuLimits = NO_LIMITS,
    affinity: int | None = None,
) -> int:
    """CPUs this process may use without oversubscribing (at least 1).

    The paths are parameters so tests can point them at fake files; ``limits`` are the
    environment's (``runtime.environment.cpu_limits``).
    """
    memory, workers = limits
    found = [affinity if affinity is not None else _affinity()]
    for limit in (
        _cgroup_v2_limit(Path(cgroup_root), Path(proc_cgroup)),
        _cgroup_v1_limit(Path(cgroup_root), Path(proc_cgroup)),
        None if memory is None else max(1, memory // LAMBDA_MB_PER_VCPU),
        workers if workers is not None and workers >= 1 else None,
    ):
        if limit is not None:
            found.append(limit)
    return max(1, min(found))


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """Controller list (``""`` for the v2 unified hierarchy) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    return paths


def _candidate_dirs(mount: Path, cgroup_path: str) -> list[Path]:
    """The cgroup's directory and its ancestors up to the mount, deepest first.

    Inside a container with a cgroup namespace the path is ``/`` and the mount is the
    container's own cgroup; without one the host path may not exist under the mount, so the
    mount itself is always a candidate too.
    """
    dirs: list[Path] = []
    relative = Path(cgroup_path.lstrip("/")) if cgroup_path else Path()
    while True:
        candidate = mount / relative
        if candidate not in dirs:
            dirs.append(candidate)
        if relative == Path() or str(relative) == ".":
            break
        relative = relative.parent
    return dirs


def _quota_cpus(quota: float, period: float) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.floor(quota / period))


def _cgroup_v2_limit(root: Path, proc_cgroup: Path) -> int | None:
    paths = _cgroup_paths(proc_cgroup)
    limits = []
    for directory in _candidate_dirs(root, paths.get("", "/")):
        raw = _read(directory / "cpu.max")
        if not raw:
            continue
        fields = raw.split()
        if len(fields) != 2 or fields[0] == "max":
            continue
        try:
            cpus = _quota_cpus(float(fields[0]), float(fields[1]))
        except ValueError:
            continue
        if cpus is not None:
            limits.append(cpus)  # every ancestor's limit applies as well
    return min(limits) if limits else None


def _cgroup_v1_limit(root: Path, proc_cgroup: Path) -> int | None:
    paths = _cgroup_paths(proc_cgroup)
    cgroup_path = next(
        (path for controllers, path in paths.items() if "cpu" in controllers.split(",")), "/"
    )
    limits = []
    for mount in (root / "cpu,cpuacct", root / "cpu", root / "cpuacct,cpu"):
        for directory in _candidate_dirs(mount, cgroup_path):
            quota = _read(directory / "cpu.cfs_quota_us")
            period = _read(directory / "cpu.cfs_period_us")
            if quota is None or period is None:
                continue
            try:
                cpus = _quota_cpus(float(quota), float(period))  # quota -1: no limit
            except ValueError:
                continue
            if cpus is not None:
                limits.append(cpus)
    return min(limits) if limits else None
