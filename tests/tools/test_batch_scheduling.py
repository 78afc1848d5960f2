"""Which Batch job starts when a slot frees (runtime/tools/batch_scheduler.py): queue
priority, FIFO, fair share by weight; pure, without any AWS."""

from __future__ import annotations

from runtime.tools.batch_scheduler import QueuePolicy, Unit, next_unit, start_order, usage

NORMAL, URGENT = "normal", "urgent"
FIFO_QUEUES = {NORMAL: QueuePolicy(priority=1), URGENT: QueuePolicy(priority=10)}
WEIGHTS = {"risk": 3.0, "trading": 1.0}
FAIR_QUEUES = {
    NORMAL: QueuePolicy(priority=1, weights=WEIGHTS),
    URGENT: QueuePolicy(priority=10, weights=WEIGHTS),
}


def jobs(queue: str, count: int, share: str = "", first: int = 0) -> list[Unit]:
    """``count`` plain jobs submitted one after the other."""
    return [Unit(f"{queue}-{n}", queue, share, (n, 0)) for n in range(first, first + count)]


def children(job: int, size: int, queue: str = NORMAL, share: str = "") -> list[Unit]:
    """The children of one array job, submitted as the ``job``-th submission."""
    return [Unit(f"job{job}:{i}", queue, share, (job, i)) for i in range(size)]


def interleaved(count: int) -> list[Unit]:
    """Two teams' jobs submitted alternately: risk, trading, risk, trading..."""
    return [
        Unit(f"{team}-{n}", NORMAL, team, (2 * n + t, 0))
        for n in range(count)
        for t, team in enumerate(("risk", "trading"))
    ]


def test_an_urgent_job_behind_fifty_queued_normal_jobs_starts_first():
    queued = jobs(NORMAL, 50)
    urgent = Unit("urgent-0", URGENT, "", (50, 0))  # submitted last
    assert next_unit([*queued, urgent], FIFO_QUEUES, started=queued[:3]) == urgent
    # ... and with fair share too: priority comes before any share's usage.
    fair = [Unit(u.name, NORMAL, "trading", u.order) for u in queued]
    busy_risk = Unit("urgent-1", URGENT, "risk", (51, 0))
    history = [Unit(f"old-{n}", URGENT, "risk", (n, 0)) for n in range(10)]
    assert next_unit([*fair, busy_risk], FAIR_QUEUES, history) == busy_risk


def test_every_urgent_job_starts_before_the_normal_ones_then_those_in_order():
    urgent = jobs(URGENT, 3, first=10)
    order = start_order([*jobs(NORMAL, 5), *urgent], FIFO_QUEUES)
    assert [u.name for u in order] == [
        "urgent-10",
        "urgent-11",
        "urgent-12",
        "normal-0",
        "normal-1",
        "normal-2",
        "normal-3",
        "normal-4",
    ]


def test_fifo_within_a_fifo_queue_whatever_the_shares():
    units = [*children(2, 3, share="trading"), *jobs(NORMAL, 2, "risk"), *children(3, 2)]
    order = start_order(reversed(units), FIFO_QUEUES)
    assert [u.name for u in order] == [
        "normal-0",
        "normal-1",
        "job2:0",
        "job2:1",
        "job2:2",
        "job3:0",
        "job3:1",
    ]


def test_two_teams_weighted_three_to_one_start_three_to_one_while_both_have_work():
    order = start_order(interleaved(12), FAIR_QUEUES)
    teams = [u.share[0].upper() for u in order]  # R(isk) or T(rading)
    # Least usage per weight first; a tie goes to the share whose next job is older.
    assert "".join(teams[:16]) == "RTRRTRRRTRRRTRRR"
    assert teams[:16].count("R") == 3 * teams[:16].count("T")
    # Within a team, its own jobs keep their order.
    assert [u.name for u in order if u.share == "trading"][:4] == [f"trading-{n}" for n in range(4)]
    # Risk's twelve jobs are all started by then; trading's last eight have every slot.
    assert "".join(teams[16:]) == "T" * 8


def test_equal_weights_alternate():
    equal = {NORMAL: QueuePolicy(priority=1, weights={"risk": 1.0, "trading": 1.0})}
    order = start_order(interleaved(4), equal)
    assert [u.share for u in order] == ["risk", "trading"] * 4


def test_a_team_with_no_waiting_jobs_leaves_its_capacity_to_the_other():
    # Trading's weight is three times risk's, but trading has nothing waiting: risk gets
    # every slot, one job after the other, none held back.
    favoured = {NORMAL: QueuePolicy(priority=1, weights={"risk": 1.0, "trading": 3.0})}
    risk_only = jobs(NORMAL, 6, "risk")
    assert start_order(risk_only, favoured) == risk_only
    # When a trading job arrives behind risk's six, it starts at the next free slot.
    later = Unit("trading-late", NORMAL, "trading", (99, 0))
    waiting = [*jobs(NORMAL, 4, "risk", first=6), later]
    assert next_unit(waiting, favoured, started=risk_only) == later


def test_a_share_not_in_the_policy_weighs_one_as_the_default_share():
    policy = {NORMAL: QueuePolicy(priority=1, weights={"risk": 2.0})}
    units = [
        *[Unit(f"d{n}", NORMAL, "default", (2 * n, 0)) for n in range(6)],
        *[Unit(f"r{n}", NORMAL, "risk", (2 * n + 1, 0)) for n in range(6)],
    ]
    order = start_order(units, policy)
    assert [u.share for u in order[:6]].count("risk") == 4  # 2:1


def test_usage_counts_starts_per_share_on_the_queue_within_the_window():
    started = [*jobs(NORMAL, 4, "risk"), *jobs(URGENT, 2, "trading"), *jobs(NORMAL, 1, "fx")]
    assert usage(NORMAL, QueuePolicy(1, WEIGHTS), started) == {"risk": 4, "fx": 1}
    assert usage(NORMAL, QueuePolicy(1, WEIGHTS, window=2), started) == {"risk": 1, "fx": 1}
    # Risk's many starts fall out of a short window: it is no longer held back.
    waiting = [Unit("risk-9", NORMAL, "risk", (9, 0)), Unit("fx-10", NORMAL, "fx", (10, 0))]
    windowed = {NORMAL: QueuePolicy(1, {"risk": 1.0, "fx": 1.0}, window=1)}
    assert next_unit(waiting, windowed, started) == waiting[0]
    unwindowed = {NORMAL: QueuePolicy(1, {"risk": 1.0, "fx": 1.0})}
    assert next_unit(waiting, unwindowed, started) == waiting[1]


def test_nothing_runnable_starts_nothing():
    assert next_unit([], FAIR_QUEUES, started=jobs(NORMAL, 3, "risk")) is None
