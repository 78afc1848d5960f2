"""Job events: exactly one "Pricing Job State Change" per terminal state of an attempt,
delivered from the status' outbox (so a refusal by EventBridge is retried, never lost or
doubled), with the documented fields, and the log lines that carry the job's token."""

from __future__ import annotations

import json

import boto3
import pytest

from runtime.adapters import lambda_handler
from runtime.adapters.lambda_handler import handle_object
from runtime.core import keys
from runtime.protocol.events import EventDeliveryError
from runtime.protocol.lifecycle import Delivered
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET
from tests.helpers import (
    FAST_KEY,
    fast_parts,
    object_created,
    read,
    s3_notification,
    status_of,
    upload,
)


class RefusingFirst:
    """An event sink that EventBridge refuses ``times`` times, then accepts."""

    def __init__(self, sink, times: int = 1) -> None:
        self.sink, self.times = sink, times

    def publish(self, detail: dict) -> None:
        if self.times:
            self.times -= 1
            raise EventDeliveryError(f"EventBridge refused job event {detail['eventId']}")
        self.sink.publish(detail)


def test_the_job_event_carries_the_documented_fields(make_steps, s3, sample_bytes, events):
    steps = make_steps(threshold=200, region="eu-west-1")
    s3.put_object(Bucket=INPUT_BUCKET, Key=FAST_KEY, Body=sample_bytes, Metadata={"team": "risk"})
    lambda_handler.handle(steps, s3_notification(INPUT_BUCKET, FAST_KEY), "req-1")
    (event,) = events
    assert set(event) == {
        "eventId", "input", "inputBucket", "inputKey", "token", "attempt", "generation",
        "state", "path", "rows", "rowsWithErrors", "parts", "resultKey", "errorKey", "error",
        "failedParts", "failedPartsTotal", "startedAt", "finishedAt", "seconds", "engine",
        "region", "resultBucket", "team", "route", "cost",
    }  # fmt: skip
    # The invocation that priced it, measured up to its commit: one Lambda request, its
    # GB-seconds and S3 requests, priced at eu-west-1's list prices (an estimate).
    cost = event["cost"]
    assert (cost["lambdaRequests"], cost["attempts"], cost["estimated"]) == (1, 1, True)
    assert cost["lambdaGbSeconds"] > 0 and cost["s3Requests"] >= 5 and cost["usd"] > 0
    assert (event["team"], event["route"]) == ("risk", None)
    assert (event["state"], event["rows"], event["parts"], event["region"]) == (
        "done",
        100,
        1,
        "eu-west-1",
    )
    token = status_of(s3, FAST_KEY)["token"]
    assert (event["eventId"], event["attempt"], event["generation"]) == (f"{token}.1:done", 1, 1)
    assert event["resultKey"] == f"s3://{RESULT_BUCKET}/{keys.result_key(FAST_KEY)}"
    assert event["startedAt"].endswith("Z") and event["finishedAt"] >= event["startedAt"]


def test_a_job_event_eventbridge_refused_is_delivered_by_the_retry(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=200)
    steps.ledger.events = RefusingFirst(events)
    upload(s3, FAST_KEY, sample_bytes)
    with pytest.raises(EventDeliveryError):  # the invocation fails: Lambda retries it
        handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1")
    status = status_of(s3, FAST_KEY)
    assert status["state"] == "done" and read(s3, keys.result_key(FAST_KEY)) is not None
    assert [entry["kind"] for entry in status["outbox"]] == ["event"] and events == []
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1").action == "duplicate"
    assert events.states() == [(FAST_KEY, "done")]
    assert status_of(s3, FAST_KEY)["outbox"] == []
    # Later touches of the job deliver nothing more.
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-2").action == "duplicate"
    assert events.states() == [(FAST_KEY, "done")]


def test_a_refused_event_of_a_split_job_is_delivered_by_the_merges_retry(
    make_steps, s3, sample_bytes, events
):
    steps = make_steps(threshold=50)
    upload(s3, FAST_KEY, sample_bytes)
    manifest = handle_object(steps, INPUT_BUCKET, FAST_KEY).manifest
    first, last = fast_parts(s3, manifest.token)
    handle_object(steps, INPUT_BUCKET, first, "req-1")
    # Refused when the merge ends the job, and again when the part's failure is recorded.
    steps.ledger.events = RefusingFirst(events, times=2)
    with pytest.raises(EventDeliveryError):
        handle_object(steps, INPUT_BUCKET, last, "req-2")
    assert status_of(s3, FAST_KEY)["state"] == "done" and events == []
    handle_object(steps, INPUT_BUCKET, last, "req-2")  # Lambda's retry of the merge
    assert events.states() == [(FAST_KEY, "done")]


def test_event_bridge_sink_publishes_one_entry_and_a_json_log_line(aws, caplog):
    from runtime.adapters.events import EventBridgeSink
    from runtime.logs import JsonFormatter

    events_client = boto3.client("events")
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="job-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events_client.put_rule(
        Name="jobs",
        EventPattern=json.dumps(
            {"source": ["mc-pricing"], "detail-type": ["Pricing Job State Change"]}
        ),
    )
    events_client.put_targets(Rule="jobs", Targets=[{"Id": "q", "Arn": arn}])
    detail = {"eventId": "t.1:failed", "token": "t", "state": "failed", "rows": 3}
    with caplog.at_level("INFO"):
        EventBridgeSink(events_client).publish(detail)
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["detail"] == detail
    line = json.loads(JsonFormatter().format(caplog.records[0]))
    assert (line["event"], line["detail"]) == ("Pricing Job State Change", detail)


