"""PricingSchedules: standing books priced on EventBridge Scheduler schedules (`schedules`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.settings import ScheduleEntry, StackSettings

# The event `source` of a scheduled run's input (the function tells it from S3, EventBridge
# and SQS events by it).
SCHEDULE_SOURCE = "mc-pricing.schedule"
# Scheduler substitutes this context attribute in the target input with the time the run
# was scheduled for (ISO 8601, UTC), not the time it was delivered: the job id the runtime
# derives from it is the same on every retry of one run.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# Scheduler retries an invocation Lambda refused (throttles, a missing permission) for up to
# a day, 185 times (its maximums), then sends it to the dead-letter queue. Lambda invokes
# asynchronously, so once it accepted the run the function's own retries and on-failure
# queue apply, as for S3 events.
RETRY_SECONDS = 24 * 3600
RETRY_ATTEMPTS = 185


def schedule_input(entry: ScheduleEntry, input_bucket: pulumi.Input[str]) -> dict[str, Any]:
    """The target input of one schedule: exactly the runtime's scheduled-run payload
    (docs/protocol.md)."""
    return {
        "source": SCHEDULE_SOURCE,
        "schedule": entry.name,
        "book": entry.book,
        "path": entry.path,
        "inputBucket": input_bucket,
        "scheduledTime": SCHEDULED_TIME,
    }


@dataclass(frozen=True)
class PricingSchedulesArgs:
    settings: StackSettings
    account: iam.AccountInfo
    input_bucket_name: pulumi.Input[str]
    target_arn: pulumi.Input[str]  # the function, or its alias


class PricingSchedules(pulumi.ComponentResource):
    """One schedule group per stack, one schedule per `schedules` entry invoking the function
    with the scheduled-run payload, an encrypted dead-letter queue (consumed by the function:
    FailureRouting ends such a run `failed`), and the scheduler's execution role: invoke this
    function and send to that queue, nothing else, assumable by Scheduler for this account's
    schedule group only."""

    group: aws.scheduler.ScheduleGroup
    dead_letter_queue: aws.sqs.Queue
    role: aws.iam.Role
    schedules: dict[str, aws.scheduler.Schedule]

    def __init__(
        self, name: str, args: PricingSchedulesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:PricingSchedules", name, None, opts)
        s, a = args.settings, args.account
        child = pulumi.ResourceOptions(parent=self)
        group_name = f"{s.name_prefix}-schedules"
        self.group = aws.scheduler.ScheduleGroup(f"{name}-group", name=group_name, opts=child)
        self.dead_letter_queue = shared.failure_queue(
            f"{name}-failures",
            queue_name=f"{s.name_prefix}-schedule-failures",
            consumer_timeout_seconds=s.lambda_timeout_seconds,
            opts=child,
        )
        role = iam.service_role(
            f"{name}-scheduler",
            role_name=f"{s.name_prefix}-scheduler",
            service="scheduler.amazonaws.com",
            description="Lets EventBridge Scheduler start mc-pricing's scheduled runs",
            policy_name="invoke-pricing",
            statements=[
                iam.statement("InvokeFunction", ["lambda:InvokeFunction"], [args.target_arn]),
                # Scheduler sends undeliverable runs to the dead-letter queue as this role.
                iam.statement("DeadLetters", ["sqs:SendMessage"], [self.dead_letter_queue.arn]),
            ],
            # Against the confused deputy: only Scheduler acting for this account's group.
            trust_condition={
                "StringEquals": {"aws:SourceAccount": a.account_id},
                "ArnEquals": {"aws:SourceArn": a.arn("scheduler", f"schedule-group/{group_name}")},
            },
            opts=child,
        )
        self.role = role.role
        window: dict[str, Any] = (
            {"mode": "FLEXIBLE", "maximum_window_in_minutes": s.schedule_window_minutes}
            if s.schedule_window_minutes
            else {"mode": "OFF"}
        )
        self.schedules = {
            entry.name: aws.scheduler.Schedule(
                f"{name}-{entry.name}",
                name=entry.name,
                group_name=self.group.name,
                description=f"{entry.path}: books/{entry.book}",
                schedule_expression=entry.cron,
                schedule_expression_timezone=entry.timezone,
                flexible_time_window=window,
                state="ENABLED",
                target={
                    "arn": args.target_arn,
                    "role_arn": role.role.arn,
                    "input": pulumi.Output.json_dumps(
                        schedule_input(entry, args.input_bucket_name)
                    ),
                    "retry_policy": {
                        "maximum_event_age_in_seconds": RETRY_SECONDS,
                        "maximum_retry_attempts": RETRY_ATTEMPTS,
                    },
                    "dead_letter_config": {"arn": self.dead_letter_queue.arn},
                },
                # Scheduler checks it may assume the role when the schedule is written.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[role.policy]),
            )
            for entry in s.schedules
        }
        self.register_outputs(
            {
                "groupName": self.group.name,
                "deadLetterQueueUrl": self.dead_letter_queue.url,
                "scheduleNames": list(self.schedules),
            }
        )
