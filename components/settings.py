"""Typed stack settings, read once from Pulumi config and validated before anything is created."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi

ENGINES = ("mc", "qdfp", "fd", "lsm")

# architecture -> (docker platform, compute-optimized instance families for Batch).
# Families are spread over generations so Spot has several capacity pools to choose from;
# every family listed is offered in both us-east-1 and eu-west-1.
ARCHITECTURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("linux/amd64", ("c5", "c6i", "c6a", "c7i")),
    "arm64": ("linux/arm64", ("c6g", "c7g")),
}

# CloudWatch Logs retention for the Lambda and Batch log groups.
LOG_RETENTION_DAYS = 30

# Longest name prefix that still leaves room for the longest bucket_prefix ("<p>-result-",
# S3 allows 37 characters) and the longest role name (64).
_MAX_PREFIX = 29

# Defaults mirror Pulumi.yaml's config schema (the CLI applies those; these keep the program
# usable without it, and tests/infra asserts both lists agree).
DEFAULTS: dict[str, Any] = {
    "useSpot": False,
    "threshold": 200,
    "maxVcpus": 64,
    "lambdaMemoryMb": 3538,
    "lambdaTimeoutSeconds": 900,
    "lambdaReservedConcurrency": -1,
    "engine": "lsm",
    "architecture": "x86_64",
    "vpcId": "",
    "subnetIds": [],
    "maxParts": 200,
    "maxRows": 500000,
    "maxBytes": 67108864,
    "jobVcpus": 1,
    "jobMemoryMb": 1792,
    "jobTimeoutSeconds": 3600,
}


@dataclass(frozen=True)
class Settings:
    """Everything the components need to know about this stack."""

    project: str
    stack: str
    region: str
    use_spot: bool
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
    job_memory_mb: int
    job_timeout_seconds: int

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
    def batch_max_attempts(self) -> int:
        """Attempts in the job definition's retry strategy (also BATCH_MAX_ATTEMPTS)."""
        return 3

    def pricing_environment(self) -> dict[str, str]:
        """Variables both paths share (docs/protocol.md), except RESULT_BUCKET (an output)."""
        return {
            "THRESHOLD": str(self.threshold),
            "ENGINE": self.engine,
            "MAX_ROWS": str(self.max_rows),
            "MAX_BYTES": str(self.max_bytes),
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
        if self.job_memory_mb < 128:
            problems.append("jobMemoryMb must be at least 128")
        if self.job_timeout_seconds < 60:
            problems.append("jobTimeoutSeconds must be at least 60 (AWS Batch minimum)")
        if self.subnet_ids and not self.vpc_id:
            problems.append("subnetIds requires vpcId (the security group lives in that VPC)")
        if len(self.name_prefix) > _MAX_PREFIX:
            problems.append(
                f"name prefix {self.name_prefix!r} is longer than {_MAX_PREFIX} characters; "
                "use a shorter stack name"
            )
        if problems:
            raise ValueError("invalid stack configuration: " + "; ".join(problems))


def load_settings() -> Settings:
    """Read and validate the project's config plus aws:region."""
    cfg = pulumi.Config()

    def get_int(key: str) -> int:
        value = cfg.get_int(key)
        return int(DEFAULTS[key]) if value is None else value

    def get_str(key: str) -> str:
        value = cfg.get(key)
        return str(DEFAULTS[key]) if value is None else value

    use_spot = cfg.get_bool("useSpot")
    subnets = cfg.get_object("subnetIds") or []
    settings = Settings(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").require("region"),
        use_spot=bool(DEFAULTS["useSpot"]) if use_spot is None else use_spot,
        threshold=get_int("threshold"),
        max_vcpus=get_int("maxVcpus"),
        lambda_memory_mb=get_int("lambdaMemoryMb"),
        lambda_timeout_seconds=get_int("lambdaTimeoutSeconds"),
        lambda_reserved_concurrency=get_int("lambdaReservedConcurrency"),
        engine=get_str("engine"),
        architecture=get_str("architecture"),
        vpc_id=get_str("vpcId") or None,
        subnet_ids=tuple(str(s) for s in subnets),
        max_parts=get_int("maxParts"),
        max_rows=get_int("maxRows"),
        max_bytes=get_int("maxBytes"),
        job_vcpus=get_int("jobVcpus"),
        job_memory_mb=get_int("jobMemoryMb"),
        job_timeout_seconds=get_int("jobTimeoutSeconds"),
    )
    settings.validate()
    return settings
