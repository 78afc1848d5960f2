"""Pure job-protocol helpers: planning parts, naming keys, merging in order."""

import dataclasses

import pytest

from runtime.core import keys
from runtime.core.manifest import BATCH_MAX_ARRAY_SIZE, Manifest, merge_results, plan_parts
from runtime.protocol.lifecycle import missing_parts


@pytest.mark.parametrize(
    ("rows", "threshold", "max_parts", "sizes"),
    [
        (100, 10, 1000, [10] * 10),
        (101, 10, 1000, [10] * 10 + [1]),
        (95, 10, 1000, [10] * 9 + [5]),
        (5, 10, 1000, [5]),
        (0, 10, 1000, []),
        (100_001, 10, 10_000, None),
    ],
)
def test_plan_parts_covers_every_row_once_in_order(rows, threshold, max_parts, sizes):
    plan = plan_parts(rows, threshold, max_parts)
    assert [i for part in plan for i in part] == list(range(rows))
    assert len(plan) <= max_parts
    if sizes is not None:
        assert [len(part) for part in plan] == sizes


def test_part_size_grows_instead_of_exceeding_the_batch_array_limit():
    plan = plan_parts(250_000, 10, BATCH_MAX_ARRAY_SIZE)
    assert len(plan) == 10_000
    assert {len(part) for part in plan} == {25}


def test_plan_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        plan_parts(10, 0, 5)


def test_tokens_follow_the_upload_identity():
    a = keys.job_token("b", "fast/1/x.csv", "v1")
    assert a == keys.job_token("b", "fast/1/x.csv", "v1")
    assert a != keys.job_token("b", "fast/1/x.csv", "v2")
    assert a != keys.job_token("b", "fast/2/x.csv", "v1")


def test_part_keys_round_trip_and_stay_where_they_must():
    key = keys.fast_part_key("tok", 3, 42)
    assert key == "fast/_parts/tok/3/part-00042.csv"
    assert keys.parse_fast_part_key(key) == ("tok", 3, 42)
    assert keys.is_fast_part(key) and key.startswith(keys.fast_parts_prefix("tok"))
    assert not keys.batch_part_key("tok", 1).startswith("normal/_parts")
    assert keys.batch_part_key("tok", 1).startswith(keys.work_prefix("normal", "tok"))
    results = keys.results_prefix("fast", "tok")
    listed = [
        keys.part_result_key("fast", "tok", 7),
        results + "part-00003.csv-result",  # not ours: never counts as a part
        results + "part-x.csv",
        results + "sub/part-00004.csv",
        keys.part_result_key("fast", "other", 5),
    ]
    assert keys.indexes_in(listed, results, ".csv") == {7}
    for stray in (
        "fast/_parts/tok/notes.txt",
        "fast/_parts/tok/part-00001.csv",  # no attempt
        "fast/_parts/tok/1/part-x.csv",
        "fast/_parts/tok/0/part-00001.csv",
        "fast/_parts/tok/a/part-00001.csv",
        "fast/_parts/tok/1/part-00001.txt",
        "fast/_parts/tok/1/part-00001.csv/x.csv",
        "fast/_parts//1/part-00001.csv",
        "fast/_parts/p.csv",
        "normal/_parts/tok/1/part-00001.csv",
    ):
        with pytest.raises(keys.NotAJobKey):
            keys.parse_fast_part_key(stray)


def test_merge_locks_are_per_attempt():
    first, second = keys.lock_key("fast", "tok", 1), keys.lock_key("fast", "tok", 2)
    assert first != second
    assert first.startswith(keys.work_prefix("fast", "tok")) and first.endswith(".lock")


def manifest(runner: str) -> Manifest:
    return Manifest(
        token="tok",
        runner=runner,
        input_bucket="in",
        input_key=f"{runner}/x/book.csv",
        version="v1",
        engine="lsm",
        rows=25,
        part_rows=[10, 10, 5],
        result_header=["id", "price", "stdError", "error"],
        split_attempt=2,
    )


def test_a_manifest_knows_where_each_attempts_part_is_and_is_written_once():
    fast, normal = manifest("fast"), manifest("normal")
    assert fast.part_key(1) == keys.fast_part_key("tok", 2, 1)  # the split's attempt
    assert fast.part_key(1, 3) == keys.fast_part_key("tok", 3, 1)  # a retry's copy
    assert normal.part_key(1) == normal.part_key(1, 3) == keys.batch_part_key("tok", 1)
    assert (fast.part_bucket("results"), normal.part_bucket("results")) == ("in", "results")
    assert [normal.part_range(i) for i in range(3)] == [range(0, 10), range(10, 20), range(20, 25)]
    assert Manifest.from_dict({**fast.to_dict(), "unknown": 1}) == fast
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.rows = 3  # type: ignore[misc]


def test_path_of_accepts_only_the_lanes():
    for lane in ("fast", "normal", "urgent", "auto"):
        assert keys.path_of(f"{lane}/a/b.csv") == lane
    with pytest.raises(ValueError):
        keys.path_of("other/a.csv")


def test_merge_keeps_part_order_and_one_header():
    header = b"h1,h2\n"
    merged = merge_results(header, [header + b"1,a\n", header + b"2,b\n3,c\n"])
    assert merged == b"h1,h2\n1,a\n2,b\n3,c\n"
    with pytest.raises(ValueError, match="part-00001"):
        merge_results(header, [header, b"x,y\n"])


def test_missing_parts_lists_the_gaps():
    assert missing_parts(5, [0, 2, 4]) == [1, 3]


def test_a_manifest_records_bounds_and_reads_one_written_before_them():
    from runtime.core.manifest import Manifest

    fields = {
        "token": "t", "runner": "fast", "input_bucket": "b", "input_key": "k", "version": "v",
        "engine": "lsm", "rows": 3, "part_rows": [3], "result_header": ["price"],
        "greeks": True,
    }  # fmt: skip
    older = Manifest.from_dict(fields)  # a manifest written before bounds existed
    assert older.bounds is False and older.greeks is True
    newer = Manifest.from_dict({**fields, "bounds": True})
    assert newer.bounds is True and Manifest.from_dict(newer.to_dict()) == newer
