"""BatchArrayPath: AWS Batch capacity, job queues (normal and urgent lanes, FIFO or fair share)
and the job definition. Jobs are submitted by the stack's function (admission) and by the
manager job; nothing here listens to S3."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam, shared
from components.image import pull_statements
from components.settings import BATCH_MAX_ATTEMPTS, DEFAULT_SHARE, StackSettings

# Instance role policy (EC2 capacity only). AWS-managed (service-role/, no *FullAccess): it is
# the policy AWS Batch documents for the ECS container instance role. The ECS agent's calls
# (RegisterContainerInstance, Poll, Submit*...) target an ECS cluster that Batch creates and
# names itself, and AWS adds actions to this policy as the agent evolves; a hand-written copy
# would break silently. It holds only the agent's needs (ECS registration, ECR pull, logs); the
# jobs' S3 and Batch access comes from the job role alone.
ECS_INSTANCE_POLICY = "service-role/AmazonEC2ContainerServiceforEC2Role"

# What the Batch jobs read in the input bucket: the uploads of the lanes that run on Batch.
JOB_INPUT_PREFIXES = shared.BATCH_PREFIXES

# Retry strategy: only infrastructure interruptions are retried; anything else (a pricing
# error, a bad file) would fail the same way again. Status reasons AWS Batch reports:
# an EC2 (or EC2 Spot) host that went away: "Host EC2 (instance i-...) terminated.";
# a reclaimed Fargate Spot task: "Your Spot Task was interrupted."
RETRY_STATUS_REASONS = ("Host EC2*", "Your Spot Task was interrupted*")

# A job that can never be placed (bigger than any instance or than maxVcpus) is cancelled
# instead of waiting in RUNNABLE forever.
STUCK_JOB_SECONDS = 3600
# Queue priorities: Batch evaluates a higher-priority queue's jobs first on the compute
# environments two queues share.
NORMAL_PRIORITY = 1
URGENT_PRIORITY = 10
# An infrastructure update (instance type, AMI, Spot/on-demand...) waits for running jobs at
# most this long; AWS Batch allows 1 to 360 minutes.
MAX_UPDATE_WAIT_MINUTES = 360
# The provider waits for a compute environment to be VALID again after an update, and gone
# after a delete, 10 minutes by default. An infrastructure update lets running jobs finish
# first (the update policy), so the waits get that long plus time to replace instances.
INSTANCE_REPLACEMENT_MINUTES = 30
CREATE_TIMEOUT = "30m"
# Fair share: usage decays over an hour (a team that used the queue an hour ago is no longer
# held back), and 25 % of the capacity is held for shares that are idle, raised to the power
# of the active shares (AWS Batch: computeReservation), so an arriving team starts promptly.
SHARE_DECAY_SECONDS = 3600
COMPUTE_RESERVATION = 25
DEFAULT_SHARE_WEIGHT = 1.0
# Fargate: 20 GiB of task storage by default, up to 200 GiB. A job holds a few copies of a file
# of at most maxBytes on disk; more storage is requested only when those could not fit.
FARGATE_DEFAULT_STORAGE_GIB = 20
FARGATE_MAX_STORAGE_GIB = 200
FILE_COPIES_ON_DISK = 4


def update_wait_minutes(job_timeout_seconds: int) -> int:
    """How long an infrastructure update lets running jobs finish: a job's whole attempt
    timeout, within what AWS Batch allows."""
    return max(1, min(MAX_UPDATE_WAIT_MINUTES, math.ceil(job_timeout_seconds / 60)))


def compute_timeouts(job_timeout_seconds: int) -> pulumi.CustomTimeouts:
    """Provider waits for a compute environment: an update or delete of a busy environment
    lasts as long as its running jobs may (the update policy), plus instance replacement."""
    busy = f"{update_wait_minutes(job_timeout_seconds) + INSTANCE_REPLACEMENT_MINUTES}m"
    return pulumi.CustomTimeouts(create=CREATE_TIMEOUT, update=busy, delete=busy)


def fargate_storage_gib(max_bytes: int) -> int | None:
    """Ephemeral storage to request on Fargate, or None when the default suffices."""
    needed = math.ceil(FILE_COPIES_ON_DISK * max_bytes / 2**30) + 1
    if needed <= FARGATE_DEFAULT_STORAGE_GIB:
        return None
    return min(FARGATE_MAX_STORAGE_GIB, needed)


def weight_factor(weight: float) -> float:
    """Batch's weightFactor for a team's weight: Batch gives a share capacity in inverse
    proportion to its factor, the stack's setting in proportion to its weight."""
    return round(1.0 / weight, 4)


