"""PricingOperations: failure routing, job events to people, metrics, alarms and a dashboard.

Everything here sits on top of the two paths (FastLambdaPath, BatchArrayPath) and changes
neither: it consumes their failure queues, listens to their Batch queue's events, reads their
log groups and adds permissions to their roles. See docs/operations.md.

Failure routing (all of it ends in the stack's Lambda function, which runs the same image):

- Batch "Job State Change" FAILED events of this stack's queue -> EventBridge rule -> Lambda.
- The fast path's on-failure queue (Lambda async records whose retries are exhausted) and the
  normal path's EventBridge dead-letter queue (uploads that could not start a Batch job) ->
  SQS event source mappings -> Lambda.
- What the Lambda cannot handle either (a message received MAX_RECEIVES times, an event
  EventBridge could not deliver for a day) ends in the "parked" queue: kept, alarmed, never
  consumed automatically, so nothing loops forever and nothing is lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.settings import StackSettings

# --- job events (the runtime's contract, docs/operations.md) --------------------------------
EVENT_SOURCE = "mc-pricing"
EVENT_DETAIL_TYPE = "Pricing Job State Change"
JOB_STATES = ("done", "failed", "superseded", "cancelled")
# AWS Batch job states, in order, for the "Batch jobs by state" metrics.
BATCH_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")

# --- failure routing ------------------------------------------------------------------------
# A failure queue's message that the Lambda received this many times without deleting it
# (its handler failed, or reported it in batchItemFailures) moves to the parked queue. AWS
# recommends at least 5 for Lambda event source mappings, so throttles alone do not park it.
MAX_RECEIVES = 5
# One record per invocation: a record may resume a whole merge, so it gets the full timeout,
# and a record that crashes or times out the function only spends its own receive count
# (with a batch, every record of the batch would be received again).
FAILURE_BATCH_SIZE = 1
# Pollers per failure queue: failure handling never crowds out the fast path's pricing.
FAILURE_CONCURRENCY = 5
# EventBridge -> Lambda (Batch failures) and -> SNS (failed jobs): the maximum retry window.
# Lambda's own async retries and on-failure queue take over once an event is delivered.
TARGET_RETRY_SECONDS = 24 * 3600
TARGET_RETRY_ATTEMPTS = 185
# EventBridge -> CloudWatch Logs (dashboard data only): a shorter window and no dead letters.
LOG_TARGET_RETRY_SECONDS = 3600
LOG_TARGET_RETRY_ATTEMPTS = 20

# --- alarms ---------------------------------------------------------------------------------
ALARM_PERIOD_SECONDS = 300


def job_event_pattern(state: str) -> str:
    """CloudWatch Logs filter pattern for the runtime's terminal-state log line."""
    return f'{{ $.event = "{EVENT_DETAIL_TYPE}" && $.detail.state = "{state}" }}'


def batch_state_pattern(status: str) -> str:
    """CloudWatch Logs filter pattern for a forwarded Batch Job State Change event."""
    return f'{{ $.detail.status = "{status}" }}'


@dataclass(frozen=True)
class PricingOperationsArgs:
    settings: StackSettings
    account: iam.AccountInfo
    input_bucket_name: pulumi.Input[str]
    input_bucket_arn: pulumi.Input[str]
    result_bucket_name: pulumi.Input[str]
    result_bucket_arn: pulumi.Input[str]
    # Fast path (FastLambdaPath)
    function_name: pulumi.Input[str]
    function_arn: pulumi.Input[str]
    function_role_name: pulumi.Input[str]
    function_log_group_name: pulumi.Input[str]
    fast_failure_queue: aws.sqs.Queue  # the Lambda's on-failure destination
    # Normal path (BatchArrayPath)
    job_queue_arn: pulumi.Input[str]
    job_role_name: pulumi.Input[str]
    job_log_group_name: pulumi.Input[str]
    normal_dead_letter_queue: aws.sqs.Queue  # the upload rule's EventBridge dead-letter queue


