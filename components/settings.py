"""Typed stack settings, read once from Pulumi config and validated before anything is created.

`Pulumi.yaml`'s config schema is the one source of the settings' defaults. The Pulumi CLI applies
those defaults itself; this module reads the same schema at program start, so a run that gets no
project defaults (a unit test under mocks with only `aws:region`, an automation-API program) sees
exactly the same values. Nothing here repeats a default.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml  # PyYAML: a dependency of the pulumi package itself

PROJECT_FILE = Path(__file__).resolve().parents[1] / "Pulumi.yaml"

ENGINES = ("mc", "qdfp", "fd", "lsm")

# architecture -> (docker platform, compute-optimized instance families for Batch on EC2).
# Families are spread over generations so Spot has several capacity pools to choose from;
# every family listed is offered in both us-east-1 and eu-west-1.
ARCHITECTURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("linux/amd64", ("c5", "c6i", "c6a", "c7i")),
    "arm64": ("linux/arm64", ("c6g", "c7g")),
}

# The job definition's retry strategy: attempts per job (a constant, not a setting; only
# infrastructure interruptions are retried, see BatchArrayPath).
BATCH_MAX_ATTEMPTS = 3

# LOG_LEVEL given to both paths.
LOG_LEVEL = "INFO"

# jobMemoryMb = 0 (the default) picks, per vCPU: on EC2 1792 MiB (two 1-vCPU jobs share a
# 2-vCPU/4-GiB c-family instance after the ECS agent's reservation); on Fargate 2048 MiB, the
# smallest memory Fargate allows for 1 vCPU and above.
EC2_AUTO_MEMORY_PER_VCPU = 1792
FARGATE_AUTO_MEMORY_PER_VCPU = 2048


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


# Fargate task sizes AWS Batch accepts (whole vCPUs only; this stack's jobVcpus is an integer):
# VCPU -> valid MEMORY values in MiB (AWS Batch API reference, ResourceRequirement).
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    1: _steps(2048, 8192, 1024),
    2: _steps(4096, 16384, 1024),
    4: _steps(8192, 30720, 1024),
    8: _steps(16384, 61440, 4096),
    16: _steps(32768, 122880, 8192),
}

# Longest name prefix that still leaves room for the longest bucket_prefix ("<p>-result-",
# S3 allows 37 characters) and the longest role name (64).
_MAX_PREFIX = 29
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@functools.cache
def schema() -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's `config:` block: setting -> {type, default, description, ...}."""
    return yaml.safe_load(PROJECT_FILE.read_text())["config"]


def defaults() -> dict[str, Any]:
    """Every setting's default, from Pulumi.yaml."""
    return {key: spec["default"] for key, spec in schema().items()}


