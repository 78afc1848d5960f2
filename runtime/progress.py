"""Progress on stderr: a bar on a terminal, a plain line every few seconds elsewhere (CI logs)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

# Without a terminal, one line at most this often (and one at the end).
PLAIN_LINE_SECONDS = 5.0
# On a terminal, the line is redrawn at most this often.
TERMINAL_REDRAW_SECONDS = 0.1


@contextlib.contextmanager
def progress_bar(
    total: int | None,
    unit: str,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    every: float = PLAIN_LINE_SECONDS,
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: on a terminal one line redrawn in place (at most ten times a
    second), elsewhere a plain line every ``every`` seconds and one at the end."""
    out = stream or sys.stderr
    terminal = out.isatty()
    started = last = clock()
    done = 0

    def line(final: bool = False) -> None:
        of = f" of {total}" if total is not None else ""
        if not terminal:
            print(f"progress: {done}{of} {unit}s", file=out, flush=True)
            return
        share = f" ({100 * done / total:.0f} %)" if total else ""
        rate = done / max(clock() - started, 1e-9)
        text = f"{done}{of} {unit}s{share}, {rate:.1f} per second"
        print(f"\r{text}\x1b[K", end="\n" if final else "", file=out, flush=True)

    def advance(count: int) -> None:
        nonlocal done, last
        done += count
        if clock() - last >= (TERMINAL_REDRAW_SECONDS if terminal else every):
            last = clock()
            line()

    yield advance
    if done:
        line(final=True)