def test_event_bridge_sink_raises_on_a_refusal_and_logs_no_job_event(caplog):
    from runtime.adapters.events import EventBridgeSink

    class Refusing:
        def put_events(self, Entries):
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}

    class Unreachable:
        def put_events(self, Entries):
            raise ConnectionError("no route to events.us-east-1.amazonaws.com")

    detail = {"eventId": "t.1:done", "token": "t", "state": "done"}
    with caplog.at_level("INFO"):
        with pytest.raises(EventDeliveryError, match=r"refused job event t\.1:done"):
            EventBridgeSink(Refusing()).publish(detail)
        with pytest.raises(EventDeliveryError, match=r"job event t\.1:done: no route"):
            EventBridgeSink(Unreachable()).publish(detail)
    assert [r for r in caplog.records if getattr(r, "event", None)] == []


def test_every_log_line_of_a_job_carries_its_token(aws, monkeypatch, s3, sample_bytes):
    import logging

    from runtime.logs import JsonFormatter

    class Lines(logging.Handler):  # formats as each line is written, like Lambda's handler
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[dict] = []

        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("runtime"):
                self.lines.append(json.loads(JsonFormatter().format(record)))

    monkeypatch.setenv("RESULT_BUCKET", RESULT_BUCKET)
    monkeypatch.setenv("THRESHOLD", "50")
    lambda_handler._steps.cache_clear()
    capture = Lines()
    logging.getLogger().addHandler(capture)
    try:
        upload(s3, FAST_KEY, sample_bytes)
        lambda_handler.handler(s3_notification(INPUT_BUCKET, FAST_KEY))
        token = status_of(s3, FAST_KEY)["token"]
        for part in fast_parts(s3, token):
            lambda_handler.handler(s3_notification(INPUT_BUCKET, part))
    finally:
        logging.getLogger().removeHandler(capture)
        lambda_handler._steps.cache_clear()
    assert len(capture.lines) >= 4 and status_of(s3, FAST_KEY)["state"] == "done"
    assert {(line.get("token"), line.get("inputKey")) for line in capture.lines} == {
        (token, FAST_KEY)
    }
    assert [line["detail"]["state"] for line in capture.lines if "detail" in line] == ["done"]


class Killed(BaseException):
    """The process is gone (a timeout, SIGKILL): nothing after this point runs."""


def test_an_event_whose_deliverer_died_is_delivered_by_the_invocations_retry(
    make_steps, s3, sample_bytes, events
):
    """The start was killed while it delivered the done event, holding the outbox's lease;
    Lambda's retry (the same request id) is the same deliverer and delivers it at once."""
    steps = make_steps(threshold=200)
    upload(s3, FAST_KEY, sample_bytes)

    class DiesDelivering:
        def publish(self, detail: dict) -> None:
            raise Killed()

    real_apply = steps.ledger.apply

    def dead_after_the_claim(input_key, fact):
        if isinstance(fact, Delivered):
            raise Killed()
        return real_apply(input_key, fact)

    steps.ledger.events, steps.ledger.apply = DiesDelivering(), dead_after_the_claim
    with pytest.raises(Killed):
        handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1")
    steps.ledger.events, steps.ledger.apply = events, real_apply
    status = status_of(s3, FAST_KEY)
    assert (status["state"], len(status["outbox"]), status["outboxClaim"]["by"]) == (
        "done",
        1,
        "req-1",
    )
    assert handle_object(steps, INPUT_BUCKET, FAST_KEY, "req-1").action == "duplicate"
    assert events.states() == [(FAST_KEY, "done")]
    assert status_of(s3, FAST_KEY)["outbox"] == []


class FakeEvents:
    """EventBridge's PutEvents, accepting everything."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def put_events(self, Entries: list[dict]) -> dict:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}


def test_a_delivered_job_event_is_also_one_embedded_metric_format_line(
    make_steps, s3, sample_bytes
):
    """The job's metrics (CloudWatch's embedded metric format) go out with its event, on
    stdout with ``_aws`` at the root, whichever path ends it: an auto/ job counts on the path
    it ran on, its team and cost as the status recorded them."""
    import io

    from runtime.adapters.events import EventBridgeSink

    client, out = FakeEvents(), io.StringIO()
    steps = make_steps(threshold=200)
    steps.ledger.events = EventBridgeSink(client, stack="mc-pricing-us-east-1", metrics=out)
    key = "auto/20261201-0900/book.csv"
    s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=sample_bytes, Metadata={"team": "Risk"})
    lambda_handler.handle(steps, object_created(INPUT_BUCKET, key), "req-1")
    (entry,) = client.entries
    detail = json.loads(entry["Detail"])
    (line,) = out.getvalue().splitlines()
    metrics = json.loads(line)
    (directive,) = metrics["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "McPricing"
    assert directive["Dimensions"] == [["Stack"], ["Stack", "Path", "Engine"], ["Stack", "Team"]]
    assert (metrics["Stack"], metrics["Path"], metrics["Engine"], metrics["Team"]) == (
        "mc-pricing-us-east-1",
        "fast",  # the auto lane's route
        "lsm",
        "risk",
    )
    assert (metrics["Jobs"], metrics["Rows"], metrics["State"]) == (1, 100, "done")
    assert metrics["CostUsd"] == detail["cost"]["usd"] > 0
    assert metrics["LambdaGbSeconds"] == detail["cost"]["lambdaGbSeconds"]
