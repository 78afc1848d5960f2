"""What each stack file's program registers: components, wiring between S3, Lambda, EventBridge
and Batch, and the stack outputs."""

from __future__ import annotations

import itertools
import json
import re

import pytest
import yaml

from .harness import ACCOUNT, PROJECT, PROJECT_NAME, ROOT, STACKS, Run, run_stack

COMPONENTS = [
    "mc-pricing:components:PricingImage",
    "mc-pricing:components:PricingBuckets",
    "mc-pricing:components:FastLambdaPath",
    "mc-pricing:components:InputNotifications",
    "mc-pricing:components:BatchArrayPath",
    "mc-pricing:components:FailureRouting",
    "mc-pricing:components:PricingMonitoring",
]
CSV_SPELLINGS = {".csv", ".csV", ".cSv", ".cSV", ".Csv", ".CsV", ".CSv", ".CSV"}
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


pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


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


def test_exactly_one_of_each_component(run: Run) -> None:
    for component in COMPONENTS:
        run.one(component)
    for resource in run.resources:
        if not resource.custom:
            assert resource.type.startswith("mc-pricing:components:"), resource.type


def test_every_resource_is_a_child_of_a_component(run: Run) -> None:
    for resource in run.resources:
        if resource.custom:
            parent_chain = resource.urn.split("::")[2]
            assert parent_chain.startswith("mc-pricing:components:"), resource.urn


def test_single_bucket_notification_carries_lambda_and_eventbridge(run: Run) -> None:
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    assert notification.urn.split("::")[2].startswith(
        "mc-pricing:components:InputNotifications$"
    ), notification.urn
    inputs = notification.inputs
    assert inputs["bucket"] == run.outputs["inputBucket"]
    assert inputs["eventbridge"] is True
    targets = inputs["lambdaFunctions"]
    function = run.one("aws:lambda/function:Function")
    # One rule per spelling of ".csv": S3 key filters are case-sensitive.
    assert {t["filterSuffix"] for t in targets} == CSV_SPELLINGS and len(targets) == 8
    assert len({t["id"] for t in targets}) == 8
    for target in targets:
        assert target["filterPrefix"] == "fast/"
        assert target["events"] == ["s3:ObjectCreated:*"]
        assert target["lambdaFunctionArn"].endswith(f":function:{function.inputs['name']}")
    # S3 refuses overlapping rules: no suffix may end another one.
    for a, b in itertools.permutations([t["filterSuffix"] for t in targets], 2):
        assert not a.endswith(b)
    assert not inputs.get("queues") and not inputs.get("topics")
    # S3 verifies it may invoke the function when the configuration is written.
    assert run.depends_on(notification, run.named("fast-s3-invoke"))


LANES = ("normal", "urgent", "auto")


@pytest.mark.parametrize(
    ("key", "fast", "lane"),
    [
        ("fast/1/a.csv", True, None),
        ("fast/1/a.CSV", True, None),
        ("fast/1/a.Csv", True, None),
        ("fast/_parts/tok/part-00001.csv", True, None),
        ("fast/1/a.csv.gz", False, None),
        ("fast/1/a.txt", False, None),
        ("normal/1/a.csv", False, "normal"),
        ("normal/1/a.CSV", False, "normal"),
        ("normal/1/deeper/b.cSv", False, "normal"),
        ("normal/1/a.xlsx", False, None),
        ('normal/1/a"b\\c.csv', False, "normal"),  # the SDK escapes any key: no unsafe keys
        ("urgent/1/a.csv", False, "urgent"),
        ("urgent/1/a.CsV", False, "urgent"),
        ("auto/1/a.csv", False, "auto"),
        ("books/eod.csv", False, None),  # a standing book is never a job by itself
        ("other/a.csv", False, None),
    ],
)
def test_csv_uploads_reach_their_path_in_any_letter_case(
    key: str, fast: bool, lane: str | None
) -> None:
    run = run_stack("us-east-1")
    notification = run.one("aws:s3/bucketNotification:BucketNotification").inputs
    reaches_lambda = any(
        key.startswith(t["filterPrefix"]) and key.endswith(t["filterSuffix"])
        for t in notification["lambdaFunctions"]
    )
    matched = [
        name
        for name in LANES
        if any(
            wildcard_match(p["wildcard"], key)
            for p in json.loads(
                run.named(f"notifications-{name}-upload-rule").inputs["eventPattern"]
            )["detail"]["object"]["key"]
        )
    ]
    assert (reaches_lambda, matched) == (fast, [lane] if lane else [])


def wildcard_match(pattern: str, text: str) -> bool:
    """EventBridge wildcard semantics: `*` any run of characters, a backslash escapes."""
    regex, chars = "", iter(pattern)
    for char in chars:
        if char == "\\":
            regex += re.escape(next(chars))
        elif char == "*":
            regex += ".*"
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def test_no_rule_sends_keys_around_the_function(run: Run) -> None:
    """The former unsafe-key rule (keys with `"` or `\\` could not be carried in a Batch
    target's parameters) and the events role that submitted Batch jobs are gone: every upload
    rule invokes the function with the event as AWS sends it."""
    names = {r.inputs["name"] for r in run.of_type(RULE)}
    assert not [n for n in names if "unsafe" in n]
    assert not [r for r in run.of_type("aws:iam/role:Role") if "events" in r.name]
    for target in run.of_type(TARGET):
        assert not target.inputs.get("batchTarget"), target.name


