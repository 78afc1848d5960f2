"""The price table: what AWS charges for each thing a job uses, per region and architecture.

Defaults are list prices in USD (Linux, on-demand, no free tier, no Savings Plans), compiled
in December 2026 from AWS's pricing pages; docs/cost.md cites each source and says how far
an estimate can be from the bill. A stack can replace any subset of them with a JSON
document (the stack setting ``priceTable``, passed to the image as ``PRICE_TABLE``):

    {"ec2SpotDiscount": 0.55, "lambdaUsdPerGbSecond": 0.0000133334}

Keys are the camelCase names of ``PriceTable``'s fields (``FIELDS``); unknown keys, wrong
types and impossible values are refused with a message naming the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

# The variable carrying a stack's override (JSON); runtime/environment.py reads it.
PRICE_TABLE = "PRICE_TABLE"

REGIONS = ("us-east-1", "eu-west-1")
ARCHITECTURES = ("x86_64", "arm64")
DEFAULT_REGION = "us-east-1"
DEFAULT_ARCHITECTURE = "x86_64"
PRICES_AS_OF = "2026-12"


class PriceTableError(ValueError):
    """An override that cannot be used; the message names the key and what is wrong."""


@dataclass(frozen=True)
class PriceTable:
    """Unit prices in USD. Field names (camelCase in JSON) say the unit."""

    region: str
    architecture: str
    # Lambda: duration (memory x billed time, 1 ms granularity; INIT billed too) and requests
    lambda_usd_per_gb_second: float
    lambda_usd_per_million_requests: float
    # Fargate: per requested vCPU and GB, per second, 1-minute minimum per task
    fargate_usd_per_vcpu_hour: float
    fargate_usd_per_gb_hour: float
    fargate_spot_discount: float  # Fargate Spot's saving against Fargate (assumption)
    # EC2 under Batch: the representative instance; a job pays its vCPU share of it
    ec2_instance_type: str
    ec2_usd_per_instance_hour: float
    ec2_instance_vcpus: int
    ec2_spot_discount: float  # Spot's saving against on-demand (assumption)
    # S3 Standard requests: PUT, COPY, POST, LIST / GET, HEAD and all other (DELETE is free)
    s3_usd_per_thousand_put: float
    s3_usd_per_thousand_get: float
    # EventBridge custom events (the job event) and SQS standard queue requests
    events_usd_per_million: float
    sqs_usd_per_million: float

    @property
    def ec2_usd_per_vcpu_hour(self) -> float:
        """The representative instance's price per vCPU-hour (on-demand)."""
        return self.ec2_usd_per_instance_hour / self.ec2_instance_vcpus

    def to_dict(self) -> dict[str, Any]:
        """camelCase keys, as an override document spells them."""
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, found: Mapping[str, Any]) -> PriceTable:
        """A table as ``to_dict`` wrote it; PriceTableError for anything else."""
        try:
            return cls(**{f.name: found[_camel(f.name)] for f in fields(cls)})
        except (KeyError, TypeError) as exc:
            raise PriceTableError(f"not a price table: {exc}") from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


# Lambda, S3, EventBridge and SQS list the same prices in both regions; Fargate too.
_LAMBDA = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
_FARGATE = {"x86_64": (0.04048, 0.004445), "arm64": (0.03238, 0.00356)}
# (instance type, USD per hour, vCPUs): for each architecture the cheapest family per vCPU
# among those the compute environment may launch (components/settings.py ARCHITECTURES),
# which is what BEST_FIT_PROGRESSIVE and SPOT_PRICE_CAPACITY_OPTIMIZED lean to. The .large
# size: a family's price per vCPU is the same at every size.
_EC2 = {
    ("us-east-1", "x86_64"): ("c6a.large", 0.0765, 2),
    ("us-east-1", "arm64"): ("c6g.large", 0.068, 2),
    ("eu-west-1", "x86_64"): ("c6a.large", 0.0864, 2),
    ("eu-west-1", "arm64"): ("c6g.large", 0.0772, 2),
}
# The same families' .large prices, for docs/cost.md and for overrides that pick another.
EC2_LARGE_USD_PER_HOUR = {
    "us-east-1": {
        "c5.large": 0.085,
        "c6i.large": 0.085,
        "c6a.large": 0.0765,
        "c7i.large": 0.08925,
        "c6g.large": 0.068,
        "c7g.large": 0.0725,
    },
    "eu-west-1": {
        "c5.large": 0.096,
        "c6i.large": 0.096,
        "c6a.large": 0.0864,
        "c7i.large": 0.1008,
        "c6g.large": 0.0772,
        "c7g.large": 0.0821,
    },
}
# Assumptions, not list prices: Spot prices move with supply and demand. AWS advertises
# "up to 90%" (EC2) and "up to 70%" (Fargate Spot) off; c-family Spot has traded near 65 %.
EC2_SPOT_DISCOUNT = 0.65
FARGATE_SPOT_DISCOUNT = 0.70


