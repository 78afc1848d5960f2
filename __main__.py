"""Composition root: settings -> image -> buckets, fast path, notifications, normal path ->
stack outputs."""

import pulumi

from components import fast_lambda
from components.batch_array import BatchArrayPath, BatchArrayPathArgs
from components.buckets import PricingBuckets, PricingBucketsArgs
from components.fast_lambda import FastLambdaPath, FastLambdaPathArgs
from components.iam import AccountInfo
from components.image import PricingImage, PricingImageArgs
from components.notifications import InputNotifications, InputNotificationsArgs
from components.settings import load_settings

settings = load_settings()
account = AccountInfo.lookup(settings.region)

image = PricingImage(
    "image", PricingImageArgs(settings.name_prefix, settings.docker_platform, account)
)
buckets = PricingBuckets(
    "buckets",
    PricingBucketsArgs(
        settings.name_prefix,
        # Only the fast path's role may write under fast/_parts/ (known by name before it exists).
        parts_writer_role_arn=account.role_arn(fast_lambda.role_name(settings.name_prefix)),
    ),
)
inp, res = buckets.input_bucket, buckets.result_bucket

fast = FastLambdaPath(
    "fast",
    FastLambdaPathArgs(
        settings=settings,
        account=account,
        image_uri=image.repo_digest,
        input_bucket_arn=inp.arn,
        result_bucket_name=res.bucket,
        result_bucket_arn=res.arn,
    ),
)
# The input bucket's one notification configuration: fast/ CSV uploads -> the Lambda, and every
# event -> EventBridge (where the normal path's rule listens).
notifications = InputNotifications(
    "notifications",
    InputNotificationsArgs(
        buckets=buckets, function_arn=fast.function_arn, invoke_permission=fast.permission
    ),
)

normal = BatchArrayPath(
    "normal",
    BatchArrayPathArgs(
        settings=settings,
        account=account,
        image_uri=image.repo_digest,
        repository_arn=image.repository.arn,
        input_bucket_name=inp.bucket,
        input_bucket_arn=inp.arn,
        result_bucket_name=res.bucket,
        result_bucket_arn=res.arn,
    ),
)

pulumi.export("region", settings.region)
pulumi.export("inputBucket", inp.bucket)
pulumi.export("resultBucket", res.bucket)
pulumi.export("fastFunctionName", fast.function_name)
pulumi.export("jobQueueArn", normal.job_queue_arn)
pulumi.export("jobDefinitionArn", normal.job_definition.arn)
pulumi.export("imageUri", image.repo_digest)

# Operations (issue 11): failure routing into the Lambda, failed jobs by email (notifyEmail),
# metric filters, alarms and the dashboard. See docs/operations.md.
from components.operations import PricingOperations, PricingOperationsArgs  # noqa: E402

operations = PricingOperations(
    "ops",
    PricingOperationsArgs(
        settings=settings,
        account=account,
        input_bucket_name=inp.bucket,
        input_bucket_arn=inp.arn,
        result_bucket_name=res.bucket,
        result_bucket_arn=res.arn,
        function_name=fast.function_name,
        function_arn=fast.function_arn,
        function_role_name=fast.role_name,
        function_log_group_name=fast.log_group_name,
        fast_failure_queue=fast.failure_queue,
        job_queue_arn=normal.job_queue_arn,
        job_role_name=normal.job_role_name,
        job_log_group_name=normal.log_group_name,
        normal_dead_letter_queue=normal.dead_letter_queue,
    ),
)
pulumi.export("dashboardName", operations.dashboard_name)
pulumi.export("alarmTopicArn", operations.alarm_topic_arn)
