"""The timeline of a simulation: what happened when, by whom (``user``, ``lambda <file>``,
``batch <role>``, ``event``...), relative to its start; printed as it grows when ``echo`` is
given. The emulator's services all write to it, so it is its own module."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


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

    def messages(self, actor_prefix: str = "") -> list[str]:
        return [message for _, actor, message in self.events if actor.startswith(actor_prefix)]

    def starts(self) -> list[str]:
        """The Batch units' start lines, in the order they started ("child 3 started
        (queue urgent, share risk)")."""
        return [message for message in self.messages("batch") if " started (queue " in message]


def format_event(entry: tuple[float, str, str]) -> str:
    seconds, actor, message = entry
    return f"{seconds:8.2f}s  {actor:<14} {message}"
