"""Thin AWS Batch adapter: submit a job's manager, array and merge jobs, and stop them.

Every job carries its attempt's fence (``JOB_FENCE``) and role (``BATCH_ROLE``) in its
environment, so Batch's own state-change events name the attempt they are about; on a
fair-share queue every job carries its share identifier, in SubmitJob and in its environment
(``JOB_SHARE``, which the events and the local emulator see: moto drops the former); a job
of the urgent lane carries the capacity it is metered on (``CAPACITY``, on demand); and
every job carries the stack's tag (``mc-pricing:stack``), the only jobs the stack's roles may
terminate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from runtime.core.manifest import Manifest
from runtime.environment import (
    BATCH_ROLE,
    CAPACITY,
    JOB_FENCE,
    JOB_SHARE,
    PART_INDEXES,
    format_part_indexes,
)
from runtime.protocol.lifecycle import Fence, Plan

log = logging.getLogger(__name__)

ROLE_MANAGER = "manager"
ROLE_CHILD = "child"
ROLE_MERGE = "merge"
STACK_TAG = "mc-pricing:stack"


class BatchQueue:
    """The Batch calls of the protocol, on the lane's queue and the stack's definition."""

    def __init__(
        self,
        job_definition: str,
        default_queue: str,
        client: Any | None = None,
        stack_name: str = "",
        capacities: Mapping[str, str] | None = None,
    ) -> None:
        self.job_definition = job_definition
        self.default_queue = default_queue
        self.stack_name = stack_name
        # queue -> the capacity type its jobs are metered on, where it is not the job
        # definition's CAPACITY (the urgent lane's on-demand capacity)
        self.capacities = dict(capacities or {})
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:  # created on first use: most invocations submit nothing
            self._client = boto3.client(
                "batch", config=Config(retries={"max_attempts": 8, "mode": "standard"})
            )
        return self._client

    def submit_manager(self, fence: Fence, bucket: str, key: str, plan: Plan) -> str:
        return self._submit(
            f"manager-{fence.token}-{fence.attempt}", ROLE_MANAGER, fence, bucket, key, plan
        )

    def submit_parts(
        self, manifest: Manifest, fence: Fence, plan: Plan, parts: list[int] | None
    ) -> dict[str, str]:
        """The pricing job(s) and the merge job that depends on them. ``parts`` (a retry)
        prices only those: child i prices parts[i]. Batch refuses an array of size 1, so a
        single part is one plain job."""
        indexes = sorted(parts) if parts is not None else list(range(manifest.parts))
        extra = {PART_INDEXES: format_part_indexes(indexes)} if parts is not None else {}
        array = self._submit(
            f"price-{fence.token}-{fence.attempt}",
            ROLE_CHILD,
            fence,
            manifest.input_bucket,
            manifest.input_key,
            plan,
            environment=extra,
            arrayProperties={"size": len(indexes)} if len(indexes) > 1 else None,
        )
        return {"array": array, "merge": self._merge(manifest, fence, plan, after=array)}

    def submit_merge(self, manifest: Manifest, fence: Fence, plan: Plan) -> str:
        return self._merge(manifest, fence, plan, after=None)

    def _merge(self, manifest: Manifest, fence: Fence, plan: Plan, after: str | None) -> str:
        return self._submit(
            f"merge-{fence.token}-{fence.attempt}",
            ROLE_MERGE,
            fence,
            manifest.input_bucket,
            manifest.input_key,
            plan,
            dependsOn=[{"jobId": after}] if after else None,
        )

    def _submit(
        self,
        name: str,
        role: str,
        fence: Fence,
        bucket: str,
        key: str,
        plan: Plan,
        environment: dict[str, str] | None = None,
        **options: Any,
    ) -> str:
        variables = {BATCH_ROLE: role, JOB_FENCE: str(fence)}
        if plan.share:
            variables[JOB_SHARE] = plan.share
        if self.capacities.get(plan.queue):
            variables[CAPACITY] = self.capacities[plan.queue]
        variables.update(environment or {})
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": plan.queue or self.default_queue,
            "jobDefinition": self.job_definition,
            "parameters": {"S3bucket": bucket, "S3key": key},
            "containerOverrides": {
                "environment": [{"name": n, "value": v} for n, v in variables.items()]
            },
            **{name: value for name, value in options.items() if value is not None},
        }
        if plan.share:
            request["shareIdentifier"] = plan.share
        if self.stack_name:
            request["tags"] = {STACK_TAG: self.stack_name}
        return self.client.submit_job(**request)["jobId"]

    def terminate(self, job_ids: list[str], reason: str) -> None:
        """TerminateJob stops a job in any state (a queued one never starts); a job that
        finished or that Batch no longer knows needs nothing."""
        for job_id in job_ids:
            try:
                self.client.terminate_job(jobId=job_id, reason=reason[:256])
            except ClientError as exc:
                log.warning("could not stop Batch job %s: %s", job_id, exc)
