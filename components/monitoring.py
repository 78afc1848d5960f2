"""PricingMonitoring: job events to people (`notifyEmail`), metric filters, alarms and one
dashboard per stack. It reads the paths' log groups and queues and changes none of them. See
docs/operations.md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.failure_routing import EVENT_DETAIL_TYPE, EVENT_SOURCE, FORMER_COMPONENT
from components.settings import StackSettings

JOB_STATES = ("done", "failed", "superseded", "cancelled")
# AWS Batch job states, in order, for the "Batch jobs by state" metrics.
BATCH_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
# EventBridge -> SNS (failed jobs): the maximum retry window, then the parked queue.
TARGET_RETRY_SECONDS = 24 * 3600
TARGET_RETRY_ATTEMPTS = 185
# EventBridge -> CloudWatch Logs (dashboard data only): a shorter window and no dead letters.
LOG_TARGET_RETRY_SECONDS = 3600
LOG_TARGET_RETRY_ATTEMPTS = 20
ALARM_PERIOD_SECONDS = 300
# The runtime's embedded-metric-format line per job (runtime/planning/metrics.py, mirrored:
# components/ never imports runtime/; tests/project/test_contract.py keeps them equal):
# its namespace, and the dimension sets the cost widgets search.
EMF_NAMESPACE = "McPricing"
EMF_PATH_DIMENSIONS = ("Stack", "Path", "Engine")
EMF_TEAM_DIMENSIONS = ("Stack", "Team")
COST_METRIC = "CostUsd"
DAY_SECONDS = 86400
# Metric name per job state, in the stack's namespace.
JOB_METRICS = {
    "done": "JobsDone",
    "failed": "JobsFailed",
    "superseded": "JobsSuperseded",
    "cancelled": "JobsCancelled",
}
# What each failure queue's alarm says (docs/operations.md, "Alarms").
QUEUE_ALARMS = {
    "fast-failures": "Fast-path events whose Lambda retries were exhausted arrived in the "
    "on-failure queue (the function consumes them: see the job's status).",
    "normal-failures": "Uploads EventBridge could not hand to the function (it kept refusing "
    "them for hours) arrived in the upload dead-letter queue (the function consumes them and "
    "fails the job).",
    "schedule-failures": "Scheduled runs EventBridge Scheduler could not start arrived in the "
    "schedules' dead-letter queue (the function consumes them and fails the run).",
}


def job_event_pattern(state: str) -> str:
    """CloudWatch Logs filter pattern for the runtime's terminal-state log line."""
    return f'{{ $.event = "{EVENT_DETAIL_TYPE}" && $.detail.state = "{state}" }}'


def batch_state_pattern(status: str) -> str:
    """CloudWatch Logs filter pattern for a forwarded Batch Job State Change event."""
    return f'{{ $.detail.status = "{status}" }}'


def batch_metric(status: str) -> str:
    return f"BatchJobs{status.title()}"


def cost_search(stack: str, dimensions: tuple[str, ...]) -> str:
    """A CloudWatch SEARCH of the jobs' estimated cost for this stack, one series per value
    of the dimensions (the jobs' metrics line writes each set): summed per day."""
    schema = ",".join((EMF_NAMESPACE, *dimensions))
    return (
        f'SEARCH(\'{{{schema}}} MetricName="{COST_METRIC}" Stack="{stack}"\', '
        f"'Sum', {DAY_SECONDS})"
    )


def metric_namespace(settings: StackSettings) -> str:
    """The CloudWatch namespace of this stack's own metrics (the metric filters')."""
    return f"{settings.project}/{settings.name_prefix}"


def job_failed_rule_name(settings: StackSettings) -> str:
    """The failed-job email rule's name (notifyEmail); its ARN is known before it exists, so
    the parked queue's policy (FailureRouting, built first) can admit its dead letters."""
    return f"{settings.name_prefix}-job-failed"


@dataclass(frozen=True)
class PricingMonitoringArgs:
    settings: StackSettings
    account: iam.AccountInfo
    input_bucket_name: pulumi.Input[str]
    result_bucket_name: pulumi.Input[str]
    function_name: pulumi.Input[str]
    function_log_group_name: pulumi.Input[str]
    job_log_group_name: pulumi.Input[str]
    job_queue_arns: list[pulumi.Output[str]]
    # Failure queues by alarm key (QUEUE_ALARMS), and the parked queue.
    failure_queues: dict[str, aws.sqs.Queue]
    parked_queue: aws.sqs.Queue
    batch_failure_rule: aws.cloudwatch.EventRule
    # Rules whose deliveries the dashboard shows (besides this component's own).
    delivery_rules: list[aws.cloudwatch.EventRule]


