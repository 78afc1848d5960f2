"""Shared helpers for IAM: ARNs of this account, policy statements and documents.

Policies are plain dicts (values may be Outputs) serialised once with Output.json_dumps, so every
document is visible as JSON in the preview and lintable in tests.

Rules every policy in this project follows:
- no "*" or "service:*" action in an Allow statement;
- resources are this stack's own resources;
- the only Resource "*" statements are those AWS requires because the action has no
  resource-level permissions: xray:PutTraceSegments/PutTelemetryRecords (Lambda tracing) and
  ecr:GetAuthorizationToken (Batch image pull). They are built by `unscoped_statement`, which
  refuses any other action.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

# Actions AWS only authorises on Resource "*" (no resource-level permissions exist for them).
UNSCOPED_ACTIONS = frozenset(
    {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}
)

LOG_WRITE_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]

# The job protocol's object access (docs/protocol.md, "Roles"): reads pin versions, and the
# result bucket's writers delete exactly the version they wrote when a job was superseded.
S3_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]
S3_RESULT_ACTIONS = [
    *S3_READ_ACTIONS,
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",  # boto3 aborts a failed multipart upload itself
]


@dataclass(frozen=True)
class AccountInfo:
    """Partition, account and region of the deployment, for building ARNs."""

    region: str
    account_id: pulumi.Output[str]
    partition: pulumi.Output[str]

    @staticmethod
    def lookup(region: str) -> AccountInfo:
        return AccountInfo(
            region=region,
            account_id=aws.get_caller_identity_output().account_id,
            partition=aws.get_partition_output().partition,
        )

    def arn(self, service: str, resource: str) -> pulumi.Output[str]:
        """ARN of a regional resource of this account, e.g. arn("batch", "job-queue/q")."""
        return pulumi.Output.concat(
            "arn:", self.partition, f":{service}:{self.region}:", self.account_id, f":{resource}"
        )

    def role_arn(self, role_name: str) -> pulumi.Output[str]:
        """ARN of an IAM role of this account (path "/"), known before the role exists."""
        return pulumi.Output.concat(
            "arn:", self.partition, ":iam::", self.account_id, f":role/{role_name}"
        )

    def managed_policy_arn(self, path_and_name: str) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", self.partition, f":iam::aws:policy/{path_and_name}")


def statement(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    *,
    condition: Mapping[str, Any] | None = None,
    principal: Mapping[str, Any] | str | None = None,
    effect: str = "Allow",
) -> dict[str, Any]:
    """One policy statement. Allow statements must name explicit actions."""
    if effect == "Allow":
        for action in actions:
            if action == "*" or action.endswith(":*"):
                raise ValueError(f"{sid}: wildcard action {action!r} is not allowed")
        if any(r == "*" for r in resources):
            raise ValueError(f"{sid}: use unscoped_statement for Resource '*'")
    result: dict[str, Any] = {"Sid": sid, "Effect": effect}
    if principal is not None:
        result["Principal"] = principal
    result["Action"] = list(actions)
    result["Resource"] = list(resources)
    if condition:
        result["Condition"] = dict(condition)
    return result


def unscoped_statement(sid: str, actions: Sequence[str]) -> dict[str, Any]:
    """Allow on Resource "*", only for actions AWS cannot scope (see module docstring)."""
    bad = sorted(set(actions) - UNSCOPED_ACTIONS)
    if bad:
        raise ValueError(f"{sid}: {bad} support resource-level permissions; scope them")
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": "*"}


def document(*statements: dict[str, Any]) -> pulumi.Output[str]:
    """A complete policy document as a JSON string Output."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_trust_policy(
    service: str, condition: Mapping[str, Any] | None = None
) -> pulumi.Input[str]:
    """Trust policy letting one AWS service principal assume a role (only under `condition`,
    e.g. aws:SourceAccount/aws:SourceArn against the confused deputy, when given)."""
    statement: dict[str, Any] = {
        "Sid": "AssumeByService",
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if not condition:
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    statement["Condition"] = dict(condition)
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class ServiceRole:
    role: aws.iam.Role
    policy: aws.iam.RolePolicy


def service_role(
    resource_name: str,
    *,
    role_name: str,
    service: str,
    description: str,
    policy_name: str,
    statements: Sequence[dict[str, Any]],
    opts: pulumi.ResourceOptions,
    trust_condition: Mapping[str, Any] | None = None,
) -> ServiceRole:
    """A role one AWS service assumes, with its one inline policy (``<resource_name>-role``
    and ``<resource_name>-policy``). Depend on ``policy`` where the permissions must exist."""
    role = aws.iam.Role(
        f"{resource_name}-role",
        name=role_name,
        description=description,
        assume_role_policy=service_trust_policy(service, trust_condition),
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{resource_name}-policy",
        role=role.id,
        name=policy_name,
        policy=document(*statements),
        opts=opts,
    )
    return ServiceRole(role, policy)


S3_LIST_ACTIONS = ["s3:ListBucket", "s3:ListBucketVersions"]


def s3_object_statement(
    sid: str,
    bucket_arn: pulumi.Input[str],
    prefixes: Sequence[str],
    actions: Sequence[str],
) -> dict[str, Any]:
    """Object actions on `<prefix>*` of one bucket, for each prefix."""
    return statement(
        sid, actions, [pulumi.Output.concat(bucket_arn, "/", prefix, "*") for prefix in prefixes]
    )


def s3_list_statement(sid: str, bucket_arns: Sequence[pulumi.Input[str]]) -> dict[str, Any]:
    """ListBucket and ListBucketVersions on this stack's own buckets, without an s3:prefix
    condition.

    S3 answers a GET/HEAD of a missing key with 404 only when the caller may list the bucket,
    and 403 otherwise. AWS documents that rule for s3:ListBucket, but not whether a
    prefix-conditioned grant satisfies it (GET and HEAD carry no prefix parameter). The runtime
    tests for absence (status, lock, manifest, part results) with GET/HEAD, so it must see 404:
    list permission on the whole bucket is the form AWS documents. Listing reveals key names
    only; every object read stays limited to the role's prefixes.
    """
    return statement(sid, S3_LIST_ACTIONS, list(bucket_arns))


def log_write_statement(sid: str, log_group_arn: pulumi.Input[str]) -> dict[str, Any]:
    """CreateLogStream/PutLogEvents on the streams of one log group."""
    return statement(sid, LOG_WRITE_ACTIONS, [pulumi.Output.concat(log_group_arn, ":*")])


def deny_insecure_transport(bucket_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Deny every request to the bucket that does not use TLS.

    This Deny is the one place an action wildcard ("s3:*") is used on purpose: a Deny must
    cover every action, and it only ever removes access.
    """
    return statement(
        "DenyInsecureTransport",
        ["s3:*"],
        [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")],
        principal="*",
        effect="Deny",
        condition={"Bool": {"aws:SecureTransport": "false"}},
    )


def deny_writes_except(
    sid: str,
    bucket_arn: pulumi.Input[str],
    prefix: str,
    actions: Sequence[str],
    role_arn: pulumi.Input[str],
) -> dict[str, Any]:
    """Deny `actions` on `<prefix>*` to every principal except one IAM role.

    The exception is a condition on aws:PrincipalArn, not a NotPrincipal: for a request signed
    with an assumed-role session (which is how Lambda calls S3), aws:PrincipalArn is the ARN of
    the role itself (arn:aws:iam::<account>:role/<name>), whatever the session name, while the
    caller's own ARN is the session's (arn:aws:sts::<account>:assumed-role/<name>/<session>). A
    NotPrincipal would have to name that changing session ARN too, or it would lock the role out.
    A condition also does not need the role to exist when the policy is written.
    """
    return statement(
        sid,
        actions,
        [pulumi.Output.concat(bucket_arn, "/", prefix, "*")],
        principal="*",
        effect="Deny",
        condition={"ArnNotEquals": {"aws:PrincipalArn": role_arn}},
    )


# --- AWS Batch jobs of this stack -------------------------------------------------------------
# Jobs carry this tag (value: the stack's name prefix), passed by the runtime at SubmitJob. It
# is the only way to scope TerminateJob: the job resource type (job/<id>) has no name to match,
# and TerminateJob's one condition key is aws:ResourceTag (Service Authorization Reference, AWS
# Batch). Tagging at SubmitJob needs batch:TagResource too (tag on create).
JOB_TAG_KEY = "mc-pricing:stack"


def batch_submit_statement(
    account: AccountInfo, queue_arns: Sequence[pulumi.Input[str]], definition_name: str
) -> dict[str, Any]:
    """SubmitJob to these queues with this stack's job definition. SubmitJob may name the
    definition without a revision (the latest ACTIVE one) or with one: the bare name and ":*"
    (every revision) cover both."""
    definition = f"job-definition/{definition_name}"
    return statement(
        "SubmitJob",
        ["batch:SubmitJob"],
        [
            *queue_arns,
            account.arn("batch", definition),
            account.arn("batch", f"{definition}:*"),
        ],
    )


def batch_job_control_statements(account: AccountInfo, stack_tag: str) -> list[dict[str, Any]]:
    """TerminateJob on this stack's jobs only (their tag), and the tag-on-create permission the
    runtime's SubmitJob needs to put that tag, and only that tag with this value, on a job."""
    jobs = account.arn("batch", "job/*")
    return [
        statement(
            "TerminateOwnJobs",
            ["batch:TerminateJob"],
            [jobs],
            condition={"StringEquals": {f"aws:ResourceTag/{JOB_TAG_KEY}": stack_tag}},
        ),
        statement(
            "TagOwnJobsOnSubmit",
            ["batch:TagResource"],
            [jobs],
            condition={
                "StringEquals": {f"aws:RequestTag/{JOB_TAG_KEY}": stack_tag},
                "ForAllValues:StringEquals": {"aws:TagKeys": [JOB_TAG_KEY]},
            },
        ),
    ]
