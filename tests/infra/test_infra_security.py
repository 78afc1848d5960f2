"""Least privilege, checked on everything each stack registers: every role's and resource's
policy, the Deny guards, trust policies, parliament's findings, no secrets in the
environment. Data protection (buckets, queues, the image repository):
test_infra_data_protection.py."""

from __future__ import annotations

import json
import os
import re

import parliament
import parliament.finding
import pytest
import yaml

from .harness import ACCOUNT, STACKS, Run, run_program, run_stack
from .policies import RESOURCE_DOCUMENTS, as_list, policy_documents

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of:DeprecationWarning")

# Actions AWS only authorises on Resource "*" (documented in components/iam.py and docs/deploy.md).
UNSCOPED_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ecr:GetAuthorizationToken",
}
ECS_INSTANCE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD")

# Parliament findings above LOW that are accepted, each with its reason.
PARLIAMENT_IGNORES = {
    # ECR pulls need an authorization token; it only grants what the role's other ECR
    # permissions allow (pulling this stack's repository).
    ("CREDENTIALS_EXPOSURE", "ecr:GetAuthorizationToken"),
    # Parliament's bundled IAM database lists a `job` resource type for SubmitJob and its matcher
    # rejects the ":*" revision suffix, while AWS Batch documents job-queue + job-definition
    # ARNs, with ":*" required to match revisions (a bare name does not match SubmitJob).
    ("RESOURCE_MISMATCH", "batch:SubmitJob"),
}
SEVERITY = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
# Statements on `job/*` and the tag condition that makes them this stack's jobs only.
JOB_TAG_CONDITIONS = {
    "TerminateOwnJobs": lambda stack: {"StringEquals": {"aws:ResourceTag/mc-pricing:stack": stack}},
    "TagOwnJobsOnSubmit": lambda stack: {
        "StringEquals": {"aws:RequestTag/mc-pricing:stack": stack},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["mc-pricing:stack"]},
    },
}


def bucket_names(run: Run) -> set[str]:
    return {b.state["bucket"] for b in run.of_type("aws:s3/bucket:Bucket")}


def test_no_wildcard_actions_in_allow_statements(run: Run) -> None:
    docs = policy_documents(run)
    assert len(docs) >= 10
    for doc in docs:
        for statement in doc.statements:
            assert "NotAction" not in statement, doc.name
            if statement["Effect"] != "Allow":
                continue
            for action in as_list(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), (doc.name, action)
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), (doc.name, action)


TLS_GUARD = {"Bool": {"aws:SecureTransport": "false"}}
PARTS_GUARDED = {
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
}


def test_deny_statements_are_the_tls_and_reserved_prefix_guards(run: Run) -> None:
    fast_role_arn = run.named("fast-role").state["arn"]
    inp = run.named("buckets-input").state["bucket"]
    guards = []
    for doc in policy_documents(run):
        for statement in doc.statements:
            if statement["Effect"] != "Deny":
                continue
            assert doc.type == "aws:s3/bucketPolicy:BucketPolicy"
            assert statement["Principal"] == "*"
            if statement["Condition"] == TLS_GUARD:
                continue
            guards.append(statement)
    (guard,) = guards  # input bucket only
    assert set(guard["Action"]) == PARTS_GUARDED
    assert guard["Resource"] == [f"arn:aws:s3:::{inp}/fast/_parts/*"]
    # A condition on the role's ARN, which is what aws:PrincipalArn holds for the Lambda's
    # assumed-role sessions (a NotPrincipal would need the session ARN and lock the role out).
    assert guard["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": fast_role_arn}}
    assert fast_role_arn == f"arn:aws:iam::{ACCOUNT}:role/{run.named('fast-role').inputs['name']}"


