"""The pipeline's own prefixes: a forged part never reaches a result, and uploads into the
reserved segments never touch a job."""

from __future__ import annotations

from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.helpers import FAST_KEY, fast_parts, priced, read, status_of, upload


def test_a_forged_part_never_reaches_the_victims_result(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, second = fast_parts(s3, manifest.token)
    forged = sample_bytes.replace(b",Put,", b",Call,")
    upload(s3, second, forged)  # the attacker writes over part 1, which triggers an event
    assert handle_object(steps, INPUT_BUCKET, second).action == "part-priced"
    assert handle_object(steps, INPUT_BUCKET, first).action == "merged"
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    # Forged keys of parts that do not exist, or of jobs that do not exist, do nothing.
    for key in (
        f"fast/_parts/{manifest.token}/1/part-00007.csv",
        "fast/_parts/0123456789abcdef01234567/1/part-00000.csv",
        f"fast/_parts/{manifest.token}/1/part-00001.csv/x.csv",
        f"fast/_parts/{manifest.token}/part-00001.csv",
        f"fast/_parts/{manifest.token}/0/part-00001.csv",
    ):
        upload(s3, key, forged)
        assert handle_object(steps, INPUT_BUCKET, key).action == "ignored", key
    assert [e["state"] for e in events] == ["done"]


def test_a_forged_part_of_another_attempt_prices_nothing(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    forged = keys.fast_part_key(manifest.token, 2, 0)
    upload(s3, forged, sample_bytes)
    assert handle_object(steps, INPUT_BUCKET, forged).action == "stopped"
    assert status_of(s3, FAST_KEY)["partsDone"] == 0
    for part in fast_parts(s3, manifest.token, attempt=1):
        handle_object(steps, INPUT_BUCKET, part)
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
    assert [e["state"] for e in events] == ["done"]


def test_uploads_into_reserved_segments_are_ignored_and_never_touch_a_job(
    make_steps, s3, sample_bytes
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    results = keys.results_prefix("fast", manifest.token)
    for key in (
        f"{results}part-00000.csv",
        f"normal/_work/{manifest.token}/x.csv",
        "fast/a/_parts/b.csv",
    ):
        upload(s3, key, sample_bytes)
        outcome = handle_object(steps, INPUT_BUCKET, key)
        assert outcome.action == "ignored" and "reserved" in outcome.detail
    # And a stray object in the job's own work prefix is never counted as a part result.
    s3.put_object(Bucket=RESULT_BUCKET, Key=f"{results}part-00000.csv-result", Body=b"x")
    s3.put_object(Bucket=RESULT_BUCKET, Key=f"{results}part-00009.csv", Body=b"x")
    for part in fast_parts(s3, manifest.token):
        handle_object(steps, INPUT_BUCKET, part)
    assert read(s3, keys.result_key(FAST_KEY)) == priced(sample_bytes)
