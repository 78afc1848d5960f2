"""Which runnable Batch job starts when a slot frees: AWS Batch's job scheduling, as a pure
function of what waits, the queues' settings and what started before. The emulated Batch
service (``runtime.tools.emulated_batch``) asks ``next_unit`` every time a slot is free.

A unit is what takes one slot: a plain job, or one child of an array job.

The rule, in order:

1. **Queue priority.** A runnable unit of a higher-priority queue always starts before any
   unit of a lower-priority one (the stack: urgent 10, normal 1, on capacity both queues
   share). Between queues of equal priority, the oldest unit goes first.
2. **FIFO queue** (no scheduling policy): submission order; an array's children by index.
3. **Fair-share queue**: among the shares that have a runnable unit, the next unit goes to
   the share with the least usage per weight, ``usage / weight``; within a share, FIFO; on a
   tie, the share whose next unit was submitted first. A share's usage is the number of its
   units started on that queue among the queue's last ``window`` starts (``None``: every
   start since the emulator began). A share with no runnable unit is skipped, so its
   capacity goes to the shares that have work; a share that arrives has no recent usage and
   takes the next free slot.

How this relates to Batch's fair-share policy (components/batch_array.py):

- ``weightFactor = 1 / weight``: Batch gives a share capacity in inverse proportion to its
  weight factor; ranking shares by ``usage x weightFactor`` is ranking them by
  ``usage / weight`` here. Weights 3:1 start units 3:1 while both shares have work.
- ``shareDecaySeconds`` (3,600 in the stack): Batch's usage is vCPU time, decayed over that
  period. Here every unit needs one slot and local units are alike, so usage counts starts,
  and the decay is a window of starts; local simulations last seconds, far inside the
  stack's hour, so the emulator keeps every start (no window) unless told otherwise.
- ``computeReservation`` (25 in the stack): Batch holds back ``(25 %) ^ active shares`` of
  the capacity for shares that have no job yet. Not modelled: with a handful of local slots
  it would leave slots idle; an arriving share still starts at the next free slot, because
  its usage is the least.
- Priority across queues is Batch's: the higher-priority queue is evaluated first on a
  shared compute environment. Locally both queues share the emulator's slots (the stack
  gives the urgent lane its own on-demand environment first, then the normal one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# A share that the policy does not list weighs as Batch's default weight factor, 1.
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class Unit:
    """One slot's worth of work: a plain job or one array child."""

    name: str  # the job id, or "<array job id>:<index>"
    queue: str
    share: str = ""  # the share identifier ("" on a FIFO queue)
    order: tuple[int, int] = (0, 0)  # submission order: (job, array index)


@dataclass(frozen=True)
class QueuePolicy:
    """A job queue's scheduling settings: its priority and, for a fair-share queue, the
    shares' weights (``None``: a FIFO queue) and the usage window (starts; ``None``: all)."""

    priority: int
    weights: Mapping[str, float] | None = field(default=None, hash=False)
    window: int | None = None

    @property
    def fair_share(self) -> bool:
        return self.weights is not None

    def weight(self, share: str) -> float:
        return (self.weights or {}).get(share, DEFAULT_WEIGHT)


_FIFO = QueuePolicy(priority=0)


def next_unit(
    runnable: Iterable[Unit], queues: Mapping[str, QueuePolicy], started: Sequence[Unit]
) -> Unit | None:
    """The unit that takes the next free slot, or None when nothing is runnable.
    ``started``: every unit started so far, oldest first (the fair-share usage)."""
    waiting = list(runnable)
    if not waiting:
        return None
    top = max(queues.get(unit.queue, _FIFO).priority for unit in waiting)
    by_queue: dict[str, list[Unit]] = {}
    for unit in waiting:
        if queues.get(unit.queue, _FIFO).priority == top:
            by_queue.setdefault(unit.queue, []).append(unit)
    heads = [
        _queue_head(units, queues.get(name, _FIFO), usage(name, queues.get(name, _FIFO), started))
        for name, units in by_queue.items()
    ]
    return min(heads, key=lambda unit: unit.order)


def usage(queue: str, policy: QueuePolicy, started: Sequence[Unit]) -> Counter[str]:
    """Units started per share on ``queue``, within the policy's window of starts."""
    on_queue = [unit for unit in started if unit.queue == queue]
    if policy.window is not None:
        on_queue = on_queue[-policy.window :] if policy.window > 0 else []
    return Counter(unit.share for unit in on_queue)


def _queue_head(units: list[Unit], policy: QueuePolicy, used: Counter[str]) -> Unit:
    """The unit one queue would start next."""
    if not policy.fair_share:
        return min(units, key=lambda unit: unit.order)
    heads: dict[str, Unit] = {}
    for unit in units:
        if unit.share not in heads or unit.order < heads[unit.share].order:
            heads[unit.share] = unit
    return min(
        heads.values(),
        key=lambda unit: (used[unit.share] / policy.weight(unit.share), unit.order),
    )


def start_order(
    units: Iterable[Unit], queues: Mapping[str, QueuePolicy], started: Sequence[Unit] = ()
) -> list[Unit]:
    """The order in which ``units``, all runnable, would start one at a time (one slot,
    each unit finishing before the next starts), after ``started``."""
    waiting = list(units)
    history = list(started)
    order: list[Unit] = []
    while waiting:
        unit = next_unit(waiting, queues, history)
        assert unit is not None
        waiting.remove(unit)
        history.append(unit)
        order.append(unit)
    return order
