"""The price table: documented defaults per region and architecture, and overrides."""

from __future__ import annotations

import json

import pytest

from runtime.planning.prices import (
    ARCHITECTURES,
    EC2_LARGE_USD_PER_HOUR,
    FIELDS,
    REGIONS,
    PriceTableError,
    default_prices,
    parse_price_table,
    price_table,
)


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_region_and_architecture_has_every_price(region, architecture):
    table = default_prices(region, architecture)
    for name in FIELDS.values():
        value = getattr(table, name)
        assert value not in (None, ""), name
    # the representative instance is the cheapest listed family per vCPU there
    families = {
        name: price
        for name, price in EC2_LARGE_USD_PER_HOUR[region].items()
        if name.startswith(("c6g", "c7g")) == (architecture == "arm64")
    }
    assert table.ec2_instance_type == min(families, key=families.get)
    assert table.ec2_usd_per_vcpu_hour == pytest.approx(families[table.ec2_instance_type] / 2)


def test_arm_is_cheaper_than_x86_on_lambda_and_fargate():
    x86, arm = default_prices("us-east-1", "x86_64"), default_prices("us-east-1", "arm64")
    assert arm.lambda_usd_per_gb_second < x86.lambda_usd_per_gb_second
    assert arm.fargate_usd_per_vcpu_hour < x86.fargate_usd_per_vcpu_hour
    assert x86.lambda_usd_per_gb_second == pytest.approx(0.0000166667)


def test_an_override_replaces_only_the_prices_it_names():
    table = price_table(
        "eu-west-1", "x86_64", '{"ec2SpotDiscount": 0.5, "lambdaUsdPerGbSecond": 1e-5}'
    )
    base = default_prices("eu-west-1", "x86_64")
    assert table.ec2_spot_discount == 0.5
    assert table.lambda_usd_per_gb_second == 1e-5
    assert table.fargate_usd_per_vcpu_hour == base.fargate_usd_per_vcpu_hour
    assert price_table("eu-west-1", "x86_64", "") == base
    assert price_table("eu-west-1", "x86_64", None) == base


def test_a_table_written_out_reads_back_as_the_same_table():
    table = default_prices("us-east-1", "arm64")
    document = {k: v for k, v in table.to_dict().items() if k in FIELDS}
    assert price_table("us-east-1", "arm64", json.dumps(document)) == table


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"lambdaPrice": 1}', "unknown price 'lambdaPrice'; known: ec2InstanceType"),
        ('{"s3UsdPerThousandPut": "cheap"}', "s3UsdPerThousandPut must be a number, got 'cheap'"),
        ('{"s3UsdPerThousandPut": true}', "must be a number"),
        ('{"fargateUsdPerGbHour": -1}', "fargateUsdPerGbHour must be a finite number >= 0"),
        ('{"ec2SpotDiscount": 1.2}', "ec2SpotDiscount is a fraction of the on-demand price"),
        ('{"ec2InstanceVcpus": 1.5}', "ec2InstanceVcpus must be a whole number >= 1"),
        ('{"ec2InstanceType": ""}', "ec2InstanceType must be an instance type name"),
    ],
)
def test_a_bad_override_is_refused_naming_the_key(override, message):
    with pytest.raises(PriceTableError, match=None) as caught:
        parse_price_table(override)
    assert message in str(caught.value)
    assert str(caught.value).startswith("PRICE_TABLE")


def test_another_region_needs_every_price_and_an_unknown_architecture_is_refused():
    with pytest.raises(PriceTableError, match="must give ec2InstanceType"):
        price_table("ap-south-1", "x86_64", '{"ec2SpotDiscount": 0.5}')
    everything = {k: v for k, v in default_prices().to_dict().items() if k in FIELDS}
    table = price_table("ap-south-1", "x86_64", everything)
    assert table.region == "ap-south-1"
    with pytest.raises(PriceTableError, match="unknown architecture 'sparc'"):
        price_table("us-east-1", "sparc")
