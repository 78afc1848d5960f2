"""The auto lane's choice and the budget guard: plan in, a decision and its reason out.

The reasons are what a user reads in the status object (``autoPath``/``autoReason``,
``error`` of a job the guard stopped), so they name the figures and the setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from runtime.planning.paths import FAST, NORMAL, PathPlan


def usd_text(usd: float) -> str:
    """Dollars a person reads: cents above $100, else three significant digits, however
    small ($0.0000667), never in exponent notation."""
    if usd <= 0:
        return "$0"
    if usd >= 100:
        return f"${usd:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(usd)))
    return f"${usd:.{decimals}f}"


def seconds_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def choose_path(paths: Mapping[str, PathPlan], auto_fast_seconds: float) -> tuple[str, str]:
    """``fast`` when the fast path is available, its parts fit Lambda's timeout and it is
    estimated to finish within ``auto_fast_seconds``; else ``normal``. With the reason."""
    fast, normal = paths.get(FAST), paths.get(NORMAL)
    if fast is None or not fast.available:
        why = fast.reason if fast is not None else "no fast path"
        return NORMAL, f"normal path: the fast path is not available ({why})"
    if normal is None or not normal.available:
        return FAST, "fast path: the normal path is not available"
    if not fast.fits:
        return NORMAL, f"normal path: on Lambda {fast.reason}"
    limit = seconds_text(auto_fast_seconds)
    estimate = seconds_text(fast.wall_seconds)
    if fast.wall_seconds <= auto_fast_seconds:
        return FAST, (
            f"fast path: estimated {estimate} on Lambda ({fast.parts} part(s)), within "
            f"autoFastSeconds ({limit})"
        )
    return NORMAL, (
        f"normal path: estimated {estimate} on Lambda, over autoFastSeconds ({limit}); "
        f"the normal path is estimated at {seconds_text(normal.wall_seconds)}"
    )


def over_budget(paths: Mapping[str, PathPlan], path: str, max_job_usd: float) -> str | None:
    """Why the job may not run on ``path`` under ``maxJobUsd``, or None (0 = no limit)."""
    if max_job_usd <= 0:
        return None
    plan = paths.get(path)
    if plan is None or not plan.available:
        return None  # nothing to price on: the path itself reports the problem
    if plan.usd <= max_job_usd:
        return None
    return (
        f"estimated cost {usd_text(plan.usd)} on the {path} path is over maxJobUsd "
        f"{usd_text(max_job_usd)}: not priced (jobs retry --force runs it anyway)"
    )
