"""The stack settings a plan depends on, typed, with the stacks' defaults.

Names are Pulumi.yaml's (camelCase); defaults equal its defaults (tests/runtime/
test_planning_stackfile.py keeps them equal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from runtime.engines import DEFAULT_ENGINE, ENGINE_NAMES
from runtime.planning.prices import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_REGION

# Batch memory per vCPU when jobMemoryMb is 0 (components/settings.py says why).
EC2_AUTO_MEMORY_PER_VCPU = 1792
FARGATE_AUTO_MEMORY_PER_VCPU = 2048


# The variable carrying the stack's planning settings to the image (JSON object of the
# Pulumi settings below by their camelCase names, e.g. {"maxVcpus": 256, "useSpot": true});
# runtime/environment.py reads it, components/settings.py writes it (the settings that have
# a variable of their own, such as THRESHOLD or PRICE_TABLE, travel in that one).
PLAN_SETTINGS = "PLAN_SETTINGS"


class SettingsError(ValueError):
    """A setting with a value no stack accepts; the message names it."""


@dataclass(frozen=True)
class PlanSettings:
    """What a plan needs to know about the stack (field = Pulumi setting in snake_case)."""

    region: str = DEFAULT_REGION
    architecture: str = DEFAULT_ARCHITECTURE
    engine: str = DEFAULT_ENGINE
    greeks: bool = False
    threshold: int = 200
    max_parts: int = 200
    lambda_memory_mb: int = 1769
    lambda_timeout_seconds: int = 900
    lambda_reserved_concurrency: int = -1
    lambda_provisioned_concurrency: int = 0
    max_vcpus: int = 64
    urgent_max_vcpus: int = 16
    min_vcpus: int = 0
    job_vcpus: int = 1
    job_memory_mb: int = 0  # 0: automatic, per capacity type
    job_timeout_seconds: int = 3600
    use_spot: bool = False
    use_fargate: bool = False
    auto_fast_seconds: int = 60
    max_job_usd: float = 0.0
    price_table: str = ""  # JSON override of the price table ("" = defaults)

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_NAMES:
            raise SettingsError(f"engine {self.engine!r} is not one of {', '.join(ENGINE_NAMES)}")
        if self.architecture not in ARCHITECTURES:
            raise SettingsError(
                f"architecture {self.architecture!r} is not one of {', '.join(ARCHITECTURES)}"
            )
        positive = (
            "threshold",
            "max_parts",
            "lambda_memory_mb",
            "lambda_timeout_seconds",
            "max_vcpus",
            "job_vcpus",
            "job_timeout_seconds",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{_camel(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("urgent_max_vcpus", "min_vcpus", "job_memory_mb", "auto_fast_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{_camel(name)} must not be negative")
        if not (math.isfinite(self.max_job_usd) and self.max_job_usd >= 0):
            raise SettingsError(f"maxJobUsd must be a number >= 0, got {self.max_job_usd}")

    @property
    def batch_memory_mb(self) -> int:
        """jobMemoryMb, or the automatic size for the capacity type."""
        if self.job_memory_mb:
            return self.job_memory_mb
        per_vcpu = FARGATE_AUTO_MEMORY_PER_VCPU if self.use_fargate else EC2_AUTO_MEMORY_PER_VCPU
        return per_vcpu * self.job_vcpus

    @property
    def batch_capacity(self) -> str:
        """The normal path's capacity: EC2, SPOT, FARGATE or FARGATE_SPOT."""
        if self.use_fargate:
            return "FARGATE_SPOT" if self.use_spot else "FARGATE"
        return "SPOT" if self.use_spot else "EC2"

    @property
    def urgent_capacity(self) -> str:
        """The urgent lane runs on on-demand capacity of the same kind."""
        return "FARGATE" if self.use_fargate else "EC2"

    def with_values(self, values: Mapping[str, Any]) -> PlanSettings:
        """A copy with ``values`` (camelCase or snake_case names) converted and applied."""
        known = {f.name: f for f in fields(self)}
        by_camel = {_camel(name): name for name in known}
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            name = key if key in known else by_camel.get(key)
            if name is None:
                continue  # settings the plan does not depend on (vpcId, notifyEmail...)
            changes[name] = _convert(_camel(name), raw, known[name].type)
        return replace(self, **changes)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _convert(name: str, raw: Any, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if kind == "str" and isinstance(raw, (dict, list)):
            import json

            # an object setting (priceTable) travels as JSON; empty is no override at all
            return json.dumps(raw) if raw else ""
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: {raw!r} is not a valid {kind}") from None


# The Pulumi settings a plan reads, by their Pulumi names (what PLAN_SETTINGS may carry).
PLAN_SETTING_NAMES = tuple(_camel(f.name) for f in fields(PlanSettings))


def plan_settings_from_json(text: str | None, base: PlanSettings | None = None) -> PlanSettings:
    """``base`` (the defaults) with the settings of a PLAN_SETTINGS document applied."""
    import json

    base = base or PlanSettings()
    if not text or not text.strip():
        return base
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{PLAN_SETTINGS} is not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{PLAN_SETTINGS} must be a JSON object of settings")
    unknown = sorted(set(document) - set(PLAN_SETTING_NAMES))
    if unknown:
        raise SettingsError(f"{PLAN_SETTINGS}: unknown setting(s) {', '.join(unknown)}")
    return base.with_values(document)
