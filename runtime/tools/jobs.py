"""``jobs list|show|cancel|retry``: the job commands, for a deployed stack or the embedded AWS.

Where the jobs are (``Target``): ``--stack NAME`` reads ``pulumi stack output --json``
(inputBucket, resultBucket, fastFunctionName, jobQueueArn, jobDefinitionArn, region);
explicit flags override it; ``--endpoint-url URL`` is the embedded AWS of
``simulate --keep`` or ``python -m runtime.tools.local_cloud`` (the local stack's names),
where what AWS would run next (Lambda invocations, Batch jobs) is run by the emulator.

- ``list``: the newest status objects under ``fast/`` and ``normal/`` of the result bucket;
- ``show KEY``: one job's status, and where its result or error is;
- ``cancel KEY``: ``JobSteps.cancel`` (status ``cancelled``, one job event; the remaining
  parts stop and nothing publishes), then the job's Batch jobs are cancelled (queued) or
  terminated (started);
- ``retry KEY``: a failed job only: ``JobSteps.reopen``, then only its failed or missing
  parts and the merge run again (fast: asynchronous invocations with the parts' S3 events,
  or the upload's own event for an unsplit job; normal: an array of those parts and a
  merge job, or a new manager job for an unsplit job).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.cli import CommandError
from runtime.core import keys
from runtime.protocol import status as states

_STATUS_PREFIXES = (f"{keys.FAST}/", f"{keys.NORMAL}/")
# Statuses read by ``list`` at most (the newest first), however many the bucket holds.
_LIST_SCAN = 500


@dataclass(frozen=True)
class Target:
    """Where a stack's jobs are, and how to reach its services."""

    input_bucket: str
    result_bucket: str
    function_name: str = ""
    job_queue: str = ""
    job_definition: str = ""
    region: str = ""
    endpoint_url: str = ""

    @classmethod
    def local(cls, endpoint_url: str) -> Target:
        """The local stack of the embedded AWS at ``endpoint_url``."""
        from runtime.tools import local_cloud

        return cls(
            input_bucket=local_cloud.INPUT_BUCKET,
            result_bucket=local_cloud.RESULT_BUCKET,
            function_name=local_cloud.FUNCTION_NAME,
            job_queue=local_cloud.JOB_QUEUE,
            job_definition=local_cloud.JOB_DEFINITION,
            region=local_cloud.REGION,
            endpoint_url=endpoint_url,
        )

    @property
    def embedded(self) -> bool:
        return bool(self.endpoint_url)

    def client(self, service: str) -> Any:
        import boto3

        options: dict[str, Any] = {}
        if self.region:
            options["region_name"] = self.region
        if self.endpoint_url:
            from runtime.tools.local_cloud import LocalCloud

            return LocalCloud(self.endpoint_url).client(service)
        return boto3.client(service, **options)


