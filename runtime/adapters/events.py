"""Thin EventBridge adapter: job events onto the default event bus, into the log, and as
the job's CloudWatch metrics (one embedded-metric-format line)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

import boto3
from botocore.config import Config

from runtime.planning.metrics import job_metrics_line
from runtime.protocol.events import DETAIL_TYPE, SOURCE, EventDeliveryError

log = logging.getLogger(__name__)


class EventBridgeSink:
    """Publishes job events with PutEvents. A refusal (after the SDK's retries) raises
    EventDeliveryError: the event stays in the status' outbox, and the invocation or job
    fails, so that its retry, or the failure route after it, delivers it."""

    def __init__(
        self, client: Any | None = None, stack: str = "", metrics: TextIO | None = None
    ) -> None:
        self._client = client
        self.stack = stack  # the metrics' Stack dimension
        self._metrics = metrics  # where the metrics line goes (None: this process's stdout)

    @property
    def client(self) -> Any:
        if self._client is None:  # created on first use: most invocations publish nothing
            self._client = boto3.client(
                "events", config=Config(retries={"max_attempts": 8, "mode": "standard"})
            )
        return self._client

    def publish(self, detail: dict) -> None:
        try:
            response = self.client.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "EventBusName": "default",
                    }
                ]
            )
        except Exception as exc:
            raise EventDeliveryError(f"job event {detail['eventId']}: {exc}") from exc
        if response.get("FailedEntryCount"):
            raise EventDeliveryError(
                f"EventBridge refused job event {detail['eventId']}: {response.get('Entries')}"
            )
        # The same detail as a log line, once it was delivered: the stack's metric filters
        # count jobs and rows from these lines.
        log.info(
            "job %s %s",
            detail["token"],
            detail["state"],
            extra={"event": DETAIL_TYPE, "detail": detail},
        )
        print(metrics_line(detail, self.stack), file=self._metrics or sys.stdout, flush=True)


def metrics_line(detail: dict, stack: str) -> str:
    """The job's embedded-metric-format line: rows, seconds and cost by stack, path, engine
    and team. Printed as it is (CloudWatch wants ``_aws`` at the JSON root, which the JSON
    logger's lines do not have); Lambda's log group and a Batch job's (the awslogs driver)
    both extract it. An ``auto/`` job counts on the path it ran on."""
    route = detail.get("route") or {}
    return job_metrics_line(
        stack=stack or "unknown",
        path=str(route.get("path") or detail.get("path") or "unknown"),
        engine=str(detail.get("engine") or "unknown"),
        team=detail.get("team"),
        state=str(detail.get("state")),
        rows=int(detail.get("rows") or 0),
        seconds=float(detail.get("seconds") or 0.0),
        cost=detail.get("cost"),
        rows_with_errors=int(detail.get("rowsWithErrors") or 0),
    )
