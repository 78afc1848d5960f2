"""Typed stack settings, read once from Pulumi config and validated before anything is created.

`Pulumi.yaml`'s config schema is the one source of the settings' defaults. The Pulumi CLI applies
those defaults itself; this module reads the same schema at program start, so a run that gets no
project defaults (a unit test under mocks with only `aws:region`, an automation-API program) sees
exactly the same values. Nothing here repeats a default.
"""

from __future__ import annotations

import functools
import json
import math
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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

# The paths a scheduled run may start (docs/protocol.md, "Keys").
SCHEDULE_PATHS = ("fast", "normal", "urgent")
# Fair share (AWS Batch scheduling policies). A share identifier is at most 255 alphanumeric
# characters (API reference, ShareAttributes); a queue holds at most 500 active share
# identifiers, so the stack allows far fewer teams (plus the default share).
DEFAULT_SHARE = "default"
MAX_TEAMS = 200
_SHARE_IDENTIFIER = re.compile(r"[A-Za-z0-9]{1,255}")
# A team's weight w (bigger = more capacity) becomes Batch's weightFactor 1/w (smaller = more
# capacity); Batch accepts weight factors from 0.0001 to 999.9999, so weights from 0.01 to
# 10000 (factors 100 to 0.0001).
MIN_WEIGHT, MAX_WEIGHT = 0.01, 10000.0
# EventBridge Scheduler: schedule names (and so the stack's entries) are 1-64 of these.
_SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# cron(minutes hours day-of-month month day-of-week year), EventBridge Scheduler's syntax.
_CRON = re.compile(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/#LW-]+")
# Flexible time windows: 1 to 1440 minutes (0 = OFF, the schedule fires at its time).
MAX_SCHEDULE_WINDOW_MINUTES = 1440
# The failure queues' event source mappings: AWS's minimum maximum-concurrency per mapping.
MIN_MAPPING_CONCURRENCY = 2

# The price table's override (priceTable, passed to the image as PRICE_TABLE): the keys of
# runtime/planning/prices.py's table, mirrored here because components/ never imports
# runtime/ (tests/project/test_contract.py keeps the two equal). One instance type name,
# two discounts (a fraction of the on-demand price saved, in [0, 1)), one whole number of
# vCPUs, and prices (numbers >= 0).
PRICE_TABLE_KEYS = (
    "lambdaUsdPerGbSecond",
    "lambdaUsdPerMillionRequests",
    "fargateUsdPerVcpuHour",
    "fargateUsdPerGbHour",
    "fargateSpotDiscount",
    "ec2InstanceType",
    "ec2UsdPerInstanceHour",
    "ec2InstanceVcpus",
    "ec2SpotDiscount",
    "s3UsdPerThousandPut",
    "s3UsdPerThousandGet",
    "eventsUsdPerMillion",
    "sqsUsdPerMillion",
)
PRICE_DISCOUNT_KEYS = ("fargateSpotDiscount", "ec2SpotDiscount")
# Regions whose list prices the image knows (runtime/planning/prices.py REGIONS); elsewhere
# the image prices at us-east-1's unless priceTable gives every price.
PRICED_REGIONS = ("us-east-1", "eu-west-1")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]{0,15}\.[a-z0-9]{1,15}")
# The planning settings the image reads from PLAN_SETTINGS (runtime/planning/settings.py
# PLAN_SETTING_NAMES without those that have a variable of their own: THRESHOLD, ENGINE,
# GREEKS, MAX_PARTS, AUTO_FAST_SECONDS, MAX_JOB_USD, PRICE_TABLE, AWS_REGION).
PLAN_SETTING_NAMES = (
    "architecture",
    "lambdaMemoryMb",
    "lambdaTimeoutSeconds",
    "lambdaReservedConcurrency",
    "lambdaProvisionedConcurrency",
    "maxVcpus",
    "urgentMaxVcpus",
    "minVcpus",
    "jobVcpus",
    "jobMemoryMb",
    "jobTimeoutSeconds",
    "useSpot",
    "useFargate",
)

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
class ScheduleEntry:
    """One `schedules` entry: start a job of the standing book `books/<book>` on `path`."""

    name: str
    cron: str
    timezone: str
    book: str  # relative to books/, ends in .csv
    path: str  # fast | normal | urgent


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
    urgent_max_vcpus: int  # 0 = no urgent lane
    fair_share: tuple[tuple[str, float], ...]  # (share identifier, weight); () = FIFO
    schedules: tuple[ScheduleEntry, ...]
    schedule_window_minutes: int  # 0 = OFF
    lambda_provisioned_concurrency: int  # 0 = no alias, no provisioned concurrency
    min_vcpus: int  # warm EC2 floor (see BatchArrayPath)
    auto_fast_seconds: int  # the auto lane's line on the fast path's estimate
    max_job_usd: float  # the budget guard; 0 = off
    price_table: tuple[tuple[str, Any], ...]  # priceTable: (key, value), () = the defaults
    force_destroy: bool  # buckets and image repository deleted with their contents on destroy

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

    @property
    def urgent_lane(self) -> bool:
        return self.urgent_max_vcpus > 0

    @property
    def teams(self) -> tuple[str, ...]:
        """The configured teams' share identifiers (FAIR_SHARE), without the default share."""
        return tuple(team for team, _ in self.fair_share if team != DEFAULT_SHARE)

    @property
    def failure_mappings(self) -> int:
        """Event source mappings into the function: fast failures, upload dead letters, and
        the schedules' dead letters when there are schedules."""
        return 3 if self.schedules else 2

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
            **self.planning_environment(),
        }

    def planning_environment(self) -> dict[str, str]:
        """What the planner inside the image needs (the auto lane, the budget guard, part
        sizing) and what its usage is priced with; compact JSON, so the function's whole
        environment stays far below Lambda's 4 KB."""
        plan = {
            "architecture": self.architecture,
            "lambdaMemoryMb": self.lambda_memory_mb,
            "lambdaTimeoutSeconds": self.lambda_timeout_seconds,
            "lambdaReservedConcurrency": self.lambda_reserved_concurrency,
            "lambdaProvisionedConcurrency": self.lambda_provisioned_concurrency,
            "maxVcpus": self.max_vcpus,
            "urgentMaxVcpus": self.urgent_max_vcpus,
            "minVcpus": self.min_vcpus,
            "jobVcpus": self.job_vcpus,
            "jobMemoryMb": self.job_memory_setting,
            "jobTimeoutSeconds": self.job_timeout_seconds,
            "useSpot": self.use_spot,
            "useFargate": self.use_fargate,
        }
        return {
            "AUTO_FAST_SECONDS": str(self.auto_fast_seconds),
            "MAX_JOB_USD": f"{self.max_job_usd:g}",
            "PRICE_TABLE": _compact(dict(self.price_table)),
            "PLAN_SETTINGS": _compact(plan),
        }

    def metering_environment(self) -> dict[str, str]:
        """What a Batch job is billed for, which its container cannot see: its vCPUs, its
        memory and the compute environment's capacity type (the job definition's; the
        runtime overrides CAPACITY on the urgent lane's on-demand jobs)."""
        return {
            "JOB_VCPUS": str(self.job_vcpus),
            "JOB_MEMORY_MB": str(self.job_memory_mb),
            "CAPACITY": self.capacity_type,
        }

    def warnings(self) -> list[str]:
        """What deploys but deserves a word at preview time."""
        found = []
        given = {key for key, _ in self.price_table}
        missing = [key for key in PRICE_TABLE_KEYS if key not in given]
        if self.region not in PRICED_REGIONS and missing:
            found.append(
                f"priceTable: the image has no list prices for {self.region}; jobs' costs are "
                f"estimated at us-east-1's for {', '.join(missing)} (docs/cost.md)"
            )
        return found

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
        problems.extend(self._lane_problems())
        problems.extend(self._fair_share_problems())
        problems.extend(self._schedule_problems())
        problems.extend(self._concurrency_problems())
        problems.extend(self._cost_problems())
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

    def _lane_problems(self) -> list[str]:
        problems = []
        if self.urgent_max_vcpus < 0:
            problems.append("urgentMaxVcpus must be 0 (no urgent lane) or more")
        elif self.urgent_lane and self.urgent_max_vcpus < self.job_vcpus:
            problems.append("urgentMaxVcpus must be 0 or at least jobVcpus")
        if self.min_vcpus < 0:
            problems.append("minVcpus must be 0 or more")
        elif self.min_vcpus and self.use_fargate:
            problems.append(
                "minVcpus: Fargate has no instances to keep warm (a Fargate compute environment "
                "has no minimum vCPUs); set minVcpus 0 or useFargate false"
            )
        elif self.min_vcpus > self.warm_lane_max_vcpus:
            lane = "urgentMaxVcpus" if self.urgent_lane else "maxVcpus"
            problems.append(f"minVcpus must be at most {lane} ({self.warm_lane_max_vcpus})")
        # Fault 3: Fargate Spot runs X86_64 tasks only; an ARM64 job in a queue whose only
        # capacity is Fargate Spot can never be placed and blocks the queue.
        if self.use_fargate and self.use_spot and self.architecture == "arm64":
            problems.append(
                "useFargate with useSpot runs on Fargate Spot, which runs only X86_64 tasks: "
                "use architecture x86_64, or useSpot false (Fargate on demand runs ARM64)"
            )
        return problems

    @property
    def warm_lane_max_vcpus(self) -> int:
        """The ceiling of the compute environment that holds the warm floor (minVcpus)."""
        return self.urgent_max_vcpus if self.urgent_lane else self.max_vcpus

    def _fair_share_problems(self) -> list[str]:
        problems = []
        teams = [team for team, _ in self.fair_share]
        if len(self.teams) > MAX_TEAMS:
            problems.append(
                f"fairShare has {len(self.teams)} teams; at most {MAX_TEAMS} (a queue holds at "
                "most 500 active share identifiers)"
            )
        for team, weight in self.fair_share:
            if not _SHARE_IDENTIFIER.fullmatch(team):
                problems.append(
                    f"fairShare: team {team!r} is not a valid share identifier (1 to 255 "
                    "letters and digits, nothing else)"
                )
            if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
                problems.append(
                    f"fairShare: the weight of {team!r} must be between {MIN_WEIGHT:g} and "
                    f"{MAX_WEIGHT:g} (bigger = a larger share), not {weight:g}"
                )
        lowered = [t.lower() for t in teams]
        if len(set(lowered)) != len(lowered):
            problems.append("fairShare: team names must differ in more than letter case")
        return problems

    def _schedule_problems(self) -> list[str]:
        problems = []
        names = [entry.name for entry in self.schedules]
        if len(set(names)) != len(names):
            problems.append("schedules: every entry needs its own name")
        for index, entry in enumerate(self.schedules):
            where = f"schedules[{index}] ({entry.name or 'no name'})"
            problems.extend(f"{where}: {p}" for p in schedule_entry_problems(entry, self))
        if not 0 <= self.schedule_window_minutes <= MAX_SCHEDULE_WINDOW_MINUTES:
            problems.append(
                f"scheduleWindowMinutes must be 0 (off) to {MAX_SCHEDULE_WINDOW_MINUTES}"
            )
        return problems

    def _concurrency_problems(self) -> list[str]:
        problems = []
        provisioned, reserved = (
            self.lambda_provisioned_concurrency,
            self.lambda_reserved_concurrency,
        )
        if provisioned < 0:
            problems.append("lambdaProvisionedConcurrency must be 0 (none) or more")
        elif reserved >= 0 and provisioned > reserved:
            problems.append(
                f"lambdaProvisionedConcurrency ({provisioned}) must be at most "
                f"lambdaReservedConcurrency ({reserved}): provisioned instances come out of the "
                "function's reserved concurrency"
            )
        # Fault 4: event source mappings do not count against reserved concurrency, so
        # mappings allowed more concurrency than the function has would be throttled, and a
        # throttled receive counts toward the parking limit. Each mapping needs at least
        # MIN_MAPPING_CONCURRENCY (AWS's minimum).
        needed = MIN_MAPPING_CONCURRENCY * self.failure_mappings
        if 0 < reserved < needed:
            problems.append(
                f"lambdaReservedConcurrency {reserved} cannot carry the {self.failure_mappings} "
                f"failure-queue mappings (each needs at least {MIN_MAPPING_CONCURRENCY} "
                f"concurrent invocations, AWS's minimum): use -1, 0 (disabled) or at least "
                f"{needed}"
            )
        return problems

    def _cost_problems(self) -> list[str]:
        problems = []
        if self.auto_fast_seconds < 0:
            problems.append("autoFastSeconds must be 0 or more (seconds on the fast path)")
        if not (math.isfinite(self.max_job_usd) and self.max_job_usd >= 0):
            problems.append("maxJobUsd must be a number of dollars, 0 (no budget guard) or more")
        problems.extend(price_table_problems(dict(self.price_table)))
        return problems

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