def target_from_args(
    args: argparse.Namespace, outputs: Callable[[str], dict] | None = None
) -> Target:
    """The stack's outputs, the embedded AWS's names, or flags (which win)."""
    if args.stack and args.endpoint_url:
        raise CommandError("give --stack or --endpoint-url, not both")
    found: dict[str, str] = {}
    if args.endpoint_url:
        local = Target.local(args.endpoint_url)
        found = {
            "inputBucket": local.input_bucket,
            "resultBucket": local.result_bucket,
            "fastFunctionName": local.function_name,
            "jobQueueArn": local.job_queue,
            "jobDefinitionArn": local.job_definition,
            "region": local.region,
        }
    elif args.stack:
        from runtime.tools.submit import stack_outputs

        found = (outputs or stack_outputs)(args.stack)
    flags = {
        "inputBucket": args.input_bucket,
        "resultBucket": args.result_bucket,
        "fastFunctionName": args.function_name,
        "jobQueueArn": args.job_queue,
        "jobDefinitionArn": args.job_definition,
        "region": args.region,
    }
    merged = {**found, **{name: value for name, value in flags.items() if value}}
    if not merged.get("resultBucket"):
        raise CommandError(
            "where are the jobs? give --stack NAME, --endpoint-url URL, or --result-bucket"
        )
    return Target(
        input_bucket=str(merged.get("inputBucket") or ""),
        result_bucket=str(merged["resultBucket"]),
        function_name=str(merged.get("fastFunctionName") or ""),
        job_queue=str(merged.get("jobQueueArn") or ""),
        job_definition=str(merged.get("jobDefinitionArn") or ""),
        region=str(merged.get("region") or ""),
        endpoint_url=args.endpoint_url or "",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The job commands' arguments (``python -m runtime jobs ...``)."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="Pulumi stack whose outputs name the buckets, etc.")
    where.add_argument(
        "--endpoint-url", help="the embedded AWS (simulate --keep, runtime.tools.local_cloud)"
    )
    where.add_argument("--input-bucket")
    where.add_argument("--result-bucket")
    where.add_argument("--function-name", help="the fast path's Lambda function")
    where.add_argument("--job-queue", help="the normal path's Batch job queue")
    where.add_argument("--job-definition", help="the normal path's Batch job definition")
    where.add_argument("--region")
    commands = parser.add_subparsers(dest="jobs_command", required=True)
    listing = commands.add_parser("list", parents=[where], help="recent jobs, newest first")
    listing.add_argument("--state", choices=(states.RUNNING, *states.TERMINAL_STATES))
    listing.add_argument("--limit", type=int, default=20, help="jobs to show (default 20)")
    show = commands.add_parser("show", parents=[where], help="one job's status")
    show.add_argument("key", help="the upload's key, e.g. fast/20261124-0900/book.csv")
    show.add_argument("--json", action="store_true", help="print the status document")
    cancel = commands.add_parser("cancel", parents=[where], help="cancel a running job")
    cancel.add_argument("key")
    retry = commands.add_parser("retry", parents=[where], help="re-run a failed job's parts")
    retry.add_argument("key")
    retry.add_argument("--workers", type=int, default=4, help="embedded AWS: containers")


def main(args: argparse.Namespace, out: Callable[[str], None] | None = None) -> int:
    """Run one job command; errors are CommandError (one line, no traceback)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    say = out or (lambda line: print(line, flush=True))
    target = target_from_args(args)
    try:
        jobs = Jobs(target, say)
        if args.jobs_command == "list":
            return jobs.list(args.state, args.limit)
        if args.jobs_command == "show":
            return jobs.show(args.key, as_json=args.json)
        if args.jobs_command == "cancel":
            return jobs.cancel(args.key)
        if args.jobs_command == "retry":
            return jobs.retry(args.key, workers=args.workers)
    except NoCredentialsError:
        raise CommandError(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CommandError(
            f"{exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except NoRegionError:
        raise CommandError("no AWS region: give --region, or --stack of a deployed stack") from None
    except BotoCoreError as exc:  # an endpoint that does not answer, an unknown profile
        raise CommandError(str(exc)) from None
    raise AssertionError(args.jobs_command)


def input_key(text: str, target: Target) -> str:
    """The upload's key, from the key itself, its s3:// URI or its status key."""
    key = text.strip()
    if key.startswith("s3://"):
        key = key.removeprefix("s3://").partition("/")[2]
    key = key.removesuffix(keys.STATUS_SUFFIX)
    for suffix in ("-result", "-error"):
        key = key.removesuffix(suffix)
    try:
        keys.path_of(key)
    except keys.NotAJobKey as exc:
        raise CommandError(str(exc)) from None
    return key


class Jobs:
    def __init__(self, target: Target, say: Callable[[str], None]) -> None:
        from runtime.adapters.events import EventBridgeSink
        from runtime.adapters.s3 import ObjectStore
        from runtime.environment import RuntimeConfig
        from runtime.protocol.steps import JobSteps

        self.target = target
        self.say = say
        self.clients: dict[str, Any] = {}  # service -> client, made on first use
        self.s3 = self.client("s3")
        self.store = ObjectStore(self.s3)
        self.steps = JobSteps(
            self.store,
            RuntimeConfig(
                result_bucket=target.result_bucket,
                job_queue=target.job_queue,
                job_definition=target.job_definition,
                region=target.region or self.s3.meta.region_name,
            ),
            events=EventBridgeSink(self.client("events")),
        )

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.target.client(service)
        return self.clients[service]

    def _status(self, text: str) -> tuple[str, dict]:
        key = input_key(text, self.target)
        status = self.steps.status(key)
        if status is None:
            raise CommandError(
                f"no job for {key}: s3://{self.target.result_bucket}/{keys.status_key(key)} "
                "does not exist"
            )
        return key, status

    # -- list and show ------------------------------------------------------------------

    def list(self, state: str | None, limit: int) -> int:
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        found = []
        for prefix in _STATUS_PREFIXES:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.target.result_bucket, Prefix=prefix
            )
            for page in pages:
                found.extend(
                    item
                    for item in page.get("Contents", [])
                    if item["Key"].endswith(keys.STATUS_SUFFIX) and "/_work/" not in item["Key"]
                )
        found.sort(key=lambda item: item["LastModified"], reverse=True)
        rows = []
        now = time.time()
        for item in found[:_LIST_SCAN]:
            status = self.store.get_json(self.target.result_bucket, item["Key"])
            if not status or (state and status.get("state") != state):
                continue
            rows.append(
                (
                    str(status.get("state")),
                    f"{status.get('parts_done', 0)}/{status.get('parts_total', 0)}",
                    _age(now - float(status.get("started_at") or now)),
                    item["Key"].removesuffix(keys.STATUS_SUFFIX),
                )
            )
            if len(rows) == limit:
                break
        if not rows:
            which = f"{state} " if state else ""
            self.say(f"no {which}jobs in s3://{self.target.result_bucket}")
            return 0
        self.say(f"{'STATE':<11} {'PARTS':>9} {'AGE':>8}  KEY")
        for row in rows:
            self.say(f"{row[0]:<11} {row[1]:>9} {row[2]:>8}  {row[3]}")
        return 0

    def show(self, text: str, as_json: bool = False) -> int:
        key, status = self._status(text)
        if as_json:
            self.say(json.dumps(status, indent=2, sort_keys=True))
            return 0
        lines = [
            f"job      {key}",
            f"state    {status.get('state')}",
            f"path     {status.get('path')}, engine {status.get('engine')}, "
            f"token {status.get('token')}, generation {status.get('generation')}",
            f"parts    {status.get('parts_done', 0)}/{status.get('parts_total', 0)} done, "
            f"{status.get('rows', 0)} rows ({status.get('rows_with_errors', 0)} with errors)",
            f"started  {_when(status.get('started_at'))}"
            + (
                f", finished {_when(status.get('finished_at'))} ({status.get('seconds')} s)"
                if status.get("finished_at")
                else ""
            ),
        ]
        if status.get("missing_parts") and status.get("state") != states.DONE:
            lines.append(f"missing  {_parts(status['missing_parts'])}")
        for failure in status.get("failed_parts") or []:
            lines.append(f"failed   {keys.part_name(int(failure['part']))}: {failure['error']}")
        if status.get("error"):
            lines.append(f"error    {status['error']}")
        if status.get("batch_jobs"):
            jobs = ", ".join(f"{role} {job}" for role, job in sorted(status["batch_jobs"].items()))
            lines.append(f"batch    {jobs}")
        if status.get("result"):
            what = "result" if status.get("state") == states.DONE else "object"
            lines.append(f"{what}   {status['result']}")
        lines.append(f"status   s3://{self.target.result_bucket}/{keys.status_key(key)}")
        for line in lines:
            self.say(line)
        return 0

    # -- cancel -------------------------------------------------------------------------

    def cancel(self, text: str) -> int:
        key, status = self._status(text)
        if status["state"] != states.RUNNING:
            raise CommandError(f"{key} is not running: the job is {status['state']}")
        outcome = self.steps.cancel(key)
        if outcome.action != "cancelled":
            raise CommandError(f"{key} was not cancelled: {outcome.detail}")
        self.say(f"cancelled {key} (job {status['token']})")
        written = outcome.status or status
        for role, job_id in sorted((written.get("batch_jobs") or {}).items()):
            self.say(f"  batch {role} job {job_id}: {self._stop_batch_job(job_id, key)}")
        return 0

    def _stop_batch_job(self, job_id: str, key: str) -> str:
        batch = self.client("batch")
        found = batch.describe_jobs(jobs=[job_id]).get("jobs", [])
        if not found:
            return "not found"
        state = found[0].get("status")
        reason = f"cancelled by the user: {key}"
        if state in ("SUCCEEDED", "FAILED"):
            return f"already {state}"
        if state in ("STARTING", "RUNNING"):
            batch.terminate_job(jobId=job_id, reason=reason)
            return f"terminated (was {state})"
        batch.cancel_job(jobId=job_id, reason=reason)
        return f"cancelled (was {state})"

    # -- retry --------------------------------------------------------------------------

    def retry(self, text: str, workers: int = 4) -> int:
        key, status = self._status(text)
        if status["state"] != states.FAILED:
            raise CommandError(f"only a failed job can be retried: {key} is {status['state']}")
        path, token = status["path"], status["token"]
        bucket = status["input"].removeprefix("s3://").partition("/")[0]
        manifest = self.steps.load_manifest(path, token)
        if manifest is None:
            info = self.store.head(bucket, key)
            if info is None or (info.version or info.etag) != status.get("version"):
                raise CommandError(
                    f"the upload s3://{bucket}/{key} of this job is gone or was replaced: "
                    "upload the file again"
                )
            parts: list[int] = []
        else:
            prefix = keys.results_prefix(path, token)
            done = keys.indexes_in(
                self.store.list_keys(self.target.result_bucket, prefix), prefix, ".csv"
            )
            parts = [i for i in range(manifest.parts) if i not in done]
            if path == keys.FAST:
                gone = [
                    i
                    for i in (parts or [manifest.parts - 1])
                    if self.store.head(manifest.input_bucket, manifest.part_keys[i]) is None
                ]
                if gone:
                    raise CommandError(
                        f"{key}: the part objects of {_parts(gone)} are gone (expired from the "
                        "input bucket): upload the file again"
                    )
        self._check_can_run(path)
        emulator = self._emulator(workers, status.get("engine") or "", key)
        try:
            reopened = self.steps.reopen(key)
            if reopened.action != "reopened":
                raise CommandError(f"{key} could not be reopened: {reopened.detail}")
            what = (
                f"{_parts(parts)} of {manifest.parts} and the merge"
                if manifest is not None and parts
                else "the merge"
                if manifest is not None
                else "the whole file"
            )
            self.say(f"retrying {key} (job {token}): {what}")
            if path == keys.FAST:
                self._retry_fast(bucket, key, manifest, parts, emulator)
            else:
                self._retry_normal(bucket, key, manifest, parts, emulator)
        finally:
            if emulator is not None:
                emulator.close()
        if emulator is not None:
            final = self.steps.status(key) or {}
            self.say(f"{key}: {final.get('state')}")
            if final.get("state") != states.DONE:
                raise CommandError(f"the retried job {final.get('state')}: {final.get('error')}")
        return 0

    def _check_can_run(self, path: str) -> None:
        if self.target.embedded:
            return
        if path == keys.FAST and not self.target.function_name:
            raise CommandError("retry of a fast job needs the function: --function-name or --stack")
        if path == keys.NORMAL and not (self.target.job_queue and self.target.job_definition):
            raise CommandError(
                "retry of a normal job needs --job-queue and --job-definition, or --stack"
            )

    def _emulator(self, workers: int, engine: str, key: str):
        """On the embedded AWS, the emulator runs what AWS would run next."""
        if not self.target.embedded:
            return None
        from runtime.tools.emulator import Emulator, Timeline, runtime_environment
        from runtime.tools.local_cloud import LocalCloud

        cloud = LocalCloud(self.target.endpoint_url)
        environment = runtime_environment(cloud, None, engine or "lsm")
        timeline = Timeline(echo=lambda line: print(line, file=sys.stderr, flush=True))
        return Emulator(cloud, environment, timeline, workers, watch={key})

    def _retry_fast(self, bucket: str, key: str, manifest, parts: list[int], emulator) -> None:
        from runtime.tools.emulator import s3_event

        if manifest is None:
            events = [(key, s3_event(bucket, key))]
        else:
            indexes = parts or [manifest.parts - 1]  # every part priced: its event merges
            events = [
                (manifest.part_keys[i], s3_event(manifest.input_bucket, manifest.part_keys[i]))
                for i in indexes
            ]
        if emulator is not None:
            from runtime.tools.emulator import Invocation

            emulator.run_lambda(
                [Invocation("s3", event, part_key.rsplit("/", 1)[-1]) for part_key, event in events]
            )
            emulator.drain_job_events()
            return
        client = self.client("lambda")
        for part_key, event in events:
            client.invoke(
                FunctionName=self.target.function_name,
                InvocationType="Event",
                Payload=json.dumps(event).encode(),
            )
            self.say(f"  invoked {self.target.function_name} for s3://{bucket}/{part_key}")

    def _retry_normal(self, bucket: str, key: str, manifest, parts: list[int], emulator) -> None:
        from runtime.adapters.batch_job import submit_array_and_merge, submit_merge

        batch = self.client("batch")
        if manifest is None:
            submitted = batch.submit_job(
                jobName=f"retry-{keys.job_token(bucket, key, 'retry')[:8]}",
                jobQueue=self.target.job_queue,
                jobDefinition=self.target.job_definition,
                parameters={"S3bucket": bucket, "S3key": key},
            )
            self.say(f"  submitted manager job {submitted['jobId']}")
        elif parts:
            jobs = submit_array_and_merge(
                batch, self.target.job_queue, self.target.job_definition, manifest, parts=parts
            )
            self._record_batch_jobs(key, manifest.token, jobs)
            self.say(f"  submitted pricing job {jobs['array']} and merge job {jobs['merge']}")
        else:
            merge = submit_merge(batch, self.target.job_queue, self.target.job_definition, manifest)
            self._record_batch_jobs(key, manifest.token, {"merge": merge})
            self.say(f"  submitted merge job {merge}")
        if emulator is not None:
            emulator.run_batch()
            emulator.drain_job_events()

    def _record_batch_jobs(self, key: str, token: str, jobs: dict[str, str]) -> None:
        self.store.update_json(
            self.target.result_bucket,
            keys.status_key(key),
            states.progress(token, time.time(), batch_jobs=jobs),
        )


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _when(seconds: object) -> str:
    if not seconds:
        return "-"
    moment = dt.datetime.fromtimestamp(float(seconds), dt.UTC)  # type: ignore[arg-type]
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _parts(indexes: list[int]) -> str:
    names = [keys.part_name(i) for i in indexes[:10]]
    more = f" and {len(indexes) - 10} more" if len(indexes) > 10 else ""
    return ", ".join(names) + more
