"""``submit``: the client for a deployed stack.

Uploads a file under ``<path>/<timestamp job id>/``, then (with ``--wait``) follows the
job's status object with a progress bar and downloads the result. Bucket names come from
``pulumi stack output --json`` or from flags. boto3 honours ``AWS_ENDPOINT_URL``, which is
how the tests point this client at the embedded endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from runtime.adapters.s3 import ObjectStore
from runtime.cli import CommandError, read_input, writable_output, write_output
from runtime.core import keys
from runtime.core.csvio import read_table
from runtime.progress import progress_bar

_POLL_SECONDS = 2.0


# The environment's stand-ins for --stack and (the job commands) --endpoint-url: a flag wins.
STACK_VARIABLE = "MC_PRICING_STACK"
ENDPOINT_VARIABLE = "MC_PRICING_ENDPOINT_URL"


def stack_outputs(
    stack: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> dict:
    """The stack's outputs, from ``pulumi stack output --json``."""
    if shutil.which("pulumi") is None:
        raise CommandError(
            "the pulumi CLI is not on PATH: install it, or pass the bucket names "
            "(--input-bucket, --result-bucket)"
        )
    done = run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = " ".join(done.stderr.split()) or f"exit code {done.returncode}"
        raise CommandError(f"pulumi stack output failed for stack {stack!r}: {message}")
    try:
        outputs = json.loads(done.stdout)
    except ValueError as exc:
        raise CommandError(f"pulumi stack output for {stack!r} is not JSON") from exc
    if not isinstance(outputs, dict) or not outputs.get("resultBucket"):
        raise CommandError(f"stack {stack!r} has no resultBucket output: is it deployed?")
    return outputs


def stack_buckets(
    stack: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> tuple[str, str]:
    """(inputBucket, resultBucket) from ``pulumi stack output --json``."""
    outputs = stack_outputs(stack, run)
    if not outputs.get("inputBucket"):
        raise CommandError(f"stack {stack!r} has no inputBucket output: is it deployed?")
    return outputs["inputBucket"], outputs["resultBucket"]


def submit(args: argparse.Namespace) -> int:
    data = read_input(args.input)
    stack = args.stack or os.environ.get(STACK_VARIABLE)
    if args.input_bucket and args.result_bucket:
        input_bucket, result_bucket = args.input_bucket, args.result_bucket
    elif stack:
        input_bucket, result_bucket = stack_buckets(stack)
    else:
        raise CommandError(
            f"give --stack (or set {STACK_VARIABLE}), or both --input-bucket and --result-bucket"
        )
    key = f"{args.path}/{time.strftime('%Y%m%d-%H%M%S')}/{args.input.name}"
    store = ObjectStore()
    try:
        store.put(input_bucket, key, data)
    except Exception as exc:  # botocore's errors: credentials, network, access denied
        raise CommandError(f"upload to s3://{input_bucket}/{key} failed: {exc}") from exc
    print(f"uploaded s3://{input_bucket}/{key}", file=sys.stderr)
    print(f"result: s3://{result_bucket}/{keys.result_key(key)}", file=sys.stderr)
    print(f"status: s3://{result_bucket}/{keys.status_key(key)}", file=sys.stderr)
    if not args.wait:
        return 0
    out = writable_output(args.out or args.input.with_name(args.input.name + "-result"))
    wait_for_result(store, result_bucket, key, out, args.timeout)
    return 0


def wait_for_result(
    store: ObjectStore,
    result_bucket: str,
    key: str,
    out: Path,
    timeout: float,
    poll_seconds: float = _POLL_SECONDS,
) -> None:
    """Follow the status object until the job ends (done, failed, superseded, cancelled);
    download the result, or say which end it came to and why."""
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        advance = None
        shown = 0
        while True:
            status = store.get_json(result_bucket, keys.status_key(key)) or {}
            if status.get("partsTotal") and advance is None:
                advance = stack.enter_context(progress_bar(status["partsTotal"], "part"))
            if advance is not None and status.get("partsDone", 0) > shown:
                advance(status["partsDone"] - shown)
                shown = status["partsDone"]
            state = status.get("state")
            if state == "done":
                break
            if state == "failed":
                raise CommandError(_failure_message(status))
            if state == "superseded":
                reason = status.get("error") or "a newer upload of the same key"
                raise CommandError(
                    f"the job was superseded: {reason}; the result will be the newer upload's"
                )
            if state == "cancelled":
                raise CommandError(f"the job was cancelled: {status.get('error')}")
            if time.monotonic() > deadline:
                raise CommandError(
                    f"no result after {timeout:.0f} s; the job is still "
                    f"{state or 'not started'} ({status.get('partsDone', 0)}/"
                    f"{status.get('partsTotal', 0)} parts)"
                )
            time.sleep(poll_seconds)
    # the version the status names: the result of this upload, never a later one's
    result = store.get(result_bucket, keys.result_key(key), status.get("resultVersion"))
    if result is None:
        raise CommandError("the job is done but its result is missing")
    written = write_output(out, result)
    rows = len(read_table(result, is_result=True).records)
    print(f"done in {status.get('seconds')} s: {rows} rows -> {written}", file=sys.stderr)


def _failure_message(status: dict) -> str:
    reason = " ".join(str(status.get("error") or "no reason recorded").split())
    where = f" (details: {status['result']})" if status.get("result") else ""
    return f"the job failed: {reason}{where}"