def test_reserved_prefix_guard_spares_only_the_fast_role(run: Run) -> None:
    """Evaluate the input bucket policy the way S3 does for the guarded prefix."""
    inp = run.named("buckets-input").state["bucket"]
    (policy,) = [
        json.loads(r.inputs["policy"])
        for r in run.of_type("aws:s3/bucketPolicy:BucketPolicy")
        if r.inputs["bucket"] == inp
    ]
    fast_role = run.named("fast-role").state["arn"]
    job_role = run.named("normal-job-role").state["arn"]

    def denied(principal_arn: str, action: str, key: str) -> bool:
        resource = f"arn:aws:s3:::{inp}/{key}"
        for statement in policy["Statement"]:
            if statement["Effect"] != "Deny" or action not in statement["Action"]:
                continue
            if not any(re.fullmatch(r.replace("*", ".*"), resource) for r in statement["Resource"]):
                continue
            condition = statement["Condition"]
            if (
                "ArnNotEquals" in condition
                and principal_arn != condition["ArnNotEquals"]["aws:PrincipalArn"]
            ):
                return True
            # (the TLS guard does not apply: every request here uses TLS)
        return False

    for action in PARTS_GUARDED:
        assert not denied(fast_role, action, "fast/_parts/tok/part-00001.csv")
        assert denied(job_role, action, "fast/_parts/tok/part-00001.csv")
        assert denied(f"arn:aws:iam::{ACCOUNT}:user/someone", action, "fast/_parts/x.csv")
    # Users' own uploads are not affected.
    assert not denied(f"arn:aws:iam::{ACCOUNT}:user/someone", "s3:PutObject", "fast/1/a.csv")


def test_resource_star_only_where_aws_requires_it(run: Run) -> None:
    for doc in policy_documents(run):
        for statement in doc.statements:
            resources = as_list(statement.get("Resource", []))
            if any(r == "*" for r in resources):
                assert statement["Effect"] == "Allow" and resources == ["*"], doc.name
                assert set(as_list(statement["Action"])) <= UNSCOPED_ACTIONS, doc.name


def test_s3_resources_are_this_stacks_buckets(run: Run) -> None:
    buckets = bucket_names(run)
    seen = set()
    for doc in policy_documents(run):
        for statement in doc.statements:
            for resource in as_list(statement.get("Resource", [])):
                if resource.startswith("arn:aws:s3:::"):
                    bucket = resource[len("arn:aws:s3:::") :].split("/", 1)[0]
                    assert bucket in buckets, (doc.name, resource)
                    seen.add(bucket)
    assert seen == buckets


def test_other_resources_are_this_stacks(run: Run) -> None:
    prefix = run.one("aws:ecr/repository:Repository").inputs["name"]  # the stack's name prefix
    for doc in policy_documents(run):
        for statement in doc.statements:
            for resource in as_list(statement.get("Resource", [])):
                if resource == "*" or resource.startswith("arn:aws:s3:::"):
                    continue
                if resource == f"arn:aws:events:{run.region}:{ACCOUNT}:event-bus/default":
                    continue  # job events go to the region's default bus (docs/operations.md)
                if resource == f"arn:aws:batch:{run.region}:{ACCOUNT}:job/*":
                    # Batch jobs have ids, not names: this stack's are the ones with its tag.
                    assert JOB_TAG_CONDITIONS[statement["Sid"]](prefix) == statement["Condition"]
                    continue
                assert resource.startswith("arn:aws:"), resource
                assert f":{run.region}:{ACCOUNT}:" in resource, (doc.name, resource)
                assert prefix in resource, (doc.name, resource)