def queue_name(name_prefix: str, lane: str, fair_share: bool) -> str:
    """A queue's name carries its scheduling mode: Batch cannot add a scheduling policy to a
    FIFO queue nor remove one, so switching fair share creates a queue of another name, which
    can exist before the old one is deleted."""
    base = f"{name_prefix}-jobs" if lane == "normal" else f"{name_prefix}-{lane}"
    return f"{base}-fs" if fair_share else base


def definition_name(name_prefix: str, replacement_inputs: dict[str, Any]) -> str:
    """The job definition's name carries a digest of the inputs whose change replaces it.

    The provider replaces a definition when `name` or `retry_strategy.evaluate_on_exit`
    changes (terraform-provider-aws internal/service/batch/job_definition.go: ForceNew), and
    its delete deregisters every ACTIVE revision of the name. With one fixed name, a
    create-before-delete replacement would register the new revision and then deregister it
    with the old ones: no ACTIVE revision until the next deploy. A new name per such change
    lets the new definition exist beside the old one; the delete only touches the old name.
    Every non-container input is in the digest, so a provider that forces new on more of them
    is covered too (a rename is always safe, only more frequent)."""
    text = json.dumps(replacement_inputs, sort_keys=True, separators=(",", ":"))
    return f"{name_prefix}-pricing-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class BatchArrayPathArgs:
    settings: StackSettings
    account: iam.AccountInfo
    image_uri: pulumi.Input[str]  # repository@sha256:digest
    repository_arn: pulumi.Input[str]
    input_bucket_arn: pulumi.Input[str]
    result_bucket_name: pulumi.Input[str]
    result_bucket_arn: pulumi.Input[str]


@dataclass(frozen=True)
class _Network:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    default_vpc: bool  # the default VPC's default subnets are public (no NAT gateway)


@dataclass(frozen=True)
class _Capacity:
    normal: aws.batch.ComputeEnvironment
    urgent: aws.batch.ComputeEnvironment | None