def price_table_problems(table: dict[str, Any]) -> list[str]:
    """What is wrong with a priceTable override: the image's rules (prices.py), named."""
    problems = []
    for key, value in table.items():
        if key not in PRICE_TABLE_KEYS:
            problems.append(
                f"priceTable: unknown price {key!r}; known: {', '.join(sorted(PRICE_TABLE_KEYS))}"
            )
        elif key == "ec2InstanceType":
            if not isinstance(value, str) or not _INSTANCE_TYPE.fullmatch(value.strip()):
                problems.append(
                    f"priceTable: ec2InstanceType must be an instance type name such as "
                    f"c7g.large, not {value!r}"
                )
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"priceTable: {key} must be a number, not {value!r}")
        elif not math.isfinite(value) or value < 0:
            problems.append(f"priceTable: {key} must be a finite number >= 0, not {value}")
        elif key == "ec2InstanceVcpus" and (int(value) != value or value < 1):
            problems.append(f"priceTable: {key} must be a whole number >= 1, not {value}")
        elif key in PRICE_DISCOUNT_KEYS and value >= 1:
            problems.append(
                f"priceTable: {key} is the fraction of the on-demand price saved, in [0, 1); "
                f"not {value}"
            )
    return problems


def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _price_table(raw: Any) -> tuple[tuple[str, Any], ...]:
    if not raw:
        return ()
    if not isinstance(raw, dict):
        raise ValueError(
            "invalid stack configuration: priceTable must be a map of price to value, e.g. "
            "pulumi config set --path 'priceTable.ec2SpotDiscount' 0.55"
        )
    return tuple(sorted((str(key), value) for key, value in raw.items()))


