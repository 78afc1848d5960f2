"""Every AWS event shape the emulator builds, as AWS delivers it to the function: one
builder shared by the emulator (``runtime.tools.emulator``), the explorer
(``tests/explorer``) and the tests' helpers (``tests/helpers.py``).

- ``s3_event``: an S3 notification (``fast/`` uploads and parts), key URL-encoded;
- ``object_created_event``: EventBridge's "Object Created" (the Batch lanes' uploads);
- ``on_failure_record``: Lambda's on-failure destination record (retries exhausted);
- ``sqs_record`` / ``sqs_batch``: a record as an SQS event source mapping delivers it, and
  ``receive_again``: the same batch received once more;
- ``batch_attempt`` / ``batch_state_change``: a Batch job's attempt, and the
  "Batch Job State Change" FAILED event for a job or one array child.

``tests/events/*.json`` are real events as AWS sends them; ``tests/tools/test_aws_events.py``
checks that these shapes carry exactly their keys, so the builder cannot drift from AWS's
format. Values AWS would fill from its own state (sizes, ETags, ECS task ARNs) get
plausible placeholders: the handlers read none of them.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from urllib.parse import quote_plus

from runtime.tools.local_cloud import (
    FUNCTION_NAME,
    JOB_QUEUE,
    REGION,
    RETRY_STRATEGY,
    job_environment,
)

ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
# What the emulated requests came from: the local machine.
_SOURCE_IP = "127.0.0.1"
_SENDER_ID = "AIDAIENQZJOLO23YVJ4VO"

_SEQUENCER = iter(range(1, 2**62))


def sequencer() -> str:
    """S3's event sequencer: hexadecimal, growing with every write of a key."""
    return f"{next(_SEQUENCER):016X}"


