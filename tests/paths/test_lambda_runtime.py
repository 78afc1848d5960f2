"""Lambda mode for real: the image's entrypoint serves the handler through awslambdaric,
against a Lambda Runtime API served by this test, with S3 on the embedded endpoint."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runtime.core import keys
from runtime.tools.local_cloud import INPUT_BUCKET, RESULT_BUCKET, local_cloud
from tests.conftest import SAMPLE
from tests.helpers import s3_notification as s3_event

ROOT = Path(__file__).resolve().parents[2]
API = "/2018-06-01/runtime"


class RuntimeApi(ThreadingHTTPServer):
    """One invocation out, its response (or error) back; later polls wait forever."""

    def __init__(self, event: dict) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.events: queue.Queue = queue.Queue()
        self.events.put(event)
        self.answers: queue.Queue = queue.Queue()


class _Handler(BaseHTTPRequestHandler):
    server: RuntimeApi
    protocol_version = "HTTP/1.1"  # the runtime client keeps its connection open

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        if self.path != f"{API}/invocation/next":
            self.send_error(404)
            return
        event = self.server.events.get()  # blocks: Lambda holds the poll until work arrives
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "request-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:fast",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.answers.put((self.path, body))


@pytest.mark.parametrize("threshold", ["1000", "40"])
def test_an_s3_event_through_awslambdaric_writes_the_result(tmp_path, threshold):
    key = "fast/20261124-0900/EquityOption-100.csv"
    with local_cloud() as cloud:
        cloud.create_stack()
        cloud.client("s3").put_object(Bucket=INPUT_BUCKET, Key=key, Body=SAMPLE.read_bytes())
        api = RuntimeApi(s3_event(INPUT_BUCKET, key))
        threading.Thread(target=api.serve_forever, daemon=True).start()
        env = {
            **os.environ,
            **cloud.environment,
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
            "RESULT_BUCKET": RESULT_BUCKET,
            "THRESHOLD": threshold,
            "ENGINE": "qdfp",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("AWS_BATCH_JOB_ID", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.entrypoint"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            path, body = api.answers.get(timeout=120)
        finally:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
            api.shutdown()
        assert path == f"{API}/invocation/request-1/response", output
        (outcome,) = json.loads(body)["outcomes"]
        s3 = cloud.client("s3")
        if threshold == "1000":
            assert outcome["action"] == "priced"
            result = s3.get_object(Bucket=RESULT_BUCKET, Key=keys.result_key(key))["Body"].read()
            assert result.count(b"\n") == 101 and b",price,stdError,error\n" in result
        else:
            assert (outcome["action"], outcome["detail"]) == ("split", "3 parts")
            listed = s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix=keys.FAST_PARTS_PREFIX)
            parts = sorted(item["Key"] for item in listed["Contents"])
            token = keys.parse_fast_part_key(parts[0])[0]
            assert parts == [keys.fast_part_key(token, 1, index) for index in range(3)]
