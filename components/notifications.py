"""InputNotifications: the input bucket's one S3 notification configuration."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.buckets import PricingBuckets
from components.shared import CSV_SUFFIXES

# What starts the fast path (docs/protocol.md). S3 key filters are case-sensitive, so each
# spelling of ".csv" (".CSV", ".Csv", ...) gets its own rule. The eight suffixes are not
# suffixes of one another, so the rules do not overlap (S3 refuses overlapping rules for one
# event type).
FAST_PREFIX = "fast/"


@dataclass(frozen=True)
class InputNotificationsArgs:
    buckets: PricingBuckets
    function_arn: pulumi.Input[str]
    # S3 checks it may invoke the function when the configuration is written.
    invoke_permission: aws.lambda_.Permission


class InputNotifications(pulumi.ComponentResource):
    """The input bucket's single notification configuration, carrying both paths' triggers.

    S3 keeps one notification configuration per bucket, and a second aws.s3.BucketNotification
    silently replaces the first, so this is the only one the program creates:
    - the fast path: `fast/` keys ending in `.csv` in any letter case -> the Lambda function
      (one rule per spelling; it also fires for the parts the splitter writes under
      fast/_parts/, by design);
    - the normal path: `eventbridge=True` sends every event of the bucket to EventBridge, where
      BatchArrayPath's rule selects `normal/` keys ending in `.csv` in any letter case.
    It is built where both the bucket and the function exist, so no component gains a child
    after its constructor returned.
    """

    notification: aws.s3.BucketNotification

    def __init__(
        self,
        name: str,
        args: InputNotificationsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mc-pricing:components:InputNotifications", name, None, opts)
        buckets = args.buckets
        self.notification = aws.s3.BucketNotification(
            f"{name}-input",
            bucket=buckets.input_bucket.id,
            eventbridge=True,
            lambda_functions=[
                {
                    "id": f"fast-path-{index}",
                    "lambda_function_arn": args.function_arn,
                    "events": ["s3:ObjectCreated:*"],
                    "filter_prefix": FAST_PREFIX,
                    "filter_suffix": suffix,
                }
                for index, suffix in enumerate(CSV_SUFFIXES)
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
        self.register_outputs({"eventbridge": self.notification.eventbridge})
