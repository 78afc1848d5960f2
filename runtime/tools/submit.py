"""``submit``: the client for a deployed stack.

Uploads a file under ``<path>/<timestamp job id>/``, then (with ``--wait``) follows the
job's status object with a progress bar and downloads the result. Bucket names come from
``pulumi stack output --json`` or from flags. boto3 honours ``AWS_ENDPOINT_URL``, which is
how the tests point this client at the embedded endpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from runtime.adapters.s3 import ObjectStore
from runtime.cli import CommandError, read_input
from runtime.core import keys
from runtime.core.csvio import read_table

_POLL_SECONDS = 2.0


def stack_buckets(
    stack: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> tuple[str, str]:
    """(inputBucket, resultBucket) from ``pulumi stack output --json``."""
    if shutil.which("pulumi") is None:
        raise CommandError(
            "the pulumi CLI is not on PATH: install it, or pass --input-bucket and --result-bucket"
        )
    done = run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CommandError(f"pulumi stack output failed for stack {stack!r}: {done.stderr.strip()}")
    try:
        outputs = json.loads(done.stdout)
        return outputs["inputBucket"], outputs["resultBucket"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(
            f"stack {stack!r} has no inputBucket/resultBucket outputs: is it deployed?"
        ) from exc


def submit(args: argparse.Namespace) -> int:
    data = read_input(args.input)
    if args.input_bucket and args.result_bucket:
        input_bucket, result_bucket = args.input_bucket, args.result_bucket
    elif args.stack:
        input_bucket, result_bucket = stack_buckets(args.stack)
    else:
        raise CommandError("give --stack, or both --input-bucket and --result-bucket")
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
    out = args.out or args.input.with_name(args.input.name + "-result")
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
    """Follow the status object until the job ends; download the result or explain."""
    from tqdm import tqdm

    deadline = time.monotonic() + timeout
    with tqdm(total=None, unit="part", file=sys.stderr, disable=None) as bar:
        while True:
            status = store.get_json(result_bucket, keys.status_key(key)) or {}
            if status.get("parts_total"):
                bar.total = status["parts_total"]
                bar.n = status.get("parts_done", 0)
                bar.refresh()
            if status.get("state") == "done":
                break
            if status.get("state") == "failed":
                raise CommandError(_failure_message(store, result_bucket, key, status))
            if time.monotonic() > deadline:
                raise CommandError(
                    f"no result after {timeout:.0f} s; status: {json.dumps(status) or 'none yet'}"
                )
            time.sleep(poll_seconds)
    result = store.get(result_bucket, keys.result_key(key))
    if result is None:
        raise CommandError("the job is done but its result is missing")
    out.write_bytes(result)
    rows = len(read_table(result, is_result=True).records)
    print(f"done in {status.get('seconds')} s: {rows} rows -> {out}", file=sys.stderr)


def _failure_message(store: ObjectStore, bucket: str, key: str, status: dict) -> str:
    error = store.get(bucket, keys.error_key(key))
    if error:
        return f"the file was rejected: {error.decode().strip()}"
    failed = ", ".join(f"part {f['part']}: {f['error']}" for f in status.get("failed_parts", []))
    return f"the job failed: {status.get('error')}" + (f" ({failed})" if failed else "")
