"""Composition root: settings -> image -> buckets -> Batch capacity and queues -> the function
-> what invokes it (uploads, schedules, failures) -> monitoring -> stack outputs."""

import pulumi

from components import fast_lambda, monitoring
from components.batch_array import BatchArrayPath, BatchArrayPathArgs, batch_environment
from components.buckets import PricingBuckets, PricingBucketsArgs
from components.failure_routing import FailureRouting, FailureRoutingArgs
from components.fast_lambda import FastLambdaPath, FastLambdaPathArgs
from components.iam import AccountInfo
from components.image import PricingImage, PricingImageArgs
from components.monitoring import PricingMonitoring, PricingMonitoringArgs
from components.notifications import InputNotifications, InputNotificationsArgs
from components.schedules import PricingSchedules, PricingSchedulesArgs
from components.settings import load_settings

settings = load_settings()
account = AccountInfo.lookup(settings.region)

image = PricingImage(
    "image",
    PricingImageArgs(
        settings.name_prefix,
        settings.docker_platform,
        account,
        force_delete=settings.force_destroy,
    ),
)
buckets = PricingBuckets(
    "buckets",
    PricingBucketsArgs(
        settings.name_prefix,
        # Only the fast path's role may write under fast/_parts/ (known by name before it exists).
        parts_writer_role_arn=account.role_arn(fast_lambda.role_name(settings.name_prefix)),
        force_destroy=settings.force_destroy,
    ),
)
inp, res = buckets.input_bucket, buckets.result_bucket

# AWS Batch: the normal lane (Spot or on-demand), the urgent lane (on-demand first, higher
# priority), FIFO or fair share, one job definition.
normal = BatchArrayPath(
    "normal",
    BatchArrayPathArgs(
        settings=settings,
        account=account,
        image_uri=image.repo_digest,
        repository_arn=image.repository.arn,
        input_bucket_arn=inp.arn,
        result_bucket_name=res.bucket,
        result_bucket_arn=res.arn,
    ),
)

# The function: prices fast/ uploads, admits the Batch lanes' uploads and scheduled runs into
# Batch (status first, then SubmitJob with the team's share identifier), records failures.
fast = FastLambdaPath(
    "fast",
    FastLambdaPathArgs(
        settings=settings,
        account=account,
        image_uri=image.repo_digest,
        input_bucket_arn=inp.arn,
        result_bucket_name=res.bucket,
        result_bucket_arn=res.arn,
        job_queue_arns=normal.queue_arns,
        job_definition_name=normal.job_definition_name,
        submission_environment=batch_environment(
            settings, normal.job_queue_arn, normal.urgent_job_queue_arn
        ),
    ),
)

# Uploads -> the function: fast/ through the bucket's notification, normal/, urgent/ and auto/
# through EventBridge.
notifications = InputNotifications(
    "notifications",
    InputNotificationsArgs(
        settings=settings,
        buckets=buckets,
        target_arn=fast.target_arn,
        function_name=fast.function_name,
        target_qualifier=fast.target_qualifier,
        invoke_permission=fast.permission,
    ),
)

# Standing books on a schedule -> the function.
schedules = (
    PricingSchedules(
        "schedules",
        PricingSchedulesArgs(
            settings=settings,
            account=account,
            input_bucket_name=inp.bucket,
            target_arn=fast.target_arn,
        ),
    )
    if settings.schedules
    else None
)

# Every failure signal -> the function; what it cannot handle -> the parked queue.
failure_queues = {
    "fast": fast.failure_queue,
    "normal": notifications.dead_letter_queue,
    **({"schedule": schedules.dead_letter_queue} if schedules else {}),
}
failures = FailureRouting(
    "failures",
    FailureRoutingArgs(
        settings=settings,
        account=account,
        function_name=fast.function_name,
        target_arn=fast.target_arn,
        target_qualifier=fast.target_qualifier,
        function_role_name=fast.role_name,
        job_role_name=normal.job_role_name,
        job_queue_arns=normal.queue_arns,
        failure_queues=failure_queues,
        parked_rule_arns=(
            [account.arn("events", f"rule/{monitoring.job_failed_rule_name(settings)}")]
            if settings.notify_email
            else []
        ),
    ),
)

# Failed jobs by email (notifyEmail), metric filters, alarms, the dashboard.
monitor = PricingMonitoring(
    "monitoring",
    PricingMonitoringArgs(
        settings=settings,
        account=account,
        input_bucket_name=inp.bucket,
        result_bucket_name=res.bucket,
        function_name=fast.function_name,
        function_log_group_name=fast.log_group_name,
        job_log_group_name=normal.log_group_name,
        job_queue_arns=normal.queue_arns,
        failure_queues={f"{key}-failures": queue for key, queue in failure_queues.items()},
        parked_queue=failures.parked_queue,
        batch_failure_rule=failures.batch_failure_rule,
        delivery_rules=[failures.batch_failure_rule, *notifications.upload_rules.values()],
    ),
)

pulumi.export("region", settings.region)
pulumi.export("inputBucket", inp.bucket)
pulumi.export("resultBucket", res.bucket)
pulumi.export("fastFunctionName", fast.function_name)
pulumi.export("jobQueueArn", normal.job_queue_arn)
pulumi.export("urgentJobQueueArn", normal.urgent_job_queue_arn)
pulumi.export("jobDefinitionArn", normal.job_definition.arn)
pulumi.export("imageUri", image.repo_digest)
pulumi.export("scheduleGroupName", schedules.group.name if schedules else None)
pulumi.export("dashboardName", monitor.dashboard_name)
pulumi.export("alarmTopicArn", monitor.alarm_topic_arn)
