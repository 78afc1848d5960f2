"""FastLambdaPath: the Lambda function pricing `fast/` uploads, its role and failure queue."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.settings import LOG_RETENTION_DAYS, StackSettings

# Async invocations: S3 events are retried twice by Lambda, for up to 6 hours (so a throttled
# burst of parts still runs), and an event that never succeeds lands in the failure queue.
MAX_RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 6 * 3600
QUEUE_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class FastLambdaPathArgs:
    settings: StackSettings
    account: iam.AccountInfo
    image_uri: pulumi.Input[str]  # repository@sha256:digest
    input_bucket_arn: pulumi.Input[str]
    result_bucket_name: pulumi.Input[str]
    result_bucket_arn: pulumi.Input[str]


class FastLambdaPath(pulumi.ComponentResource):
    """Container-image Lambda invoked by the input bucket's `fast/*.csv` notification.

    The S3 notification itself belongs to PricingBuckets (one per bucket); this component
    exposes `function_arn` and `permission` for it.
    """

    function: aws.lambda_.Function
    permission: aws.lambda_.Permission
    failure_queue: aws.sqs.Queue
    function_arn: pulumi.Output[str]
    function_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: FastLambdaPathArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:FastLambdaPath", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{s.name_prefix}-fast"

        # Created before the function so Lambda never creates it without a retention period.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=LOG_RETENTION_DAYS,
            opts=child,
        )
        self.failure_queue = aws.sqs.Queue(
            f"{name}-failures",
            name=f"{s.name_prefix}-fast-failures",
            sqs_managed_sse_enabled=True,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            opts=child,
        )

        role = iam.service_role(
            name,
            role_name=f"{s.name_prefix}-fast-fn",
            service="lambda.amazonaws.com",
            description="Fast-path pricing Lambda (mc-pricing)",
            policy_name="fast-path",
            statements=[
                # docs/protocol.md: input fast/* read; fast/_parts/* write and delete.
                # (Listing the same prefix makes S3 answer 404, not 403, for a missing key.)
                *iam.s3_prefix_statements(
                    "InputRead",
                    args.input_bucket_arn,
                    "fast/",
                    ["s3:GetObject", "s3:GetObjectVersion"],
                    list_prefix=True,
                ),
                *iam.s3_prefix_statements(
                    "InputParts",
                    args.input_bucket_arn,
                    "fast/_parts/",
                    ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                ),
                # result fast/* read, write, delete, and list with prefix fast/.
                *iam.s3_prefix_statements(
                    "Result",
                    args.result_bucket_arn,
                    "fast/",
                    ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                    list_prefix=True,
                ),
                iam.log_write_statement("Logs", log_group.arn),
                # X-Ray has no resource-level permissions (AWS-required "*").
                iam.unscoped_statement(
                    "Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
                ),
                iam.statement("FailureQueue", ["sqs:SendMessage"], [self.failure_queue.arn]),
            ],
            opts=child,
        )

        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            description="Prices fast/ CSV uploads (mc-pricing)",
            package_type="Image",
            image_uri=args.image_uri,
            architectures=[s.architecture],
            memory_size=s.lambda_memory_mb,
            timeout=s.lambda_timeout_seconds,
            reserved_concurrent_executions=s.lambda_reserved_concurrency,
            role=role.role.arn,
            tracing_config={"mode": "Active"},
            environment={
                # Exactly the fast-path variables of docs/protocol.md.
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
                "failureQueueUrl": self.failure_queue.url,
            }
        )
