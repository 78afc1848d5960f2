"""``jobs list|show|result|cancel|retry``: job commands, for a deployed stack or the embedded AWS.

Where the jobs are (``Target``): ``--stack NAME`` reads ``pulumi stack output --json``
(inputBucket, resultBucket, fastFunctionName, jobQueueArn, jobDefinitionArn, region);
explicit flags override it (before or after the job command; without ``--stack`` and
``--endpoint-url``, ``MC_PRICING_STACK`` or ``MC_PRICING_ENDPOINT_URL`` stand in);
``--endpoint-url URL`` is the embedded AWS of ``simulate --keep`` or
``python -m runtime.tools.local_cloud`` (the local stack's names), where what AWS would run
next (Lambda invocations, Batch jobs) is run by the emulator.

- ``list``: the newest status objects of every lane (``fast/``, ``normal/``, ``urgent/``...),
  with each job's estimated cost;
- ``show KEY``: one job's status, its cost (what it used, and the estimate in USD), and
  where its result or error is;
- ``result KEY``: a done job's result, the version its status names (``-o -``: stdout);
- ``cancel KEY``: the function cancels the running attempt (status ``cancelled``, one job
  event; the remaining parts stop, nothing publishes, its Batch jobs are terminated);
- ``retry KEY``: a failed job only: the function starts the next attempt, which runs only
  the failed or missing parts and the merge (fast: the parts are written again for the new
  attempt, each starting an invocation; normal: an array of those parts and a merge job),
  or the whole upload when it never split.

Both are commands for the stack's function (``{"source": "mc-pricing.command"}``),
invoked asynchronously, so Lambda's retries and its on-failure route make them happen or
end the job ``failed`` saying why; the command then watches the status for ``--wait``
seconds. Each names the attempt the user saw (its fence), so it never acts on another.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.adapters.lambda_handler import command
from runtime.cli import CommandError
from runtime.core import keys
from runtime.planning.decide import usd_text
from runtime.protocol import lifecycle as states
from runtime.tools.submit import ENDPOINT_VARIABLE, STACK_VARIABLE

_STATUS_PREFIXES = tuple(f"{lane}/" for lane in keys.PATHS)
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
    stack, endpoint_url = where_from(args)
    found: dict[str, str] = {}
    if endpoint_url:
        local = Target.local(endpoint_url)
        found = {
            "inputBucket": local.input_bucket,
            "resultBucket": local.result_bucket,
            "fastFunctionName": local.function_name,
            "jobQueueArn": local.job_queue,
            "jobDefinitionArn": local.job_definition,
            "region": local.region,
        }
    elif stack:
        from runtime.tools.submit import stack_outputs

        found = (outputs or stack_outputs)(stack)
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
        endpoint_url=endpoint_url or "",
    )


def where_from(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The stack and the endpoint: the flags, else the environment's stand-ins."""
    stack, endpoint_url = args.stack, args.endpoint_url
    if stack and endpoint_url:
        raise CommandError("give --stack or --endpoint-url, not both")
    if not stack and not endpoint_url:
        stack = os.environ.get(STACK_VARIABLE) or None
        endpoint_url = os.environ.get(ENDPOINT_VARIABLE) or None
        if stack and endpoint_url:
            raise CommandError(
                f"{STACK_VARIABLE} and {ENDPOINT_VARIABLE} are both set: give --stack or "
                "--endpoint-url"
            )
    return stack, endpoint_url


