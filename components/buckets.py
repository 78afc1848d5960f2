"""PricingBuckets: the input and result buckets of one stack, locked down the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared

# Temporary prefixes from docs/protocol.md, expired after TEMP_DAYS whatever happens to a job.
INPUT_TEMP_PREFIXES = ("fast/_parts/",)
RESULT_TEMP_PREFIXES = tuple(f"{prefix}_work/" for prefix in shared.JOB_PREFIXES)
TEMP_DAYS = 7
# Noncurrent versions: overwritten or deleted uploads (input) are kept 30 days for recovery;
# superseded results and deleted temporary objects (result) 7 days. The fast path deletes its
# parts after the merge, which only makes them noncurrent in a versioned bucket: they are
# pipeline copies, not uploads, so their noncurrent versions go after a day, not 30.
INPUT_NONCURRENT_DAYS = 30
RESULT_NONCURRENT_DAYS = 7
TEMP_NONCURRENT_DAYS = {"fast/_parts/": 1}
ABORT_MULTIPART_DAYS = 1

# Where the fast path's splitter writes parts. Only the fast path's role may write or delete
# there (docs/deploy.md); S3 events of parts start the fast path's part invocations.
PARTS_PREFIX = "fast/_parts/"
# The Deny covers s3:DeleteObjectVersion too, which is what `pulumi destroy` with forceDestroy
# uses (as the deployer) to empty the bucket. It does not block that destroy, so the guard
# keeps it: the bucket policy is a dependent of the bucket (it takes bucket.id and waits for
# the bucket), and Pulumi deletes dependents first, so the policy and its Deny are gone before
# the provider empties and deletes the bucket (tests/infra: the policy depends on the bucket).
PARTS_GUARDED_ACTIONS = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
)

# The whole bucket, in the one form every provider version and the S3 API accept (an empty
# `filter: {}` is read differently by different provider versions).
WHOLE_BUCKET = {"prefix": ""}


@dataclass(frozen=True)
class PricingBucketsArgs:
    name_prefix: str
    # The fast path's role: the only principal allowed to write or delete under fast/_parts/.
    # Built from the role's name, so the buckets need not wait for the role.
    parts_writer_role_arn: pulumi.Input[str]
    # forceDestroy: `pulumi destroy` deletes every object version with the bucket.
    force_destroy: bool = False


def _rule_id(prefix: str) -> str:
    return "expire-" + prefix.strip("/").replace("/_", "-").replace("/", "-")


def _lifecycle_rules(temp_prefixes: Sequence[str], noncurrent_days: int) -> list[dict[str, Any]]:
    return [
        *(
            {
                "id": _rule_id(prefix),
                "status": "Enabled",
                "filter": {"prefix": prefix},
                "expiration": {"days": TEMP_DAYS},
                **(
                    {
                        "noncurrent_version_expiration": {
                            "noncurrent_days": TEMP_NONCURRENT_DAYS[prefix]
                        }
                    }
                    if prefix in TEMP_NONCURRENT_DAYS
                    else {}
                ),
            }
            for prefix in temp_prefixes
        ),
        {
            "id": "expire-noncurrent-versions",
            "status": "Enabled",
            "filter": dict(WHOLE_BUCKET),
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_days},
        },
        {
            # Delete markers whose versions have all expired are removed too.
            "id": "remove-expired-delete-markers",
            "status": "Enabled",
            "filter": dict(WHOLE_BUCKET),
            "expiration": {"expired_object_delete_marker": True},
        },
        {
            "id": "abort-incomplete-multipart-uploads",
            "status": "Enabled",
            "filter": dict(WHOLE_BUCKET),
            "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_MULTIPART_DAYS},
        },
    ]


class PricingBuckets(pulumi.ComponentResource):
    """Input bucket (users upload) and result bucket (only the pipeline writes), both versioned.

    Both: SSE-S3 (AES256) default encryption, all four public access blocks, BucketOwnerEnforced
    (ACLs off), a TLS-only bucket policy, versioning, lifecycle rules for the temporary
    prefixes and noncurrent versions, and incomplete multipart uploads aborted after a day. The
    input bucket's policy also reserves fast/_parts/ to the fast path's role.

    The result bucket is versioned because the job protocol deletes exactly the object version
    it wrote when a newer upload superseded its job (docs/protocol.md).

    Encryption choice: SSE-S3. SSE-KMS with the AWS-managed aws/s3 key would add KMS request
    cost and CloudTrail data events but no access separation (every principal of the account that
    may use S3 may use that key), and a customer-managed key would make every uploader and both
    compute roles need kms:GenerateDataKey/Decrypt grants. Access is controlled by the bucket and
    role policies instead.

    The input bucket's one notification configuration is not built here: it names the fast
    path's function, so InputNotifications builds it once both exist.
    """

    input_bucket: aws.s3.Bucket
    result_bucket: aws.s3.Bucket
    # The last configuration step of the input bucket: whatever configures the bucket further
    # (its notification) must wait for it (S3 rejects concurrent configuration calls).
    input_configured: pulumi.Resource
    # Where the input bucket's notification lived before InputNotifications (a child of this
    # component): InputNotifications aliases it, so a deployed stack keeps its configuration.
    notification_alias: pulumi.Alias

    def __init__(
        self, name: str, args: PricingBucketsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:PricingBuckets", name, None, opts)
        self._name = name
        self.notification_alias = pulumi.Alias(name=f"{name}-input-notification", parent=self)
        self.input_bucket, self.input_configured = self._bucket(
            "input",
            args.name_prefix,
            rules=_lifecycle_rules(INPUT_TEMP_PREFIXES, INPUT_NONCURRENT_DAYS),
            policy=lambda arn: iam.document(
                iam.deny_insecure_transport(arn),
                iam.deny_writes_except(
                    "ReservePartsForTheFastPath",
                    arn,
                    PARTS_PREFIX,
                    PARTS_GUARDED_ACTIONS,
                    args.parts_writer_role_arn,
                ),
            ),
            force_destroy=args.force_destroy,
        )
        self.result_bucket, _ = self._bucket(
            "result",
            args.name_prefix,
            rules=_lifecycle_rules(RESULT_TEMP_PREFIXES, RESULT_NONCURRENT_DAYS),
            policy=lambda arn: iam.document(iam.deny_insecure_transport(arn)),
            force_destroy=args.force_destroy,
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
        self,
        role: str,
        name_prefix: str,
        *,
        rules: Sequence[dict[str, Any]],
        policy: Callable[[pulumi.Output[str]], pulumi.Output[str]],
        force_destroy: bool,
    ) -> tuple[aws.s3.Bucket, pulumi.Resource]:
        base = f"{self._name}-{role}"
        bucket = aws.s3.Bucket(
            base,
            # The provider appends a unique suffix (bucket names are global); the prefix names
            # the project and the region.
            bucket_prefix=f"{name_prefix}-{role}-",
            # By default users' files and results are never deleted with the stack: `pulumi
            # destroy` fails on a non-empty bucket, and the operator empties it deliberately.
            # forceDestroy opts in: the provider then deletes every object version (and delete
            # marker) as the deployer before it deletes the bucket.
            force_destroy=force_destroy,
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
            # Aliased to its first name: a renamed BucketPolicy would otherwise be created anew
            # and the old one deleted afterwards, and S3's DeleteBucketPolicy would remove both.
            lambda o: aws.s3.BucketPolicy(
                f"{base}-policy",
                bucket=bucket.id,
                policy=policy(bucket.arn),
                opts=pulumi.ResourceOptions.merge(
                    o, pulumi.ResourceOptions(aliases=[pulumi.Alias(name=f"{base}-tls-only")])
                ),
            ),
            lambda o: aws.s3.BucketVersioning(
                f"{base}-versioning",
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=o,
            ),
            # Last: noncurrent-version rules need versioning in place.
            lambda o: aws.s3.BucketLifecycleConfiguration(
                f"{base}-lifecycle", bucket=bucket.id, rules=list(rules), opts=o
            ),
        ]
        previous: pulumi.Resource = bucket
        for step in steps:
            previous = step(pulumi.ResourceOptions(parent=self, depends_on=[previous]))
        return bucket, previous
