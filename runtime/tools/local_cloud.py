"""An embedded AWS for ``simulate``, the client's tests and developers: moto's server on
127.0.0.1 (S3, and Batch with ``use_docker: False`` so submitted jobs are only recorded).

The runtime reaches it through ``AWS_ENDPOINT_URL``, which boto3 honours itself, so the
code under test is exactly the code that runs in the cloud.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import boto3

REGION = "us-east-1"
INPUT_BUCKET = "pricing-input-local"
RESULT_BUCKET = "pricing-result-local"
JOB_QUEUE = "pricing-local"
JOB_DEFINITION = "pricing-local"

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
        create_stack(self.client("s3"), self.client("iam"), self.client("batch"))


def create_stack(s3, iam, batch) -> None:
    """The deployed stack's buckets, job queue and job definition, in a local AWS."""
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
    batch.create_job_queue(
        jobQueueName=JOB_QUEUE,
        state="ENABLED",
        priority=1,
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


_BATCH_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def job_environment(job: dict) -> dict[str, str]:
    """The environment a described Batch job's container gets (overrides included)."""
    return {e["name"]: e["value"] for e in job.get("container", {}).get("environment", [])}


def submitted_jobs(batch) -> list[dict]:
    """The jobs submitted to the local queue, described, oldest first."""
    ids = []
    for status in _BATCH_STATUSES:
        for page in batch.get_paginator("list_jobs").paginate(jobQueue=JOB_QUEUE, jobStatus=status):
            # Array children are listed too, as "<parent id>:<index>"; we run those ourselves.
            ids.extend(job["jobId"] for job in page["jobSummaryList"] if ":" not in job["jobId"])
    jobs_found = batch.describe_jobs(jobs=ids)["jobs"] if ids else []
    return sorted(jobs_found, key=lambda job: job["createdAt"])


@contextlib.contextmanager
def local_cloud() -> Iterator[LocalCloud]:
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
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {name: os.environ.get(name) for name in (*_FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    cloud = LocalCloud(endpoint=f"http://{host}:{port}")
    # moto's state lives in this process, not in the server: start from an empty cloud.
    urllib.request.urlopen(
        urllib.request.Request(f"{cloud.endpoint}/moto-api/reset", method="POST")
    )
    os.environ.update(cloud.environment)
    try:
        yield cloud
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()
