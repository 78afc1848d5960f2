"""An emulated Batch container with faults: ``python -m runtime.tools.faulty_job
[--fault F]... [--state-dir DIR] -- S3bucket S3key``.

Installs the faults (``runtime.tools.faults``) in this process, then runs the image's real
entrypoint with the job's arguments, exactly as the container would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.tools.faults import install, parse_fault


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.tools.faulty_job")
    parser.add_argument("--fault", action="append", default=[], type=parse_fault)
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("args", nargs="*", help="the job's arguments: S3bucket S3key")
    options = parser.parse_args(argv)
    install(options.fault, options.state_dir)
    from runtime.entrypoint import main as entrypoint

    return entrypoint(options.args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