class PricingOperations(pulumi.ComponentResource):
    """Failure routing into the stack's Lambda, job events by email (`notifyEmail`), metric
    filters, alarms and one dashboard per stack."""

    parked_queue: aws.sqs.Queue
    batch_failure_rule: aws.cloudwatch.EventRule
    alarm_topic: aws.sns.Topic | None
    alarm_topic_arn: pulumi.Output[str] | None
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    dashboard_name: pulumi.Output[str]
    namespace: str

    def __init__(
        self, name: str, args: PricingOperationsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:PricingOperations", name, None, opts)
        self._name = name
        self._args = args
        s = args.settings
        self._prefix = s.name_prefix
        self.namespace = f"{s.project}/{s.name_prefix}"
        self._child = pulumi.ResourceOptions(parent=self)
        self._queues = [args.fast_failure_queue, args.normal_dead_letter_queue]

        self.parked_queue = self._parked_queue()
        lambda_policy = self._permissions()
        self._event_source_mappings(lambda_policy)

        self.alarm_topic, self.alarm_topic_arn = self._topic() if s.notify_email else (None, None)
        self.batch_failure_rule = self._rule(
            "batch-failed",
            "FAILED Batch jobs of this stack's queue -> the pricing Lambda",
            {
                "source": ["aws.batch"],
                "detail-type": ["Batch Job State Change"],
                "detail": {"status": ["FAILED"], "jobQueue": [args.job_queue_arn]},
            },
        )
        rules = [self.batch_failure_rule]
        notify_rule = None
        if self.alarm_topic is not None:
            notify_rule = self._rule(
                "job-failed",
                "Failed pricing jobs of this stack -> email",
                {
                    "source": [EVENT_SOURCE],
                    "detail-type": [EVENT_DETAIL_TYPE],
                    "detail": {"state": ["failed"], "inputBucket": [args.input_bucket_name]},
                },
            )
            rules.append(notify_rule)
        # EventBridge may dead-letter these rules' events into the parked queue, nothing else.
        parked_policy = self._parked_queue_policy([r.arn for r in rules])
        self._batch_failure_target(parked_policy)
        if notify_rule is not None:
            self._failed_job_target(notify_rule, parked_policy)

        self._job_metric_filters()
        batch_states_rule = self._batch_state_log()
        self.alarms = self._alarms()
        if self.alarm_topic is not None:
            self._topic_policy(notify_rule)
        self.dashboard = self._dashboard([*rules, batch_states_rule])
        self.dashboard_name = self.dashboard.dashboard_name
        self.register_outputs(
            {
                "dashboardName": self.dashboard_name,
                "alarmTopicArn": self.alarm_topic_arn,
                "parkedQueueUrl": self.parked_queue.url,
                "batchFailureRuleArn": self.batch_failure_rule.arn,
                "metricNamespace": self.namespace,
            }
        )

    # --- helpers -----------------------------------------------------------------------------
    def _arn(self, service: str, resource: pulumi.Input[str]) -> pulumi.Output[str]:
        """ARN of a regional resource of this account; `resource` may be an Output (a name),
        so the ARN depends on that resource and is known in previews."""
        a = self._args.account
        return pulumi.Output.concat(
            "arn:", a.partition, f":{service}:{a.region}:", a.account_id, ":", resource
        )

    @property
    def _default_bus_arn(self) -> pulumi.Output[str]:
        return self._args.account.arn("events", "event-bus/default")

    def _put_events_statement(self) -> dict[str, Any]:
        """events:PutEvents on the default bus, only for the runtime's own job events."""
        return iam.statement(
            "JobEvents",
            ["events:PutEvents"],
            [self._default_bus_arn],
            condition={
                "StringEquals": {
                    "events:source": EVENT_SOURCE,
                    "events:detail-type": EVENT_DETAIL_TYPE,
                }
            },
        )

    # --- failure routing ---------------------------------------------------------------------
    def _parked_queue(self) -> aws.sqs.Queue:
        sources = [q.arn for q in self._queues]
        return aws.sqs.Queue(
            f"{self._name}-parked",
            name=f"{self._prefix}-parked",
            sqs_managed_sse_enabled=True,
            # Standard queues keep a message's original enqueue time when it is moved to a
            # dead-letter queue: a parked message expires 14 days after it first failed.
            message_retention_seconds=shared.QUEUE_RETENTION_SECONDS,
            # Only the two failure queues may use it as their dead-letter queue.
            redrive_allow_policy=pulumi.Output.json_dumps(
                {"redrivePermission": "byQueue", "sourceQueueArns": sources}
            ),
            opts=self._child,
        )

    def _parked_queue_policy(self, rule_arns: Sequence[pulumi.Input[str]]) -> aws.sqs.QueuePolicy:
        return aws.sqs.QueuePolicy(
            f"{self._name}-parked-policy",
            queue_url=self.parked_queue.url,
            policy=iam.document(
                iam.statement(
                    "EventBridgeDeadLetters",
                    ["sqs:SendMessage"],
                    [self.parked_queue.arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
                )
            ),
            opts=self._child,
        )

    def _rule(self, key: str, description: str, pattern: dict) -> aws.cloudwatch.EventRule:
        """A rule on the default event bus (the one AWS Batch and the runtime publish to)."""
        return aws.cloudwatch.EventRule(
            f"{self._name}-{key}",
            name=f"{self._prefix}-{key}",
            description=description,
            event_pattern=pulumi.Output.json_dumps(pattern),
            opts=self._child,
        )

    def _permissions(self) -> aws.iam.RolePolicy:
        """Extra inline policies on the paths' roles (each role keeps its own policy too)."""
        a = self._args
        consume = iam.statement(
            "ConsumeFailureQueues",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            [q.arn for q in self._queues],
        )
        # SSE-SQS queues: no KMS permission is needed to receive (no customer-managed key).
        lambda_policy = aws.iam.RolePolicy(
            f"{self._name}-lambda-policy",
            role=a.function_role_name,
            name="operations",
            policy=iam.document(consume, self._put_events_statement()),
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._name}-job-policy",
            role=a.job_role_name,
            name="job-events",
            policy=iam.document(self._put_events_statement()),
            opts=self._child,
        )
        return lambda_policy

    def _event_source_mappings(self, lambda_policy: aws.iam.RolePolicy) -> None:
        a, s = self._args, self._args.settings
        scaling = None
        reserved = s.lambda_reserved_concurrency
        concurrency = FAILURE_CONCURRENCY if reserved < 0 else min(FAILURE_CONCURRENCY, reserved)
        if concurrency >= 2:  # AWS's minimum; below it, leave the mapping unlimited
            scaling = {"maximum_concurrency": concurrency}
        for key, queue in (("fast", a.fast_failure_queue), ("normal", a.normal_dead_letter_queue)):
            aws.sqs.RedrivePolicy(
                f"{self._name}-{key}-redrive",
                queue_url=queue.url,
                redrive_policy=pulumi.Output.json_dumps(
                    {"deadLetterTargetArn": self.parked_queue.arn, "maxReceiveCount": MAX_RECEIVES}
                ),
                opts=self._child,
            )
            aws.lambda_.EventSourceMapping(
                f"{self._name}-{key}-failures-mapping",
                event_source_arn=queue.arn,
                function_name=a.function_arn,
                enabled=True,
                batch_size=FAILURE_BATCH_SIZE,
                maximum_batching_window_in_seconds=0,
                function_response_types=["ReportBatchItemFailures"],
                scaling_config=scaling,
                # Lambda checks the role may receive from the queue when the mapping is created.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[lambda_policy]),
            )

    def _batch_failure_target(self, parked_policy: aws.sqs.QueuePolicy) -> None:
        a, rule = self._args, self.batch_failure_rule
        permission = aws.lambda_.Permission(
            f"{self._name}-batch-failed-invoke",
            action="lambda:InvokeFunction",
            function=a.function_name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-batch-failed-lambda",
            rule=rule.name,
            arn=a.function_arn,
            # EventBridge invokes asynchronously: once Lambda accepted the event, the
            # function's async retries and on-failure queue apply. This retry policy covers
            # Lambda refusing the invocation; after a day the event is parked.
            retry_policy={
                "maximum_event_age_in_seconds": TARGET_RETRY_SECONDS,
                "maximum_retry_attempts": TARGET_RETRY_ATTEMPTS,
            },
            dead_letter_config={"arn": self.parked_queue.arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, parked_policy]),
        )

    # --- job events to people ----------------------------------------------------------------
    def _topic(self) -> tuple[aws.sns.Topic, pulumi.Output[str]]:
        # No SSE-KMS: the AWS-managed aws/sns key's policy cannot admit EventBridge and
        # CloudWatch, and the messages (job metadata) leave AWS by email anyway.
        topic = aws.sns.Topic(
            f"{self._name}-notify",
            name=f"{self._prefix}-notify",
            display_name="mc-pricing",
            opts=self._child,
        )
        # The ARN AWS gives the topic, built from its name so it is known in previews.
        arn = self._arn("sns", topic.name)
        aws.sns.TopicSubscription(
            f"{self._name}-notify-email",
            topic=arn,
            protocol="email",
            endpoint=self._args.settings.notify_email,
            opts=self._child,
        )
        return topic, arn

    def _failed_job_target(
        self, rule: aws.cloudwatch.EventRule, parked_policy: aws.sqs.QueuePolicy
    ) -> None:
        template = pulumi.Output.from_input(self._args.result_bucket_name).apply(
            lambda bucket: failed_job_template(self._prefix, bucket)
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-job-failed-email",
            rule=rule.name,
            arn=self.alarm_topic_arn,
            input_transformer={"input_paths": FAILED_JOB_PATHS, "input_template": template},
            retry_policy={
                "maximum_event_age_in_seconds": TARGET_RETRY_SECONDS,
                "maximum_retry_attempts": TARGET_RETRY_ATTEMPTS,
            },
            dead_letter_config={"arn": self.parked_queue.arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[parked_policy]),
        )

    def _topic_policy(self, notify_rule: aws.cloudwatch.EventRule | None) -> None:
        assert self.alarm_topic is not None and self.alarm_topic_arn is not None
        a = self._args
        statements = [
            iam.statement(
                "AlarmsPublish",
                ["sns:Publish"],
                [self.alarm_topic_arn],
                principal={"Service": "cloudwatch.amazonaws.com"},
                condition={
                    "ArnEquals": {"aws:SourceArn": list(self._alarm_arns.values())},
                    "StringEquals": {"aws:SourceAccount": a.account.account_id},
                },
            )
        ]
        if notify_rule is not None:
            statements.insert(
                0,
                iam.statement(
                    "FailedJobEventsPublish",
                    ["sns:Publish"],
                    [self.alarm_topic_arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={"ArnEquals": {"aws:SourceArn": notify_rule.arn}},
                ),
            )
        aws.sns.TopicPolicy(
            f"{self._name}-notify-policy",
            arn=self.alarm_topic_arn,
            policy=iam.document(*statements),
            opts=self._child,
        )

    # --- metrics -----------------------------------------------------------------------------
    def _metric_filter(
        self,
        resource_name: str,
        log_group_name: pulumi.Input[str],
        pattern: str,
        metric: str,
        value: str = "1",
    ) -> None:
        aws.cloudwatch.LogMetricFilter(
            f"{self._name}-filter-{resource_name}",
            name=f"{self._prefix}-{resource_name}",
            log_group_name=log_group_name,
            pattern=pattern,
            metric_transformation={
                "namespace": self.namespace,
                "name": metric,
                "value": value,
                "unit": "Count",
            },
            opts=self._child,
        )

    def _job_metric_filters(self) -> None:
        """The same metrics from both paths' log groups: the runtime logs one terminal-state
        line per job, on whichever path ends it (CloudWatch adds the two sources up)."""
        a = self._args
        for path, group in (("fast", a.function_log_group_name), ("normal", a.job_log_group_name)):
            for state in JOB_STATES:
                self._metric_filter(
                    f"{path}-jobs-{state}", group, job_event_pattern(state), JOB_METRICS[state]
                )
            done = job_event_pattern("done")
            self._metric_filter(f"{path}-rows-priced", group, done, "RowsPriced", "$.detail.rows")
            self._metric_filter(
                f"{path}-rows-with-errors", group, done, "RowsWithErrors", "$.detail.rowsWithErrors"
            )

    def _batch_state_log(self) -> aws.cloudwatch.EventRule:
        """Every Batch Job State Change of this queue, as JSON in a log group, counted per
        status: the dashboard's "Batch jobs by state" (AWS/Batch publishes no such metric)."""
        a = self._args
        # /aws/events/ is the prefix EventBridge's own console uses for log targets.
        group = shared.log_group(
            f"{self._name}-batch-events",
            log_group_name=f"/aws/events/{self._prefix}-batch-jobs",
            opts=self._child,
        )
        rule = self._rule(
            "batch-states",
            "Batch Job State Change events of this stack's queue -> CloudWatch Logs",
            {
                "source": ["aws.batch"],
                "detail-type": ["Batch Job State Change"],
                "detail": {"jobQueue": [a.job_queue_arn]},
            },
        )
        streams = pulumi.Output.concat(group.arn, ":*")
        principal = {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]}
        # CloudWatch Logs resource policy (EventBridge log targets use no IAM role). The rule
        # condition is only evaluated for PutLogEvents, so CreateLogStream carries none.
        policy = aws.cloudwatch.LogResourcePolicy(
            f"{self._name}-batch-events-policy",
            policy_name=f"{self._prefix}-batch-events",
            policy_document=iam.document(
                iam.statement(
                    "EventBridgeCreateStream",
                    ["logs:CreateLogStream"],
                    [streams],
                    principal=principal,
                ),
                iam.statement(
                    "EventBridgePutEvents",
                    ["logs:PutLogEvents"],
                    [streams],
                    principal=principal,
                    condition={"ArnEquals": {"aws:SourceArn": rule.arn}},
                ),
            ),
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-batch-states-logs",
            rule=rule.name,
            arn=group.arn,
            retry_policy={
                "maximum_event_age_in_seconds": LOG_TARGET_RETRY_SECONDS,
                "maximum_retry_attempts": LOG_TARGET_RETRY_ATTEMPTS,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        for status in BATCH_STATES:
            self._metric_filter(
                f"batch-{status.lower()}",
                group.name,
                batch_state_pattern(status),
                batch_metric(status),
            )
        self.batch_events_log_group = group
        return rule

    # --- alarms ------------------------------------------------------------------------------
    def _alarms(self) -> dict[str, aws.cloudwatch.MetricAlarm]:
        a = self._args
        specs: dict[str, dict[str, Any]] = {
            "fast-failures": {
                "description": "Fast-path events whose Lambda retries were exhausted arrived "
                "in the on-failure queue (the Lambda consumes them: see the job's status).",
                "namespace": "AWS/SQS",
                "metric_name": "NumberOfMessagesSent",
                "dimensions": {"QueueName": a.fast_failure_queue.name},
                "statistic": "Sum",
            },
            "normal-failures": {
                "description": "Uploads that could not start a Batch job (SubmitJob kept "
                "failing, or a key the job's parameters cannot carry) arrived in the normal "
                "path's failure queue (the Lambda consumes them and fails the job).",
                "namespace": "AWS/SQS",
                "metric_name": "NumberOfMessagesSent",
                "dimensions": {"QueueName": a.normal_dead_letter_queue.name},
                "statistic": "Sum",
            },
            "parked": {
                "description": "Messages nobody could handle are parked: inspect and redrive "
                "them (docs/operations.md).",
                "namespace": "AWS/SQS",
                "metric_name": "ApproximateNumberOfMessagesVisible",
                "dimensions": {"QueueName": self.parked_queue.name},
                "statistic": "Maximum",
            },
            "lambda-errors": {
                "description": "The pricing Lambda reported errors (each is retried).",
                "namespace": "AWS/Lambda",
                "metric_name": "Errors",
                "dimensions": {"FunctionName": a.function_name},
                "statistic": "Sum",
            },
            "lambda-throttles": {
                "description": "The pricing Lambda was throttled (concurrency limit reached).",
                "namespace": "AWS/Lambda",
                "metric_name": "Throttles",
                "dimensions": {"FunctionName": a.function_name},
                "statistic": "Sum",
            },
            "batch-failure-routing": {
                "description": "EventBridge could not deliver a failed Batch job's event to the "
                "Lambda (it keeps retrying for a day, then parks the event).",
                "namespace": "AWS/Events",
                "metric_name": "FailedInvocations",
                "dimensions": {"RuleName": self.batch_failure_rule.name},
                "statistic": "Sum",
            },
            "jobs-failed": {
                "description": "Pricing jobs ended failed (both paths).",
                "namespace": self.namespace,
                "metric_name": JOB_METRICS["failed"],
                "dimensions": None,
                "statistic": "Sum",
            },
        }
        actions = [self.alarm_topic_arn] if self.alarm_topic_arn is not None else []
        alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        self._alarm_arns: dict[str, pulumi.Output[str]] = {}
        for key, spec in specs.items():
            alarm_name = f"{self._prefix}-{key}"
            alarms[key] = aws.cloudwatch.MetricAlarm(
                f"{self._name}-alarm-{key}",
                name=alarm_name,
                alarm_description=spec["description"],
                namespace=spec["namespace"],
                metric_name=spec["metric_name"],
                dimensions=spec["dimensions"],
                statistic=spec["statistic"],
                period=ALARM_PERIOD_SECONDS,
                evaluation_periods=1,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                # No data means nothing arrived, nothing failed.
                treat_missing_data="notBreaching",
                actions_enabled=True,
                alarm_actions=actions,
                opts=self._child,
            )
            self._alarm_arns[key] = self._arn("cloudwatch", f"alarm:{alarm_name}")
        return alarms

    # --- dashboard ---------------------------------------------------------------------------
    def _dashboard(self, rules: Sequence[aws.cloudwatch.EventRule]) -> aws.cloudwatch.Dashboard:
        a, region, ns = self._args, self._args.account.region, self.namespace
        queues = [
            ("fast failures", a.fast_failure_queue.name),
            ("normal failures", a.normal_dead_letter_queue.name),
            ("parked", self.parked_queue.name),
        ]

        def widget(x: int, y: int, w: int, title: str, metrics: list, **extra: Any) -> dict:
            props = {"title": title, "region": region, "view": "timeSeries", "metrics": metrics}
            props.update({"period": ALARM_PERIOD_SECONDS, "stat": "Sum"} | extra)
            return {"type": "metric", "x": x, "y": y, "width": w, "height": 6, "properties": props}

        fn = ["FunctionName", a.function_name]
        body = {
            "widgets": [
                widget(
                    0, 0, 12, "Jobs by final state",
                    [[ns, JOB_METRICS[state], {"label": state}] for state in JOB_STATES],
                ),
                widget(
                    12, 0, 12, "Rows priced",
                    [[ns, "RowsPriced", {"label": "rows"}],
                     [ns, "RowsWithErrors", {"label": "rows with errors"}]],
                ),
                widget(
                    0, 6, 8, "Lambda duration (ms)",
                    [["AWS/Lambda", "Duration", *fn, {"stat": "Average", "label": "average"}],
                     ["AWS/Lambda", "Duration", *fn, {"stat": "p99", "label": "p99"}],
                     ["AWS/Lambda", "Duration", *fn, {"stat": "Maximum", "label": "maximum"}]],
                    stat="Average",
                ),
                widget(
                    8, 6, 8, "Lambda concurrency",
                    [["AWS/Lambda", "ConcurrentExecutions", *fn, {"label": "concurrent"}]],
                    stat="Maximum",
                ),
                widget(
                    16, 6, 8, "Lambda invocations, errors, throttles",
                    [["AWS/Lambda", m, *fn] for m in ("Invocations", "Errors", "Throttles")],
                ),
                widget(
                    0, 12, 12, "Batch jobs by state (transitions)",
                    [[ns, batch_metric(s), {"label": s}] for s in BATCH_STATES],
                ),
                widget(
                    12, 12, 12, "Queue depths (visible messages)",
                    [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q,
                      {"label": label}] for label, q in queues],
                    stat="Maximum",
                ),
                widget(
                    0, 18, 12, "Failure routing: EventBridge deliveries",
                    [["AWS/Events", m, "RuleName", r.name, {"label": f"{m}"}]
                     for r in rules for m in ("Invocations", "FailedInvocations")],
                ),
                {
                    "type": "alarm", "x": 12, "y": 18, "width": 12, "height": 6,
                    "properties": {
                        "title": "Alarms",
                        "alarms": list(self._alarm_arns.values()),
                    },
                },
            ]
        }  # fmt: skip
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            # Dashboard names are global to the account: the prefix carries the region.
            dashboard_name=f"{self._prefix}-operations",
            dashboard_body=pulumi.Output.json_dumps(body),
            opts=self._child,
        )