def test_scoped_statements_per_role(run: Run) -> None:
    """docs/protocol.md: which prefixes each role may touch. Listing is granted on this stack's
    two buckets without a prefix condition, so that S3 answers 404 (not 403) for a missing key
    (docs/deploy.md)."""
    inp, res = (run.named(n).state["bucket"] for n in ("buckets-input", "buckets-result"))

    def s3_grants(policy_name: str) -> dict[str, set[str]]:
        doc = json.loads(run.named(policy_name).inputs["policy"])
        grants: dict[str, set[str]] = {}
        for statement in doc["Statement"]:
            for resource in as_list(statement["Resource"]):
                if resource.startswith("arn:aws:s3:::"):
                    assert "Condition" not in statement, statement["Sid"]
                    key = resource[len("arn:aws:s3:::") :]
                    grants.setdefault(key, set()).update(as_list(statement["Action"]))
        return grants

    read = {"s3:GetObject", "s3:GetObjectVersion"}
    write = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    copy = {"s3:PutObject", "s3:AbortMultipartUpload"}  # scheduled runs copy books into a path
    result = read | write | {"s3:DeleteObjectVersion"}
    listing = {"s3:ListBucket", "s3:ListBucketVersions"}
    assert s3_grants("fast-policy") == {
        f"{inp}/fast/*": read | copy,
        f"{inp}/normal/*": read | copy,  # it admits normal uploads and records their failures
        f"{inp}/urgent/*": read | copy,
        f"{inp}/auto/*": read,
        f"{inp}/books/*": read,  # the source of scheduled runs; never written
        f"{inp}/fast/_parts/*": write,
        f"{res}/fast/*": result,
        f"{res}/normal/*": result,
        f"{res}/urgent/*": result,
        f"{res}/auto/*": result,
        inp: listing,
        res: listing,
    }
    assert s3_grants("normal-job-policy") == {
        f"{inp}/normal/*": read,
        f"{inp}/urgent/*": read,
        f"{inp}/auto/*": read,
        f"{res}/normal/*": result,
        f"{res}/urgent/*": result,
        f"{res}/auto/*": result,
        inp: listing,
        res: listing,
    }


def batch_statements(run: Run, policy_name: str) -> dict[str, dict]:
    doc = json.loads(run.named(policy_name).inputs["policy"])
    return {
        s["Sid"]: s for s in doc["Statement"] if any(a.startswith("batch:") for a in s["Action"])
    }


@pytest.mark.parametrize("overrides", [{}, {"urgentMaxVcpus": 0}, {"fairShare": {"risk": 2}}])
def test_both_roles_submit_to_the_stacks_queues_and_control_only_its_jobs(overrides) -> None:
    """What the function (admission) and the manager submit: the lanes' queues and the job
    definition without a revision, or with one. TerminateJob only on jobs tagged as this
    stack's, and TagResource only to put that one tag, with this value, on a new job."""
    run = run_program("us-east-1", overrides)
    stack = run.one("aws:ecr/repository:Repository").inputs["name"]
    env = run.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    queues = [q for q in (env["JOB_QUEUE"], env["URGENT_JOB_QUEUE"]) if q]
    definition = f"arn:aws:batch:{run.region}:{ACCOUNT}:job-definition/{env['JOB_DEFINITION']}"
    assert definition == run.outputs["jobDefinitionArn"].rsplit(":", 1)[0]
    jobs = f"arn:aws:batch:{run.region}:{ACCOUNT}:job/*"
    for policy in ("fast-policy", "normal-job-policy"):
        statements = batch_statements(run, policy)
        assert set(statements) == {"SubmitJob", "TerminateOwnJobs", "TagOwnJobsOnSubmit"}
        assert statements["SubmitJob"]["Action"] == ["batch:SubmitJob"]
        assert statements["SubmitJob"]["Resource"] == [*queues, definition, definition + ":*"]
        assert "Condition" not in statements["SubmitJob"]
        for sid in ("TerminateOwnJobs", "TagOwnJobsOnSubmit"):
            assert statements[sid]["Resource"] == [jobs]
            assert statements[sid]["Condition"] == JOB_TAG_CONDITIONS[sid](stack)
        assert statements["TerminateOwnJobs"]["Action"] == ["batch:TerminateJob"]
        assert statements["TagOwnJobsOnSubmit"]["Action"] == ["batch:TagResource"]
    # The tag's value is what the runtime is told (STACK_NAME).
    assert env["STACK_NAME"] == stack


