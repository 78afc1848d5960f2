"""What each stack file's program registers: the stack files, outputs and names, and the two
paths' compute (the function, the job definition, the compute environment). How uploads
reach the function: test_infra_uploads.py; components and their deployed identity:
test_infra_structure.py."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from .harness import ACCOUNT, PROJECT, PROJECT_NAME, ROOT, STACKS, Run, run_stack
from .lookups import container, job_env

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

OUTPUTS = {
    "inputBucket",
    "resultBucket",
    "fastFunctionName",
    "jobQueueArn",
    "urgentJobQueueArn",
    "jobDefinitionArn",
    "imageUri",
    "region",
}


def test_both_regional_stacks_exist() -> None:
    assert {"us-east-1", "eu-west-1"} <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_sets_region_and_only_declared_settings(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert config["aws:region"] == stack
    declared = PROJECT["config"]
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        if namespace != PROJECT_NAME:
            assert namespace in ("aws",), key
            continue
        assert name in declared, f"{key} is not declared in Pulumi.yaml"
        expected = {"boolean": bool, "integer": int, "string": str, "array": list}
        assert isinstance(value, expected[declared[name]["type"]]), key


def test_outputs(run: Run) -> None:
    out = run.outputs
    assert set(out) >= OUTPUTS  # other components add theirs
    assert out["region"] == run.region == run.stack
    assert out["inputBucket"] == run.named("buckets-input").state["bucket"]
    assert out["resultBucket"] == run.named("buckets-result").state["bucket"]
    assert re.fullmatch(
        r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/.+@sha256:[0-9a-f]{64}", out["imageUri"]
    )
    assert f".{run.region}." in out["imageUri"]
    assert out["jobQueueArn"].startswith(f"arn:aws:batch:{run.region}:{ACCOUNT}:job-queue/")
    assert out["jobDefinitionArn"].startswith(
        f"arn:aws:batch:{run.region}:{ACCOUNT}:job-definition/"
    )
    assert out["fastFunctionName"] == run.one("aws:lambda/function:Function").inputs["name"]
    assert out["urgentJobQueueArn"] == run.named("normal-urgent-queue").state["arn"]
    assert out["scheduleGroupName"] is None  # no schedules in the stack files


def test_lambda_function(run: Run) -> None:
    function = run.one("aws:lambda/function:Function")
    inputs = function.inputs
    assert inputs["packageType"] == "Image"
    assert inputs["imageUri"] == run.outputs["imageUri"]  # the pushed digest, not a tag
    assert inputs["tracingConfig"] == {"mode": "Active"}
    env = inputs["environment"]["variables"]  # the exact set: tests/project/test_contract.py
    assert env["RESULT_BUCKET"] == run.outputs["resultBucket"]
    # The log group exists (with retention) before the function, and so do its permissions.
    log_group = run.named("fast-logs")
    assert log_group.inputs["name"] == f"/aws/lambda/{inputs['name']}"
    assert log_group.inputs["retentionInDays"] == 30
    assert run.depends_on(function, log_group)
    assert run.depends_on(function, run.named("fast-policy"))


def test_lambda_failures_go_to_encrypted_queue(run: Run) -> None:
    config = run.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
    assert config["functionName"] == run.outputs["fastFunctionName"]
    assert config["maximumRetryAttempts"] == 2
    assert 60 <= config["maximumEventAgeInSeconds"] <= 21600
    queue = run.named("fast-failures").inputs
    assert config["destinationConfig"]["onFailure"]["destination"] == (
        f"arn:aws:sqs:{run.region}:{ACCOUNT}:{queue['name']}"
    )
    assert queue["sqsManagedSseEnabled"] is True


def test_job_definition(run: Run) -> None:
    definition = run.one("aws:batch/jobDefinition:JobDefinition").inputs
    props = container(run)
    assert definition["type"] == "container"
    assert definition["platformCapabilities"] == ["EC2"]
    assert props["image"] == run.outputs["imageUri"]
    assert props["command"] == ["Ref::S3bucket", "Ref::S3key"]
    requirements = {r["type"]: r["value"] for r in props["resourceRequirements"]}
    assert set(requirements) == {"VCPU", "MEMORY"}
    assert props["jobRoleArn"].endswith(f":role/{run.named('normal-job-role').inputs['name']}")
    assert props["executionRoleArn"].endswith(
        f":role/{run.named('normal-execution-role').inputs['name']}"
    )
    log = props["logConfiguration"]
    assert log["logDriver"] == "awslogs"
    assert log["options"]["awslogs-group"] == run.named("normal-logs").inputs["name"]
    assert log["options"]["awslogs-region"] == run.region
    assert run.named("normal-logs").inputs["retentionInDays"] == 30

    retry = definition["retryStrategy"]
    assert retry["attempts"] == 3
    assert retry["evaluateOnExits"] == [
        {"action": "RETRY", "onStatusReason": "Host EC2*"},
        {"action": "RETRY", "onStatusReason": "Your Spot Task was interrupted*"},
        {"action": "EXIT", "onReason": "*"},
    ]
    assert definition["timeout"]["attemptDurationSeconds"] >= 60


def test_job_environment_follows_protocol(run: Run) -> None:
    env = job_env(run)
    # The exact set is tests/project/test_contract.py's; here the values.
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == run.region
    vcpus = run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    assert {"type": "VCPU", "value": env["PRICING_WORKERS"]} in json.loads(vcpus)[
        "resourceRequirements"
    ]
    assert env["RESULT_BUCKET"] == run.outputs["resultBucket"]
    assert env["JOB_QUEUE"] == run.outputs["jobQueueArn"]  # an ARN: SubmitJob takes either
    assert env["URGENT_JOB_QUEUE"] == run.outputs["urgentJobQueueArn"]
    assert env["FAIR_SHARE"] == ""  # FIFO queues in the stack files
    assert env["STACK_NAME"] == run.one("aws:ecr/repository:Repository").inputs["name"]
    assert f":job-definition/{env['JOB_DEFINITION']}:" in run.outputs["jobDefinitionArn"]
    definition = run.one("aws:batch/jobDefinition:JobDefinition").inputs
    assert "BATCH_MAX_ATTEMPTS" not in env and definition["retryStrategy"]["attempts"] == 3
    assert "BATCH_ROLE" not in env and "JOB_TOKEN" not in env  # manager overrides only


def test_shared_settings_reach_both_paths(run: Run) -> None:
    lambda_env = run.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    batch_env = job_env(run)
    for key in ("THRESHOLD", "ENGINE", "MAX_ROWS", "MAX_BYTES", "RESULT_BUCKET"):
        assert lambda_env[key] == batch_env[key], key


def test_compute_environment_scales_from_zero(run: Run) -> None:
    for name in ("normal-compute", "normal-urgent-compute"):
        assert run.named(name).inputs["computeResources"]["minVcpus"] == 0
    compute = run.named("normal-compute").inputs
    resources = compute["computeResources"]
    assert compute["type"] == "MANAGED"
    assert resources["minVcpus"] == 0
    assert resources["ec2Configurations"] == [{"imageType": "ECS_AL2023"}]
    assert resources["instanceRole"].endswith(
        f":instance-profile/{run.one('aws:iam/instanceProfile:InstanceProfile').inputs['name']}"
    )
    assert resources["subnets"] == ["subnet-default-a", "subnet-default-b"]
    queue = run.named("normal-queue").inputs
    (order,) = queue["computeEnvironmentOrders"]
    assert order["computeEnvironment"].startswith(f"arn:aws:batch:{run.region}:")


def test_security_group_is_egress_only(run: Run) -> None:
    group = run.one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert not group.get("ingress")
    assert group["vpcId"] == "vpc-default0"
    (egress,) = group["egress"]
    assert (egress["protocol"], egress["fromPort"], egress["toPort"]) == ("tcp", 443, 443)


def test_names_carry_the_region(run: Run) -> None:
    for role in run.of_type("aws:iam/role:Role"):
        assert run.region in role.inputs["name"] and len(role.inputs["name"]) <= 64
    for bucket in run.of_type("aws:s3/bucket:Bucket"):
        prefix = bucket.inputs["bucketPrefix"]
        assert run.region in prefix and len(prefix) <= 37 and "bucket" not in bucket.inputs


def test_stacks_share_no_global_names() -> None:
    """Both stacks deploy into one account: IAM and S3 names are global there."""

    def global_names(run: Run) -> set[str]:
        names = set()
        for resource in run.resources:
            if resource.type in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
                names.add(resource.inputs["name"])
            if resource.type == "aws:s3/bucket:Bucket":
                names.add(resource.inputs["bucketPrefix"])
        return names

    east, west = run_stack("us-east-1"), run_stack("eu-west-1")
    assert global_names(east) and not global_names(east) & global_names(west)