@dataclass(frozen=True)
class StackSettings:
    """Everything the components need to know about this stack."""

    project: str
    stack: str
    region: str
    use_spot: bool
    use_fargate: bool
    threshold: int
    max_vcpus: int
    lambda_memory_mb: int
    lambda_timeout_seconds: int
    lambda_reserved_concurrency: int
    engine: str
    architecture: str
    vpc_id: str | None
    subnet_ids: tuple[str, ...]
    max_parts: int
    max_rows: int
    max_bytes: int
    job_vcpus: int
    job_memory_setting: int  # 0 = automatic; see job_memory_mb
    job_timeout_seconds: int
    greeks: bool
    bounds: bool
    notify_email: str  # "" = no email subscription

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name: project and stack, where the stack is named after its
        region, so the regional stacks of one account never collide on global names (IAM
        roles, S3 buckets). A stack named otherwise ("dev") gets the region appended."""
        parts = [self.project, self.stack]
        if self.stack != self.region:
            parts.append(self.region)
        return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower())

    @property
    def docker_platform(self) -> str:
        return ARCHITECTURES[self.architecture][0]

    @property
    def instance_families(self) -> list[str]:
        return list(ARCHITECTURES[self.architecture][1])

    @property
    def job_memory_mb(self) -> int:
        """Memory per Batch job: jobMemoryMb, or the automatic size for the capacity type."""
        if self.job_memory_setting:
            return self.job_memory_setting
        per_vcpu = FARGATE_AUTO_MEMORY_PER_VCPU if self.use_fargate else EC2_AUTO_MEMORY_PER_VCPU
        return per_vcpu * self.job_vcpus

    @property
    def capacity_type(self) -> str:
        """The compute environment's type: EC2, SPOT, FARGATE or FARGATE_SPOT."""
        if self.use_fargate:
            return "FARGATE_SPOT" if self.use_spot else "FARGATE"
        return "SPOT" if self.use_spot else "EC2"

    def pricing_environment(self) -> dict[str, str]:
        """Variables both paths share (docs/protocol.md), except RESULT_BUCKET (an output)."""
        return {
            "THRESHOLD": str(self.threshold),
            "ENGINE": self.engine,
            "MAX_ROWS": str(self.max_rows),
            "MAX_BYTES": str(self.max_bytes),
            "GREEKS": "true" if self.greeks else "false",
            "BOUNDS": "true" if self.bounds else "false",
            "LOG_LEVEL": LOG_LEVEL,
        }

    def validate(self) -> None:
        """Fail the preview with a readable message instead of a half-applied update."""
        problems: list[str] = []
        if self.engine not in ENGINES:
            problems.append(f"engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture must be x86_64 or arm64, not {self.architecture!r}")
        if not 128 <= self.lambda_memory_mb <= 10240:
            problems.append("lambdaMemoryMb must be between 128 and 10240")
        if not 1 <= self.lambda_timeout_seconds <= 900:
            problems.append("lambdaTimeoutSeconds must be between 1 and 900")
        if self.lambda_reserved_concurrency < -1:
            problems.append("lambdaReservedConcurrency must be -1 (unreserved) or >= 0")
        for key, value in (
            ("threshold", self.threshold),
            ("maxParts", self.max_parts),
            ("maxRows", self.max_rows),
            ("maxBytes", self.max_bytes),
            ("jobVcpus", self.job_vcpus),
        ):
            if value < 1:
                problems.append(f"{key} must be at least 1")
        if self.max_vcpus < self.job_vcpus:
            problems.append("maxVcpus must be at least jobVcpus, or no job can ever start")
        if self.job_memory_setting and self.job_memory_setting < 128:
            problems.append("jobMemoryMb must be 0 (automatic) or at least 128")
        if self.use_fargate:
            problems.extend(self._fargate_problems())
        if self.job_timeout_seconds < 60:
            problems.append("jobTimeoutSeconds must be at least 60 (AWS Batch minimum)")
        if self.subnet_ids and not self.vpc_id:
            problems.append("subnetIds requires vpcId (the security group lives in that VPC)")
        if self.notify_email and not _EMAIL.fullmatch(self.notify_email):
            problems.append(
                f"notifyEmail must be an email address or empty, not {self.notify_email!r}"
            )
        if len(self.name_prefix) > _MAX_PREFIX:
            problems.append(
                f"name prefix {self.name_prefix!r} is longer than {_MAX_PREFIX} characters; "
                "use a shorter stack name"
            )
        if problems:
            raise ValueError("invalid stack configuration: " + "; ".join(problems))

    def _fargate_problems(self) -> list[str]:
        memory = FARGATE_MEMORY.get(self.job_vcpus)
        if memory is None:
            return [
                f"useFargate: jobVcpus must be one of {', '.join(map(str, FARGATE_MEMORY))} "
                f"(Fargate task sizes), not {self.job_vcpus}"
            ]
        if self.job_memory_mb not in memory:
            step = memory[1] - memory[0]
            return [
                f"useFargate: jobMemoryMb {self.job_memory_mb} is not a Fargate size for "
                f"jobVcpus {self.job_vcpus}; use {memory[0]} to {memory[-1]} in steps of {step} "
                "(or 0 for the smallest)"
            ]
        return []


def load_settings() -> StackSettings:
    """Read the project's config (Pulumi.yaml defaults underneath) plus aws:region, validate."""
    cfg = pulumi.Config()
    spec = schema()

    def value(key: str) -> Any:
        kind = spec[key]["type"]
        if kind == "boolean":
            found: Any = cfg.get_bool(key)
        elif kind == "integer":
            found = cfg.get_int(key)
        elif kind == "array":
            found = cfg.get_object(key)
        else:
            found = cfg.get(key)
        return spec[key]["default"] if found is None else found

    settings = StackSettings(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").require("region"),
        use_spot=bool(value("useSpot")),
        use_fargate=bool(value("useFargate")),
        threshold=int(value("threshold")),
        max_vcpus=int(value("maxVcpus")),
        lambda_memory_mb=int(value("lambdaMemoryMb")),
        lambda_timeout_seconds=int(value("lambdaTimeoutSeconds")),
        lambda_reserved_concurrency=int(value("lambdaReservedConcurrency")),
        engine=str(value("engine")),
        architecture=str(value("architecture")),
        vpc_id=str(value("vpcId")) or None,
        subnet_ids=tuple(str(s) for s in value("subnetIds")),
        max_parts=int(value("maxParts")),
        max_rows=int(value("maxRows")),
        max_bytes=int(value("maxBytes")),
        job_vcpus=int(value("jobVcpus")),
        job_memory_setting=int(value("jobMemoryMb")),
        job_timeout_seconds=int(value("jobTimeoutSeconds")),
        greeks=bool(value("greeks")),
        bounds=bool(value("bounds")),
        notify_email=str(value("notifyEmail")).strip(),
    )
    settings.validate()
    return settings
