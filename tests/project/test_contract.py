"""The two halves agree: components/ and runtime/ never import each other, so check here.

The environment contract: the Pulumi program (run under mocks by tests/infra/harness.py) gives
the Lambda function exactly runtime.environment.LAMBDA_VARIABLES and the job definition exactly
BATCH_VARIABLES (plus AWS_DEFAULT_REGION, which boto3 reads itself), in every capacity variant.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from components.settings import ENGINES
from runtime import environment
from runtime.engines import ENGINE_NAMES
from tests.infra.harness import PROJECT, STACKS, Run, run_program, run_stack

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


# --- planning and cost: the settings the image plans and prices with --------------------


def test_the_price_table_keys_regions_and_plan_settings_are_the_images():
    from components import settings as stack_settings
    from runtime.planning import prices
    from runtime.planning.settings import PLAN_SETTING_NAMES

    assert set(stack_settings.PRICE_TABLE_KEYS) == set(prices.FIELDS)
    assert set(stack_settings.PRICED_REGIONS) == set(prices.REGIONS)
    assert {f"{k}" for k in stack_settings.PRICE_DISCOUNT_KEYS} == {
        key for key, name in prices.FIELDS.items() if name.endswith("_discount")
    }
    # PLAN_SETTINGS carries exactly the planning settings that have no variable of their own.
    own = environment.OWN_VARIABLE_SETTINGS
    assert set(stack_settings.PLAN_SETTING_NAMES) == set(PLAN_SETTING_NAMES) - own
    assert own <= set(PLAN_SETTING_NAMES)


@pytest.mark.parametrize(
    "overrides",
    [(), (("useFargate", True), ("useSpot", True), ("jobVcpus", 2), ("maxJobUsd", 0.25))],
)
@pytest.mark.parametrize("stack", STACKS)
def test_the_image_plans_with_the_stacks_settings(stack, overrides):
    """What the function and the jobs plan with is what ``plan --stack`` plans with."""
    from runtime.planning.settings import PlanSettings
    from runtime.planning.stackfile import read_stack

    run = run_stack(stack, overrides)
    values, _ = read_stack(ROOT, stack)
    expected = PlanSettings().with_values({**values, **dict(overrides), "region": run.region})
    function = environment.RuntimeConfig.from_env(
        {**lambda_environment(run), "AWS_REGION": run.region}
    )
    assert function.plan_settings() == expected
    # Batch jobs are not given MAX_PARTS, the fast path's fan-out, which they never use.
    job = environment.RuntimeConfig.from_env(batch_environment(run))
    assert dataclasses.replace(job.plan_settings(), max_parts=expected.max_parts) == expected
    capacity = expected.batch_capacity
    assert (job.capacity, job.job_vcpus, job.batch_memory_mb) == (
        capacity,
        expected.job_vcpus,
        expected.batch_memory_mb,
    )


def test_the_functions_environment_stays_under_lambdas_4_kb_with_the_largest_price_table():
    """Lambda refuses a function whose variables (names and values) pass 4 KB."""
    from components.settings import PRICE_DISCOUNT_KEYS, PRICE_TABLE_KEYS

    largest: dict[str, object] = {}
    for key in PRICE_TABLE_KEYS:
        if key == "ec2InstanceType":
            largest[key] = "a" * 16 + "." + "b" * 15  # the longest name settings accept
        elif key == "ec2InstanceVcpus":
            largest[key] = 10**15
        elif key in PRICE_DISCOUNT_KEYS:
            largest[key] = 0.12345678901234568
        else:
            largest[key] = 1.2345678901234567e-300  # the longest repr of a float
    run = run_program(
        "us-east-1",
        {"priceTable": largest, "maxJobUsd": 1.2345678901234567e-300, "threshold": 10**9},
    )
    env = lambda_environment(run)
    assert json.loads(env["PRICE_TABLE"]) == largest
    size = sum(len(name) + len(str(value)) for name, value in env.items())
    # Queue ARNs and names are longer in an account with a longer stack name: keep room.
    assert size < 3 * 1024, size
    environment.RuntimeConfig.from_env(env)  # and the image accepts all of it


def test_runtime_planning_defaults_equal_the_stack_defaults():
    defaults = {key: spec["default"] for key, spec in PROJECT["config"].items()}
    config = environment.RuntimeConfig(result_bucket="b")
    assert config.auto_fast_seconds == defaults["autoFastSeconds"]
    assert config.max_job_usd == defaults["maxJobUsd"]
    assert defaults["priceTable"] == {} and config.price_table == ""


def test_the_dashboards_cost_widgets_search_what_the_metrics_line_writes():
    from components import monitoring
    from runtime.planning import metrics

    assert monitoring.EMF_NAMESPACE == metrics.NAMESPACE
    assert monitoring.EMF_PATH_DIMENSIONS in metrics.DIMENSION_SETS
    assert monitoring.EMF_TEAM_DIMENSIONS in metrics.DIMENSION_SETS
    assert monitoring.COST_METRIC in {name for name, _ in metrics.METRICS}
