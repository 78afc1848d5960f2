"""The Batch lanes end to end on the embedded AWS: the real handlers and entrypoint, each
Batch job a process, started in the order Batch would start them (one slot, so the order is
the scheduler's alone). The timeline's start lines show the order."""

from __future__ import annotations

import pytest

from runtime.protocol.uploads import TEAM_METADATA
from runtime.tools.cli import fair_share_weights
from runtime.tools.cli import main as cli
from runtime.tools.emulator import Emulator, Timeline, runtime_environment
from runtime.tools.local_cloud import INPUT_BUCKET, local_cloud
from tests.conftest import SAMPLE

# Small books and parts of two rows keep each job short; lsm prices them in milliseconds.
THRESHOLD = 2


def book(rows: int) -> bytes:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    return b"".join(lines[: rows + 1])


def run(uploads: list[tuple[str, bytes, str]], fair_share=None, on_started=None):
    """Upload each (key, data, team), run everything the stack does with them on one Batch
    slot and one Lambda container (admission in upload order); the timeline and the events."""
    with local_cloud() as cloud:
        cloud.create_stack()
        teams = tuple(fair_share or ())
        environment = runtime_environment(cloud, THRESHOLD, "lsm", teams=teams)
        timeline = Timeline()
        with Emulator(
            cloud,
            environment,
            timeline,
            workers=1,
            capacity=1,
            fair_share=fair_share,
            on_started=on_started,
        ) as emulator:
            for key, data, team in uploads:
                metadata = {TEAM_METADATA: team} if team else {}
                emulator.s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=data, Metadata=metadata)
            emulator.run([emulator.upload_event(key) for key, _, _ in uploads])
            emulator.drain_job_events()
            return timeline, emulator.job_events


def test_an_urgent_upload_made_while_a_normal_book_runs_starts_before_its_remaining_parts():
    normal = "normal/20261124-0900/overnight.csv"
    urgent = "urgent/20261124-0905/intraday.csv"
    made: list[str] = []

    def upload_urgent_when_the_first_child_starts(emulator, task) -> None:
        if task.role == "child" and not made:
            emulator.s3.put_object(Bucket=INPUT_BUCKET, Key=urgent, Body=book(2))
            made.append(task.input_key)

    timeline, events = run(
        [(normal, book(8), "")], on_started=upload_urgent_when_the_first_child_starts
    )
    assert made == [normal]
    # The upload is admitted while child 0 runs; when its slot frees, the urgent queue's
    # manager (priority 10) goes before the three normal children still queued.
    assert timeline.starts() == [
        "manager started (queue normal)",
        "child 0 started (queue normal)",
        "manager started (queue urgent)",
        *[f"child {i} started (queue normal)" for i in range(1, 4)],
        "merge started (queue normal)",
    ]
    assert sorted((e["inputKey"], e["state"], e["rows"], e["parts"]) for e in events) == [
        (normal, "done", 8, 4),
        (urgent, "done", 2, 1),
    ]


def test_two_teams_parts_start_interleaved_by_their_weights():
    risk = "normal/20261124-0900/risk.csv"
    trading = "normal/20261124-0900/trading.csv"
    timeline, events = run(
        [(risk, book(6), "risk"), (trading, book(4), "trading")],
        fair_share={"risk": 3.0, "trading": 1.0},
    )
    # Each job goes to the share with the least starts per weight (ties: the older job):
    # after both managers, risk (weight 3) starts three parts before trading's first;
    # trading then starts while risk's usage per weight is the higher.
    assert timeline.starts() == [
        "manager started (queue normal, share risk)",
        "manager started (queue normal, share trading)",
        "child 0 started (queue normal, share risk)",
        "child 1 started (queue normal, share risk)",
        "child 2 started (queue normal, share risk)",
        "child 0 started (queue normal, share trading)",
        "merge started (queue normal, share risk)",
        "child 1 started (queue normal, share trading)",
        "merge started (queue normal, share trading)",
    ]
    assert sorted((e["inputKey"], e["state"], e["parts"]) for e in events) == [
        (risk, "done", 3),
        (trading, "done", 2),
    ]


def test_simulate_on_the_urgent_lane_with_fair_share(tmp_path, capsys):
    source = tmp_path / "intraday.csv"
    source.write_bytes(book(3))
    out = tmp_path / "out.csv"
    command = ["simulate", str(source), "--path", "urgent", "--threshold", "5", "--workers", "1"]
    options = ["--engine", "lsm", "--fair-share", "risk=3,trading=1", "--team", "risk"]
    assert cli([*command, *options, "-o", str(out)]) == 0
    shown = capsys.readouterr().err
    assert "manager started (queue urgent, share risk)" in shown
    assert shown.count("Pricing Job State Change: ") == 1
    assert "Pricing Job State Change: done urgent/" in shown
    assert len(out.read_bytes().splitlines()) == 4  # the header and three priced rows


def test_fair_share_weights_are_read_as_the_stack_setting():
    assert fair_share_weights("risk=3, trading=1") == {"risk": 3.0, "trading": 1.0}
    assert fair_share_weights("fx=0.5") == {"fx": 0.5}


@pytest.mark.parametrize("text", ["risk", "risk=0", "risk=-1", "ri-sk=1", "risk=1,risk=2", ","])
def test_a_malformed_fair_share_setting_is_refused(text, capsys):
    with pytest.raises(SystemExit) as refused:
        cli(["simulate", str(SAMPLE), "--path", "normal", "--fair-share", text])
    assert refused.value.code == 2  # argparse's usage error, before anything runs
    assert "--fair-share" in capsys.readouterr().err
