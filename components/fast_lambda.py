"""FastLambdaPath: the stack's Lambda function (it prices `fast/` uploads and admits the Batch
lanes' uploads and scheduled runs into AWS Batch), its role, failure queue and warm alias."""

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

# docs/protocol.md: what the function reads and writes. It reads every lane's uploads (it
# admits the Batch lanes' uploads and records their failures) and the standing books.
INPUT_READ_PREFIXES = (*shared.JOB_PREFIXES, shared.BOOKS_PREFIX)
RESULT_PREFIXES = shared.JOB_PREFIXES
PARTS_PREFIX = "fast/_parts/"
# AbortMultipartUpload: boto3 uploads large objects in parts and aborts a failed upload itself.
PART_WRITE_ACTIONS = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
# A scheduled run copies books/<book> to <path>/<jobId>/<file> (CopyObject: GetObject on the
# source, PutObject on the destination), on the paths a schedule may name.
SCHEDULED_COPY_PREFIXES = ("fast/", "normal/", "urgent/")
SCHEDULED_COPY_ACTIONS = ["s3:PutObject", "s3:AbortMultipartUpload"]
# With provisioned concurrency, every trigger invokes this alias of the published version.
ALIAS_NAME = "live"


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
    # BatchArrayPath: where the function submits manager jobs (admission).
    job_queue_arns: list[pulumi.Output[str]]
    job_definition_name: str
    # JOB_QUEUE, URGENT_JOB_QUEUE, FAIR_SHARE, STACK_NAME (batch_array.batch_environment)
    submission_environment: dict[str, pulumi.Input[str]]


class FastLambdaPath(pulumi.ComponentResource):
    """Container-image Lambda invoked by the input bucket's `fast/` CSV notification, by the
    Batch lanes' upload rules, by the schedules and by the failure routing.

    The triggers are other components'; this component grants S3 the right to invoke the
    function (`permission`) and exposes what they attach to: `target_arn` and
    `target_qualifier` (the alias "live" with lambdaProvisionedConcurrency, else the function
    itself), the function, its role, its failure queue and log group.
    """

    function: aws.lambda_.Function
    function_arn: pulumi.Output[str]
    function_name: pulumi.Output[str]
    alias: aws.lambda_.Alias | None
    target_arn: pulumi.Output[str]  # what every trigger invokes
    target_qualifier: str | None  # the alias's name, or None for the unqualified function
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
                iam.s3_object_statement(
                    "ScheduledCopies", inp, SCHEDULED_COPY_PREFIXES, SCHEDULED_COPY_ACTIONS
                ),
                iam.s3_object_statement("Result", res, RESULT_PREFIXES, iam.S3_RESULT_ACTIONS),
                # Both buckets, no prefix condition: see iam.s3_list_statement.
                iam.s3_list_statement("List", [inp, res]),
                iam.log_write_statement("Logs", log_group.arn),
                # X-Ray has no resource-level permissions (AWS-required "*").
                iam.unscoped_statement(
                    "Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
                ),
                iam.statement("FailureQueue", ["sqs:SendMessage"], [self.failure_queue.arn]),
                # Admission: manager jobs on the lanes' queues, tagged as this stack's, which
                # is what lets it terminate them (cancel) and nobody else's.
                iam.batch_submit_statement(
                    args.account, args.job_queue_arns, args.job_definition_name
                ),
                *iam.batch_job_control_statements(args.account, s.name_prefix),
            ],
            opts=child,
        )
        self.role = role.role
        self.role_name = role.role.name
        self.role_arn = role.role.arn

        provisioned = s.lambda_provisioned_concurrency
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
            # Provisioned concurrency needs a published version (behind the alias).
            publish=provisioned > 0,
            role=role.role.arn,
            tracing_config={"mode": "Active"},
            environment={
                # Exactly runtime.environment.LAMBDA_VARIABLES (tests/project/test_contract.py).
                "variables": {
                    "RESULT_BUCKET": args.result_bucket_name,
                    **s.pricing_environment(),
                    "MAX_PARTS": str(s.max_parts),
                    **args.submission_environment,
                    "JOB_DEFINITION": args.job_definition_name,
                }
            },
            # The role's permissions must be in place before the first event arrives.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, role.policy]),
        )
        self.function_arn = self.function.arn
        self.function_name = self.function.name
        self.log_group_name = log_group.name
        self.alias = self._warm_alias(name, self.function, provisioned) if provisioned else None
        self.target_arn = self.alias.arn if self.alias else self.function_arn
        self.target_qualifier = ALIAS_NAME if self.alias else None

        # Turning provisioned concurrency on or off changes the qualifier, which replaces the
        # permission: the new one exists before the notification names the new target, and
        # the old one goes after it no longer does (create-before-delete).
        self.permission = aws.lambda_.Permission(
            f"{name}-s3-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            qualifier=self.target_qualifier,
            principal="s3.amazonaws.com",
            source_arn=args.input_bucket_arn,
            # Bucket ARNs carry no account: pin the owner so a same-named bucket elsewhere can't.
            source_account=args.account.account_id,
            opts=child,
        )
        # Async settings belong to a qualifier: the alias's apply to invocations of the alias.
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=self.function.name,
            qualifier=self.target_qualifier,
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
                "targetArn": self.target_arn,
                "roleArn": self.role_arn,
                "failureQueueUrl": self.failure_queue.url,
                "logGroupName": self.log_group_name,
            }
        )

    def _warm_alias(
        self, name: str, function: aws.lambda_.Function, provisioned: int
    ) -> aws.lambda_.Alias:
        """The alias "live" on the version this deploy published, with provisioned
        concurrency: that many execution environments kept initialised (image pulled, runtime
        imported), billed per hour."""
        alias = aws.lambda_.Alias(
            f"{name}-live",
            name=ALIAS_NAME,
            description="What every trigger invokes (provisioned concurrency)",
            function_name=function.name,
            function_version=function.version,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.lambda_.ProvisionedConcurrencyConfig(
            f"{name}-warm",
            function_name=function.name,
            qualifier=alias.name,
            provisioned_concurrent_executions=provisioned,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return alias
