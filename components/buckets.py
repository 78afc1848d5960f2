"""PricingBuckets: the input and result buckets of one stack, locked down the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import tls_only_bucket_policy

# Temporary prefixes from docs/protocol.md, expired after TEMP_DAYS whatever happens to a job.
INPUT_TEMP_PREFIXES = ("fast/_parts/",)
RESULT_TEMP_PREFIXES = ("fast/_work/", "normal/_work/")
TEMP_DAYS = 7
NONCURRENT_DAYS = 30
ABORT_MULTIPART_DAYS = 1

# What starts the fast path (docs/protocol.md).
FAST_PREFIX = "fast/"
FAST_SUFFIX = ".csv"


@dataclass(frozen=True)
class PricingBucketsArgs:
    name_prefix: str


def _expire(prefix: str) -> dict[str, Any]:
    rule_id = "expire-" + prefix.strip("/").replace("/_", "-").replace("/", "-")
    return {
        "id": rule_id,
        "status": "Enabled",
        "filter": {"prefix": prefix},
        "expiration": {"days": TEMP_DAYS},
    }


_ABORT_UPLOADS = {
    "id": "abort-incomplete-multipart-uploads",
    "status": "Enabled",
    "filter": {},
    "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_MULTIPART_DAYS},
}
_NONCURRENT = {
    "id": "expire-noncurrent-versions",
    "status": "Enabled",
    "filter": {},
    "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
}


class PricingBuckets(pulumi.ComponentResource):
    """Input bucket (users upload, versioned) and result bucket (only the pipeline writes).

    Both: SSE-S3 (AES256) default encryption, all four public access blocks, BucketOwnerEnforced
    (ACLs off), a TLS-only bucket policy, lifecycle rules for the temporary prefixes, and
    incomplete multipart uploads aborted after a day.

    Encryption choice: SSE-S3. SSE-KMS with the AWS-managed aws/s3 key would add KMS request
    cost and CloudTrail data events but no access separation (every principal of the account that
    may use S3 may use that key), and a customer-managed key would make every uploader and both
    compute roles need kms:GenerateDataKey/Decrypt grants. Access is controlled by the bucket and
    role policies instead.

    The input bucket's single S3 notification configuration is created by `notify_lambda`, once
    the fast-path function exists: see that method.
    """

    input_bucket: aws.s3.Bucket
    result_bucket: aws.s3.Bucket
    notification: aws.s3.BucketNotification | None

    def __init__(
        self, name: str, args: PricingBucketsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:PricingBuckets", name, None, opts)
        self._name = name
        self._configured: dict[str, pulumi.Resource] = {}  # last config resource per bucket
        self.notification = None
        self.input_bucket = self._bucket(
            "input",
            args.name_prefix,
            versioned=True,
            rules=[*(_expire(p) for p in INPUT_TEMP_PREFIXES), _NONCURRENT, _ABORT_UPLOADS],
        )
        self.result_bucket = self._bucket(
            "result",
            args.name_prefix,
            versioned=False,
            rules=[*(_expire(p) for p in RESULT_TEMP_PREFIXES), _ABORT_UPLOADS],
        )
        self.register_outputs(
            {
                "inputBucket": self.input_bucket.bucket,
                "inputBucketArn": self.input_bucket.arn,
                "resultBucket": self.result_bucket.bucket,
                "resultBucketArn": self.result_bucket.arn,
            }
        )

    def _bucket(
        self, role: str, name_prefix: str, *, versioned: bool, rules: Sequence[dict[str, Any]]
    ) -> aws.s3.Bucket:
        base = f"{self._name}-{role}"
        bucket = aws.s3.Bucket(
            base,
            # The provider appends a unique suffix (bucket names are global); the prefix names
            # the project and the region.
            bucket_prefix=f"{name_prefix}-{role}-",
            # Never delete users' files or results with the stack: `pulumi destroy` fails on a
            # non-empty bucket, and the operator empties it deliberately.
            force_destroy=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # S3 rejects concurrent configuration calls on one bucket now and then
        # ("OperationAborted: A conflicting conditional operation..."), so the sub-resources
        # are applied one after another, each depending on the previous one.
        steps: list[Callable[[pulumi.ResourceOptions], pulumi.Resource]] = [
            lambda o: aws.s3.BucketPublicAccessBlock(
                f"{base}-public-access",
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=o,
            ),
            lambda o: aws.s3.BucketOwnershipControls(
                f"{base}-ownership",
                bucket=bucket.id,
                rule={"object_ownership": "BucketOwnerEnforced"},
                opts=o,
            ),
            lambda o: aws.s3.BucketServerSideEncryptionConfiguration(
                f"{base}-encryption",
                bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
                opts=o,
            ),
            lambda o: aws.s3.BucketPolicy(
                f"{base}-tls-only",
                bucket=bucket.id,
                policy=tls_only_bucket_policy(bucket.arn),
                opts=o,
            ),
        ]
        if versioned:
            steps.append(
                lambda o: aws.s3.BucketVersioning(
                    f"{base}-versioning",
                    bucket=bucket.id,
                    versioning_configuration={"status": "Enabled"},
                    opts=o,
                )
            )
        # Last: noncurrent-version rules need versioning in place.
        steps.append(
            lambda o: aws.s3.BucketLifecycleConfiguration(
                f"{base}-lifecycle", bucket=bucket.id, rules=list(rules), opts=o
            )
        )
        previous: pulumi.Resource = bucket
        for step in steps:
            previous = step(pulumi.ResourceOptions(parent=self, depends_on=[previous]))
        self._configured[role] = previous
        return bucket

    def notify_lambda(
        self, function_arn: pulumi.Input[str], permission: aws.lambda_.Permission
    ) -> aws.s3.BucketNotification:
        """Create the input bucket's one and only notification configuration.

        S3 keeps a single notification configuration per bucket, and a second
        aws.s3.BucketNotification silently replaces the first. So this one resource carries both
        consumers of input events:
        - the fast path: `fast/**.csv` -> the Lambda function (it also fires for the parts the
          splitter writes under fast/_parts/, by design);
        - the normal path: `eventbridge=True` sends every event to EventBridge, where the
          BatchArrayPath rule selects `normal/*.csv`.
        It depends on the lambda.Permission because S3 checks that it may invoke the function
        when the configuration is written. Calling it twice is a programming error.
        """
        if self.notification is not None:
            raise RuntimeError("the input bucket already has its notification configuration")
        self.notification = aws.s3.BucketNotification(
            f"{self._name}-input-notification",
            bucket=self.input_bucket.id,
            eventbridge=True,
            lambda_functions=[
                {
                    "id": "fast-path",
                    "lambda_function_arn": function_arn,
                    "events": ["s3:ObjectCreated:*"],
                    "filter_prefix": FAST_PREFIX,
                    "filter_suffix": FAST_SUFFIX,
                }
            ],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[permission, self._configured["input"]]
            ),
        )
        return self.notification
