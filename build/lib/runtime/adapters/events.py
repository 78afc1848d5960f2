"""Thin EventBridge adapter: job events onto the default event bus, and into the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config

from runtime.protocol.events import DETAIL_TYPE, SOURCE, EventDeliveryError

log = logging.getLogger(__name__)


class EventBridgeSink:
    """Publishes job events with PutEvents. A refusal (after the SDK's retries) raises
    EventDeliveryError: the event stays in the status' outbox, and the invocation or job
    fails, so that its retry, or the failure route after it, delivers it."""

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