def iso(seconds: float) -> str:
    """A timestamp as AWS writes them in events (UTC, milliseconds)."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{int(seconds % 1 * 1000):03d}Z"
    )


def s3_event(
    bucket: str,
    key: str,
    version: str | None = None,
    order: str | None = None,
    *,
    size: int = 0,
    etag: str = "",
) -> dict:
    """An S3 notification as Lambda receives it (keys URL-encoded, as S3 sends them, the
    version id of the object written and its sequencer; ``order`` None: the next one)."""
    found: dict = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag}
    if version:
        found["versionId"] = version
    found["sequencer"] = order or sequencer()
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": iso(time.time()),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": f"AWS:{_SENDER_ID}"},
                "requestParameters": {"sourceIPAddress": _SOURCE_IP},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": uuid.uuid4().hex,
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "fast-path",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": ACCOUNT},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": found,
                },
            }
        ]
    }


def object_created_event(
    bucket: str,
    key: str,
    version: str | None = None,
    order: str | None = None,
    *,
    size: int = 0,
    etag: str = "",
) -> dict:
    """EventBridge's "Object Created" event for an upload (the stack's rules send those of
    the Batch lanes to the function); the key is not encoded."""
    found: dict = {"key": key, "size": size, "etag": etag}
    if version:
        found["version-id"] = version
    found["sequencer"] = order or sequencer()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": iso(time.time()),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": found,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "source-ip-address": _SOURCE_IP,
            "reason": "PutObject",
        },
    }


def on_failure_record(event: dict, request_id: str, error: dict, attempts: int) -> dict:
    """Lambda's on-failure destination record for an invocation whose retries ran out
    (``error``: the last attempt's errorType and errorMessage)."""
    return {
        "version": "1.0",
        "timestamp": iso(time.time()),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{FUNCTION_ARN}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {**error, "requestId": request_id, "stackTrace": []},
    }


def sqs_record(
    body: dict,
    message_id: str,
    receive_count: int,
    queue_name: str,
    attributes: dict | None = None,
) -> dict:
    """One SQS message as the event source mapping delivers it (``attributes``: its
    message attributes)."""
    now = str(int(time.time() * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": f"{message_id}-{receive_count}",
        "body": json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now,
            "SenderId": _SENDER_ID,
            "ApproximateFirstReceiveTimestamp": now,
        },
        "messageAttributes": attributes or {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}",
        "awsRegion": REGION,
    }


def sqs_batch(
    body: dict,
    message_id: str,
    receive_count: int,
    queue_name: str,
    attributes: dict | None = None,
) -> dict:
    """A batch of one SQS record, as the stack's mappings (batch size 1) deliver it
    (``attributes``: its message attributes, e.g. the ERROR_CODE of a dead letter)."""
    return {"Records": [sqs_record(body, message_id, receive_count, queue_name, attributes)]}


def receive_again(batch: dict, receive_count: int) -> None:
    """The batch's messages became visible again and are received once more: SQS counts
    the receive in each record (in place; the rest of the delivery is unchanged)."""
    for record in batch["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)


def batch_attempt(
    started: float, code: int, reason: str, container_reason: str | None = None
) -> dict:
    """One attempt of a Batch job as DescribeJobs lists it: started at ``started`` (epoch
    seconds), stopped now, with its container's exit code and Batch's status reason."""
    task = uuid.uuid4().hex
    container: dict = {
        "containerInstanceArn": (
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/pricing/{uuid.uuid4().hex}"
        ),
        "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/pricing/{task}",
        "exitCode": code,
        "logStreamName": f"pricing/default/{task}",
        "networkInterfaces": [],
    }
    if container_reason:
        container["reason"] = container_reason
    return {
        "container": container,
        "startedAt": int(started * 1000),
        "stoppedAt": int(time.time() * 1000),
        "statusReason": reason,
    }


# What DescribeJobs shows of every container job, whatever its definition sets.
_CONTAINER_DEFAULTS: dict = {
    "image": "pricing:local",
    "command": ["Ref::S3bucket", "Ref::S3key"],
    "volumes": [],
    "mountPoints": [],
    "ulimits": [],
    "resourceRequirements": [
        {"value": "1", "type": "VCPU"},
        {"value": "2048", "type": "MEMORY"},
    ],
    "secrets": [],
    "networkInterfaces": [],
}


def batch_state_change(
    description: dict, reason: str, attempts: list[dict], index: int | None = None
) -> dict:
    """A "Batch Job State Change" FAILED event for a described job (DescribeJobs' shape),
    or for its array child ``index``; ``attempts`` empty: the job never started."""
    job_id = description["jobId"] + (f":{index}" if index is not None else "")
    arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"
    array = description.get("arrayProperties") or {}
    if index is not None:
        array_properties: dict | None = {"index": index}
    elif array.get("size"):
        array_properties = {"size": array["size"], "statusSummary": {}}
    else:
        array_properties = None
    container = {**copy.deepcopy(_CONTAINER_DEFAULTS), **(description.get("container") or {})}
    container["environment"] = [
        {"name": name, "value": value} for name, value in job_environment(description).items()
    ]
    last = (attempts[-1].get("container") or {}) if attempts else {}
    if "exitCode" in last:
        container["exitCode"] = last["exitCode"]
    if last.get("reason"):
        container["reason"] = last["reason"]
    queue = description.get("jobQueue") or JOB_QUEUE
    if not queue.startswith("arn:"):
        queue = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{queue}"
    now = int(time.time() * 1000)
    detail = {
        "jobArn": arn,
        "jobName": description.get("jobName", ""),
        "jobId": job_id,
        "jobQueue": queue,
        "status": "FAILED",
        "attempts": attempts,
        "statusReason": reason,
        "createdAt": description.get("createdAt", now),
        "retryStrategy": RETRY_STRATEGY,
        "stoppedAt": now,
        "dependsOn": description.get("dependsOn") or [],
        "jobDefinition": description.get("jobDefinition", ""),
        "parameters": description.get("parameters") or {},
        "container": container,
        "tags": description.get("tags") or {},
        "propagateTags": False,
        "platformCapabilities": ["EC2"],
    }
    if attempts:  # a job failed by its dependency, or terminated in the queue, never started
        detail["startedAt"] = attempts[0]["startedAt"]
    if array_properties is not None:
        detail["arrayProperties"] = array_properties
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": ACCOUNT,
        "time": iso(time.time()),
        "region": REGION,
        "resources": [arn],
        "detail": detail,
    }