def test_no_full_access_or_unexpected_managed_policies(run: Run) -> None:
    for role in run.of_type("aws:iam/role:Role"):
        assert not role.inputs.get("managedPolicyArns"), role.name
    attachments = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert [a.inputs["policyArn"] for a in attachments] == [ECS_INSTANCE_POLICY]
    for attachment in attachments:
        assert not attachment.inputs["policyArn"].endswith("FullAccess")


def test_trust_policies_name_one_service(run: Run) -> None:
    expected = {
        "fast-role": "lambda.amazonaws.com",
        "normal-instance-role": "ec2.amazonaws.com",
        "normal-execution-role": "ecs-tasks.amazonaws.com",
        "normal-job-role": "ecs-tasks.amazonaws.com",
    }
    roles = {
        r.name: json.loads(r.inputs["assumeRolePolicy"]) for r in run.of_type("aws:iam/role:Role")
    }
    assert set(roles) == set(expected)
    for name, trust in roles.items():
        (statement,) = trust["Statement"]
        assert statement["Principal"] == {"Service": expected[name]}
        assert statement["Action"] == "sts:AssumeRole" and statement["Effect"] == "Allow"


def _parliament_severities() -> dict[str, str]:
    config = dict(parliament.config)
    override = os.path.join(
        os.path.dirname(parliament.__file__), "community_auditors", "config_override.yaml"
    )
    with open(override) as handle:
        config.update(yaml.safe_load(handle))
    return {issue: settings["severity"] for issue, settings in config.items()}


def _finding_actions(finding: parliament.finding.Finding) -> set[str]:
    if finding.issue == "CREDENTIALS_EXPOSURE":
        return {a.lower() for a in finding.location["actions"]}
    details = as_list(finding.detail)
    return {d["action"].lower() for d in details if isinstance(d, dict) and "action" in d}


def test_parliament_finds_nothing_above_low(run: Run) -> None:
    severities = _parliament_severities()
    ignored = {(issue, action.lower()) for issue, action in PARLIAMENT_IGNORES}
    linted = 0
    for doc in policy_documents(run):
        if doc.type not in RESOURCE_DOCUMENTS:
            continue  # trust and ECR repository policies have no Resource element
        linted += 1
        policy = parliament.analyze_policy_string(doc.text, include_community_auditors=True)
        for finding in policy.findings:
            if SEVERITY[severities[finding.issue]] <= SEVERITY["LOW"]:
                continue
            actions = _finding_actions(finding)
            accepted = bool(actions) and all((finding.issue, a) in ignored for a in actions)
            assert accepted, (doc.name, finding.issue, finding.detail, finding.location)
    assert linted >= 7  # 4 role policies, 2 bucket policies, the dead-letter queue's policy


def test_no_secret_looking_environment_variables(run: Run) -> None:
    lambda_env = run.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    container = json.loads(
        run.one("aws:batch/jobDefinition:JobDefinition").inputs["containerProperties"]
    )
    batch_env = {e["name"]: e["value"] for e in container["environment"]}
    for name in [*lambda_env, *batch_env]:
        assert not any(word in name for word in SECRET_WORDS), name


@pytest.mark.parametrize("overrides", [(("useFargate", True), ("useSpot", True))])
def test_fargate_variant_keeps_every_policy_rule(overrides: tuple) -> None:
    """The Fargate variant registers other resources (no instance role): same policy rules."""
    for stack in STACKS:
        run = run_stack(stack, overrides)
        test_no_wildcard_actions_in_allow_statements(run)
        test_deny_statements_are_the_tls_and_reserved_prefix_guards(run)
        test_resource_star_only_where_aws_requires_it(run)
        test_s3_resources_are_this_stacks_buckets(run)
        test_other_resources_are_this_stacks(run)
        test_scoped_statements_per_role(run)
        test_parliament_finds_nothing_above_low(run)
        assert not run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
