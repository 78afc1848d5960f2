"""Progress on stderr: a bar on a terminal, a plain line every few seconds elsewhere (CI logs)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

# Without a terminal, one line at most this often (and one at the end).
PLAIN_LINE_SECONDS = 5.0


@contextlib.contextmanager
def progress_bar(
    total: int | None,
    unit: str,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    every: float = PLAIN_LINE_SECONDS,
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; a tqdm bar when ``stream`` is a terminal, plain lines otherwise."""
    out = stream or sys.stderr
    if out.isatty():
        from tqdm import tqdm

        with tqdm(total=total, unit=unit, file=out) as bar:
            yield bar.update
        return
    done = 0
    last = clock()

    def line() -> None:
        of = f" of {total}" if total is not None else ""
        print(f"progress: {done}{of} {unit}s", file=out, flush=True)

    def advance(count: int) -> None:
        nonlocal done, last
        done += count
        if clock() - last >= every:
            last = clock()
            line()

    yield advance
    if done:
        line()
