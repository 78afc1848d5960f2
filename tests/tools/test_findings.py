"""Issue 11's findings through simulate: the emulated AWS around the real handlers."""

from __future__ import annotations

import boto3

from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.engines.parallel import parallel_engine
from runtime.pricing import price_table
from runtime.tools.local_cloud import INPUT_BUCKET
from runtime.tools.simulate import run_simulation
from tests.conftest import SAMPLE

ENGINE = "qdfp"


def priced(data: bytes) -> bytes:
    return price_table(read_table(data), parallel_engine(ENGINE)).csv


def s3_of(emulator):
    return boto3.client(
        "s3",
        endpoint_url=emulator.cloud.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def after_first(wanted: str, action):
    """A hook that runs ``action(emulator, key)`` once, after the first invocation whose
    outcome is ``wanted`` (before the container takes its next event)."""
    done: list[bool] = []

    def hook(emulator, invocation, kind, payload) -> None:
        actions = [o["action"] for o in payload.get("outcomes", [])] if kind == "ok" else []
        if wanted in actions and not done:
            done.append(True)
            action(emulator, sorted(emulator.watch)[0])

    return hook


def test_1_a_reupload_while_the_job_runs_supersedes_it_and_its_result_wins():
    # B is uploaded right after A was split, so its event comes before A's parts' events.
    newer = b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:6])  # header, 5 rows

    def reupload(emulator, key):
        s3_of(emulator).put_object(Bucket=INPUT_BUCKET, Key=key, Body=newer)

    outcome = run_simulation(
        SAMPLE.read_bytes(), SAMPLE.name, "fast", threshold=25, workers=1, engine=ENGINE,
        on_invoked=after_first("split", reupload),
    )  # fmt: skip
    assert outcome.result == priced(newer)
    assert (outcome.status["state"], outcome.status["rows"], outcome.status["generation"]) == (
        "done",
        5,
        2,
    )
    assert [e["state"] for e in outcome.job_events] == ["superseded", "done"]
    assert (
        "stopped: part-00003: a newer upload of the same key replaced this job"
        in outcome.timeline.messages("lambda part")
    )


def test_4_a_forged_part_never_reaches_the_result():
    def forge(emulator, key):
        s3 = s3_of(emulator)
        listed = s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix="fast/_parts/")["Contents"]
        last = sorted(item["Key"] for item in listed)[-1]
        s3.put_object(
            Bucket=INPUT_BUCKET, Key=last, Body=SAMPLE.read_bytes().replace(b",Put,", b",Call,")
        )

    outcome = run_simulation(
        SAMPLE.read_bytes(), SAMPLE.name, "fast", threshold=25, workers=1, engine=ENGINE,
        on_invoked=after_first("part-priced", forge),
    )  # fmt: skip
    assert outcome.status["state"] == "done"
    assert outcome.result == priced(SAMPLE.read_bytes())
    assert [e["state"] for e in outcome.job_events] == ["done"]


def test_5_an_upper_case_csv_is_priced_on_both_paths():
    # The runners: Lambda (fast/) and Batch (normal/; urgent/ takes the same route on its own
    # queue, which the local stack does not have).
    for path in keys.RUNNERS:
        outcome = run_simulation(
            SAMPLE.read_bytes(), "BOOK.CSV", path, threshold=50, workers=2, engine=ENGINE
        )
        assert outcome.status["state"] == "done" and outcome.result == priced(SAMPLE.read_bytes())


def test_6_line_breaks_inside_quoted_fields_keep_rows_in_equal_rows_out():
    lines = SAMPLE.read_text().splitlines()
    rows = [f'{line},"a\r{i}\r\nb"' for i, line in enumerate(lines[1:31])]
    data = ("\n".join([lines[0] + ",note", *rows]) + "\n").encode()
    outcome = run_simulation(data, "notes.csv", "normal", threshold=7, workers=2, engine=ENGINE)
    records = read_table(outcome.result, is_result=True).records
    assert outcome.status["partsTotal"] == 5 and len(records) == 30
    assert [r[9] for r in records] == [f"a\r{i}\r\nb" for i in range(30)]


def test_7_an_absurd_row_gets_its_own_error_and_its_neighbours_are_priced():
    lines = SAMPLE.read_text().splitlines()
    fields = lines[3].split(",")
    fields[6] = "475"  # a basis-point typo in the rate
    lines[3] = ",".join(fields)
    data = ("\n".join(lines) + "\n").encode()
    outcome = run_simulation(data, "typo.csv", "fast", threshold=25, workers=2, engine="lsm")
    records = read_table(outcome.result, is_result=True).records
    assert records[2][-1].startswith("riskFreeRate") and records[2][-3] == ""
    assert all(r[-1] == "" and float(r[-3]) >= 0 for i, r in enumerate(records) if i != 2)
    assert outcome.job_events[0]["rowsWithErrors"] == 1