def _where(parser: argparse.ArgumentParser, top: bool) -> None:
    """Where the jobs are: accepted before the job command (``top``) and after it. After it,
    an absent flag must not replace one given before, hence ``SUPPRESS`` there."""

    def default(value: str | None = None) -> str | None:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--stack",
        default=default(),
        help=f"Pulumi stack whose outputs name the buckets, etc. (environment: {STACK_VARIABLE})",
    )
    parser.add_argument(
        "--endpoint-url",
        default=default(),
        help="the embedded AWS of simulate --keep or runtime.tools.local_cloud "
        f"(environment: {ENDPOINT_VARIABLE})",
    )
    parser.add_argument("--input-bucket", default=default(), help="instead of the stack's")
    parser.add_argument("--result-bucket", default=default(), help="instead of the stack's")
    parser.add_argument(
        "--function-name", default=default(), help="the fast path's Lambda function"
    )
    parser.add_argument("--job-queue", default=default(), help="the normal path's job queue")
    parser.add_argument(
        "--job-definition", default=default(), help="the normal path's job definition"
    )
    parser.add_argument("--region", default=default(), help="instead of the stack's")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The job commands' arguments (``mc-pricing jobs ...``)."""
    from runtime.cli import HelpFormatter, example

    _where(parser, top=True)
    where = argparse.ArgumentParser(add_help=False)
    _where(where, top=False)
    commands = parser.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, *examples: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[where],
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            formatter_class=HelpFormatter,
            epilog=example(*(f"jobs {line}" for line in examples)),
        )

    listing = command("list", "recent jobs, newest first", "list --stack us-east-1 --limit 5")
    listing.add_argument(
        "--state", choices=(states.RUNNING, *states.TERMINAL_STATES), help="only these"
    )
    listing.add_argument("--limit", type=int, default=20, help="jobs to show")
    show = command("show", "one job's status", "show fast/20261124-0900/book.csv")
    show.add_argument("key", help="the upload's key, e.g. fast/20261124-0900/book.csv")
    show.add_argument("--json", action="store_true", help="print the status document")
    result = command(
        "result",
        "download a done job's result (the one of the latest upload)",
        "result normal/book.csv -o book-result.csv",
    )
    result.add_argument("key", help="the upload's key")
    result.add_argument(
        "-o",
        "--out",
        type=Path,
        help="result file, - for standard output (default: the key's file name + -result)",
    )
    cancel = command("cancel", "cancel a running job", "cancel normal/book.csv")
    cancel.add_argument("key", help="the upload's key")
    retry = command("retry", "re-run a failed job's parts", "retry normal/book.csv --wait 0")
    retry.add_argument("key", help="the upload's key")
    retry.add_argument("--force", action="store_true", help="run it even over the budget")
    for command_parser in (cancel, retry):
        command_parser.add_argument(
            "--wait",
            type=float,
            default=60.0,
            help="seconds to watch the status for the outcome (0: do not wait)",
        )
        command_parser.add_argument(
            "--workers", type=int, default=4, help="embedded AWS: containers"
        )


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
        if args.jobs_command == "result":
            return jobs.result(args.key, args.out)
        if args.jobs_command == "cancel":
            return jobs.cancel(args.key, wait=args.wait, workers=args.workers)
        if args.jobs_command == "retry":
            return jobs.retry(args.key, force=args.force, wait=args.wait, workers=args.workers)
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
        from runtime.adapters.s3 import ObjectStore

        self.target = target
        self.say = say
        self.clients: dict[str, Any] = {}  # service -> client, made on first use
        self.s3 = self.client("s3")
        self.store = ObjectStore(self.s3)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.target.client(service)
        return self.clients[service]

    def status_of(self, key: str) -> dict | None:
        return self.store.get_json(self.target.result_bucket, keys.status_key(key))

    def _status(self, text: str) -> tuple[str, dict]:
        key = input_key(text, self.target)
        status = self.status_of(key)
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
            started = states.epoch(status.get("startedAt")) or now
            rows.append(
                (
                    str(status.get("state")),
                    f"{status.get('partsDone', 0)}/{status.get('partsTotal', 0)}",
                    _age(now - started),
                    cost_text(status.get("cost")),
                    item["Key"].removesuffix(keys.STATUS_SUFFIX),
                )
            )
            if len(rows) == limit:
                break
        if not rows:
            which = f"{state} " if state else ""
            self.say(f"no {which}jobs in s3://{self.target.result_bucket}")
            return 0
        self.say(f"{'STATE':<11} {'PARTS':>9} {'AGE':>8} {'COST':>11}  KEY")
        for row in rows:
            self.say(f"{row[0]:<11} {row[1]:>9} {row[2]:>8} {row[3]:>11}  {row[4]}")
        return 0

    def show(self, text: str, as_json: bool = False) -> int:
        key, status = self._status(text)
        if as_json:
            self.say(json.dumps(status, indent=2, sort_keys=True))
            return 0
        lines = [
            f"job      {key}",
            f"state    {status.get('state')} (attempt {status.get('attempt', 1)})",
            f"path     {status.get('path')}, engine {status.get('engine')}, "
            f"token {status.get('token')}, generation {status.get('generation')}",
            f"parts    {status.get('partsDone', 0)}/{status.get('partsTotal', 0)} done, "
            f"{status.get('rows', 0)} rows ({status.get('rowsWithErrors', 0)} with errors)",
            f"started  {status.get('startedAt') or '-'}"
            + (
                f", finished {status['finishedAt']} ({status.get('seconds')} s)"
                if status.get("finishedAt")
                else ""
            ),
        ]
        if status.get("route"):
            lines.append(f"route    {status['route'].get('reason') or status['route'].get('path')}")
        lines.extend(cost_lines(status.get("cost")))
        if status.get("missingParts") and status.get("state") != states.DONE:
            lines.append(f"missing  {_parts(status['missingParts'])}")
        for failure in status.get("failedParts") or []:
            lines.append(
                f"failed   {keys.part_name(int(failure['part']))} (attempt "
                f"{failure.get('attempt', 1)}): {failure['error']}"
            )
        for earlier in status.get("attempts") or []:
            lines.append(
                f"earlier  attempt {earlier.get('attempt')} {earlier.get('state')}: "
                f"{earlier.get('error')}"
            )
        if status.get("error"):
            lines.append(f"error    {status['error']}")
        if status.get("batchJobs"):
            jobs = ", ".join(f"{role} {job}" for role, job in sorted(status["batchJobs"].items()))
            lines.append(f"batch    {jobs}")
        if status.get("result"):
            what = "result" if status.get("state") == states.DONE else "object"
            lines.append(f"{what}   {status['result']}")
        if status.get("outbox"):
            lines.append(f"pending  {len(status['outbox'])} job event(s) or stop(s) to deliver")
        lines.append(f"status   s3://{self.target.result_bucket}/{keys.status_key(key)}")
        for line in lines:
            self.say(line)
        return 0

    def result(self, text: str, out: Path | None) -> int:
        """The result the status names (its version), only once the job is done: a running
        job's re-upload never gets the previous upload's result."""
        from runtime.cli import writable_output, write_output

        key, status = self._status(text)
        state = status.get("state")
        if state != states.DONE:
            reason = f": {status['error']}" if status.get("error") else ""
            raise CommandError(f"no result for {key}: the job is {state}{reason}")
        if self.target.input_bucket:
            # a newer upload whose job has not begun yet (its event on its way): its result
            # is not this one
            current = self.store.head(self.target.input_bucket, key)
            if current is not None and (current.version or current.etag) != status["version"]:
                raise CommandError(f"no result for {key}: it has a newer upload, not priced yet")
        out = writable_output(out or Path(key.rsplit("/", 1)[-1] + "-result"))
        body = self.store.get(
            self.target.result_bucket, keys.result_key(key), status.get("resultVersion")
        )
        if body is None:
            raise CommandError(f"the job is done but its result is gone: {status.get('result')}")
        written = write_output(out, body)
        print(f"result of {key} ({len(body)} bytes) -> {written}", file=sys.stderr)
        return 0

    # -- cancel and retry: commands for the function ------------------------------------

    def cancel(self, text: str, wait: float = 60.0, workers: int = 4) -> int:
        key, status = self._status(text)
        if status["state"] != states.RUNNING:
            raise CommandError(f"{key} is not running: the job is {status['state']}")
        fence = states.Fence.of(status)
        final = self._run(command("cancel", key, str(fence)), key, status, wait, workers)
        if final.get("state") == states.CANCELLED and states.Fence.of(final) == fence:
            self.say(f"cancelled {key} (job {fence})")
            return 0
        if final is status:
            self.say(f"cancel of {key} (job {fence}) requested")
            return 0
        raise CommandError(
            f"{key} was not cancelled: the job is {final.get('state')} "
            f"(attempt {final.get('attempt')})"
        )

    def retry(self, text: str, force: bool = False, wait: float = 60.0, workers: int = 4) -> int:
        key, status = self._status(text)
        if status["state"] != states.FAILED:
            raise CommandError(f"only a failed job can be retried: {key} is {status['state']}")
        fence = states.Fence.of(status)
        self.say(f"retrying {key} (job {fence})")
        final = self._run(command("retry", key, str(fence), force), key, status, wait, workers)
        if final is status:
            self.say(f"retry of {key} requested")
            return 0
        attempt = final.get("attempt")
        found = cost_text(final.get("cost"))
        cost = f", {found} estimated" if found != "-" else ""
        self.say(f"{key}: {final.get('state')} (attempt {attempt}{cost})")
        if self.target.embedded and final.get("state") != states.DONE:
            raise CommandError(f"the retried job {final.get('state')}: {final.get('error')}")
        return 0

    def _run(self, payload: dict, key: str, before: dict, wait: float, workers: int) -> dict:
        """Send a command to the function, and watch the status for up to ``wait`` seconds
        for its outcome (on the embedded AWS, run it and all it causes)."""
        if self.target.embedded:
            from runtime.tools.emulator import Invocation

            with self._emulator(workers, key) as emulator:
                emulator.run([Invocation("command", payload, payload["command"])])
                emulator.drain_job_events()
            return self.status_of(key) or {}
        if not self.target.function_name:
            raise CommandError("jobs commands need the function: --function-name or --stack")
        self.client("lambda").invoke(
            FunctionName=self.target.function_name,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
        deadline = time.monotonic() + max(0.0, wait)
        while time.monotonic() < deadline:
            time.sleep(1.0)
            found = self.status_of(key) or {}
            if found.get("updatedAt") != before.get("updatedAt"):
                return found
        return before

    def _emulator(self, workers: int, key: str):
        """On the embedded AWS, the emulator runs what AWS would run next."""
        from runtime.tools.emulator import Emulator, Timeline, runtime_environment
        from runtime.tools.local_cloud import LocalCloud

        cloud = LocalCloud(self.target.endpoint_url)
        status = self.status_of(key) or {}
        environment = runtime_environment(cloud, None, status.get("engine") or "lsm")
        timeline = Timeline(echo=lambda line: print(line, file=sys.stderr, flush=True))
        return Emulator(cloud, environment, timeline, workers, watch={key})


def cost_text(cost: dict | None) -> str:
    """A job's estimated cost, as ``list`` shows it ("-": no usage recorded yet)."""
    if not cost or not cost.get("attempts"):
        return "-"
    return usd_text(float(cost.get("usd", 0.0)))


def cost_lines(cost: dict | None) -> list[str]:
    """``show``'s cost lines: the estimate and its parts, then what was measured."""
    if not cost or not cost.get("attempts"):
        return []
    by = cost.get("usdBy") or {}
    parts = ", ".join(
        f"{name} {usd_text(float(by.get(key, 0.0)))}"
        for name, key in (
            ("Lambda", "lambda"),
            ("Batch", "batch"),
            ("S3", "s3"),
            ("events", "events"),
        )
        if by.get(key)
    )
    lines = [
        f"cost     {usd_text(float(cost.get('usd', 0.0)))} estimated"
        + (f" ({parts})" if parts else "")
    ]
    used = [
        f"Lambda {cost.get('lambdaGbSeconds', 0):g} GB-s in {cost.get('lambdaRequests', 0)} "
        "invocation(s)",
        f"Batch {cost.get('batchVcpuSeconds', 0):g} vCPU-s, {cost.get('batchGbSeconds', 0):g} GB-s",
        f"{cost.get('s3Requests', 0)} S3 requests ({cost.get('s3PutRequests', 0)} PUT-class)",
        f"{cost.get('eventsPublished', 0)} job event(s)",
    ]
    lines.append(f"used     {'; '.join(used)}")
    lines.append(
        f"attempts {cost.get('attempts', 0)} ({cost.get('retries', 0)} retries, "
        f"{cost.get('interruptions', 0)} interruptions)"
        + "".join(
            f"; {name} {values.get('vcpuSeconds', 0):g} vCPU-s"
            for name, values in sorted((cost.get("byCapacity") or {}).items())
        )
    )
    return lines


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _parts(indexes: list[int]) -> str:
    names = [keys.part_name(i) for i in indexes[:10]]
    more = f" and {len(indexes) - 10} more" if len(indexes) > 10 else ""
    return ", ".join(names) + more
