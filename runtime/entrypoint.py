"""The image's one ENTRYPOINT: Lambda, Batch or the local command line, by environment.

- ``AWS_LAMBDA_RUNTIME_API`` set: serve ``runtime.lambda_handler.handler`` via awslambdaric.
- ``AWS_BATCH_JOB_ID`` set: a Batch job (manager, array child or merge); argv is
  ``S3bucket S3key`` from the job definition's command.
- neither: the command line (``price``, ``simulate``, ``submit``, ``generate``, ``bench``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

LAMBDA_HANDLER = "runtime.lambda_handler.handler"


def detect_mode(environ: Mapping[str, str]) -> str:
    if environ.get("AWS_LAMBDA_RUNTIME_API"):
        return "lambda"
    if environ.get("AWS_BATCH_JOB_ID"):
        return "batch"
    return "cli"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mode = detect_mode(os.environ)
    if mode == "lambda":
        from awslambdaric.__main__ import main as serve_lambda

        serve_lambda([sys.argv[0], LAMBDA_HANDLER])  # loops over invocations until stopped
        return 0
    if mode == "batch":
        from runtime.batch_job import main as run_batch_job

        return run_batch_job(args)
    from runtime.cli import main as run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
