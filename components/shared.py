"""What several components share: encrypted failure queues, log groups, the CSV spellings."""

from __future__ import annotations

import itertools

import pulumi
import pulumi_aws as aws

# CloudWatch Logs retention for the Lambda and Batch log groups.
LOG_RETENTION_DAYS = 30
# Failure queues keep a message as long as SQS allows, so nothing is lost over a long weekend.
QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
# The failure queues are consumed by the fast path's Lambda (event source mappings). AWS
# requires a queue's visibility timeout to be at least the consuming function's timeout and
# recommends six times it, so that a batch is not redelivered while a retry is still running.
VISIBILITY_TIMEOUT_FACTOR = 6
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600


def case_variants(text: str) -> list[str]:
    """Every upper/lower-case spelling of `text`: ".csv" -> ".csv", ".csV", ... ".CSV" (8)."""
    choices = [sorted({c.lower(), c.upper()}, reverse=True) for c in text]
    return ["".join(chars) for chars in itertools.product(*choices)]


# Uploads ending in ".csv" in any letter case start a path. S3 key filters and EventBridge
# wildcards are case-sensitive, so both triggers list every spelling.
CSV_SUFFIXES = case_variants(".csv")

# The input bucket's first key segments (docs/protocol.md, "Keys"): fast/ is the Lambda path
# (S3 notification); normal/, urgent/ and auto/ are admitted into AWS Batch by the function
# (EventBridge rules); books/ holds standing books that schedules copy into a path, never a job
# by itself.
FAST_PREFIX = "fast/"
BATCH_PREFIXES = ("normal/", "urgent/", "auto/")
BOOKS_PREFIX = "books/"
# Every prefix a job's keys (input, status, results, work objects) can live under.
JOB_PREFIXES = (FAST_PREFIX, *BATCH_PREFIXES)


def sibling_urn(component: pulumi.ComponentResource, type_: str, name: str) -> pulumi.Output[str]:
    """The URN a component of `type_` and `name` has (or had) beside `component`, under the same
    parent: for aliases of resources that moved from it. Derived from the component's own URN,
    so it follows the engine's URN format, whatever that makes of the root stack's type."""

    def swap(urn: str) -> str:
        head, qualified_type, _own_name = urn.rsplit("::", 2)
        parents, _, _own_type = qualified_type.rpartition("$")
        return f"{head}::{parents + '$' if parents else ''}{type_}::{name}"

    return component.urn.apply(swap)


def failure_queue(
    resource_name: str,
    *,
    queue_name: str,
    consumer_timeout_seconds: int,
    opts: pulumi.ResourceOptions,
) -> aws.sqs.Queue:
    """An SQS queue for events that could not be processed: SSE-SQS encrypted, 14 days' retention,
    visibility timeout fit for a Lambda consumer with `consumer_timeout_seconds`."""
    return aws.sqs.Queue(
        resource_name,
        name=queue_name,
        sqs_managed_sse_enabled=True,
        message_retention_seconds=QUEUE_RETENTION_SECONDS,
        visibility_timeout_seconds=min(
            SQS_MAX_VISIBILITY_SECONDS, VISIBILITY_TIMEOUT_FACTOR * consumer_timeout_seconds
        ),
        opts=opts,
    )


def log_group(
    resource_name: str, *, log_group_name: str, opts: pulumi.ResourceOptions
) -> aws.cloudwatch.LogGroup:
    """A log group with the stack's retention, created before whatever writes to it (so the
    service never creates it first, without retention)."""
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=log_group_name,
        retention_in_days=LOG_RETENTION_DAYS,
        opts=opts,
    )
