"""The one reader of the environment: typed values, clear errors, the stacks' defaults."""

from __future__ import annotations

import pytest

from runtime.environment import (
    BatchContext,
    RuntimeConfig,
    SettingsError,
    format_part_indexes,
    parse_part_indexes,
    runtime_mode,
)


def test_defaults_and_values():
    config = RuntimeConfig.from_env({"RESULT_BUCKET": "b", "GREEKS": "true", "LOG_LEVEL": "debug"})
    assert (config.threshold, config.max_parts, config.greeks, config.log_level) == (
        200,
        200,
        True,
        "DEBUG",
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "RESULT_BUCKET is not set"),
        ({"RESULT_BUCKET": "b", "THRESHOLD": "0"}, "THRESHOLD=0 must be at least 1"),
        ({"RESULT_BUCKET": "b", "ENGINE": "quick"}, "ENGINE: unknown engine 'quick'"),
        ({"RESULT_BUCKET": "b", "GREEKS": "maybe"}, "GREEKS='maybe' is not true or false"),
        ({"RESULT_BUCKET": "b", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is not one of"),
    ],
)
def test_a_bad_setting_is_named(environ, message):
    with pytest.raises(SettingsError, match=message):
        RuntimeConfig.from_env(environ)


def test_mode_follows_what_aws_sets():
    assert runtime_mode({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}) == "lambda"
    assert runtime_mode({"AWS_BATCH_JOB_ID": "j"}) == "batch"
    assert runtime_mode({}) == "cli"


def test_part_indexes_are_written_as_ranges_and_read_back():
    indexes = [*range(5000), 5003, 5005, 5006, 9999]
    text = format_part_indexes(indexes)
    assert text == "0-4999,5003,5005-5006,9999"
    assert parse_part_indexes(text) == tuple(indexes)
    child = BatchContext.from_env({"PART_INDEXES": text, "AWS_BATCH_JOB_ARRAY_INDEX": "5001"})
    assert child.part_index == 5005
    with pytest.raises(SettingsError, match="is not a list of parts"):
        BatchContext.from_env({"PART_INDEXES": "3,x"})


def test_the_planning_settings_come_from_their_variables_and_plan_settings():
    config = RuntimeConfig.from_env(
        {
            "RESULT_BUCKET": "b",
            "AWS_REGION": "eu-west-1",
            "THRESHOLD": "50",
            "ENGINE": "mc",
            "AUTO_FAST_SECONDS": "30",
            "MAX_JOB_USD": "0.25",
            "PRICE_TABLE": '{"ec2SpotDiscount": 0.5}',
            "PLAN_SETTINGS": '{"useSpot": true, "maxVcpus": 256, "architecture": "arm64"}',
            "JOB_VCPUS": "2",
            "JOB_MEMORY_MB": "4096",
            "CAPACITY": "spot",
        }
    )
    plan = config.plan_settings()
    assert (plan.region, plan.engine, plan.threshold, plan.architecture) == (
        "eu-west-1",
        "mc",
        50,
        "arm64",
    )
    assert (plan.auto_fast_seconds, plan.max_job_usd, plan.use_spot, plan.max_vcpus) == (
        30,
        0.25,
        True,
        256,
    )
    prices = config.prices()
    assert (prices.region, prices.ec2_spot_discount, prices.ec2_instance_type) == (
        "eu-west-1",
        0.5,
        "c6g.large",
    )
    assert (config.capacity, config.job_vcpus, config.batch_memory_mb) == ("SPOT", 2.0, 4096)
    # Without the stack's variables: the stacks' defaults, and a 1-vCPU EC2 job of 1,792 MiB.
    plain = RuntimeConfig.from_env({"RESULT_BUCKET": "b"})
    assert (plain.auto_fast_seconds, plain.max_job_usd, plain.price_table) == (60, 0.0, "")
    assert (plain.capacity, plain.batch_memory_mb, plain.lambda_memory_mb) == ("EC2", 1792, 0)
    assert RuntimeConfig.from_env({"RESULT_BUCKET": "b", "PRICE_TABLE": "{}"}).price_table == ""


def test_lambdas_memory_is_read_only_inside_lambda():
    inside = {"RESULT_BUCKET": "b", "AWS_LAMBDA_FUNCTION_NAME": "f"}
    config = RuntimeConfig.from_env({**inside, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"})
    assert config.lambda_memory_mb == 3538
    assert (
        RuntimeConfig.from_env(
            {"RESULT_BUCKET": "b", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}
        ).lambda_memory_mb
        == 0
    )


def test_a_region_without_list_prices_is_priced_at_us_east_1s():
    config = RuntimeConfig.from_env({"RESULT_BUCKET": "b", "AWS_REGION": "ap-south-1"})
    prices = config.prices()
    assert prices.region == "ap-south-1" and prices.ec2_instance_type == "c6a.large"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AUTO_FAST_SECONDS": "soon"}, "AUTO_FAST_SECONDS='soon' is not a whole number"),
        ({"AUTO_FAST_SECONDS": "-1"}, "AUTO_FAST_SECONDS=-1 must not be negative"),
        ({"MAX_JOB_USD": "a lot"}, "MAX_JOB_USD='a lot' is not a number"),
        ({"MAX_JOB_USD": "-2"}, "MAX_JOB_USD=-2.0 must be 0"),
        ({"MAX_JOB_USD": "nan"}, "MAX_JOB_USD='nan' is not a finite number"),
        ({"PRICE_TABLE": "{"}, "PRICE_TABLE is not JSON"),
        ({"PRICE_TABLE": '{"ec2Discount": 1}'}, "PRICE_TABLE: unknown price 'ec2Discount'"),
        ({"PLAN_SETTINGS": "[1]"}, "PLAN_SETTINGS must be a JSON object"),
        ({"PLAN_SETTINGS": '{"speed": 1}'}, r"PLAN_SETTINGS: unknown setting\(s\) speed"),
        ({"PLAN_SETTINGS": '{"maxVcpus": "many"}'}, "PLAN_SETTINGS: maxVcpus: 'many' is not"),
        ({"PLAN_SETTINGS": '{"architecture": "sparc"}'}, "PLAN_SETTINGS: architecture 'sparc'"),
        ({"CAPACITY": "moon"}, "CAPACITY='MOON' is not one of EC2, SPOT, FARGATE, FARGATE_SPOT"),
        ({"JOB_VCPUS": "0"}, "JOB_VCPUS=0.0 must be more than 0"),
    ],
)
def test_a_bad_planning_variable_is_named(environ, message):
    with pytest.raises(SettingsError, match=message):
        RuntimeConfig.from_env({"RESULT_BUCKET": "b", **environ})
