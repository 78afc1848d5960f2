"""FastLambdaPath: the Lambda function pricing `fast/` uploads, its role and failure queue."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.settings import StackSettings

# Async invocations: S3 events are retried twice by Lambda, for up to 6 hours (so a throttled
# burst of parts still runs), and an event that never succeeds lands in the failure queue.
MAX_RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 6 * 3600

# docs/protocol.md: what the fast path reads and writes.
INPUT_READ_PREFIXES = ("fast/", "normal/")  # normal/: it records failures of normal-path jobs
RESULT_PREFIXES = ("fast/", "normal/")
PARTS_PREFIX = "fast/_parts/"
# AbortMultipartUpload: boto3 uploads large objects in parts and aborts a failed upload itself.
PART_WRITE_ACTIONS = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


def role_name(name_prefix: str) -> str:
    """The fast path's role name, known before the role exists (the input bucket's policy
    reserves fast/_parts/ to it)."""
    return f"{name_prefix}-fast-fn"


@dataclass(frozen=True)
class FastLambdaPathArgs:
    settings: StackSettings
    account: iam.AccountInfo
    image_uri: pulumi.Input[str]  # repository@sha256:digest
    input_bucket_arn: pulumi.Input[str]
    result_bucket_name: pulumi.Input[str]
    result_bucket_arn: pulumi.Input[str]


class FastLambdaPath(pulumi.ComponentResource):
    """Container-image Lambda invoked by the input bucket's `fast/` CSV notification.

    The notification itself is InputNotifications' (one per bucket); this component grants S3
    the right to invoke the function (`permission`) and exposes what other components attach
    to: the function, its role, its failure queue and log group.
    """

    function: aws.lambda_.Function
    function_arn: pulumi.Output[str]
    function_name: pulumi.Output[str]
    role: aws.iam.Role
    role_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    permission: aws.lambda_.Permission
    failure_queue: aws.sqs.Queue  # the async-invoke on-failure destination (.arn, .url, .name)
    log_group_name: pulumi.Output[str]
    timeout: int  # seconds

    def __init__(
        self, name: str, args: FastLambdaPathArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:FastLambdaPath", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{s.name_prefix}-fast"
        self.timeout = s.lambda_timeout_seconds

        log_group = shared.log_group(
            f"{name}-logs", log_group_name=f"/aws/lambda/{function_name}", opts=child
        )
        self.failure_queue = shared.failure_queue(
            f"{name}-failures",
            queue_name=f"{s.name_prefix}-fast-failures",
            consumer_timeout_seconds=self.timeout,
            opts=child,
        )

        inp, res = args.input_bucket_arn, args.result_bucket_arn
        role = iam.service_role(
            name,
            role_name=role_name(s.name_prefix),
            service="lambda.amazonaws.com",
            description="Fast-path pricing Lambda (mc-pricing)",
            policy_name="fast-path",
            statements=[
                iam.s3_object_statement("InputRead", inp, INPUT_READ_PREFIXES, iam.S3_READ_ACTIONS),
                iam.s3_object_statement("InputParts", inp, [PARTS_PREFIX], PART_WRITE_ACTIONS),
                iam.s3_object_statement("Result", res, RESULT_PREFIXES, iam.S3_RESULT_ACTIONS),
                # Both buckets, no prefix condition: see iam.s3_list_statement.
                iam.s3_list_statement("List", [inp, res]),
                iam.log_write_statement("Logs", log_group.arn),
                # X-Ray has no resource-level permissions (AWS-required "*").
                iam.unscoped_statement(
                    "Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
                ),
                iam.statement("FailureQueue", ["sqs:SendMessage"], [self.failure_queue.arn]),
            ],
            opts=child,
        )
        self.role = role.role
        self.role_name = role.role.name
        self.role_arn = role.role.arn

        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            description="Prices fast/ CSV uploads (mc-pricing)",
            package_type="Image",
            image_uri=args.image_uri,
            architectures=[s.architecture],
            memory_size=s.lambda_memory_mb,
            timeout=self.timeout,
            reserved_concurrent_executions=s.lambda_reserved_concurrency,
            role=role.role.arn,
            tracing_config={"mode": "Active"},
            environment={
                # Exactly runtime.environment.LAMBDA_VARIABLES (tests/project/test_contract.py).
                "variables": {
                    "RESULT_BUCKET": args.result_bucket_name,
                    **s.pricing_environment(),
                    "MAX_PARTS": str(s.max_parts),
                }
            },
            # The role's permissions must be in place before the first event arrives.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, role.policy]),
        )
        self.function_arn = self.function.arn
        self.function_name = self.function.name
        self.log_group_name = log_group.name

        self.permission = aws.lambda_.Permission(
            f"{name}-s3-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="s3.amazonaws.com",
            source_arn=args.input_bucket_arn,
            # Bucket ARNs carry no account: pin the owner so a same-named bucket elsewhere can't.
            source_account=args.account.account_id,
            opts=child,
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=self.function.name,
            maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
            destination_config={"on_failure": {"destination": self.failure_queue.arn}},
            # Lambda checks the role may send to the destination when this is configured.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role.policy]),
        )
        self.register_outputs(
            {
                "functionName": self.function_name,
                "functionArn": self.function_arn,
                "roleArn": self.role_arn,
                "failureQueueUrl": self.failure_queue.url,
                "logGroupName": self.log_group_name,
            }
        )
