"""Job events: one "Pricing Job State Change" per terminal state, built from the status.

The detail is plain data (documented in docs/protocol.md); publishing it is the adapter's
job (``runtime.adapters.events``), so tests and ``simulate`` can watch it.
"""

from __future__ import annotations

from typing import Protocol

SOURCE = "mc-pricing"
DETAIL_TYPE = "Pricing Job State Change"
# EventBridge takes entries of at most 256 KB: a job with thousands of failed parts or a
# very long error still fits (the status object keeps the whole list).
MAX_EVENT_FAILED_PARTS = 20
MAX_EVENT_TEXT = 2_000


class EventSink(Protocol):
    def publish(self, detail: dict) -> None: ...


def job_event_detail(status: dict, result_bucket: str, region: str) -> dict:
    """The event's detail for a status document in a terminal state."""
    bucket, _, key = status["input"].removeprefix("s3://").partition("/")
    state = status["state"]
    published = status.get("result") if state in ("done", "failed") else None
    return {
        "input": status["input"],
        "inputBucket": bucket,
        "inputKey": key,
        "token": status["token"],
        "state": state,
        "path": status.get("path"),
        "rows": status.get("rows", 0),
        "rowsWithErrors": status.get("rows_with_errors", 0),
        "parts": status.get("parts_total", 0),
        "resultKey": published if state == "done" else None,
        "errorKey": published if state == "failed" else None,
        "error": _clip(status.get("error")),
        "failedParts": [
            {**failure, "error": _clip(failure.get("error"))}
            for failure in status.get("failed_parts", [])[:MAX_EVENT_FAILED_PARTS]
        ],
        "failedPartsTotal": len(status.get("failed_parts", [])),
        "startedAt": status.get("started_at"),
        "finishedAt": status.get("finished_at"),
        "seconds": status.get("seconds"),
        "engine": status.get("engine"),
        "region": region,
        "resultBucket": result_bucket,
    }


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_EVENT_TEXT:
        return text
    return text[: MAX_EVENT_TEXT - 1] + "…"
