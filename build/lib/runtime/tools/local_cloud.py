"""An embedded AWS for ``simulate``, the job commands, the client's tests and developers:
moto's server on 127.0.0.1 (S3, EventBridge, SQS, and Batch with ``use_docker: False`` so
submitted jobs are only recorded; the emulator runs them).

The local stack: versioned input and result buckets, the normal lane's queue (priority 1)
and the urgent lane's (priority 10), as the stack's ``components/batch_array.py``, on one
compute environment, and the job definition. The queues carry no scheduling policy: moto's
SubmitJob drops ``shareIdentifier``, so the emulator takes the fair-share weights from the
simulation and each job's share from its ``JOB_SHARE`` variable.

The runtime reaches it through ``AWS_ENDPOINT_URL``, which boto3 honours itself, so the
code under test is exactly the code that runs in the cloud.

Server mode, for ``simulate --endpoint-url`` and ``jobs --endpoint-url`` from other
terminals: ``python -m runtime.tools.local_cloud [--port N]`` serves the local stack until
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import boto3

from runtime.tools.faults import BATCH_ATTEMPTS

REGION = "us-east-1"
INPUT_BUCKET = "pricing-input-local"
RESULT_BUCKET = "pricing-result-local"
JOB_QUEUE = "pricing-local"
URGENT_JOB_QUEUE = "pricing-local-urgent"
# The stack's queue priorities (components/batch_array.py): Batch starts a higher-priority
# queue's jobs first on the capacity both queues share.
QUEUE_PRIORITIES = {JOB_QUEUE: 1, URGENT_JOB_QUEUE: 10}
# The lane each queue serves, for what the emulator shows.
QUEUE_LANES = {JOB_QUEUE: "normal", URGENT_JOB_QUEUE: "urgent"}
JOB_DEFINITION = "pricing-local"
FUNCTION_NAME = "pricing-local-fast"
# The emulator's own observer of job events (not part of the deployed stack): a rule on
# the runtime's events, targeting a queue the emulator reads.
JOB_EVENTS = "pricing-local-job-events"
# The job definition's retry strategy (components/batch_array.py): these status reasons (a
# host reclaimed, Spot or not) are retried, up to BATCH_ATTEMPTS attempts; anything else exits.
RETRY_STATUS_REASONS = ("Host EC2*", "Your Spot Task was interrupted*")
RETRY_STRATEGY = {
    "attempts": BATCH_ATTEMPTS,
    "evaluateOnExit": [
        *({"onStatusReason": reason, "action": "retry"} for reason in RETRY_STATUS_REASONS),
        {"onReason": "*", "action": "exit"},
    ],
}

# moto accepts any credentials; these only keep boto3 from looking for real ones.
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION,
}


class LocalCloudUnavailable(RuntimeError):
    """moto is a development dependency; the image does not carry it."""


@dataclass(frozen=True)
class LocalCloud:
    endpoint: str

    @property
    def environment(self) -> dict[str, str]:
        """What a process needs to talk to this cloud instead of AWS."""
        return {**_FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            aws_session_token="local",
        )

    def create_stack(self) -> None:
        """The local stack, once: a second simulation against the same server reuses it."""
        s3 = self.client("s3")
        if INPUT_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            create_stack(s3, self.client("iam"), self.client("batch"))
        self.job_events_queue()

    def job_events_queue(self) -> str:
        """The URL of the queue that receives every job event (created on first use)."""
        sqs, events = self.client("sqs"), self.client("events")
        url = sqs.create_queue(QueueName=JOB_EVENTS)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=JOB_EVENTS,
            EventPattern='{"source": ["mc-pricing"], "detail-type": ["Pricing Job State Change"]}',
            State="ENABLED",
        )
        events.put_targets(Rule=JOB_EVENTS, Targets=[{"Id": "emulator", "Arn": arn}])
        return url


def create_stack(s3, iam, batch) -> None:
    """The deployed stack's buckets, job queues (normal and urgent) and job definition, in a
    local AWS."""
    for bucket in (INPUT_BUCKET, RESULT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    for bucket in (INPUT_BUCKET, RESULT_BUCKET):  # as the stack: both buckets versioned
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    role = iam.create_role(
        RoleName="pricing-local-batch",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
    )["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="pricing-local", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    for queue, priority in QUEUE_PRIORITIES.items():
        batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=priority,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
            ],
        )
    batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": "pricing:local",
            "command": ["Ref::S3bucket", "Ref::S3key"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
        },
    )


def job_environment(job: dict) -> dict[str, str]:
    """The environment a described Batch job's container gets (overrides included)."""
    return {e["name"]: e["value"] for e in job.get("container", {}).get("environment", [])}


