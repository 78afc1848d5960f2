"""AWS Batch "Batch Job State Change" events: which job of ours failed, and why.

The event's detail is the job as DescribeJobs shows it: the container's environment
(with the runtime's overrides, BATCH_ROLE and JOB_FENCE), the job's parameters (S3bucket,
S3key), ``arrayProperties.index`` for an array child, and the reason of the last attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.environment import AWS_BATCH_JOB_ARRAY_INDEX, CAPACITY, BatchContext, SettingsError
from runtime.protocol.lifecycle import Fence

MANAGER = "manager"
CHILD = "child"
ARRAY = "array"
MERGE = "merge"


@dataclass(frozen=True)
class BatchFailure:
    role: str  # manager | child | array | merge
    input_bucket: str
    input_key: str
    fence: Fence | None  # None: a job submitted without one (not by this runtime)
    index: int | None
    job_id: str  # an array child's is "<array job id>:<index>"
    reason: str
    capacity: str = ""  # the capacity type the job was priced on (CAPACITY), "" unknown
    detail: dict = field(default_factory=dict)  # the job as the event describes it

    @property
    def submitted_as(self) -> str:
        """The id the runtime recorded when it submitted the job (a child's array's)."""
        return self.job_id.partition(":")[0]


def parse(event: dict) -> BatchFailure | None:
    """The failure an event reports, or None for anything else (another state, a job
    that is not ours)."""
    detail = event.get("detail") or {}
    if detail.get("status") != "FAILED":
        return None
    parameters = detail.get("parameters") or {}
    bucket, key = parameters.get("S3bucket"), parameters.get("S3key")
    if not bucket or not key:
        return None
    environment = {
        item.get("name"): item.get("value")
        for item in (detail.get("container") or {}).get("environment") or []
    }
    array = detail.get("arrayProperties") or {}
    if array.get("index") is not None:
        environment[AWS_BATCH_JOB_ARRAY_INDEX] = str(array["index"])
    try:
        job = BatchContext.from_env(environment)
    except SettingsError:
        return None
    try:
        fence = Fence.parse(job.fence) if job.fence else None
    except ValueError:
        return None
    role, index = job.role or MANAGER, job.part_index
    if role == CHILD and array.get("index") is None and array.get("size") is not None:
        role, index = ARRAY, None  # the array's parent fails when a child does
    job_id = str(detail.get("jobId", ""))
    reason = _reason(detail)
    label = {MANAGER: "the manager job", MERGE: "the merge job", ARRAY: "the array job"}.get(
        role, "Batch job"
    )
    return BatchFailure(
        role=role,
        input_bucket=bucket,
        input_key=key,
        fence=fence,
        index=index,
        job_id=job_id,
        reason=f"{label} {job_id} failed: {reason}",
        capacity=str(environment.get(CAPACITY) or ""),
        detail=detail,
    )


def _reason(detail: dict) -> str:
    """The most specific reason Batch gives: the last attempt's, else the job's."""
    reason = str(detail.get("statusReason") or "no reason given")
    attempts = detail.get("attempts") or []
    if attempts:
        last = attempts[-1]
        container = last.get("container") or {}
        specific = container.get("reason") or last.get("statusReason")
        code = container.get("exitCode")
        if specific and specific not in reason:
            reason = f"{reason} ({specific})"
        if code is not None:
            reason = f"{reason}, exit code {code}"
    return reason
