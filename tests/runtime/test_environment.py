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