def job_queues(batch) -> list[dict]:
    """The local AWS's job queues, described (name, ARN, priority)."""
    return [
        queue
        for page in batch.get_paginator("describe_job_queues").paginate()
        for queue in page["jobQueues"]
    ]


# ListJobs with a filter returns jobs in any status (it ignores jobStatus): one call per queue
# instead of one per status. Every job name matches "*".
_EVERY_JOB = [{"name": "JOB_NAME", "values": ["*"]}]


def submitted_jobs(batch) -> list[dict]:
    """The jobs submitted to the local queues, described, oldest first."""
    ids = []
    for queue in job_queues(batch):
        pages = batch.get_paginator("list_jobs").paginate(
            jobQueue=queue["jobQueueName"], filters=_EVERY_JOB
        )
        for page in pages:
            # Array children are listed too, as "<parent id>:<index>"; the emulator runs
            # those itself.
            ids.extend(job["jobId"] for job in page["jobSummaryList"] if ":" not in job["jobId"])
    jobs_found = []
    for start in range(0, len(ids), 100):  # DescribeJobs takes 100 ids at most
        jobs_found.extend(batch.describe_jobs(jobs=ids[start : start + 100])["jobs"])
    return sorted(jobs_found, key=lambda job: job["createdAt"])


@contextlib.contextmanager
def _environment(cloud: LocalCloud) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in (*_FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update(cloud.environment)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def existing_cloud(endpoint: str) -> Iterator[LocalCloud]:
    """A local cloud some other process serves (``python -m runtime.tools.local_cloud``)."""
    cloud = LocalCloud(endpoint=endpoint.rstrip("/"))
    try:
        urllib.request.urlopen(f"{cloud.endpoint}/moto-api/", timeout=5)
    except OSError as exc:
        raise LocalCloudUnavailable(
            f"no embedded AWS answers at {endpoint}: start one with "
            f"python -m runtime.tools.local_cloud ({exc})"
        ) from exc
    with _environment(cloud):
        yield cloud


@contextlib.contextmanager
def local_cloud(port: int = 0) -> Iterator[LocalCloud]:
    """Start moto's server on an ephemeral loopback port; stop it on exit."""
    try:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise LocalCloudUnavailable(
            "the embedded AWS needs moto: install the development requirements "
            "(pip install -r requirements-dev.txt)"
        ) from exc
    # Batch jobs are recorded, not run in Docker: the simulation runs them as processes.
    default_user_config["batch"] = {"use_docker": False}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    cloud = LocalCloud(endpoint=f"http://{host}:{port}")
    # moto's state lives in this process, not in the server: start from an empty cloud.
    urllib.request.urlopen(
        urllib.request.Request(f"{cloud.endpoint}/moto-api/reset", method="POST")
    )
    try:
        with _environment(cloud):
            yield cloud
    finally:
        server.stop()


def serve_until_interrupted(cloud: LocalCloud, note: str = "") -> None:
    """Keep the embedded AWS up for other commands until Ctrl-C."""
    print(
        f"embedded AWS at {cloud.endpoint}{note}\n"
        f"  python -m runtime jobs list --endpoint-url {cloud.endpoint}\n"
        f"  python -m runtime simulate FILE --path fast --endpoint-url {cloud.endpoint}\n"
        "Ctrl-C stops it.",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.tools.local_cloud",
        description="serve the local stack (S3, Batch, EventBridge, SQS) on 127.0.0.1",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    args = parser.parse_args(argv)
    try:
        with local_cloud(args.port) as cloud:
            cloud.create_stack()
            serve_until_interrupted(cloud)
    except (LocalCloudUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