class BatchArrayPath(pulumi.ComponentResource):
    """Managed compute environments scaling from zero (EC2, EC2 Spot, Fargate or Fargate Spot;
    an on-demand one for the urgent lane), the normal and urgent job queues (FIFO, or fair share
    with `fairShare`), and one job definition that manager, array child and merge all run."""

    compute_environment: aws.batch.ComputeEnvironment
    urgent_compute_environment: aws.batch.ComputeEnvironment | None
    scheduling_policy: aws.batch.SchedulingPolicy | None
    job_queue: aws.batch.JobQueue
    job_queue_arn: pulumi.Output[str]
    urgent_job_queue: aws.batch.JobQueue | None
    urgent_job_queue_arn: pulumi.Output[str]  # "" without the urgent lane
    queue_arns: list[pulumi.Output[str]]  # every queue that runs pricing work
    job_definition: aws.batch.JobDefinition
    job_definition_name: str
    job_role: aws.iam.Role
    job_role_name: pulumi.Output[str]
    job_role_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: BatchArrayPathArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mc-pricing:components:BatchArrayPath", name, None, opts)
        self._name = name
        self._args = args
        s = args.settings

        network = self._network()
        capacity = self._capacity(network)
        self.compute_environment = capacity.normal
        self.urgent_compute_environment = capacity.urgent
        self.scheduling_policy = self._scheduling_policy() if s.fair_share else None
        policy_arn = self.scheduling_policy.arn if self.scheduling_policy else None
        self.job_queue = self._queue("normal", NORMAL_PRIORITY, [capacity.normal], policy_arn)
        self.job_queue_arn = self.job_queue.arn
        self.urgent_job_queue = None
        self.urgent_job_queue_arn = pulumi.Output.from_input("")
        if capacity.urgent is not None:
            # On-demand first; then the normal lane's capacity (Spot or on-demand), where the
            # urgent queue's higher priority puts its jobs ahead of the normal queue's.
            self.urgent_job_queue = self._queue(
                "urgent", URGENT_PRIORITY, [capacity.urgent, capacity.normal], policy_arn
            )
            self.urgent_job_queue_arn = self.urgent_job_queue.arn
        self.queue_arns = [self.job_queue_arn] + (
            [self.urgent_job_queue_arn] if self.urgent_job_queue else []
        )

        retry_strategy = {
            "attempts": BATCH_MAX_ATTEMPTS,
            "evaluate_on_exits": [
                *({"action": "RETRY", "on_status_reason": r} for r in RETRY_STATUS_REASONS),
                {"action": "EXIT", "on_reason": "*"},
            ],
        }
        definition_inputs = {
            "type": "container",
            "platform_capabilities": ["FARGATE" if s.use_fargate else "EC2"],
            "retry_strategy": retry_strategy,
            "timeout": {"attempt_duration_seconds": s.job_timeout_seconds},
            "propagate_tags": True,
        }
        self.job_definition_name = definition_name(s.name_prefix, definition_inputs)
        log_group = shared.log_group(
            f"{name}-logs",
            log_group_name=f"/aws/batch/{s.name_prefix}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.log_group_name = log_group.name
        execution = self._execution_role(log_group)
        job = self._job_role(self.queue_arns, self.job_definition_name)
        self.job_role = job.role
        self.job_role_name = job.role.name
        self.job_role_arn = job.role.arn
        self.job_definition = aws.batch.JobDefinition(
            f"{name}-definition",
            name=self.job_definition_name,
            container_properties=pulumi.Output.json_dumps(
                self._container(
                    network,
                    log_group,
                    execution.role,
                    job.role,
                    batch_environment(s, self.job_queue_arn, self.urgent_job_queue_arn)
                    | {"JOB_DEFINITION": self.job_definition_name},
                )
            ),
            **definition_inputs,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[execution.policy, job.policy]),
        )
        self.register_outputs(
            {
                "jobQueueArn": self.job_queue_arn,
                "urgentJobQueueArn": self.urgent_job_queue_arn,
                "jobDefinitionArn": self.job_definition.arn,
                "computeEnvironmentArn": self.compute_environment.arn,
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

    def _capacity(self, network: _Network) -> _Capacity:
        """The normal lane's compute environment and, with the urgent lane, an on-demand one."""
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
            normal = self._fargate("fargate", s.capacity_type, s.max_vcpus, security_group, network)
            urgent = (
                self._fargate(
                    "urgent-fargate", "FARGATE", s.urgent_max_vcpus, security_group, network
                )
                if s.urgent_lane
                else None
            )
            return _Capacity(normal, urgent)
        profile, attachment = self._instance_profile()
        # The warm floor (minVcpus) sits where latency matters: the urgent lane's on-demand
        # environment when there is one (Batch scales a queue's first environment before it
        # uses the next, so a floor behind it would not serve urgent jobs), else the normal one.
        normal = self._ec2(
            "compute",
            f"{s.name_prefix}-",
            s.capacity_type,
            s.max_vcpus,
            0 if s.urgent_lane else s.min_vcpus,
            security_group,
            network,
            profile,
            attachment,
        )
        urgent = (
            self._ec2(
                "urgent-compute",
                f"{s.name_prefix}-urgent-",
                "EC2",
                s.urgent_max_vcpus,
                s.min_vcpus,
                security_group,
                network,
                profile,
                attachment,
            )
            if s.urgent_lane
            else None
        )
        return _Capacity(normal, urgent)

    def _fargate(
        self,
        key: str,
        capacity_type: str,
        max_vcpus: int,
        security_group: aws.ec2.SecurityGroup,
        network: _Network,
    ) -> aws.batch.ComputeEnvironment:
        s = self._args.settings
        # The capacity type is in the name: Batch updates only subnets, security groups and
        # vCPU limits of a Fargate environment, and refuses a change of type (FARGATE <->
        # FARGATE_SPOT). A new name prefix makes the provider replace the environment instead;
        # the generated name lets the new one exist, and take over the queue, before the old one
        # is deleted. replace_on_changes says the same to Pulumi for the type itself.
        spot = "-spot" if capacity_type == "FARGATE_SPOT" else ""
        lane = key.removesuffix("fargate")  # "" or "urgent-"
        return aws.batch.ComputeEnvironment(
            f"{self._name}-{key}",
            name_prefix=f"{s.name_prefix}-{lane}fargate{spot}-",
            type="MANAGED",
            compute_resources={
                "type": capacity_type,  # FARGATE or FARGATE_SPOT
                "max_vcpus": max_vcpus,
                "security_group_ids": [security_group.id],
                "subnets": network.subnet_ids,
            },
            # No update_policy: it governs EC2 infrastructure updates (instance replacement);
            # Fargate tasks run on capacity Batch does not replace.
            opts=pulumi.ResourceOptions(
                parent=self,
                replace_on_changes=["computeResources.type"],
                custom_timeouts=compute_timeouts(s.job_timeout_seconds),
            ),
        )

    def _instance_profile(self) -> tuple[aws.iam.InstanceProfile, aws.iam.RolePolicyAttachment]:
        s, name = self._args.settings, self._name
        child = pulumi.ResourceOptions(parent=self)
        instance_role = aws.iam.Role(
            f"{name}-instance-role",
            name=f"{s.name_prefix}-batch-instance",
            description="ECS container instances of the mc-pricing Batch compute environments",
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
        return profile, attachment

    def _ec2(
        self,
        key: str,
        name_prefix: str,
        capacity_type: str,
        max_vcpus: int,
        min_vcpus: int,
        security_group: aws.ec2.SecurityGroup,
        network: _Network,
        profile: aws.iam.InstanceProfile,
        attachment: aws.iam.RolePolicyAttachment,
    ) -> aws.batch.ComputeEnvironment:
        s = self._args.settings
        spot = capacity_type == "SPOT"
        return aws.batch.ComputeEnvironment(
            f"{self._name}-{key}",
            # Generated name: should a change ever force a replacement, the new environment
            # exists (and takes over the queue) before the old one is deleted.
            name_prefix=name_prefix,
            type="MANAGED",
            compute_resources={
                "type": capacity_type,  # EC2 or SPOT
                "allocation_strategy": (
                    "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE"
                ),
                "min_vcpus": min_vcpus,
                "max_vcpus": max_vcpus,
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
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[attachment],
                # The update above can last as long as the running jobs (docs/deploy.md: drain).
                custom_timeouts=compute_timeouts(s.job_timeout_seconds),
            ),
        )

    def _scheduling_policy(self) -> aws.batch.SchedulingPolicy:
        """One share per team (weight factor = 1 / weight) and the default share for uploads
        without a (known) team; the runtime submits every job with one of them."""
        s = self._args.settings
        weights = dict(s.fair_share)
        weights.setdefault(DEFAULT_SHARE, DEFAULT_SHARE_WEIGHT)
        return aws.batch.SchedulingPolicy(
            f"{self._name}-fair-share",
            name=f"{s.name_prefix}-fair-share",
            fair_share_policy={
                "share_decay_seconds": SHARE_DECAY_SECONDS,
                "compute_reservation": COMPUTE_RESERVATION,
                "share_distributions": [
                    {"share_identifier": team, "weight_factor": weight_factor(weight)}
                    for team, weight in sorted(weights.items())
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _queue(
        self,
        lane: str,
        priority: int,
        environments: list[aws.batch.ComputeEnvironment],
        policy_arn: pulumi.Output[str] | None,
    ) -> aws.batch.JobQueue:
        s = self._args.settings
        return aws.batch.JobQueue(
            f"{self._name}-queue" if lane == "normal" else f"{self._name}-{lane}-queue",
            name=queue_name(s.name_prefix, lane, policy_arn is not None),
            state="ENABLED",
            priority=priority,
            scheduling_policy_arn=policy_arn,
            compute_environment_orders=[
                {"order": order, "compute_environment": environment.arn}
                for order, environment in enumerate(environments, start=1)
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

    def _execution_role(self, log_group: aws.cloudwatch.LogGroup) -> iam.ServiceRole:
        s, a = self._args.settings, self._args
        return iam.service_role(
            f"{self._name}-execution",
            role_name=f"{s.name_prefix}-batch-exec",
            service="ecs-tasks.amazonaws.com",
            description="Pulls the mc-pricing image and writes job logs",
            policy_name="pull-and-log",
            statements=[
                *pull_statements(a.repository_arn),
                iam.log_write_statement("Logs", log_group.arn),
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _job_role(self, queue_arns: list[pulumi.Output[str]], definition: str) -> iam.ServiceRole:
        s, a = self._args.settings, self._args
        inp, res = a.input_bucket_arn, a.result_bucket_arn
        return iam.service_role(
            f"{self._name}-job",
            role_name=f"{s.name_prefix}-batch-job",
            service="ecs-tasks.amazonaws.com",
            description="mc-pricing Batch jobs (manager, array child, merge)",
            policy_name="normal-path",
            statements=[
                # docs/protocol.md: input uploads of the Batch lanes read; results under the
                # same prefixes read, write, delete (versions included); list both buckets.
                iam.s3_object_statement("InputRead", inp, JOB_INPUT_PREFIXES, iam.S3_READ_ACTIONS),
                iam.s3_object_statement("Result", res, JOB_INPUT_PREFIXES, iam.S3_RESULT_ACTIONS),
                # Both buckets, no prefix condition: see iam.s3_list_statement.
                iam.s3_list_statement("List", [inp, res]),
                # The manager submits the array and merge jobs to its own lane's queue.
                iam.batch_submit_statement(a.account, queue_arns, definition),
                *iam.batch_job_control_statements(a.account, s.name_prefix),
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _container(
        self,
        network: _Network,
        log_group: aws.cloudwatch.LogGroup,
        execution_role: aws.iam.Role,
        job_role: aws.iam.Role,
        submission: dict[str, pulumi.Input[str]],
    ) -> dict[str, Any]:
        s, a = self._args.settings, self._args
        environment = {
            # Exactly runtime.environment.BATCH_VARIABLES, plus AWS_DEFAULT_REGION for boto3
            # (tests/project/test_contract.py). Batch drops variables whose value is empty
            # (URGENT_JOB_QUEUE, FAIR_SHARE when off): the runtime reads absent as empty.
            "RESULT_BUCKET": a.result_bucket_name,
            **s.pricing_environment(),
            **s.metering_environment(),  # JOB_VCPUS, JOB_MEMORY_MB, CAPACITY
            **submission,  # queues, job definition, fair-share teams, job tag
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
            "jobRoleArn": job_role.arn,
            "executionRoleArn": execution_role.arn,
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
        return container


def batch_environment(
    settings: StackSettings,
    job_queue_arn: pulumi.Input[str],
    urgent_job_queue_arn: pulumi.Input[str],
) -> dict[str, pulumi.Input[str]]:
    """What both the function (admission) and the jobs need to submit Batch jobs
    (docs/protocol.md): the lanes' queues, the fair-share teams, the stack's job tag. The
    job definition's name is added by whoever knows it."""
    return {
        "JOB_QUEUE": job_queue_arn,
        "URGENT_JOB_QUEUE": urgent_job_queue_arn,
        "FAIR_SHARE": ",".join(settings.teams),
        "STACK_NAME": settings.name_prefix,
    }