def _dollars(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid stack configuration: maxJobUsd must be a number of dollars, not {raw!r}"
        ) from None


def schedule_entry_problems(entry: ScheduleEntry, settings: StackSettings) -> list[str]:
    """What is wrong with one `schedules` entry (empty when nothing is)."""
    problems = []
    if not _SCHEDULE_NAME.fullmatch(entry.name):
        problems.append("name must be 1 to 64 letters, digits, '-', '_' or '.'")
    problems.extend(cron_problems(entry.cron))
    try:
        zoneinfo.ZoneInfo(entry.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone {entry.timezone!r} is not an IANA time zone name")
    problems.extend(book_problems(entry.book))
    if entry.path not in SCHEDULE_PATHS:
        problems.append(f"path must be one of {', '.join(SCHEDULE_PATHS)}, not {entry.path!r}")
    elif entry.path == "urgent" and not settings.urgent_lane:
        problems.append("path urgent needs the urgent lane (urgentMaxVcpus > 0)")
    return problems


def cron_problems(expression: str) -> list[str]:
    """EventBridge Scheduler's cron(minutes hours day-of-month month day-of-week year): six
    fields, one of day-of-month and day-of-week a '?'."""
    found = _CRON.fullmatch(expression.strip())
    if not found:
        return [
            f"cron {expression!r} is not cron(minutes hours day-of-month month day-of-week year)"
        ]
    fields = found.groups()
    problems = []
    if not all(_CRON_FIELD.fullmatch(field) for field in fields):
        problems.append(f"cron {expression!r} holds characters cron expressions do not use")
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        problems.append(
            f"cron {expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        )
    return problems


def book_problems(book: str) -> list[str]:
    """A book is a relative key under books/, ending in .csv (any letter case)."""
    path = PurePosixPath(book)
    if (
        not book
        or book.startswith("/")
        or any(part in ("", ".", "..") for part in book.split("/"))
        or "\\" in book
        or any(ord(c) < 32 for c in book)
    ):
        return [f"book {book!r} must be a relative key under books/ (no '..', '.', '//')"]
    if path.suffix.lower() != ".csv":
        return [f"book {book!r} must end in .csv"]
    if len(("books/" + book).encode()) > 1012:
        return [f"book {book!r} is too long for an S3 key"]
    return []


def _fair_share(raw: Any) -> tuple[tuple[str, float], ...]:
    if not raw:
        return ()
    if not isinstance(raw, dict):
        raise ValueError(
            "invalid stack configuration: fairShare must be a map of team to weight, e.g. "
            "pulumi config set --path 'fairShare.risk' 3"
        )
    shares = []
    for team, weight in raw.items():
        try:
            shares.append((str(team), float(weight)))
        except (TypeError, ValueError):
            raise ValueError(
                f"invalid stack configuration: fairShare: the weight of {team!r} must be a "
                f"number, not {weight!r}"
            ) from None
    return tuple(shares)


def _schedules(raw: Any) -> tuple[ScheduleEntry, ...]:
    if not raw:
        return ()
    fields = ("name", "cron", "timezone", "book", "path")
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ValueError(
            "invalid stack configuration: schedules must be a list of "
            "{name, cron, timezone, book, path} entries"
        )
    entries = []
    for index, entry in enumerate(raw):
        missing = [f for f in fields if not isinstance(entry.get(f), str) or not entry.get(f)]
        extra = sorted(set(entry) - set(fields))
        if missing or extra:
            raise ValueError(
                f"invalid stack configuration: schedules[{index}] needs the text fields "
                f"{', '.join(fields)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        entries.append(ScheduleEntry(**{f: entry[f].strip() for f in fields}))
    return tuple(entries)


def load_settings() -> StackSettings:
    """Read the project's config (Pulumi.yaml defaults underneath) plus aws:region, validate."""
    cfg = pulumi.Config()
    spec = schema()

    def value(key: str) -> Any:
        kind = spec[key].get("type")
        if key == "maxJobUsd":  # a number, which Pulumi's config types cannot declare
            found: Any = cfg.get(key)
        elif kind is None:  # structured settings (a map, a list of maps): see Pulumi.yaml
            found = cfg.get_object(key)
        elif kind == "boolean":
            found = cfg.get_bool(key)
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
        urgent_max_vcpus=int(value("urgentMaxVcpus")),
        fair_share=_fair_share(value("fairShare")),
        schedules=_schedules(value("schedules")),
        schedule_window_minutes=int(value("scheduleWindowMinutes")),
        lambda_provisioned_concurrency=int(value("lambdaProvisionedConcurrency")),
        min_vcpus=int(value("minVcpus")),
        auto_fast_seconds=int(value("autoFastSeconds")),
        max_job_usd=_dollars(value("maxJobUsd")),
        price_table=_price_table(value("priceTable")),
        force_destroy=bool(value("forceDestroy")),
    )
    settings.validate()
    for warning in settings.warnings():
        pulumi.log.warn(warning)
    return settings
