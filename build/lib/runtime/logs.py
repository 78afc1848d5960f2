"""Structured logs: one JSON object per line, carrying the job's token on every line.

CloudWatch metric filters read these lines (see docs/protocol.md, "Logs"), so the keys
are a contract: time, level, logger, message, and when known token and inputKey; a job
event line adds ``event`` and ``detail``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator

_JOB: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("job", default=None)
_EXTRA_KEYS = ("event", "detail")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(_JOB.get() or {}),
        }
        for name in _EXTRA_KEYS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str) -> None:
    """JSON lines on every handler of the root logger (Lambda's runtime installs its own
    handler; Batch and the command line get one on stderr)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    root.setLevel(level)
    for chatty in ("botocore", "boto3", "urllib3"):  # one line per request is noise
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


@contextlib.contextmanager
def job_context(**fields: str) -> Iterator[None]:
    """Every log line inside carries these fields (token, inputKey), and whatever
    ``annotate`` adds inside; the fields end with the block (a warm Lambda's next
    invocation starts clean)."""
    reset = _JOB.set({**(_JOB.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _JOB.reset(reset)


def annotate(**fields: str) -> None:
    """Add fields to the enclosing ``job_context`` once they are known (a job's token is
    known only after its upload was read). Outside a context, nothing to annotate."""
    current = _JOB.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v})
