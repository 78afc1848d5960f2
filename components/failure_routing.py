"""FailureRouting: every failure signal into the stack's function, and a parked queue for what
the function cannot handle either.

- Batch "Job State Change" FAILED events of this stack's queues -> EventBridge rule -> function.
- The fast path's on-failure queue (Lambda async records whose retries are exhausted), the
  upload rules' dead-letter queue (uploads EventBridge could not hand to the function) and the
  schedules' dead-letter queue (runs Scheduler could not start) -> SQS event source mappings ->
  function.
- What the function cannot handle either (a message received MAX_RECEIVES times, an event
  EventBridge could not deliver for a day) ends in the "parked" queue: kept, alarmed, never
  consumed automatically, so nothing loops forever and nothing is lost.

It also grants both paths' roles what the job protocol publishes with: `events:PutEvents` of
the runtime's job events on the default bus. See docs/operations.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.settings import MIN_MAPPING_CONCURRENCY, StackSettings

# --- job events (the runtime's contract, docs/operations.md) --------------------------------
EVENT_SOURCE = "mc-pricing"
EVENT_DETAIL_TYPE = "Pricing Job State Change"

# A failure queue's message that the function received this many times without deleting it
# (its handler failed, or reported it in batchItemFailures) moves to the parked queue. AWS
# recommends at least 5 for Lambda event source mappings, so throttles alone do not park it.
MAX_RECEIVES = 5
# One record per invocation: a record may resume a whole merge, so it gets the full timeout,
# and a record that crashes or times out the function only spends its own receive count
# (with a batch, every record of the batch would be received again).
FAILURE_BATCH_SIZE = 1
# Pollers per failure queue: failure handling never crowds out the fast path's pricing.
FAILURE_CONCURRENCY = 5
# EventBridge -> function (Batch failures): the maximum retry window. Lambda's own async
# retries and on-failure queue take over once an event is delivered.
TARGET_RETRY_SECONDS = 24 * 3600
TARGET_RETRY_ATTEMPTS = 185
# Where these resources lived before PricingOperations was split (docs/operations.md): each
# keeps its deployed identity through an alias to its name under that component.
FORMER_COMPONENT = ("ops", "mc-pricing:components:PricingOperations")


def mapping_concurrency(settings: StackSettings) -> int | None:
    """Maximum concurrency of each failure-queue mapping, or None (no limit).

    Mappings do not count against the function's reserved concurrency: together they must
    stay within it, or their invocations are throttled and every throttled receive counts
    toward MAX_RECEIVES (messages would be parked without ever running). Each gets at most
    FAILURE_CONCURRENCY, and a share of the reserved concurrency (settings refuse a reserved
    concurrency too small for AWS's minimum of 2 each). Reserved 0 disables the function:
    no limit applies, every message is throttled until parked (docs/operations.md)."""
    reserved = settings.lambda_reserved_concurrency
    if reserved < 0:
        return FAILURE_CONCURRENCY
    if reserved == 0:
        return None
    share = reserved // settings.failure_mappings
    assert share >= MIN_MAPPING_CONCURRENCY, "settings.validate refuses this"
    return min(FAILURE_CONCURRENCY, share)


def put_events_statement(account: iam.AccountInfo) -> dict[str, Any]:
    """events:PutEvents on the default bus, only for the runtime's own job events."""
    return iam.statement(
        "JobEvents",
        ["events:PutEvents"],
        [account.arn("events", "event-bus/default")],
        condition={
            "StringEquals": {
                "events:source": EVENT_SOURCE,
                "events:detail-type": EVENT_DETAIL_TYPE,
            }
        },
    )


@dataclass(frozen=True)
class FailureRoutingArgs:
    settings: StackSettings
    account: iam.AccountInfo
    function_name: pulumi.Input[str]
    target_arn: pulumi.Input[str]  # the function, or its alias
    target_qualifier: str | None
    function_role_name: pulumi.Input[str]
    job_role_name: pulumi.Input[str]
    job_queue_arns: list[pulumi.Output[str]]  # every queue that runs pricing work
    # The consumed queues, by key: "fast" (the function's on-failure destination), "normal"
    # (the upload rules' dead-letter queue), "schedule" (the schedules', with schedules).
    failure_queues: dict[str, aws.sqs.Queue]
    # Rules of other components that may dead-letter into the parked queue (their ARNs).
    parked_rule_arns: list[pulumi.Input[str]]


class FailureRouting(pulumi.ComponentResource):
    """Failure routing into the stack's function, and the parked queue."""

    parked_queue: aws.sqs.Queue
    batch_failure_rule: aws.cloudwatch.EventRule

    def __init__(
        self, name: str, args: FailureRoutingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:FailureRouting", name, None, opts)
        self._name = name
        # Read-only context for the helpers, fixed before any of them runs.
        self._former = shared.sibling_urn(self, FORMER_COMPONENT[1], FORMER_COMPONENT[0])
        s = args.settings
        queues = args.failure_queues
        self.parked_queue = aws.sqs.Queue(
            f"{name}-parked",
            name=f"{s.name_prefix}-parked",
            sqs_managed_sse_enabled=True,
            # Standard queues keep a message's original enqueue time when it is moved to a
            # dead-letter queue: a parked message expires 14 days after it first failed.
            message_retention_seconds=shared.QUEUE_RETENTION_SECONDS,
            # Only the consumed failure queues may use it as their dead-letter queue.
            redrive_allow_policy=pulumi.Output.json_dumps(
                {
                    "redrivePermission": "byQueue",
                    "sourceQueueArns": [q.arn for q in queues.values()],
                }
            ),
            opts=self._moved("parked"),
        )
        lambda_policy = self._permissions(args)
        for key, queue in queues.items():
            self._consume(args, key, queue, lambda_policy, self.parked_queue)
        self.batch_failure_rule = aws.cloudwatch.EventRule(
            f"{name}-batch-failed",
            name=f"{s.name_prefix}-batch-failed",
            description="FAILED Batch jobs of this stack's queues -> the pricing function",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.batch"],
                    "detail-type": ["Batch Job State Change"],
                    "detail": {"status": ["FAILED"], "jobQueue": args.job_queue_arns},
                }
            ),
            opts=self._moved("batch-failed"),
        )
        # EventBridge may dead-letter these rules' events into the parked queue, nothing else.
        parked_policy = aws.sqs.QueuePolicy(
            f"{name}-parked-policy",
            queue_url=self.parked_queue.url,
            policy=iam.document(
                iam.statement(
                    "EventBridgeDeadLetters",
                    ["sqs:SendMessage"],
                    [self.parked_queue.arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={
                        "ArnEquals": {
                            "aws:SourceArn": [self.batch_failure_rule.arn, *args.parked_rule_arns]
                        }
                    },
                )
            ),
            opts=self._moved("parked-policy"),
        )
        permission = aws.lambda_.Permission(
            f"{name}-batch-failed-invoke",
            action="lambda:InvokeFunction",
            function=args.function_name,
            qualifier=args.target_qualifier,
            principal="events.amazonaws.com",
            source_arn=self.batch_failure_rule.arn,
            opts=self._moved("batch-failed-invoke"),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-batch-failed-lambda",
            rule=self.batch_failure_rule.name,
            arn=args.target_arn,
            # EventBridge invokes asynchronously: once Lambda accepted the event, the
            # function's async retries and on-failure queue apply. This retry policy covers
            # Lambda refusing the invocation; after a day the event is parked.
            retry_policy={
                "maximum_event_age_in_seconds": TARGET_RETRY_SECONDS,
                "maximum_retry_attempts": TARGET_RETRY_ATTEMPTS,
            },
            dead_letter_config={"arn": self.parked_queue.arn},
            opts=self._moved("batch-failed-lambda", depends_on=[permission, parked_policy]),
        )
        self.register_outputs(
            {
                "parkedQueueUrl": self.parked_queue.url,
                "batchFailureRuleArn": self.batch_failure_rule.arn,
            }
        )

    def _moved(
        self, key: str, depends_on: list[pulumi.Resource] | None = None
    ) -> pulumi.ResourceOptions:
        """A child that PricingOperations ("ops") created as `ops-<key>`: same deployed
        resource, new parent."""
        return pulumi.ResourceOptions(
            parent=self,
            depends_on=depends_on,
            aliases=[pulumi.Alias(name=f"{FORMER_COMPONENT[0]}-{key}", parent=self._former)],
        )

    def _permissions(self, args: FailureRoutingArgs) -> aws.iam.RolePolicy:
        """Extra inline policies on the paths' roles (each role keeps its own policy too)."""
        consume = iam.statement(
            "ConsumeFailureQueues",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            [q.arn for q in args.failure_queues.values()],
        )
        # SSE-SQS queues: no KMS permission is needed to receive (no customer-managed key).
        lambda_policy = aws.iam.RolePolicy(
            f"{self._name}-lambda-policy",
            role=args.function_role_name,
            name="operations",
            policy=iam.document(consume, put_events_statement(args.account)),
            opts=self._moved("lambda-policy"),
        )
        aws.iam.RolePolicy(
            f"{self._name}-job-policy",
            role=args.job_role_name,
            name="job-events",
            policy=iam.document(put_events_statement(args.account)),
            opts=self._moved("job-policy"),
        )
        return lambda_policy

    def _consume(
        self,
        args: FailureRoutingArgs,
        key: str,
        queue: aws.sqs.Queue,
        lambda_policy: aws.iam.RolePolicy,
        parked: aws.sqs.Queue,
    ) -> None:
        """Redrive to the parked queue after MAX_RECEIVES, and a mapping into the function."""
        concurrency = mapping_concurrency(args.settings)
        aws.sqs.RedrivePolicy(
            f"{self._name}-{key}-redrive",
            queue_url=queue.url,
            redrive_policy=pulumi.Output.json_dumps(
                {"deadLetterTargetArn": parked.arn, "maxReceiveCount": MAX_RECEIVES}
            ),
            opts=self._moved(f"{key}-redrive"),
        )
        aws.lambda_.EventSourceMapping(
            f"{self._name}-{key}-failures-mapping",
            event_source_arn=queue.arn,
            function_name=args.target_arn,
            enabled=True,
            batch_size=FAILURE_BATCH_SIZE,
            maximum_batching_window_in_seconds=0,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config={"maximum_concurrency": concurrency} if concurrency else None,
            # Lambda checks the role may receive from the queue when the mapping is created.
            opts=self._moved(f"{key}-failures-mapping", depends_on=[lambda_policy]),
        )