def test_lambda_permission_for_the_input_bucket_only(run: Run) -> None:
    permission = run.named("fast-s3-invoke").inputs
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


@pytest.mark.parametrize("lane", LANES)
def test_upload_rules_match_their_prefix_in_the_input_bucket(lane: str) -> None:
    run = run_stack("us-east-1")
    rule = run.named(f"notifications-{lane}-upload-rule").inputs
    assert rule.get("eventBusName") in (None, "default")
    assert rule["name"] == f"mc-pricing-us-east-1-{lane}-upload"
    # One rule per prefix: eight wildcards each, as EventBridge accepted for the normal path.
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [run.outputs["inputBucket"]]},
            "object": {
                "key": [{"wildcard": f"{lane}/*{s}"} for s in sorted(CSV_SPELLINGS, reverse=True)]
            },
        },
    }


@pytest.mark.parametrize("provisioned", [0, 2])
@pytest.mark.parametrize("lane", LANES)
def test_upload_rules_invoke_the_function_asynchronously(lane: str, provisioned: int) -> None:
    """Admission is the function's: EventBridge hands it the S3 event (no transformer, no
    Batch target, no role), retries what Lambda refuses, and dead-letters the rest."""
    run = run_stack("us-east-1", (("lambdaProvisionedConcurrency", provisioned),))
    rule = run.named(f"notifications-{lane}-upload-rule")
    target = run.named(f"notifications-{lane}-upload-function")
    function = run.one("aws:lambda/function:Function").inputs["name"]
    qualifier = "live" if provisioned else None
    expected_arn = f"arn:aws:lambda:{run.region}:{ACCOUNT}:function:{function}" + (
        ":live" if provisioned else ""
    )
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == expected_arn
    assert not target.inputs.get("inputTransformer") and not target.inputs.get("roleArn")
    assert target.inputs["retryPolicy"] == {
        "maximumEventAgeInSeconds": 4 * 3600,
        "maximumRetryAttempts": 40,
    }
    dlq = run.named("notifications-upload-failures").inputs
    assert target.inputs["deadLetterConfig"]["arn"] == (
        f"arn:aws:sqs:{run.region}:{ACCOUNT}:{dlq['name']}"
    )
    permission = run.named(f"notifications-{lane}-upload-invoke")
    assert {k: v for k, v in permission.inputs.items() if k != "qualifier"} == {
        "action": "lambda:InvokeFunction",
        "function": function,
        "principal": "events.amazonaws.com",
        "sourceArn": rule.state["arn"],
    }
    assert permission.inputs.get("qualifier") == qualifier
    assert run.depends_on(target, permission)


def test_dead_letter_queue_accepts_only_the_upload_rules(run: Run) -> None:
    policy = json.loads(run.named("notifications-upload-failures-policy").inputs["policy"])
    (statement,) = policy["Statement"]
    rules = [run.named(f"notifications-{lane}-upload-rule").inputs["name"] for lane in LANES]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == ["sqs:SendMessage"]
    assert statement["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": [f"arn:aws:events:{run.region}:{ACCOUNT}:rule/{r}" for r in rules]
        }
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


def test_moved_and_renamed_bucket_resources_keep_their_deployed_identity(run: Run) -> None:
    """A deployed stack must keep its notification and bucket policies: without aliases,
    Pulumi would create new ones and then delete the old ones, and deleting either empties the
    bucket's configuration (S3 keeps one of each per bucket)."""
    buckets = run.one("mc-pricing:components:PricingBuckets").urn
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    assert {"name": "buckets-input-notification", "parentUrn": buckets} in notification.aliases
    for bucket in ("input", "result"):
        policy = run.named(f"buckets-{bucket}-policy")
        assert [a["name"] for a in policy.aliases] == [f"buckets-{bucket}-tls-only"]


def test_moved_upload_rule_and_dead_letter_queue_keep_their_deployed_identity(run: Run) -> None:
    """The normal lane's upload rule, its dead-letter queue and the queue's policy moved from
    BatchArrayPath to InputNotifications. A queue of the same name created anew would be the
    same queue, which the old resource's deletion would then delete; a new queue policy would
    be removed by the old one's deletion. The aliases make them the same resources."""
    batch = run.one("mc-pricing:components:BatchArrayPath").urn
    for new, old in (
        ("notifications-normal-upload-rule", "normal-upload-rule"),
        ("notifications-upload-failures", "normal-failures"),
        ("notifications-upload-failures-policy", "normal-failures-policy"),
    ):
        assert {"name": old, "parentUrn": batch} in run.named(new).aliases, new
    # The physical names stay what they were.
    assert run.named("notifications-upload-failures").inputs["name"].endswith("-normal-failures")
    assert run.named("notifications-normal-upload-rule").inputs["name"].endswith("-normal-upload")


def test_components_gain_no_children_after_construction() -> None:
    """PricingBuckets no longer creates the notification later: nothing to call after it."""
    from components.buckets import PricingBuckets

    assert not hasattr(PricingBuckets, "notify_lambda")


def test_bucket_configuration_is_applied_one_step_at_a_time(run: Run) -> None:
    """Concurrent configuration calls on one bucket can fail with OperationAborted."""
    steps = ["public-access", "ownership", "encryption", "policy", "versioning", "lifecycle"]
    for bucket in ("input", "result"):
        chain = [f"buckets-{bucket}"] + [f"buckets-{bucket}-{step}" for step in steps]
        if bucket == "input":
            chain.append("notifications-input")
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
