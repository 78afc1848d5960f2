"""Thin EventBridge adapter: job events onto the default event bus, and into the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config

from runtime.protocol.events import DETAIL_TYPE, SOURCE

log = logging.getLogger(__name__)


class EventBridgeSink:
    """Publishes job events with PutEvents; a failure to publish is logged, never raised:
    the status object already holds the terminal state."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:  # created on first use: most invocations publish nothing
            self._client = boto3.client(
                "events", config=Config(retries={"max_attempts": 8, "mode": "standard"})
            )
        return self._client

    def publish(self, detail: dict) -> None:
        # The same detail as a log line: metric filters count jobs and rows from it.
        log.info(
            "job %s %s",
            detail["token"],
            detail["state"],
            extra={"event": DETAIL_TYPE, "detail": detail},
        )
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
        except Exception:
            log.exception("could not publish the job event for %s", detail["token"])
            return
        if response.get("FailedEntryCount"):
            log.error("EventBridge refused the job event: %s", response.get("Entries"))
