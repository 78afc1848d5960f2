"""Settings: the Pulumi.yaml schema, and what each setting changes in the program."""

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
    Run,
    config_value,
    run_program,
    run_stack,
    stack_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

SCHEMA = PROJECT["config"]


CE = "aws:batch/computeEnvironment:ComputeEnvironment"
QUEUE = "aws:batch/jobQueue:JobQueue"


def normal_environment(run: Run):
    (found,) = [r for r in run.of_type(CE) if r.name in ("normal-compute", "normal-fargate")]
    return found


def urgent_environment(run: Run):
    found = [r for r in run.of_type(CE) if r.name.startswith("normal-urgent-")]
    return found[0] if found else None


def compute(run: Run) -> dict:
    return normal_environment(run).inputs["computeResources"]


def lambda_env(run: Run) -> dict[str, str]:
    return run.one("aws:lambda/function:Function").inputs["environment"]["variables"]


def job_env(run: Run) -> dict[str, str]:
    props = json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )
    return {e["name"]: e["value"] for e in props["environment"]}


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


def job_resources(run: Run) -> dict[str, str]:
    props = json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )
    return {r["type"]: r["value"] for r in props["resourceRequirements"]}


def job_definition(run: Run) -> tuple[dict, dict]:
    definition = run.one("aws:batch/jobDefinition:JobDefinition").inputs
    return definition, json.loads(definition["containerProperties"])