class PricingMonitoring(pulumi.ComponentResource):
    """Failed jobs by email (`notifyEmail`), metric filters, alarms and one dashboard."""

    alarm_topic: aws.sns.Topic | None
    alarm_topic_arn: pulumi.Output[str] | None
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    dashboard_name: pulumi.Output[str]
    namespace: str

    def __init__(
        self, name: str, args: PricingMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:PricingMonitoring", name, None, opts)
        s = args.settings
        # Read-only context for the helpers, fixed before any of them runs.
        self._name = name
        self._args = args
        self._prefix = s.name_prefix
        self._former = shared.sibling_urn(self, FORMER_COMPONENT[1], FORMER_COMPONENT[0])

        alarm_names = {key: f"{self._prefix}-{key}" for key in self._alarm_specs()}
        # The ARNs AWS gives the alarms, from their names (known in previews).
        alarm_arns = [args.account.arn("cloudwatch", f"alarm:{n}") for n in alarm_names.values()]
        self.alarm_topic, self.alarm_topic_arn = (None, None)
        own_rules: list[aws.cloudwatch.EventRule] = []
        if s.notify_email:
            self.alarm_topic, self.alarm_topic_arn = self._topic()
            notify_rule = self._failed_job_email(self.alarm_topic_arn)
            self._topic_policy(self.alarm_topic_arn, notify_rule, alarm_arns)
            own_rules.append(notify_rule)
        self._job_metric_filters()
        own_rules.append(self._batch_state_log())
        self.alarms = self._alarms(alarm_names, self.alarm_topic_arn)
        self.dashboard = self._dashboard([*args.delivery_rules, *own_rules], alarm_arns)
        self.dashboard_name = self.dashboard.dashboard_name
        self.namespace = metric_namespace(s)
        self.register_outputs(
            {
                "dashboardName": self.dashboard_name,
                "alarmTopicArn": self.alarm_topic_arn,
                "metricNamespace": self.namespace,
            }
        )

    def _moved(self, key: str, **extra: Any) -> pulumi.ResourceOptions:
        """A child that PricingOperations ("ops") created as `ops-<key>`: same deployed
        resource, new parent."""
        return pulumi.ResourceOptions(
            parent=self,
            aliases=[pulumi.Alias(name=f"{FORMER_COMPONENT[0]}-{key}", parent=self._former)],
            **extra,
        )

    # --- job events to people ----------------------------------------------------------------
    def _topic(self) -> tuple[aws.sns.Topic, pulumi.Output[str]]:
        # No SSE-KMS: the AWS-managed aws/sns key's policy cannot admit EventBridge and
        # CloudWatch, and the messages (job metadata) leave AWS by email anyway.
        topic = aws.sns.Topic(
            f"{self._name}-notify",
            name=f"{self._prefix}-notify",
            display_name="mc-pricing",
            opts=self._moved("notify"),
        )
        # The ARN AWS gives the topic, built from its name so it is known in previews.
        arn = pulumi.Output.concat(
            "arn:",
            self._args.account.partition,
            f":sns:{self._args.account.region}:",
            self._args.account.account_id,
            ":",
            topic.name,
        )
        aws.sns.TopicSubscription(
            f"{self._name}-notify-email",
            topic=arn,
            protocol="email",
            endpoint=self._args.settings.notify_email,
            opts=self._moved("notify-email"),
        )
        return topic, arn

    def _failed_job_email(self, topic_arn: pulumi.Output[str]) -> aws.cloudwatch.EventRule:
        a = self._args
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-job-failed",
            name=job_failed_rule_name(a.settings),
            description="Failed pricing jobs of this stack -> email",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": [EVENT_SOURCE],
                    "detail-type": [EVENT_DETAIL_TYPE],
                    "detail": {"state": ["failed"], "inputBucket": [a.input_bucket_name]},
                }
            ),
            opts=self._moved("job-failed"),
        )
        template = pulumi.Output.from_input(a.result_bucket_name).apply(
            lambda bucket: failed_job_template(self._prefix, bucket)
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-job-failed-email",
            rule=rule.name,
            arn=topic_arn,
            input_transformer={"input_paths": FAILED_JOB_PATHS, "input_template": template},
            retry_policy={
                "maximum_event_age_in_seconds": TARGET_RETRY_SECONDS,
                "maximum_retry_attempts": TARGET_RETRY_ATTEMPTS,
            },
            # The parked queue's policy admits this rule by its name (FailureRouting).
            dead_letter_config={"arn": a.parked_queue.arn},
            opts=self._moved("job-failed-email"),
        )
        return rule

    def _topic_policy(
        self,
        topic_arn: pulumi.Output[str],
        notify_rule: aws.cloudwatch.EventRule,
        alarm_arns: list[pulumi.Output[str]],
    ) -> None:
        a = self._args
        aws.sns.TopicPolicy(
            f"{self._name}-notify-policy",
            arn=topic_arn,
            policy=iam.document(
                iam.statement(
                    "FailedJobEventsPublish",
                    ["sns:Publish"],
                    [topic_arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={"ArnEquals": {"aws:SourceArn": notify_rule.arn}},
                ),
                iam.statement(
                    "AlarmsPublish",
                    ["sns:Publish"],
                    [topic_arn],
                    principal={"Service": "cloudwatch.amazonaws.com"},
                    condition={
                        "ArnEquals": {"aws:SourceArn": alarm_arns},
                        "StringEquals": {"aws:SourceAccount": a.account.account_id},
                    },
                ),
            ),
            opts=self._moved("notify-policy"),
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
                "namespace": metric_namespace(self._args.settings),
                "name": metric,
                "value": value,
                "unit": "Count",
            },
            opts=self._moved(f"filter-{resource_name}"),
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
        """Every Batch Job State Change of this stack's queues, as JSON in a log group, counted
        per status: the dashboard's "Batch jobs by state" (AWS/Batch publishes no such metric)."""
        a = self._args
        # /aws/events/ is the prefix EventBridge's own console uses for log targets.
        group = shared.log_group(
            f"{self._name}-batch-events",
            log_group_name=f"/aws/events/{self._prefix}-batch-jobs",
            opts=self._moved("batch-events"),
        )
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-batch-states",
            name=f"{self._prefix}-batch-states",
            description="Batch Job State Change events of this stack's queues -> CloudWatch Logs",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.batch"],
                    "detail-type": ["Batch Job State Change"],
                    "detail": {"jobQueue": a.job_queue_arns},
                }
            ),
            opts=self._moved("batch-states"),
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
            opts=self._moved("batch-events-policy"),
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-batch-states-logs",
            rule=rule.name,
            arn=group.arn,
            retry_policy={
                "maximum_event_age_in_seconds": LOG_TARGET_RETRY_SECONDS,
                "maximum_retry_attempts": LOG_TARGET_RETRY_ATTEMPTS,
            },
            opts=self._moved("batch-states-logs", depends_on=[policy]),
        )
        for status in BATCH_STATES:
            self._metric_filter(
                f"batch-{status.lower()}",
                group.name,
                batch_state_pattern(status),
                batch_metric(status),
            )
        return rule

    # --- alarms ------------------------------------------------------------------------------
    def _alarm_specs(self) -> dict[str, dict[str, Any]]:
        a = self._args
        specs: dict[str, dict[str, Any]] = {
            key: {
                "description": QUEUE_ALARMS[key],
                "namespace": "AWS/SQS",
                "metric_name": "NumberOfMessagesSent",
                "dimensions": {"QueueName": queue.name},
                "statistic": "Sum",
            }
            for key, queue in a.failure_queues.items()
        }
        specs |= {
            "parked": {
                "description": "Messages nobody could handle are parked: inspect and redrive "
                "them (docs/operations.md).",
                "namespace": "AWS/SQS",
                "metric_name": "ApproximateNumberOfMessagesVisible",
                "dimensions": {"QueueName": a.parked_queue.name},
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
                "dimensions": {"RuleName": a.batch_failure_rule.name},
                "statistic": "Sum",
            },
            "jobs-failed": {
                "description": "Pricing jobs ended failed (both paths).",
                "namespace": metric_namespace(a.settings),
                "metric_name": JOB_METRICS["failed"],
                "dimensions": None,
                "statistic": "Sum",
            },
        }
        return specs

    def _alarms(
        self, names: dict[str, str], topic_arn: pulumi.Output[str] | None
    ) -> dict[str, aws.cloudwatch.MetricAlarm]:
        actions = [topic_arn] if topic_arn is not None else []
        return {
            key: aws.cloudwatch.MetricAlarm(
                f"{self._name}-alarm-{key}",
                name=names[key],
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
                opts=self._moved(f"alarm-{key}"),
            )
            for key, spec in self._alarm_specs().items()
        }

    # --- dashboard ---------------------------------------------------------------------------
    def _dashboard(
        self,
        rules: Sequence[aws.cloudwatch.EventRule],
        alarm_arns: list[pulumi.Output[str]],
    ) -> aws.cloudwatch.Dashboard:
        a, region = self._args, self._args.account.region
        ns = metric_namespace(a.settings)
        queues = [
            *((key.replace("-", " "), q.name) for key, q in a.failure_queues.items()),
            ("parked", a.parked_queue.name),
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
                    0, 18, 12, "EventBridge deliveries",
                    [["AWS/Events", m, "RuleName", r.name, {"label": f"{m}"}]
                     for r in rules for m in ("Invocations", "FailedInvocations")],
                ),
                {
                    "type": "alarm", "x": 12, "y": 18, "width": 12, "height": 6,
                    "properties": {"title": "Alarms", "alarms": alarm_arns},
                },
                # The jobs' own metrics line (EMF, written by both paths' runtime): the
                # estimated cost per day, stacked by path (and engine), and by team.
                widget(
                    0, 24, 12, "Estimated cost per day by path (USD)",
                    [[{"expression": cost_search(self._prefix, EMF_PATH_DIMENSIONS),
                       "id": "bypath", "label": ""}]],
                    period=DAY_SECONDS, stacked=True,
                ),
                widget(
                    12, 24, 12, "Estimated cost per day by team (USD)",
                    [[{"expression": cost_search(self._prefix, EMF_TEAM_DIMENSIONS),
                       "id": "byteam", "label": ""}]],
                    period=DAY_SECONDS, stacked=True,
                ),
            ]
        }  # fmt: skip
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            # Dashboard names are global to the account: the prefix carries the region.
            dashboard_name=f"{self._prefix}-operations",
            dashboard_body=pulumi.Output.json_dumps(body),
            opts=self._moved("dashboard"),
        )


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