def default_prices(
    region: str = DEFAULT_REGION, architecture: str = DEFAULT_ARCHITECTURE
) -> PriceTable:
    """The documented defaults for a region and architecture (PriceTableError otherwise)."""
    if region not in REGIONS:
        raise PriceTableError(
            f"no default prices for region {region!r}: known regions are {', '.join(REGIONS)} "
            f"(give every price in the {PRICE_TABLE} override for another region)"
        )
    if architecture not in ARCHITECTURES:
        raise PriceTableError(
            f"unknown architecture {architecture!r}: choose {' or '.join(ARCHITECTURES)}"
        )
    vcpu_hour, gb_hour = _FARGATE[architecture]
    instance, hourly, vcpus = _EC2[(region, architecture)]
    return PriceTable(
        region=region,
        architecture=architecture,
        lambda_usd_per_gb_second=_LAMBDA[architecture],
        lambda_usd_per_million_requests=0.20,
        fargate_usd_per_vcpu_hour=vcpu_hour,
        fargate_usd_per_gb_hour=gb_hour,
        fargate_spot_discount=FARGATE_SPOT_DISCOUNT,
        ec2_instance_type=instance,
        ec2_usd_per_instance_hour=hourly,
        ec2_instance_vcpus=vcpus,
        ec2_spot_discount=EC2_SPOT_DISCOUNT,
        s3_usd_per_thousand_put=0.005,
        s3_usd_per_thousand_get=0.0004,
        events_usd_per_million=1.00,
        sqs_usd_per_million=0.40,
    )


# camelCase key -> field name, for every overridable price (region/architecture are not
# prices: they come from the stack).
FIELDS = {
    _camel(f.name): f.name for f in fields(PriceTable) if f.name not in ("region", "architecture")
}
_DISCOUNTS = {"fargate_spot_discount", "ec2_spot_discount"}


def parse_price_table(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The validated override (field name -> value) from a JSON document or mapping.

    Empty text or None means no override. Raises PriceTableError naming the key."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    if isinstance(text, str):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PriceTableError(f"{PRICE_TABLE} is not JSON: {exc.msg} at {exc.pos}") from None
    else:
        document = dict(text)
    if not isinstance(document, dict):
        raise PriceTableError(f"{PRICE_TABLE} must be a JSON object of prices, e.g. {_EXAMPLE}")
    values: dict[str, Any] = {}
    for key, value in document.items():
        name = FIELDS.get(key)
        if name is None:
            raise PriceTableError(
                f"{PRICE_TABLE}: unknown price {key!r}; known: {', '.join(sorted(FIELDS))}"
            )
        values[name] = _checked(key, name, value)
    return values


_EXAMPLE = '{"ec2SpotDiscount": 0.55}'


def _checked(key: str, name: str, value: Any) -> Any:
    if name == "ec2_instance_type":
        if not isinstance(value, str) or not value.strip():
            raise PriceTableError(f"{PRICE_TABLE}: {key} must be an instance type name")
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceTableError(f"{PRICE_TABLE}: {key} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise PriceTableError(f"{PRICE_TABLE}: {key} must be a finite number >= 0, got {value}")
    if name == "ec2_instance_vcpus":
        if int(value) != value or value < 1:
            raise PriceTableError(f"{PRICE_TABLE}: {key} must be a whole number >= 1")
        return int(value)
    if name in _DISCOUNTS and value >= 1:
        raise PriceTableError(
            f"{PRICE_TABLE}: {key} is a fraction of the on-demand price saved, in [0, 1); "
            f"got {value}"
        )
    return float(value)


def price_table(
    region: str = DEFAULT_REGION,
    architecture: str = DEFAULT_ARCHITECTURE,
    override: str | Mapping[str, Any] | None = None,
) -> PriceTable:
    """The defaults for ``region`` and ``architecture`` with ``override`` applied.

    A region without defaults needs an override that gives every price."""
    values = parse_price_table(override)
    if region not in REGIONS and architecture in ARCHITECTURES:
        missing = sorted(key for key, name in FIELDS.items() if name not in values)
        if missing:
            raise PriceTableError(
                f"no default prices for region {region!r}: the {PRICE_TABLE} override must "
                f"give {', '.join(missing)}"
            )
        return PriceTable(region=region, architecture=architecture, **values)
    return replace(default_prices(region, architecture), **values)
