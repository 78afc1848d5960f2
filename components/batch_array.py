"""BatchArrayPath: AWS Batch capacity, queue and job definition, started by EventBridge."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from components.image import pull_statements
from components.settings import BATCH_MAX_ATTEMPTS, LOG_RETENTION_DAYS, StackSettings

# Instance role policy. AWS-managed (service-role/, no *FullAccess): it is the policy AWS Batch
# documents for the ECS container instance role. The ECS agent's calls (RegisterContainerInstance,
# Poll, Submit*...) target an ECS cluster that Batch creates and names itself, and AWS adds
# actions to this policy as the agent evolves; a hand-written copy would break silently.
# It holds only the agent's needs (ECS registration, ECR pull, logs); the jobs' S3 and Batch
# access comes from the job role alone.
ECS_INSTANCE_POLICY = "service-role/AmazonEC2ContainerServiceforEC2Role"

# The normal path starts on an S3 "Object Created" event for these keys (docs/protocol.md).
NORMAL_KEY_WILDCARD = "normal/*.csv"

# A job that can never be placed (bigger than any instance or than maxVcpus) is cancelled
# instead of waiting in RUNNABLE forever.
STUCK_JOB_SECONDS = 3600
# EventBridge keeps retrying a failed SubmitJob for this long before using the failure queue.
EVENT_RETRY_SECONDS = 4 * 3600
EVENT_RETRY_ATTEMPTS = 40
QUEUE_RETENTION_SECONDS = 14 * 24 * 3600


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


class BatchArrayPath(pulumi.ComponentResource):
    """Managed EC2/Spot compute environment scaling from zero, one job queue, one job
    definition (manager, array child and merge all run it), and the EventBridge rule that
    submits a manager job for every `normal/*.csv` upload."""

    job_queue: aws.batch.JobQueue
    job_definition: aws.batch.JobDefinition
    rule: aws.cloudwatch.EventRule

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
        # SubmitJob is authorised on job-definition/<name>:<revision>; ":*" covers every revision.
        definition_arns = args.account.arn("batch", f"job-definition/{self.job_definition_name}:*")
        submit = iam.statement("SubmitJob", ["batch:SubmitJob"], [queue_arn, definition_arns])

        compute = self._compute_environment()
        self.job_queue = aws.batch.JobQueue(
            f"{name}-queue",
            name=self.job_queue_name,
            state="ENABLED",
            priority=1,
            compute_environment_orders=[{"order": 1, "compute_environment": compute.arn}],
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
        self.job_definition = self._job_definition(submit)
        self.rule = self._trigger(submit)
        self.register_outputs(
            {
                "jobQueueArn": self.job_queue.arn,
                "jobDefinitionArn": self.job_definition.arn,
                "computeEnvironmentArn": compute.arn,
                "ruleArn": self.rule.arn,
            }
        )

    def _network(self) -> tuple[pulumi.Input[str], pulumi.Input[list[str]]]:
        """VPC and subnets: from config, or the region's default VPC and its default subnets."""
        s = self._args.settings
        if s.vpc_id:
            if s.subnet_ids:
                return s.vpc_id, list(s.subnet_ids)
            subnets = aws.ec2.get_subnets_output(filters=[{"name": "vpc-id", "values": [s.vpc_id]}])
            return s.vpc_id, subnets.ids
        vpc_id = aws.ec2.get_vpc_output(default=True).id
        subnets = aws.ec2.get_subnets_output(
            filters=[
                {"name": "vpc-id", "values": [vpc_id]},
                {"name": "default-for-az", "values": ["true"]},
            ]
        )
        return vpc_id, subnets.ids

    def _compute_environment(self) -> aws.batch.ComputeEnvironment:
        s, name = self._args.settings, self._name
        child = pulumi.ResourceOptions(parent=self)
        vpc_id, subnet_ids = self._network()
        # No inbound rule at all; outbound HTTPS only (ECS, ECR, S3, Batch, CloudWatch Logs).
        # DNS, NTP and instance metadata use link-local addresses that security groups ignore.
        security_group = aws.ec2.SecurityGroup(
            f"{name}-instances",
            name_prefix=f"{s.name_prefix}-batch-",
            description="mc-pricing Batch instances: egress HTTPS only",
            vpc_id=vpc_id,
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
            # Generated name: switching useSpot replaces the environment, and the new one must
            # exist (and take over the queue) before the old one is deleted.
            name_prefix=f"{s.name_prefix}-",
            type="MANAGED",
            compute_resources={
                "type": "SPOT" if spot else "EC2",
                "allocation_strategy": (
                    "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE"
                ),
                "min_vcpus": 0,
                "max_vcpus": s.max_vcpus,
                "instance_types": s.instance_families,
                "instance_role": profile.arn,
                "security_group_ids": [security_group.id],
                "subnets": subnet_ids,
                # AL2023 ECS-optimized AMI, x86_64 or arm64 to match the instance types
                # (AL2 is reaching end of support; AL2023 AMIs launch IMDSv2-only).
                "ec2_configurations": [{"image_type": "ECS_AL2023"}],
                "tags": {"Name": f"{s.name_prefix}-batch", "project": s.project},
            },
            # No service_role: Batch uses its service-linked role AWSServiceRoleForBatch.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
        )

    def _job_definition(self, submit: dict) -> aws.batch.JobDefinition:
        s, a, name = self._args.settings, self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/batch/{s.name_prefix}",
            retention_in_days=LOG_RETENTION_DAYS,
            opts=child,
        )
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
        job = iam.service_role(
            f"{name}-job",
            role_name=f"{s.name_prefix}-batch-job",
            service="ecs-tasks.amazonaws.com",
            description="mc-pricing Batch jobs (manager, array child, merge)",
            policy_name="normal-path",
            statements=[
                # docs/protocol.md: input normal/* read; result normal/* read, write, delete,
                # list with prefix normal/; SubmitJob on this queue and job definition.
                # (Listing the same prefix makes S3 answer 404, not 403, for a missing key.)
                *iam.s3_prefix_statements(
                    "InputRead",
                    a.input_bucket_arn,
                    "normal/",
                    ["s3:GetObject", "s3:GetObjectVersion"],
                    list_prefix=True,
                ),
                *iam.s3_prefix_statements(
                    "Result",
                    a.result_bucket_arn,
                    "normal/",
                    ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                    list_prefix=True,
                ),
                submit,
            ],
            opts=child,
        )
        environment = {
            "RESULT_BUCKET": a.result_bucket_name,
            **s.pricing_environment(),
            "JOB_QUEUE": self.job_queue_name,
            "JOB_DEFINITION": self.job_definition_name,
            # ECS on EC2 enforces a job's vCPUs as CPU shares, invisible from inside: say it.
            "PRICING_WORKERS": str(s.job_vcpus),
            # Unlike Lambda and Fargate, ECS on EC2 does not tell containers their region.
            "AWS_REGION": s.region,
            "AWS_DEFAULT_REGION": s.region,
        }
        container = {
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
        return aws.batch.JobDefinition(
            f"{name}-definition",
            name=self.job_definition_name,
            type="container",
            platform_capabilities=["EC2"],
            container_properties=pulumi.Output.json_dumps(container),
            retry_strategy={
                "attempts": BATCH_MAX_ATTEMPTS,
                "evaluate_on_exits": [
                    # Spot reclaim or instance failure: try again on another host.
                    {"action": "RETRY", "on_status_reason": "Host EC2*"},
                    # Anything else (a pricing error, a bad file) would fail the same way again.
                    {"action": "EXIT", "on_reason": "*"},
                ],
            },
            timeout={"attempt_duration_seconds": s.job_timeout_seconds},
            propagate_tags=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[execution.policy, job.policy]),
        )

    def _trigger(self, submit: dict) -> aws.cloudwatch.EventRule:
        """EventBridge rule on the default bus: input bucket Object Created normal/*.csv ->
        SubmitJob of one manager job with parameters S3bucket and S3key."""
        s, a, name = self._args.settings, self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        rule = aws.cloudwatch.EventRule(
            f"{name}-upload-rule",
            name=f"{s.name_prefix}-normal-upload",
            description="normal/*.csv uploads to the mc-pricing input bucket start a Batch job",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {
                        "bucket": {"name": [a.input_bucket_name]},
                        "object": {"key": [{"wildcard": NORMAL_KEY_WILDCARD}]},
                    },
                }
            ),
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
        failures = aws.sqs.Queue(
            f"{name}-failures",
            name=f"{s.name_prefix}-normal-failures",
            sqs_managed_sse_enabled=True,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            opts=child,
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-failures-policy",
            queue_url=failures.url,
            policy=iam.document(
                iam.statement(
                    "EventBridgeDeadLetters",
                    ["sqs:SendMessage"],
                    [failures.arn],
                    principal={"Service": "events.amazonaws.com"},
                    condition={"ArnEquals": {"aws:SourceArn": rule.arn}},
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
                "job_definition": self.job_definition.arn,
                "job_name": f"{s.name_prefix}-manager",
            },
            input_transformer={
                "input_paths": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
                # Placeholders outside quotes are replaced by JSON strings (quotes included).
                "input_template": '{"Parameters": {"S3bucket": <bucket>, "S3key": <key>}}',
            },
            dead_letter_config={"arn": failures.arn},
            retry_policy={
                "maximum_event_age_in_seconds": EVENT_RETRY_SECONDS,
                "maximum_retry_attempts": EVENT_RETRY_ATTEMPTS,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[events.policy, queue_policy]),
        )
        return rule
