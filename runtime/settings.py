"""Settings of the image, read from the environment the Pulumi program sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.engines import DEFAULT_ENGINE, get_engine

DEFAULT_THRESHOLD = 200
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_PARTS = 1_000


class SettingsError(ValueError):
    """A setting in the environment is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    result_bucket: str
    threshold: int = DEFAULT_THRESHOLD
    engine: str = DEFAULT_ENGINE
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_parts: int = DEFAULT_MAX_PARTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        bucket = environ.get("RESULT_BUCKET", "").strip()
        if not bucket:
            raise SettingsError("RESULT_BUCKET is not set: the result bucket's name is required")
        engine = environ.get("ENGINE", DEFAULT_ENGINE).strip() or DEFAULT_ENGINE
        try:
            get_engine(engine)
        except ValueError as exc:
            raise SettingsError(f"ENGINE: {exc}") from exc
        return cls(
            result_bucket=bucket,
            threshold=_positive_int(environ, "THRESHOLD", DEFAULT_THRESHOLD),
            engine=engine,
            max_rows=_positive_int(environ, "MAX_ROWS", DEFAULT_MAX_ROWS),
            max_bytes=_positive_int(environ, "MAX_BYTES", DEFAULT_MAX_BYTES),
            max_parts=_positive_int(environ, "MAX_PARTS", DEFAULT_MAX_PARTS),
        )


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={value} must be at least 1")
    return value
