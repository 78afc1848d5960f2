"""The image's one ENTRYPOINT: Lambda, Batch or the command line, by environment.

- ``AWS_LAMBDA_RUNTIME_API`` set: serve ``runtime.adapters.lambda_handler.handler``
  through awslambdaric.
- ``AWS_BATCH_JOB_ID`` set: a Batch job (manager, array child or merge); argv is
  ``S3bucket S3key`` from the job definition's command.
- neither: the command line (``price``; the local tools are not in the image).
"""

from __future__ import annotations

import sys

from runtime.environment import runtime_mode

LAMBDA_HANDLER = "runtime.adapters.lambda_handler.handler"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mode = runtime_mode()
    if mode == "lambda":
        from awslambdaric.__main__ import main as serve_lambda

        serve_lambda([sys.argv[0], LAMBDA_HANDLER])  # loops over invocations until stopped
        return 0
    if mode == "batch":
        from runtime.adapters.batch_job import main as run_batch_job

        return run_batch_job(args)
    from runtime.cli import main as run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
