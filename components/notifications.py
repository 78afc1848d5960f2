"""InputNotifications: how input-bucket uploads reach the stack's function. The bucket's one
S3 notification configuration (fast/ CSV uploads), and the EventBridge rules that hand the
Batch lanes' uploads (normal/, urgent/, auto/) to the function, which admits them into Batch."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.buckets import PricingBuckets
from components.settings import StackSettings

# EventBridge keeps retrying a delivery the function refused (throttled, a missing permission)
# this long before the dead-letter queue. Once Lambda accepted an event (EventBridge invokes
# asynchronously), the function's own async retries and on-failure queue apply.
EVENT_RETRY_SECONDS = 4 * 3600
EVENT_RETRY_ATTEMPTS = 40
# Where BatchArrayPath kept the upload rule and its dead-letter queue before they moved here.
_FORMER_PARENT = ("normal", "mc-pricing:components:BatchArrayPath")


def upload_wildcards(prefix: str) -> list[str]:
    """EventBridge wildcards for `<prefix>` keys ending in ".csv" in any letter case (wildcards
    are case-sensitive: one per spelling)."""
    return [f"{prefix}*{suffix}" for suffix in shared.CSV_SUFFIXES]


@dataclass(frozen=True)
class InputNotificationsArgs:
    settings: StackSettings
    buckets: PricingBuckets
    target_arn: pulumi.Input[str]  # the function, or its alias
    function_name: pulumi.Input[str]
    target_qualifier: str | None
    # S3 checks it may invoke the function when the configuration is written.
    invoke_permission: aws.lambda_.Permission


class InputNotifications(pulumi.ComponentResource):
    """The input bucket's single notification configuration, and the upload rules.

    S3 keeps one notification configuration per bucket, and a second aws.s3.BucketNotification
    silently replaces the first, so this is the only one the program creates:
    - `fast/` keys ending in `.csv` in any letter case -> the function (one rule per spelling;
      it also fires for the parts the splitter writes under fast/_parts/, by design);
    - `eventbridge=True` sends every event of the bucket to EventBridge, where one rule per
      Batch lane prefix (`normal/`, `urgent/`, `auto/`) selects CSV keys in any letter case and
      invokes the function asynchronously with the "Object Created" event as AWS sends it. The
      function begins the job's status and submits its manager job (with the share identifier
      fair share needs, which EventBridge's Batch target cannot set), or ends it `failed`
      when the lane is off. Deliveries EventBridge gives up on go to `<p>-normal-failures`.
    It is built where the bucket and the function exist, so no component gains a child after
    its constructor returned.
    """

    notification: aws.s3.BucketNotification
    upload_rules: dict[str, aws.cloudwatch.EventRule]  # lane ("normal", ...) -> rule
    dead_letter_queue: aws.sqs.Queue  # upload events EventBridge could not deliver

    def __init__(
        self,
        name: str,
        args: InputNotificationsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mc-pricing:components:InputNotifications", name, None, opts)
        self._name = name
        buckets = args.buckets
        former = shared.sibling_urn(self, _FORMER_PARENT[1], _FORMER_PARENT[0])
        self.notification = aws.s3.BucketNotification(
            f"{name}-input",
            bucket=buckets.input_bucket.id,
            eventbridge=True,
            lambda_functions=[
                {
                    "id": f"fast-path-{index}",
                    "lambda_function_arn": args.target_arn,
                    "events": ["s3:ObjectCreated:*"],
                    "filter_prefix": shared.FAST_PREFIX,
                    "filter_suffix": suffix,
                }
                for index, suffix in enumerate(shared.CSV_SUFFIXES)
            ],
            opts=pulumi.ResourceOptions(
                parent=self,
                # After the bucket's own configuration steps (S3 serialises configuration calls).
                depends_on=[args.invoke_permission, buckets.input_configured],
                # Its first home was PricingBuckets. Without the alias, a deployed stack would get
                # a new resource writing the same configuration, and then the old one's deletion
                # would empty the bucket's notification configuration.
                aliases=[buckets.notification_alias],
            ),
        )
        self.upload_rules = {
            prefix.rstrip("/"): self._rule(args, prefix, former) for prefix in shared.BATCH_PREFIXES
        }
        self.dead_letter_queue, queue_policy = self._dead_letters(
            args, list(self.upload_rules.values()), former
        )
        for lane, rule in self.upload_rules.items():
            self._target(args, lane, rule, self.dead_letter_queue, queue_policy)
        self.register_outputs(
            {
                "eventbridge": self.notification.eventbridge,
                "uploadRuleArns": [r.arn for r in self.upload_rules.values()],
                "deadLetterQueueUrl": self.dead_letter_queue.url,
            }
        )

    def _rule(
        self, args: InputNotificationsArgs, prefix: str, former: pulumi.Output[str]
    ) -> aws.cloudwatch.EventRule:
        """Input bucket "Object Created" for `<prefix>` CSV keys. One rule per prefix keeps each
        pattern at eight wildcards (EventBridge limits a pattern's complexity)."""
        lane = prefix.rstrip("/")
        s = args.settings
        # The normal lane's rule was BatchArrayPath's (it submitted the manager job itself):
        # the same rule, now with the function as its target.
        aliases = (
            [pulumi.Alias(name="normal-upload-rule", parent=former)] if lane == "normal" else []
        )
        return aws.cloudwatch.EventRule(
            f"{self._name}-{lane}-upload-rule",
            name=f"{s.name_prefix}-{lane}-upload",
            description=f"{prefix} CSV uploads to the mc-pricing input bucket -> the function",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {
                        "bucket": {"name": [args.buckets.input_bucket.bucket]},
                        "object": {"key": [{"wildcard": w} for w in upload_wildcards(prefix)]},
                    },
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, aliases=aliases),
        )

    def _dead_letters(
        self,
        args: InputNotificationsArgs,
        rules: list[aws.cloudwatch.EventRule],
        former: pulumi.Output[str],
    ) -> tuple[aws.sqs.Queue, aws.sqs.QueuePolicy]:
        """The upload rules' dead-letter queue, consumed by the function (FailureRouting). It
        was BatchArrayPath's: aliased, so a deployed stack keeps the queue (a new queue of the
        same name would be the same queue, which the old resource's deletion would delete) and
        its policy (deleting the old policy would remove the new one's document)."""
        s = args.settings
        queue = shared.failure_queue(
            f"{self._name}-upload-failures",
            queue_name=f"{s.name_prefix}-normal-failures",
            consumer_timeout_seconds=s.lambda_timeout_seconds,
            opts=pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(name="normal-failures", parent=former)]
            ),
        )
        policy = aws.sqs.QueuePolicy(
            f"{self._name}-upload-failures-policy",
            queue_url=queue.url,
            policy=iam.document(
                iam.statement(
                    "EventBridgeDeadLetters",
                    ["sqs:SendMessage"],
                    [queue.arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={"ArnEquals": {"aws:SourceArn": [r.arn for r in rules]}},
                )
            ),
            opts=pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(name="normal-failures-policy", parent=former)]
            ),
        )
        return queue, policy

    def _target(
        self,
        args: InputNotificationsArgs,
        lane: str,
        rule: aws.cloudwatch.EventRule,
        dead_letter_queue: aws.sqs.Queue,
        queue_policy: aws.sqs.QueuePolicy,
    ) -> None:
        permission = aws.lambda_.Permission(
            f"{self._name}-{lane}-upload-invoke",
            action="lambda:InvokeFunction",
            function=args.function_name,
            qualifier=args.target_qualifier,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-{lane}-upload-function",
            rule=rule.name,
            arn=args.target_arn,
            # No input transformer: the function gets the S3 event as AWS sends it, and the SDK
            # escapes any key (the former Batch target's template could not carry `"` or `\`).
            retry_policy={
                "maximum_event_age_in_seconds": EVENT_RETRY_SECONDS,
                "maximum_retry_attempts": EVENT_RETRY_ATTEMPTS,
            },
            dead_letter_config={"arn": dead_letter_queue.arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, queue_policy]),
        )
