"""What each stack file's program registers: components, wiring between S3, Lambda, EventBridge
and Batch, and the stack outputs."""

from __future__ import annotations

import itertools
import json
import re

import pytest
import yaml

from .harness import ACCOUNT, PROJECT, PROJECT_NAME, ROOT, STACKS, Run, run_program, run_stack

COMPONENTS = [
    "mc-pricing:components:PricingImage",
    "mc-pricing:components:PricingBuckets",
    "mc-pricing:components:FastLambdaPath",
    "mc-pricing:components:BatchArrayPath",
]
OUTPUTS = {
    "inputBucket",
    "resultBucket",
    "fastFunctionName",
    "jobQueueArn",
    "jobDefinitionArn",
    "imageUri",
    "region",
}


pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")


@pytest.fixture(scope="module", params=STACKS)
def run(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param)


def container(run: Run) -> dict:
    return json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )


def job_env(run: Run) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(run)["environment"]}


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
    assert set(out) == OUTPUTS
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


def test_exactly_one_of_each_component(run: Run) -> None:
    for component in COMPONENTS:
        run.one(component)
    assert {r.type for r in run.resources if not r.custom} == set(COMPONENTS)


def test_every_resource_is_a_child_of_a_component(run: Run) -> None:
    for resource in run.resources:
        if resource.custom:
            parent_chain = resource.urn.split("::")[2]
            assert parent_chain.startswith("mc-pricing:components:"), resource.urn


def test_single_bucket_notification_carries_lambda_and_eventbridge(run: Run) -> None:
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    inputs = notification.inputs
    assert inputs["bucket"] == run.outputs["inputBucket"]
    assert inputs["eventbridge"] is True
    (target,) = inputs["lambdaFunctions"]
    assert target["filterPrefix"] == "fast/"
    assert target["filterSuffix"] == ".csv"
    assert target["events"] == ["s3:ObjectCreated:*"]
    function = run.one("aws:lambda/function:Function")
    assert target["lambdaFunctionArn"].endswith(f":function:{function.inputs['name']}")
    assert not inputs.get("queues") and not inputs.get("topics")
    # S3 verifies it may invoke the function when the configuration is written.
    assert run.depends_on(notification, run.one("aws:lambda/permission:Permission"))


def test_lambda_permission_for_the_input_bucket_only(run: Run) -> None:
    permission = run.one("aws:lambda/permission:Permission").inputs
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["principal"] == "s3.amazonaws.com"
    assert permission["sourceArn"] == f"arn:aws:s3:::{run.outputs['inputBucket']}"
    assert permission["sourceAccount"] == ACCOUNT
    assert permission["function"] == run.outputs["fastFunctionName"]


def test_lambda_function(run: Run) -> None:
    function = run.one("aws:lambda/function:Function")
    inputs = function.inputs
    assert inputs["packageType"] == "Image"
    assert inputs["imageUri"] == run.outputs["imageUri"]  # the pushed digest, not a tag
    assert inputs["tracingConfig"] == {"mode": "Active"}
    env = inputs["environment"]["variables"]
    assert set(env) == {
        "RESULT_BUCKET",
        "THRESHOLD",
        "ENGINE",
        "MAX_ROWS",
        "MAX_BYTES",
        "MAX_PARTS",
        "GREEKS",
        "LOG_LEVEL",
    }
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


def test_upload_rule_matches_normal_csv_in_input_bucket(run: Run) -> None:
    rule = run.one("aws:cloudwatch/eventRule:EventRule").inputs
    assert rule.get("eventBusName") in (None, "default")
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [run.outputs["inputBucket"]]},
            "object": {"key": [{"wildcard": "normal/*.csv"}]},
        },
    }


