"""BatchArrayPath: AWS Batch capacity, queue and job definition, started by EventBridge."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.image import pull_statements
from components.settings import BATCH_MAX_ATTEMPTS, StackSettings

# Instance role policy (EC2 capacity only). AWS-managed (service-role/, no *FullAccess): it is
# the policy AWS Batch documents for the ECS container instance role. The ECS agent's calls
# (RegisterContainerInstance, Poll, Submit*...) target an ECS cluster that Batch creates and
# names itself, and AWS adds actions to this policy as the agent evolves; a hand-written copy
# would break silently. It holds only the agent's needs (ECS registration, ECR pull, logs); the
# jobs' S3 and Batch access comes from the job role alone.
ECS_INSTANCE_POLICY = "service-role/AmazonEC2ContainerServiceforEC2Role"

# The normal path starts on an S3 "Object Created" event for `normal/` keys ending in ".csv" in
# any letter case (EventBridge wildcards are case-sensitive: one pattern per spelling).
NORMAL_PREFIX = "normal/"
NORMAL_KEY_WILDCARDS = [f"{NORMAL_PREFIX}*{suffix}" for suffix in shared.CSV_SUFFIXES]
# EventBridge does not escape the values it inserts into an input template, so a key holding
# `"` or `\` cannot be carried in the SubmitJob parameters as valid JSON (docs/deploy.md). Such
# uploads go straight to the dead-letter queue instead, where the failure path records them.
# In a wildcard pattern a backslash escapes the next character: `\\` is one literal backslash.
# Two patterns of two wildcards each, whatever the suffix (a pattern per ".csv" spelling would
# be 16 patterns, and EventBridge refuses rules it finds too complex): the consumer ignores a
# key that does not end in ".csv", as no job was ever meant for it.
UNSAFE_KEY_CHARACTERS = ('"', "\\\\")
UNSAFE_KEY_WILDCARDS = [f"{NORMAL_PREFIX}*{character}*" for character in UNSAFE_KEY_CHARACTERS]


# Retry strategy: only infrastructure interruptions are retried; anything else (a pricing
# error, a bad file) would fail the same way again. Status reasons AWS Batch reports:
# an EC2 (or EC2 Spot) host that went away: "Host EC2 (instance i-...) terminated.";
# a reclaimed Fargate Spot task: "Your Spot Task was interrupted."
RETRY_STATUS_REASONS = ("Host EC2*", "Your Spot Task was interrupted*")

# A job that can never be placed (bigger than any instance or than maxVcpus) is cancelled
# instead of waiting in RUNNABLE forever.
STUCK_JOB_SECONDS = 3600
# EventBridge keeps retrying a failed SubmitJob for this long before using the failure queue.
EVENT_RETRY_SECONDS = 4 * 3600
EVENT_RETRY_ATTEMPTS = 40
# An infrastructure update (instance type, AMI, Spot/on-demand...) waits for running jobs at
# most this long; AWS Batch allows 1 to 360 minutes.
MAX_UPDATE_WAIT_MINUTES = 360
# Fargate: 20 GiB of task storage by default, up to 200 GiB. A job holds a few copies of a file
# of at most maxBytes on disk; more storage is requested only when those could not fit.
FARGATE_DEFAULT_STORAGE_GIB = 20
FARGATE_MAX_STORAGE_GIB = 200
FILE_COPIES_ON_DISK = 4


def update_wait_minutes(job_timeout_seconds: int) -> int:
    """How long an infrastructure update lets running jobs finish: a job's whole attempt
    timeout, within what AWS Batch allows."""
    return max(1, min(MAX_UPDATE_WAIT_MINUTES, math.ceil(job_timeout_seconds / 60)))


def fargate_storage_gib(max_bytes: int) -> int | None:
    """Ephemeral storage to request on Fargate, or None when the default suffices."""
    needed = math.ceil(FILE_COPIES_ON_DISK * max_bytes / 2**30) + 1
    if needed <= FARGATE_DEFAULT_STORAGE_GIB:
        return None
    return min(FARGATE_MAX_STORAGE_GIB, needed)


@dataclass(frozen=True)
class BatchArrayPathArgs:
    settings: StackSettings
    account: iam.AccountInfo
    image_uri: pulumi.Input[str]  # repository@sha256:digest
    repository_arn: pulumi.Input[str]
    input_bucket_name: pulumi.Input[str]
    input_bucket_arn: pulumi.Input[str]
    result_bucket_name: pulumi.Input[str]
    result_bucket_arn: pulumi.Input[str]


@dataclass(frozen=True)
class _Network:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    default_vpc: bool  # the default VPC's default subnets are public (no NAT gateway)


class BatchArrayPath(pulumi.ComponentResource):
    """Managed compute environment scaling from zero (EC2, EC2 Spot, Fargate or Fargate Spot),
    one job queue, one job definition (manager, array child and merge all run it), and the
    EventBridge rule that submits a manager job for every `normal/` CSV upload."""

    compute_environment: aws.batch.ComputeEnvironment
    job_queue: aws.batch.JobQueue
    job_queue_arn: pulumi.Output[str]
    job_definition: aws.batch.JobDefinition
    job_role: aws.iam.Role
    job_role_name: pulumi.Output[str]
    job_role_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    rule: aws.cloudwatch.EventRule
    unsafe_key_rule: aws.cloudwatch.EventRule
    # EventBridge's dead-letter queue: uploads that could not start a Batch job (.arn, .url, .name)
    dead_letter_queue: aws.sqs.Queue

    def __init__(
        self, name: str, args: BatchArrayPathArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:BatchArrayPath", name, None, opts)
        self._name = name
        self._args = args
        s = args.settings
        # Names are fixed up front: the job definition's own environment names the queue and
        # itself (an ARN output would be circular), and the IAM policies are built from them.
        self.job_queue_name = f"{s.name_prefix}-jobs"
        self.job_definition_name = f"{s.name_prefix}-pricing"
        queue_arn = args.account.arn("batch", f"job-queue/{self.job_queue_name}")
        # SubmitJob names the definition without a revision (the latest active one) or, from
        # the manager, possibly with one: the bare name and ":*" (every revision) cover both.
        definition = f"job-definition/{self.job_definition_name}"
        submit = iam.statement(
            "SubmitJob",
            ["batch:SubmitJob"],
            [
                queue_arn,
                args.account.arn("batch", definition),
                args.account.arn("batch", f"{definition}:*"),
            ],
        )

        network = self._network()
        self.compute_environment = self._compute_environment(network)
        self.job_queue = aws.batch.JobQueue(
            f"{name}-queue",
            name=self.job_queue_name,
            state="ENABLED",
            priority=1,
            compute_environment_orders=[
                {"order": 1, "compute_environment": self.compute_environment.arn}
            ],
            job_state_time_limit_actions=[
                {
                    "reason": reason,
                    "state": "RUNNABLE",
                    "action": "CANCEL",
                    "max_time_seconds": STUCK_JOB_SECONDS,
                }
                for reason in (
                    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.job_queue_arn = self.job_queue.arn
        self.job_definition = self._job_definition(submit, network)
        self.rule, self.unsafe_key_rule = self._trigger(submit)
        self.register_outputs(
            {
                "jobQueueArn": self.job_queue_arn,
                "jobDefinitionArn": self.job_definition.arn,
                "computeEnvironmentArn": self.compute_environment.arn,
                "ruleArn": self.rule.arn,
                "deadLetterQueueUrl": self.dead_letter_queue.url,
                "jobRoleArn": self.job_role_arn,
            }
        )

    def _network(self) -> _Network:
        """VPC and subnets: from config, or the region's default VPC and its default subnets."""
        s = self._args.settings
        if s.vpc_id:
            if s.subnet_ids:
                return _Network(s.vpc_id, list(s.subnet_ids), default_vpc=False)
            subnets = aws.ec2.get_subnets_output(filters=[{"name": "vpc-id", "values": [s.vpc_id]}])
            return _Network(s.vpc_id, subnets.ids, default_vpc=False)
        vpc_id = aws.ec2.get_vpc_output(default=True).id
        subnets = aws.ec2.get_subnets_output(
            filters=[
                {"name": "vpc-id", "values": [vpc_id]},
                {"name": "default-for-az", "values": ["true"]},
            ]
        )
        return _Network(vpc_id, subnets.ids, default_vpc=True)

    def _compute_environment(self, network: _Network) -> aws.batch.ComputeEnvironment:
        s, name = self._args.settings, self._name
        child = pulumi.ResourceOptions(parent=self)
        # No inbound rule at all; outbound HTTPS only (ECS, ECR, S3, Batch, CloudWatch Logs).
        # DNS (the VPC resolver), NTP and instance/task metadata are not filtered by security
        # groups.
        security_group = aws.ec2.SecurityGroup(
            f"{name}-instances",
            name_prefix=f"{s.name_prefix}-batch-",
            description="mc-pricing Batch instances: egress HTTPS only",
            vpc_id=network.vpc_id,
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "ipv6_cidr_blocks": ["::/0"],
                    "description": "HTTPS to AWS APIs",
                }
            ],
            opts=child,
        )
        if s.use_fargate:
            # A separate resource: EC2 and Fargate environments cannot be updated into each
            # other, so switching useFargate creates the new one, moves the queue to it, then
            # deletes the old one (docs/deploy.md: switching capacity safely).
            return aws.batch.ComputeEnvironment(
                f"{name}-fargate",
                name_prefix=f"{s.name_prefix}-fargate-",
                type="MANAGED",
                compute_resources={
                    "type": s.capacity_type,  # FARGATE or FARGATE_SPOT
                    "max_vcpus": s.max_vcpus,
                    "security_group_ids": [security_group.id],
                    "subnets": network.subnet_ids,
                },
                # No update_policy: it governs EC2 infrastructure updates (instance
                # replacement); Fargate tasks run on capacity Batch does not replace.
                opts=child,
            )

        instance_role = aws.iam.Role(
            f"{name}-instance-role",
            name=f"{s.name_prefix}-batch-instance",
            description="ECS container instances of the mc-pricing Batch compute environment",
            assume_role_policy=iam.service_trust_policy("ec2.amazonaws.com"),
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-instance-policy",
            role=instance_role.name,
            policy_arn=self._args.account.managed_policy_arn(ECS_INSTANCE_POLICY),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-instance-profile",
            name=f"{s.name_prefix}-batch-instance",
            role=instance_role.name,
            opts=child,
        )
        spot = s.use_spot
        return aws.batch.ComputeEnvironment(
            f"{name}-compute",
            # Generated name: should a change ever force a replacement, the new environment
            # exists (and takes over the queue) before the old one is deleted.
            name_prefix=f"{s.name_prefix}-",
            type="MANAGED",
            compute_resources={
                "type": s.capacity_type,  # EC2 or SPOT
                "allocation_strategy": (
                    "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE"
                ),
                "min_vcpus": 0,
                "max_vcpus": s.max_vcpus,
                "instance_types": s.instance_families,
                "instance_role": profile.arn,
                "security_group_ids": [security_group.id],
                "subnets": network.subnet_ids,
                # AL2023 ECS-optimized AMI, x86_64 or arm64 to match the instance types
                # (AL2 is reaching end of support; AL2023 AMIs launch IMDSv2-only).
                "ec2_configurations": [{"image_type": "ECS_AL2023"}],
                "tags": {"Name": f"{s.name_prefix}-batch", "project": s.project},
            },
            # With the service-linked role and these allocation strategies, a change of useSpot,
            # architecture (instance types) or AMI is an in-place infrastructure update: Batch
            # replaces the instances. Running jobs may finish within their attempt timeout
            # instead of Batch's default 30 minutes, and are not terminated early.
            update_policy={
                "job_execution_timeout_minutes": update_wait_minutes(s.job_timeout_seconds),
                "terminate_jobs_on_update": False,
            },
            # No service_role: Batch uses its service-linked role AWSServiceRoleForBatch.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
        )

    def _job_definition(self, submit: dict, network: _Network) -> aws.batch.JobDefinition:
        s, a, name = self._args.settings, self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        log_group = shared.log_group(
            f"{name}-logs", log_group_name=f"/aws/batch/{s.name_prefix}", opts=child
        )
        self.log_group_name = log_group.name
        execution = iam.service_role(
            f"{name}-execution",
            role_name=f"{s.name_prefix}-batch-exec",
            service="ecs-tasks.amazonaws.com",
            description="Pulls the mc-pricing image and writes job logs",
            policy_name="pull-and-log",
            statements=[
                *pull_statements(a.repository_arn),
                iam.log_write_statement("Logs", log_group.arn),
            ],
            opts=child,
        )
        inp, res = a.input_bucket_arn, a.result_bucket_arn
        job = iam.service_role(
            f"{name}-job",
            role_name=f"{s.name_prefix}-batch-job",
            service="ecs-tasks.amazonaws.com",
            description="mc-pricing Batch jobs (manager, array child, merge)",
            policy_name="normal-path",
            statements=[
                # docs/protocol.md: input normal/* read; result normal/* read, write, delete
                # (versions included); list both buckets; SubmitJob on this queue and job
                # definition. No batch:TagResource: the manager's SubmitJob carries no tags
                # (propagateTags copies the definition's tags to the ECS tasks on Batch's side).
                iam.s3_object_statement("InputRead", inp, [NORMAL_PREFIX], iam.S3_READ_ACTIONS),
                iam.s3_object_statement("Result", res, [NORMAL_PREFIX], iam.S3_RESULT_ACTIONS),
                # Both buckets, no prefix condition: see iam.s3_list_statement.
                iam.s3_list_statement("List", [inp, res]),
                submit,
            ],
            opts=child,
        )
        self.job_role = job.role
        self.job_role_name = job.role.name
        self.job_role_arn = job.role.arn

        environment = {
            # Exactly runtime.environment.BATCH_VARIABLES, plus AWS_DEFAULT_REGION for boto3
            # (tests/project/test_contract.py).
            "RESULT_BUCKET": a.result_bucket_name,
            **s.pricing_environment(),
            "JOB_QUEUE": self.job_queue_name,
            "JOB_DEFINITION": self.job_definition_name,
            # ECS on EC2 enforces a job's vCPUs as CPU shares, invisible from inside: say it.
            "PRICING_WORKERS": str(s.job_vcpus),
            # ECS on EC2 does not tell containers their region (Fargate does; set it anyway so
            # both capacity types give the image the same environment).
            "AWS_REGION": s.region,
            "AWS_DEFAULT_REGION": s.region,
        }
        container: dict[str, Any] = {
            "image": a.image_uri,
            # After the image's ENTRYPOINT; filled from the submitted job's parameters.
            "command": ["Ref::S3bucket", "Ref::S3key"],
            "jobRoleArn": job.role.arn,
            "executionRoleArn": execution.role.arn,
            "resourceRequirements": [
                {"type": "VCPU", "value": str(s.job_vcpus)},
                {"type": "MEMORY", "value": str(s.job_memory_mb)},
            ],
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group.name,
                    "awslogs-region": s.region,
                    "awslogs-stream-prefix": "pricing",
                },
            },
        }
        if s.use_fargate:
            container.update(
                {
                    # A task in a public subnet without a public IP cannot reach ECR, S3 or
                    # CloudWatch Logs. The default VPC's subnets are public (no NAT), so it gets
                    # one; subnets of an own VPC must reach AWS through a NAT gateway or VPC
                    # endpoints (README: vpcId/subnetIds) and get none.
                    "networkConfiguration": {
                        "assignPublicIp": "ENABLED" if network.default_vpc else "DISABLED"
                    },
                    "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
                    "runtimePlatform": {
                        "cpuArchitecture": "ARM64" if s.architecture == "arm64" else "X86_64",
                        "operatingSystemFamily": "LINUX",
                    },
                }
            )
            storage = fargate_storage_gib(s.max_bytes)
            if storage is not None:
                container["ephemeralStorage"] = {"sizeInGiB": storage}

        return aws.batch.JobDefinition(
            f"{name}-definition",
            name=self.job_definition_name,
            type="container",
            platform_capabilities=["FARGATE" if s.use_fargate else "EC2"],
            container_properties=pulumi.Output.json_dumps(container),
            retry_strategy={
                "attempts": BATCH_MAX_ATTEMPTS,
                "evaluate_on_exits": [
                    *({"action": "RETRY", "on_status_reason": r} for r in RETRY_STATUS_REASONS),
                    {"action": "EXIT", "on_reason": "*"},
                ],
            },
            timeout={"attempt_duration_seconds": s.job_timeout_seconds},
            propagate_tags=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[execution.policy, job.policy]),
        )

    def _upload_pattern(self, wildcards: list[str]) -> pulumi.Output[str]:
        return pulumi.Output.json_dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [self._args.input_bucket_name]},
                    "object": {"key": [{"wildcard": w} for w in wildcards]},
                },
            }
        )

    def _trigger(self, submit: dict) -> tuple[aws.cloudwatch.EventRule, aws.cloudwatch.EventRule]:
        """EventBridge rules on the default bus: input bucket Object Created `normal/` CSV ->
        SubmitJob of one manager job with parameters S3bucket and S3key; the same for a key that
        cannot be carried in those parameters -> the dead-letter queue directly."""
        s, name = self._args.settings, self._name
        child = pulumi.ResourceOptions(parent=self)
        rule = aws.cloudwatch.EventRule(
            f"{name}-upload-rule",
            name=f"{s.name_prefix}-normal-upload",
            description="normal/ CSV uploads to the mc-pricing input bucket start a Batch job",
            event_pattern=self._upload_pattern(NORMAL_KEY_WILDCARDS),
            opts=child,
        )
        unsafe = aws.cloudwatch.EventRule(
            f"{name}-unsafe-key-rule",
            name=f"{s.name_prefix}-normal-unsafe-key",
            description='normal/ uploads whose key holds " or \\ go to the failure queue',
            event_pattern=self._upload_pattern(UNSAFE_KEY_WILDCARDS),
            opts=child,
        )
        events = iam.service_role(
            f"{name}-events",
            role_name=f"{s.name_prefix}-events-submit",
            service="events.amazonaws.com",
            description="Lets EventBridge submit mc-pricing manager jobs",
            policy_name="submit-manager-job",
            statements=[submit],
            opts=child,
        )
        # Consumed by the fast path's function (the failure path records the job as failed).
        self.dead_letter_queue = shared.failure_queue(
            f"{name}-failures",
            queue_name=f"{s.name_prefix}-normal-failures",
            consumer_timeout_seconds=s.lambda_timeout_seconds,
            opts=child,
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-failures-policy",
            queue_url=self.dead_letter_queue.url,
            policy=iam.document(
                iam.statement(
                    "EventBridgeDeadLetters",
                    ["sqs:SendMessage"],
                    [self.dead_letter_queue.arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={"ArnEquals": {"aws:SourceArn": [rule.arn, unsafe.arn]}},
                )
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-submit-job",
            rule=rule.name,
            arn=self.job_queue.arn,
            role_arn=events.role.arn,
            batch_target={
                # No revision: SubmitJob uses the latest ACTIVE revision, so uploads during a
                # deploy never name a revision that was just deregistered.
                "job_definition": self.job_definition.arn_prefix,
                "job_name": f"{s.name_prefix}-manager",
            },
            input_transformer={
                "input_paths": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
                # Placeholders outside quotes receive the value as a JSON string, quotes
                # included but nothing escaped (hence the unsafe-key rule).
                "input_template": '{"Parameters": {"S3bucket": <bucket>, "S3key": <key>}}',
            },
            dead_letter_config={"arn": self.dead_letter_queue.arn},
            retry_policy={
                "maximum_event_age_in_seconds": EVENT_RETRY_SECONDS,
                "maximum_retry_attempts": EVENT_RETRY_ATTEMPTS,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[events.policy, queue_policy]),
        )
        # The whole S3 event as the message body, as in a dead letter of the rule above (there,
        # SQS message attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE say why).
        aws.cloudwatch.EventTarget(
            f"{name}-unsafe-key-to-failures",
            rule=unsafe.name,
            arn=self.dead_letter_queue.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]),
        )
        return rule, unsafe