# (useFargate, useSpot) -> compute environment type
CAPACITY = {
    (False, False): "EC2",
    (False, True): "SPOT",
    (True, False): "FARGATE",
    (True, True): "FARGATE_SPOT",
}


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
@pytest.mark.parametrize(("use_fargate", "use_spot"), list(CAPACITY))
@pytest.mark.parametrize("stack", STACKS)
def test_capacity_variants(
    stack: str, use_fargate: bool, use_spot: bool, architecture: str
) -> None:
    if use_fargate and use_spot and architecture == "arm64":
        # Fault 3: Fargate Spot runs X86_64 tasks only; refused before anything is created.
        with pytest.raises(ValueError, match="Fargate Spot, which runs only X86_64 tasks"):
            run_program(stack, {"useFargate": True, "useSpot": True, "architecture": "arm64"})
        return
    run = run_stack(
        stack,
        (("useFargate", use_fargate), ("useSpot", use_spot), ("architecture", architecture)),
    )
    environment = normal_environment(run)
    resources = environment.inputs["computeResources"]
    definition, props = job_definition(run)
    assert resources["type"] == CAPACITY[use_fargate, use_spot]
    assert resources["maxVcpus"] == compute(run_stack(stack))["maxVcpus"]
    assert resources["subnets"] == ["subnet-default-a", "subnet-default-b"]
    assert len(resources["securityGroupIds"]) == 1
    platform = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}[architecture]
    assert run.one("docker:index/image:Image").inputs["build"]["platform"] == platform
    assert run.one("aws:lambda/function:Function").inputs["architectures"] == [architecture]
    assert props["executionRoleArn"].endswith(
        ":role/" + run.named("normal-execution-role").inputs["name"]
    )
    # Every variant retries the interruptions of its capacity, and nothing else.
    assert {"action": "RETRY", "onStatusReason": "Your Spot Task was interrupted*"} in definition[
        "retryStrategy"
    ]["evaluateOnExits"]
    assert definition["retryStrategy"]["evaluateOnExits"][-1] == {"action": "EXIT", "onReason": "*"}
    instance_roles = [
        r for r in run.of_type("aws:iam/role:Role") if r.name == "normal-instance-role"
    ]
    # The urgent lane (default urgentMaxVcpus 16): on-demand of the same kind first, then the
    # normal lane's capacity; a higher priority than the normal queue, whose order is unchanged.
    urgent = urgent_environment(run)
    urgent_resources = urgent.inputs["computeResources"]
    assert urgent_resources["type"] == ("FARGATE" if use_fargate else "EC2")
    assert urgent_resources["maxVcpus"] == 16
    queues = {q.name: q.inputs for q in run.of_type(QUEUE)}
    assert [
        o["computeEnvironment"] for o in queues["normal-queue"]["computeEnvironmentOrders"]
    ] == [environment.state["arn"]]
    assert [
        o["computeEnvironment"] for o in queues["normal-urgent-queue"]["computeEnvironmentOrders"]
    ] == [
        urgent.state["arn"],
        environment.state["arn"],
    ]
    assert [o["order"] for o in queues["normal-urgent-queue"]["computeEnvironmentOrders"]] == [1, 2]
    assert queues["normal-urgent-queue"]["priority"] > queues["normal-queue"]["priority"]
    if use_fargate:
        assert environment.name == "normal-fargate"
        assert urgent.name == "normal-urgent-fargate"
        assert set(resources) == {"type", "maxVcpus", "securityGroupIds", "subnets"}
        # Fault 1: Batch refuses a Fargate environment's type change; the type is in the
        # name prefix, so a useSpot toggle replaces the environment (a new name first).
        assert environment.inputs["namePrefix"].endswith(
            "-fargate-spot-" if use_spot else "-fargate-"
        )
        assert urgent.inputs["namePrefix"].endswith("-urgent-fargate-")
        assert environment.options["replaceOnChanges"] == ["computeResources.type"]
        assert "updatePolicy" not in environment.inputs
        assert definition["platformCapabilities"] == ["FARGATE"]
        assert props["runtimePlatform"] == {
            "cpuArchitecture": {"x86_64": "X86_64", "arm64": "ARM64"}[architecture],
            "operatingSystemFamily": "LINUX",
        }
        assert props["networkConfiguration"] == {"assignPublicIp": "ENABLED"}  # default VPC
        assert props["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}
        assert "ephemeralStorage" not in props  # 20 GiB default is plenty for 64 MiB files
        assert job_resources(run) == {"VCPU": "1", "MEMORY": "2048"}  # smallest valid size
        assert not instance_roles
        assert not run.of_type("aws:iam/instanceProfile:InstanceProfile")
    else:
        assert environment.name == "normal-compute"
        assert urgent.name == "normal-urgent-compute"
        assert urgent_resources["allocationStrategy"] == "BEST_FIT_PROGRESSIVE"
        assert urgent_resources["instanceTypes"] == resources["instanceTypes"]
        assert urgent_resources["instanceRole"] == resources["instanceRole"]
        families = {"x86_64": {"c5", "c6i", "c6a", "c7i"}, "arm64": {"c6g", "c7g"}}[architecture]
        assert set(resources["instanceTypes"]) == families
        assert resources["allocationStrategy"] == (
            "SPOT_PRICE_CAPACITY_OPTIMIZED" if use_spot else "BEST_FIT_PROGRESSIVE"
        )
        assert resources["minVcpus"] == 0
        assert environment.inputs["updatePolicy"] == {
            "jobExecutionTimeoutMinutes": 60,
            "terminateJobsOnUpdate": False,
        }
        assert definition["platformCapabilities"] == ["EC2"]
        for key in ("runtimePlatform", "networkConfiguration", "fargatePlatformConfiguration"):
            assert key not in props
        assert job_resources(run) == {"VCPU": "1", "MEMORY": "1792"}
        assert len(instance_roles) == 1


@pytest.mark.parametrize(
    ("timeout_seconds", "minutes"),
    [(60, 1), (61, 2), (600, 10), (3600, 60), (21600, 360), (86400, 360)],
)
def test_update_policy_lets_running_jobs_reach_their_timeout(
    timeout_seconds: int, minutes: int
) -> None:
    run = run_stack("eu-west-1", (("jobTimeoutSeconds", timeout_seconds),))
    for environment in run.of_type(CE):
        policy = environment.inputs["updatePolicy"]
        assert policy == {"jobExecutionTimeoutMinutes": minutes, "terminateJobsOnUpdate": False}
        # Fault 6: the provider waits that long, plus instance replacement, for an update or
        # delete of a busy environment (its default is 10 minutes).
        busy = f"{minutes + 30}m"
        assert environment.options["customTimeouts"] == {
            "create": "30m",
            "update": busy,
            "delete": busy,
        }
    definition, _ = job_definition(run)
    assert definition["timeout"]["attemptDurationSeconds"] == timeout_seconds


def test_fargate_in_an_own_vpc_gets_no_public_ip() -> None:
    run = run_program(
        "eu-west-1", {"useFargate": True, "vpcId": "vpc-0abc", "subnetIds": ["subnet-1"]}
    )
    _, props = job_definition(run)
    assert props["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
    assert compute(run)["subnets"] == ["subnet-1"]


@pytest.mark.parametrize(
    ("overrides", "resources"),
    [
        ({"jobVcpus": 2}, {"VCPU": "2", "MEMORY": "3584"}),
        ({"useFargate": True, "jobVcpus": 4}, {"VCPU": "4", "MEMORY": "8192"}),
        (
            {"useFargate": True, "jobVcpus": 16, "jobMemoryMb": 122880},
            {"VCPU": "16", "MEMORY": "122880"},
        ),
        (
            {"useFargate": True, "jobVcpus": 2, "jobMemoryMb": 16384},
            {"VCPU": "2", "MEMORY": "16384"},
        ),
    ],
)
def test_job_sizes(overrides: dict, resources: dict) -> None:
    run = run_stack("us-east-1", tuple(overrides.items()))
    assert job_resources(run) == resources
    assert job_env(run)["PRICING_WORKERS"] == resources["VCPU"]


def test_fargate_asks_for_more_storage_only_for_huge_files() -> None:
    run = run_stack("us-east-1", (("useFargate", True), ("maxBytes", 8 * 2**30)))
    _, props = job_definition(run)
    assert props["ephemeralStorage"] == {"sizeInGiB": 33}


def test_new_settings_reach_the_program() -> None:
    seen = []
    run_program(
        "us-east-1",
        {"notifyEmail": " ops@example.com ", "greeks": True},
        program=lambda: seen.append(load_settings()),
    )
    (settings,) = seen
    assert settings.notify_email == "ops@example.com"
    assert settings.greeks is True
    run_program("us-east-1", program=lambda: seen.append(load_settings()))
    assert seen[-1].notify_email == ""


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
