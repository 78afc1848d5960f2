"""Settings: the Pulumi.yaml schema, and what each setting changes in the program."""

from __future__ import annotations

import json

import pytest

from components.settings import defaults

from .harness import PROJECT, Run, run_program, run_stack

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

SCHEMA = PROJECT["config"]


def compute(run: Run) -> dict:
    return run.one("aws:batch/computeEnvironment:ComputeEnvironment").inputs["computeResources"]


def lambda_env(run: Run) -> dict[str, str]:
    return run.one("aws:lambda/function:Function").inputs["environment"]["variables"]


def job_env(run: Run) -> dict[str, str]:
    props = json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )
    return {e["name"]: e["value"] for e in props["environment"]}


def test_schema_declares_every_setting_with_type_default_and_description() -> None:
    assert PROJECT["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "venv"},
    }
    required = {
        "useSpot", "threshold", "maxVcpus", "lambdaMemoryMb", "lambdaTimeoutSeconds", "engine",
        "architecture", "vpcId", "subnetIds", "lambdaReservedConcurrency", "maxParts", "maxRows",
        "maxBytes",
    }  # fmt: skip
    assert required <= set(SCHEMA)
    for key, schema in SCHEMA.items():
        assert schema["type"] in ("boolean", "integer", "string", "array"), key
        assert "default" in schema, f"{key}: the CLI rejects a stack that lacks a value"
        assert len(schema["description"]) > 20, key
    assert SCHEMA["threshold"]["default"] == 200
    assert SCHEMA["engine"]["default"] == "lsm"
    assert SCHEMA["architecture"]["default"] == "x86_64"
    assert SCHEMA["lambdaReservedConcurrency"]["default"] == -1


def test_the_program_reads_its_defaults_from_pulumi_yaml() -> None:
    assert defaults() == {key: schema["default"] for key, schema in SCHEMA.items()}


def test_program_runs_on_pulumi_yaml_defaults_alone() -> None:
    """Without the CLI's project defaults (only aws:region set), Pulumi.yaml's defaults apply."""
    run = run_program("us-east-1", config={"aws:region": "us-east-1"})
    assert lambda_env(run)["THRESHOLD"] == str(SCHEMA["threshold"]["default"])
    assert compute(run)["type"] == "EC2"


@pytest.mark.parametrize(
    ("use_spot", "kind", "strategy"),
    [(True, "SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED"), (False, "EC2", "BEST_FIT_PROGRESSIVE")],
)
@pytest.mark.parametrize("stack", ["us-east-1", "eu-west-1"])
def test_use_spot_selects_capacity(stack: str, use_spot: bool, kind: str, strategy: str) -> None:
    resources = compute(run_stack(stack, (("useSpot", use_spot),)))
    assert (resources["type"], resources["allocationStrategy"]) == (kind, strategy)


def test_stack_files_choose_differently() -> None:
    assert compute(run_stack("us-east-1"))["type"] == "SPOT"
    assert compute(run_stack("eu-west-1"))["type"] == "EC2"
    assert compute(run_stack("us-east-1"))["maxVcpus"] == 256


def test_threshold_reaches_lambda_and_job_definition() -> None:
    run = run_stack("eu-west-1", (("threshold", 777), ("engine", "mc"), ("maxParts", 9)))
    assert lambda_env(run)["THRESHOLD"] == job_env(run)["THRESHOLD"] == "777"
    assert lambda_env(run)["ENGINE"] == job_env(run)["ENGINE"] == "mc"
    assert lambda_env(run)["MAX_PARTS"] == "9"


@pytest.mark.parametrize(
    ("architecture", "platform", "families"),
    [
        ("x86_64", "linux/amd64", {"c5", "c6i", "c6a", "c7i"}),
        ("arm64", "linux/arm64", {"c6g", "c7g"}),
    ],
)
def test_architecture_drives_image_lambda_and_instances(
    architecture: str, platform: str, families: set[str]
) -> None:
    run = run_stack("us-east-1", (("architecture", architecture),))
    assert run.one("docker:index/image:Image").inputs["build"]["platform"] == platform
    assert run.one("aws:lambda/function:Function").inputs["architectures"] == [architecture]
    assert set(compute(run)["instanceTypes"]) == families


def test_lambda_sizing_settings() -> None:
    overrides = (
        ("lambdaMemoryMb", 4096),
        ("lambdaTimeoutSeconds", 300),
        ("lambdaReservedConcurrency", 25),
    )
    function = run_stack("us-east-1", overrides).one("aws:lambda/function:Function").inputs
    assert (function["memorySize"], function["timeout"]) == (4096, 300)
    assert function["reservedConcurrentExecutions"] == 25
    unreserved = run_stack("us-east-1").one("aws:lambda/function:Function").inputs
    assert unreserved["reservedConcurrentExecutions"] == -1


def test_ceilings_reach_both_paths() -> None:
    run = run_stack("us-east-1", (("maxRows", 1234), ("maxBytes", 5678)))
    for env in (lambda_env(run), job_env(run)):
        assert (env["MAX_ROWS"], env["MAX_BYTES"]) == ("1234", "5678")


def test_batch_job_sizing() -> None:
    run = run_stack(
        "eu-west-1", (("jobVcpus", 2), ("jobMemoryMb", 3500), ("jobTimeoutSeconds", 600))
    )
    definition = run.one("aws:batch/jobDefinition:JobDefinition").inputs
    props = json.loads(definition["containerProperties"])
    assert {r["type"]: r["value"] for r in props["resourceRequirements"]} == {
        "VCPU": "2",
        "MEMORY": "3500",
    }
    assert definition["timeout"]["attemptDurationSeconds"] == 600


def test_explicit_vpc_and_subnets() -> None:
    run = run_program("eu-west-1", {"vpcId": "vpc-0abc", "subnetIds": ["subnet-1", "subnet-2"]})
    assert compute(run)["subnets"] == ["subnet-1", "subnet-2"]
    assert run.one("aws:ec2/securityGroup:SecurityGroup").inputs["vpcId"] == "vpc-0abc"
    assert not [t for t, _ in run.calls if t.startswith("aws:ec2/")]


def test_vpc_without_subnets_uses_all_its_subnets() -> None:
    run = run_stack("eu-west-1", (("vpcId", "vpc-0abc"),))
    (args,) = [a for t, a in run.calls if t == "aws:ec2/getSubnets:getSubnets"]
    assert args["filters"] == [{"name": "vpc-id", "values": ["vpc-0abc"]}]
    assert not [t for t, _ in run.calls if t == "aws:ec2/getVpc:getVpc"]


def test_default_vpc_lookup() -> None:
    run = run_stack("us-east-1")
    calls = dict(run.calls)
    assert calls["aws:ec2/getVpc:getVpc"] == {"default": True}
    assert {"name": "default-for-az", "values": ["true"]} in calls["aws:ec2/getSubnets:getSubnets"][
        "filters"
    ]


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
    ],
)
def test_invalid_settings_fail_before_anything_is_created(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program("us-east-1", overrides)