# Metric name per job state, in the stack's namespace.
JOB_METRICS = {
    "done": "JobsDone",
    "failed": "JobsFailed",
    "superseded": "JobsSuperseded",
    "cancelled": "JobsCancelled",
}


def batch_metric(status: str) -> str:
    return f"BatchJobs{status.title()}"


# Failed-job email: event fields used by the template (missing ones are left empty).
FAILED_JOB_PATHS = {
    "bucket": "$.detail.inputBucket",
    "key": "$.detail.inputKey",
    "path": "$.detail.path",
    "error": "$.detail.error",
    "errorKey": "$.detail.errorKey",
    "parts": "$.detail.parts",
    "token": "$.detail.token",
    "finished": "$.detail.finishedAt",
    "region": "$.detail.region",
}


def failed_job_template(name_prefix: str, result_bucket: str) -> str:
    """An EventBridge string template: one quoted string per line, placeholders inside the
    quotes; EventBridge delivers the lines as plain text, which SNS mails as the body."""
    lines = [
        f"A pricing job of {name_prefix} failed.",
        "Upload: s3://<bucket>/<key>",
        "Path: <path>, parts: <parts>",
        "Error: <error>",
        f"Status: s3://{result_bucket}/<key>-status.json",
        f"Error object (if any): s3://{result_bucket}/<errorKey>",
        "Job token <token>, finished <finished> in <region>.",
    ]
    return "\n".join(json.dumps(line) for line in lines)
