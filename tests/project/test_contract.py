"""The two halves agree: components/ and runtime/ never import each other, so check here.

The environment contract: the Pulumi program (run under mocks by tests/infra/harness.py) gives
the Lambda function exactly runtime.environment.LAMBDA_VARIABLES and the job definition exactly
BATCH_VARIABLES (plus AWS_DEFAULT_REGION, which boto3 reads itself), in every capacity variant.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components.settings import ENGINES
from runtime import environment
from runtime.engines import ENGINE_NAMES
from tests.infra.harness import PROJECT, STACKS, Run, run_stack

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\\\]+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_the_stack_offers_exactly_the_engines_the_image_has():
    assert set(ENGINES) == set(ENGINE_NAMES)


def test_development_pins_of_runtime_packages_equal_the_image_pins():
    image = pins(ROOT / "runtime" / "requirements.txt")
    development = pins(ROOT / "requirements-dev.txt")
    shared = set(image) & set(development)
    assert {"quantlib", "numpy", "boto3", "awslambdaric"} <= shared
    assert {name: development[name] for name in shared} == {name: image[name] for name in shared}


# --- the environment: components/ sets exactly what runtime/environment.py reads -------------

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

# Read by boto3 itself (the runtime never reads it), so the job definition sets it too.
BOTO3_ONLY = {"AWS_DEFAULT_REGION"}


def lambda_environment(run: Run) -> dict[str, str]:
    return run.one("aws:lambda/function:Function").inputs["environment"]["variables"]


def batch_environment(run: Run) -> dict[str, str]:
    definition = run.one("aws:batch/jobDefinition:JobDefinition").inputs
    container = json.loads(definition["containerProperties"])
    return {e["name"]: e["value"] for e in container["environment"]}


@pytest.mark.parametrize("overrides", [(), (("useFargate", True), ("useSpot", True))])
@pytest.mark.parametrize("stack", STACKS)
def test_each_path_gets_exactly_the_variables_the_runtime_reads(stack, overrides):
    run = run_stack(stack, overrides)
    assert set(lambda_environment(run)) == environment.LAMBDA_VARIABLES
    assert set(batch_environment(run)) == environment.BATCH_VARIABLES | BOTO3_ONLY


@pytest.mark.parametrize("stack", STACKS)
def test_the_values_are_ones_the_runtime_accepts(stack):
    run = run_stack(stack)
    for env in (lambda_environment(run), batch_environment(run)):
        config = environment.RuntimeConfig.from_env(env)
        assert config.log_level == "INFO"
        assert config.greeks is False
        assert config.bounds is False
    assert environment.RuntimeConfig.from_env(batch_environment(run)).region == run.region


def test_greeks_setting_reaches_both_paths_as_the_runtime_reads_it():
    run = run_stack("us-east-1", (("greeks", True),))
    for env in (lambda_environment(run), batch_environment(run)):
        assert env["GREEKS"] == "true"
        assert environment.RuntimeConfig.from_env(env).greeks is True


def test_bounds_setting_reaches_both_paths_as_the_runtime_reads_it():
    run = run_stack("us-east-1", (("bounds", True),))
    for env in (lambda_environment(run), batch_environment(run)):
        assert env["BOUNDS"] == "true"
        assert environment.RuntimeConfig.from_env(env).bounds is True


def test_runtime_defaults_equal_the_stack_defaults():
    """A process without the stack's environment (simulate, tests) behaves like a stack."""
    defaults = {key: spec["default"] for key, spec in PROJECT["config"].items()}
    assert defaults["threshold"] == environment.DEFAULT_THRESHOLD
    assert defaults["maxRows"] == environment.DEFAULT_MAX_ROWS
    assert defaults["maxBytes"] == environment.DEFAULT_MAX_BYTES
    assert defaults["maxParts"] == environment.DEFAULT_MAX_PARTS
    assert environment.RuntimeConfig(result_bucket="b").greeks is defaults["greeks"]
    assert environment.RuntimeConfig(result_bucket="b").bounds is defaults["bounds"]
    assert environment.RuntimeConfig(result_bucket="b").engine == defaults["engine"]
