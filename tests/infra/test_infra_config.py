"""Settings: the Pulumi.yaml schema and its defaults, the validation that refuses a stack
before anything is created, and the cost settings as the image reads them. What the
capacity and sizing settings change: test_infra_capacity.py."""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from components.settings import defaults, load_settings

from .harness import (
    PROJECT,
    PROJECT_NAME,
    ROOT,
    STACKS,
    config_value,
    run_program,
    run_stack,
    stack_config,
)
from .lookups import compute, job_env, job_resources, lambda_env

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

SCHEMA = PROJECT["config"]


def test_schema_declares_every_setting_with_type_default_and_description() -> None:
    # The virtualenv the README and scripts/setup use (`pulumi install` creates it too).
    assert PROJECT["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }
    assert "python -m venv .venv" in (ROOT / "scripts" / "setup").read_text().replace(
        '"$python"', "python"
    )
    required = {
        "useSpot", "threshold", "maxVcpus", "lambdaMemoryMb", "lambdaTimeoutSeconds", "engine",
        "architecture", "vpcId", "subnetIds", "lambdaReservedConcurrency", "maxParts", "maxRows",
        "maxBytes", "useFargate", "greeks", "notifyEmail", "jobVcpus", "jobMemoryMb",
        "jobTimeoutSeconds", "urgentMaxVcpus", "fairShare", "schedules", "scheduleWindowMinutes",
        "lambdaProvisionedConcurrency", "minVcpus", "autoFastSeconds", "maxJobUsd", "priceTable",
        "forceDestroy",
    }  # fmt: skip
    assert required <= set(SCHEMA)
    # Structured settings and a number of dollars declare no type: Pulumi's config types are
    # string, integer, boolean and arrays of them, and the CLI checks a stack value only
    # against a declared type.
    structured = {"fairShare": {}, "schedules": [], "priceTable": {}, "maxJobUsd": 0}
    for key, schema in SCHEMA.items():
        if key in structured:
            assert "type" not in schema and schema["default"] == structured[key], key
        else:
            assert schema["type"] in ("boolean", "integer", "string", "array"), key
        assert "default" in schema, f"{key}: the CLI rejects a stack that lacks a value"
        assert len(schema["description"]) > 20, key
    assert SCHEMA["threshold"]["default"] == 200
    assert SCHEMA["engine"]["default"] == "lsm"
    assert SCHEMA["architecture"]["default"] == "x86_64"
    assert SCHEMA["lambdaReservedConcurrency"]["default"] == -1
    assert SCHEMA["useFargate"] == {**SCHEMA["useFargate"], "type": "boolean", "default": False}
    assert SCHEMA["greeks"] == {**SCHEMA["greeks"], "type": "boolean", "default": False}
    assert SCHEMA["forceDestroy"] == {
        **SCHEMA["forceDestroy"],
        "type": "boolean",
        "default": False,
    }
    assert SCHEMA["notifyEmail"] == {**SCHEMA["notifyEmail"], "type": "string", "default": ""}
    for key, default in (
        ("urgentMaxVcpus", 16),
        ("scheduleWindowMinutes", 0),
        ("lambdaProvisionedConcurrency", 0),
        ("minVcpus", 0),
        ("autoFastSeconds", 60),
    ):
        assert SCHEMA[key] == {**SCHEMA[key], "type": "integer", "default": default}, key


def test_defaults_deploy_on_a_new_account() -> None:
    """New accounts are capped at 3008 MB of Lambda memory until a quota increase."""
    memory = SCHEMA["lambdaMemoryMb"]["default"]
    assert memory <= 3008
    assert memory % 1769 == 0  # whole vCPUs only: the runtime prices on every whole vCPU


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_list_only_what_they_change(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT_NAME:
            assert value != SCHEMA[name]["default"], f"{stack}: {name} repeats the default"


def test_the_program_reads_its_defaults_from_pulumi_yaml() -> None:
    assert defaults() == {key: schema["default"] for key, schema in SCHEMA.items()}


def test_program_runs_on_pulumi_yaml_defaults_alone() -> None:
    """Without the CLI's project defaults (only aws:region set), Pulumi.yaml's defaults apply."""
    run = run_program("us-east-1", config={"aws:region": "us-east-1"})
    with_cli_defaults = run_program("us-east-1", config=stack_config_defaults_only())
    for env in (lambda_env(run), job_env(run)):
        assert env["THRESHOLD"] == str(SCHEMA["threshold"]["default"])
        assert env["GREEKS"] == "false" and env["LOG_LEVEL"] == "INFO"
    assert lambda_env(run)["MAX_PARTS"] == str(SCHEMA["maxParts"]["default"])
    function = run.one("aws:lambda/function:Function").inputs
    assert function["memorySize"] == SCHEMA["lambdaMemoryMb"]["default"] == 1769
    assert compute(run)["type"] == "EC2"
    assert job_resources(run) == {"VCPU": "1", "MEMORY": "1792"}
    # Exactly what the CLI would give the program from Pulumi.yaml.
    for type_ in ("aws:lambda/function:Function", "aws:batch/jobDefinition:JobDefinition"):
        assert run.one(type_).inputs == with_cli_defaults.one(type_).inputs


def stack_config_defaults_only() -> dict[str, str]:
    """What the CLI passes for a stack file that sets nothing but the region."""
    return {"aws:region": "us-east-1"} | {
        f"{PROJECT_NAME}:{key}": config_value(spec["default"]) for key, spec in SCHEMA.items()
    }


def test_other_stack_names_keep_stack_and_region() -> None:
    run = run_program("us-east-1", stack_name="dev")
    role = run.named("fast-role").inputs["name"]
    assert role == "mc-pricing-dev-us-east-1-fast-fn"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine": "bogus"}, "engine must be one of"),
        ({"architecture": "sparc"}, "architecture must be"),
        ({"subnetIds": ["subnet-1"]}, "subnetIds requires vpcId"),
        ({"lambdaTimeoutSeconds": 901}, "lambdaTimeoutSeconds"),
        ({"lambdaReservedConcurrency": -2}, "lambdaReservedConcurrency"),
        ({"threshold": 0}, "threshold must be at least 1"),
        ({"maxVcpus": 0}, "maxVcpus must be at least jobVcpus"),
        ({"jobTimeoutSeconds": 30}, "jobTimeoutSeconds"),
        ({"notifyEmail": "not an address"}, "notifyEmail must be an email address"),
        ({"notifyEmail": "ops@example"}, "notifyEmail must be an email address"),
        ({"useFargate": True, "jobVcpus": 3}, "useFargate: jobVcpus must be one of 1, 2, 4, 8, 16"),
        (
            {"useFargate": True, "jobMemoryMb": 1792},
            r"jobMemoryMb 1792 is not a Fargate size for jobVcpus 1; use 2048 to 8192 in steps of 1024",
        ),
        (
            {"useFargate": True, "jobVcpus": 8, "jobMemoryMb": 17000},
            "use 16384 to 61440 in steps of 4096",
        ),
        ({"useFargate": True, "jobVcpus": 16, "maxVcpus": 8}, "maxVcpus must be at least jobVcpus"),
        ({"jobMemoryMb": 64}, "jobMemoryMb must be 0"),
        ({"autoFastSeconds": -1}, "autoFastSeconds must be 0 or more"),
        ({"maxJobUsd": -0.5}, "maxJobUsd must be a number of dollars, 0"),
        ({"maxJobUsd": "lots"}, "maxJobUsd must be a number of dollars, not 'lots'"),
        ({"priceTable": {"ec2Discount": 0.5}}, "priceTable: unknown price 'ec2Discount'; known: "),
        ({"priceTable": {"ec2SpotDiscount": 1}}, r"ec2SpotDiscount is the fraction .* in \[0, 1\)"),
        ({"priceTable": {"s3UsdPerThousandPut": "cheap"}}, "s3UsdPerThousandPut must be a number"),
        (
            {"priceTable": {"eventsUsdPerMillion": -1}},
            "eventsUsdPerMillion must be a finite number",
        ),
        ({"priceTable": {"ec2InstanceVcpus": 1.5}}, "ec2InstanceVcpus must be a whole number"),
        (
            {"priceTable": {"ec2InstanceType": "big box"}},
            "ec2InstanceType must be an instance type",
        ),
        ({"priceTable": [0.5]}, "priceTable must be a map of price to value"),
    ],
)
def test_invalid_settings_fail_before_anything_is_created(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program("us-east-1", overrides)


@pytest.mark.parametrize("key", ["forceDestroy", "useSpot", "greeks"])
def test_a_boolean_setting_that_is_not_true_or_false_fails_before_anything_is_created(
    key: str,
) -> None:
    # load_settings() is the program's first step: the preview fails before any resource.
    with pytest.raises(pulumi.config.ConfigTypeError, match=f"{key}.*bool"):
        run_program("us-east-1", {key: "maybe"})


# The lanes', fair share's and warm capacity's settings (test_infra_lanes.py).
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"useFargate": True, "useSpot": True, "architecture": "arm64"}, "runs only X86_64 tasks"),
        ({"useFargate": True, "minVcpus": 2}, "minVcpus: Fargate has no instances to keep warm"),
        ({"minVcpus": 17}, r"minVcpus must be at most urgentMaxVcpus \(16\)"),
        ({"minVcpus": 257, "urgentMaxVcpus": 0}, r"minVcpus must be at most maxVcpus \(256\)"),
        ({"minVcpus": -1}, "minVcpus must be 0 or more"),
        ({"urgentMaxVcpus": -1}, "urgentMaxVcpus must be 0"),
        ({"urgentMaxVcpus": 2, "jobVcpus": 4}, "urgentMaxVcpus must be 0 or at least jobVcpus"),
        ({"lambdaProvisionedConcurrency": 5, "lambdaReservedConcurrency": 4},
         r"lambdaProvisionedConcurrency \(5\) must be at most lambdaReservedConcurrency \(4\)"),
        ({"lambdaProvisionedConcurrency": 1, "lambdaReservedConcurrency": 0},
         r"must be at most lambdaReservedConcurrency \(0\)"),
        ({"lambdaProvisionedConcurrency": -1}, "lambdaProvisionedConcurrency must be 0"),
        ({"fairShare": {"risk-desk": 1}}, "team 'risk-desk' is not a valid share identifier"),
        ({"fairShare": {"risk": 0}}, "the weight of 'risk' must be between 0.01 and 10000"),
        ({"fairShare": {"risk": "lots"}}, "the weight of 'risk' must be a number"),
        ({"fairShare": {"Risk": 1, "risk": 2}}, "must differ in more than letter case"),
        ({"fairShare": ["risk"]}, "fairShare must be a map of team to weight"),
        ({"fairShare": {f"t{i}": 1 for i in range(201)}}, "fairShare has 201 teams; at most 200"),
    ],
)  # fmt: skip
def test_refused_at_preview(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program("us-east-1", overrides)


def test_cost_settings_reach_both_paths_as_the_planner_reads_them() -> None:
    table = {"ec2SpotDiscount": 0.55, "ec2InstanceType": "c7g.large", "ec2InstanceVcpus": 2}
    run = run_stack(
        "us-east-1",
        (("autoFastSeconds", 30), ("maxJobUsd", 0.25), ("priceTable", json.dumps(table))),
    )
    for env in (lambda_env(run), job_env(run)):
        assert (env["AUTO_FAST_SECONDS"], env["MAX_JOB_USD"]) == ("30", "0.25")
        assert json.loads(env["PRICE_TABLE"]) == table
        plan = json.loads(env["PLAN_SETTINGS"])
        assert (plan["useSpot"], plan["maxVcpus"], plan["architecture"]) == (True, 256, "x86_64")
        assert "threshold" not in plan and "priceTable" not in plan  # they have their own
    # What a Batch job is billed for, which its container cannot see (us-east-1: Spot).
    job = job_env(run)
    assert (job["JOB_VCPUS"], job["JOB_MEMORY_MB"], job["CAPACITY"]) == ("1", "1792", "SPOT")
    assert "CAPACITY" not in lambda_env(run)
    defaults = run_stack("eu-west-1")
    for env in (lambda_env(defaults), job_env(defaults)):
        assert (env["AUTO_FAST_SECONDS"], env["MAX_JOB_USD"], env["PRICE_TABLE"]) == (
            "60",
            "0",
            "{}",
        )
    assert job_env(run_stack("eu-west-1", (("useFargate", True),)))["CAPACITY"] == "FARGATE"


def test_a_region_without_list_prices_deploys_and_says_how_its_costs_are_estimated() -> None:
    seen = []
    config = stack_config("us-east-1")
    config["aws:region"] = "ap-south-1"
    run_program(
        "us-east-1",
        config=config,
        stack_name="ap-south-1",
        program=lambda: seen.append(load_settings()),
    )
    (settings,) = seen
    (warning,) = settings.warnings()
    assert "no list prices for ap-south-1" in warning and "ec2SpotDiscount" in warning
    run_program("eu-west-1", program=lambda: seen.append(load_settings()))
    assert seen[-1].warnings() == []  # a region whose list prices the image knows