def test_rule_target_submits_manager_job(run: Run) -> None:
    target = run.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert target["rule"] == run.one("aws:cloudwatch/eventRule:EventRule").inputs["name"]
    assert target["arn"] == run.outputs["jobQueueArn"]
    assert target["batchTarget"]["jobDefinition"] == run.outputs["jobDefinitionArn"]
    assert target["batchTarget"]["jobName"]
    assert target["roleArn"].endswith(f":role/{run.named('normal-events-role').inputs['name']}")
    transformer = target["inputTransformer"]
    paths = transformer["inputPaths"]
    assert sorted(paths.values()) == ["$.detail.bucket.name", "$.detail.object.key"]
    # Substitute the placeholders as EventBridge does (JSON strings) and read the result back.
    sample = {"$.detail.bucket.name": "bucket-x", "$.detail.object.key": "normal/1/a b.csv"}
    rendered = transformer["inputTemplate"]
    for placeholder, path in paths.items():
        rendered = rendered.replace(f"<{placeholder}>", json.dumps(sample[path]))
    assert json.loads(rendered) == {
        "Parameters": {"S3bucket": "bucket-x", "S3key": "normal/1/a b.csv"}
    }
    assert target["retryPolicy"]["maximumRetryAttempts"] >= 1
    dlq = run.named("normal-failures").inputs
    assert target["deadLetterConfig"]["arn"] == f"arn:aws:sqs:{run.region}:{ACCOUNT}:{dlq['name']}"


def test_dead_letter_queue_accepts_only_this_rule(run: Run) -> None:
    policy = json.loads(run.named("normal-failures-policy").inputs["policy"])
    (statement,) = policy["Statement"]
    rule_name = run.one("aws:cloudwatch/eventRule:EventRule").inputs["name"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == ["sqs:SendMessage"]
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:events:{run.region}:{ACCOUNT}:rule/{rule_name}"}
    }


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
        {"action": "EXIT", "onReason": "*"},
    ]
    assert definition["timeout"]["attemptDurationSeconds"] >= 60


def test_job_environment_follows_protocol(run: Run) -> None:
    env = job_env(run)
    protocol = {
        "RESULT_BUCKET", "THRESHOLD", "ENGINE", "MAX_ROWS", "MAX_BYTES",
        "JOB_QUEUE", "JOB_DEFINITION", "PRICING_WORKERS", "GREEKS", "LOG_LEVEL",
    }  # fmt: skip
    assert set(env) == protocol | {"AWS_REGION", "AWS_DEFAULT_REGION"}
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == run.region
    vcpus = run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    assert {"type": "VCPU", "value": env["PRICING_WORKERS"]} in json.loads(vcpus)[
        "resourceRequirements"
    ]
    assert env["RESULT_BUCKET"] == run.outputs["resultBucket"]
    assert run.outputs["jobQueueArn"].endswith(f":job-queue/{env['JOB_QUEUE']}")
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
    compute = run.one("aws:batch/computeEnvironment:ComputeEnvironment").inputs
    resources = compute["computeResources"]
    assert compute["type"] == "MANAGED"
    assert resources["minVcpus"] == 0
    assert resources["ec2Configurations"] == [{"imageType": "ECS_AL2023"}]
    assert resources["instanceRole"].endswith(
        f":instance-profile/{run.one('aws:iam/instanceProfile:InstanceProfile').inputs['name']}"
    )
    assert resources["subnets"] == ["subnet-default-a", "subnet-default-b"]
    queue = run.one("aws:batch/jobQueue:JobQueue").inputs
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


def test_a_second_notification_is_refused() -> None:
    """S3 would silently keep only the last configuration, so the component refuses."""
    import pulumi_aws as aws

    from components.buckets import PricingBuckets, PricingBucketsArgs

    def program() -> None:
        buckets = PricingBuckets("buckets", PricingBucketsArgs("mc-pricing-us-east-1"))
        permission = aws.lambda_.Permission(
            "p", action="lambda:InvokeFunction", function="f", principal="s3.amazonaws.com"
        )
        buckets.notify_lambda("arn:aws:lambda:us-east-1:123456789012:function:f", permission)
        with pytest.raises(RuntimeError, match="already has its notification"):
            buckets.notify_lambda("arn:aws:lambda:us-east-1:123456789012:function:g", permission)

    run = run_program("us-east-1", program=program)
    assert len(run.of_type("aws:s3/bucketNotification:BucketNotification")) == 1


def test_bucket_configuration_is_applied_one_step_at_a_time(run: Run) -> None:
    """Concurrent configuration calls on one bucket can fail with OperationAborted."""
    steps = ["public-access", "ownership", "encryption", "tls-only", "versioning", "lifecycle"]
    chain = [f"buckets-input-{step}" for step in steps] + ["buckets-input-notification"]
    for earlier, later in itertools.pairwise(chain):
        assert run.depends_on(run.named(later), run.named(earlier)), (later, earlier)


def test_infrastructure_code_never_imports_the_runtime() -> None:
    import ast

    for path in [ROOT / "__main__.py", *sorted((ROOT / "components").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] == "runtime" for m in modules), path
