"""Job events: one "Pricing Job State Change" per terminal state of an attempt.

The detail is plain data built from the status document (documented in docs/protocol.md);
the lifecycle puts it in the status' outbox with the terminal state, and the adapter
(``runtime.adapters.events``) delivers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

SOURCE = "mc-pricing"
DETAIL_TYPE = "Pricing Job State Change"
# EventBridge takes entries of at most 256 KB: a job with thousands of failed parts or a
# very long error still fits (the status object keeps the whole list).
MAX_EVENT_FAILED_PARTS = 20
MAX_EVENT_TEXT = 2_000


class EventSink(Protocol):
    def publish(self, detail: dict) -> None:
        """Deliver one job event; raise if it was not accepted."""


class EventDeliveryError(RuntimeError):
    """EventBridge did not accept a job event; it stays in the status' outbox."""


def job_event_detail(status: Mapping, result_bucket: str, region: str, event_id: str) -> dict:
    """The event's detail for a status document in a terminal state. ``eventId`` is the
    same for every delivery of one terminal state: consumers can drop a repeat by it."""
    bucket, _, key = str(status["input"]).removeprefix("s3://").partition("/")
    state = status["state"]
    published = status.get("result") if state in ("done", "failed") else None
    failed = list(status.get("failedParts") or [])
    return {
        "eventId": event_id,
        "input": status["input"],
        "inputBucket": bucket,
        "inputKey": key,
        "token": status["token"],
        "attempt": status.get("attempt", 1),
        "generation": status.get("generation", 1),
        "state": state,
        "path": status.get("path"),
        "rows": status.get("rows", 0),
        "rowsWithErrors": status.get("rowsWithErrors", 0),
        "parts": status.get("partsTotal", 0),
        "resultKey": published if state == "done" else None,
        "errorKey": published if state == "failed" else None,
        "error": _clip(status.get("error")),
        "failedParts": [
            {**failure, "error": _clip(failure.get("error"))}
            for failure in failed[:MAX_EVENT_FAILED_PARTS]
        ],
        "failedPartsTotal": len(failed),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "seconds": status.get("seconds"),
        "engine": status.get("engine"),
        "region": region,
        "resultBucket": result_bucket,
        "team": status.get("team"),
        "route": status.get("route"),
        "cost": status.get("cost"),
    }


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_EVENT_TEXT:
        return text
    return text[: MAX_EVENT_TEXT - 1] + "…"
