"""What the capacity and sizing settings change in the program: Spot, Fargate and the
architecture, job and Lambda sizes, ceilings, the VPC and subnets."""

from __future__ import annotations

import json

import pytest

from components.settings import load_settings

from .harness import (
    STACKS,
    Run,
    run_program,
    run_stack,
)
from .lookups import compute, job_definition, job_env, job_resources, lambda_env, normal_environment

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

CE = "aws:batch/computeEnvironment:ComputeEnvironment"
QUEUE = "aws:batch/jobQueue:JobQueue"


def urgent_environment(run: Run):
    found = [r for r in run.of_type(CE) if r.name.startswith("normal-urgent-")]
    return found[0] if found else None


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
