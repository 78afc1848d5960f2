"""The local tools' command line: ``mc-pricing simulate|submit|jobs|generate``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runtime.cli import (
    CommandError,
    HelpFormatter,
    example,
    parse_arguments,
    program,
    writable_output,
    write_output,
)
from runtime.core.keys import PATHS
from runtime.engines import DEFAULT_ENGINE, ENGINE_NAMES
from runtime.tools.faults import FAULT_HELP, Fault, parse_fault
from runtime.tools.submit import ENDPOINT_VARIABLE


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _fault(text: str) -> Fault:
    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fair_share_weights(text: str) -> dict[str, float]:
    """``risk=3,trading=1``: each team's weight, as the stack's ``fairShare`` setting."""
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        team, _, raw = item.partition("=")
        team = team.strip()
        try:
            weight = float(raw)
        except ValueError:
            weight = 0.0
        if not team.isalnum() or len(team) > 255 or not weight > 0:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected TEAM=WEIGHT, a team of letters and digits and a weight "
                "above 0 (e.g. risk=3,trading=1)"
            )
        if team in weights:
            raise argparse.ArgumentTypeError(f"team {team!r} is given twice")
        weights[team] = weight
    if not weights:
        raise argparse.ArgumentTypeError("expected TEAM=WEIGHT,... (e.g. risk=3,trading=1)")
    return weights


def _parser() -> argparse.ArgumentParser:
    from runtime.tools.jobs import add_arguments
    from runtime.tools.submit import ENDPOINT_VARIABLE, STACK_VARIABLE

    parser = argparse.ArgumentParser(prog=program(), formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser(
        "simulate",
        help="run the deployed event flow on this machine against a local S3",
        description="Run a CSV file through a lane of the stack on this machine: the same "
        "handlers as on AWS, against an embedded S3, Lambda, EventBridge and Batch. The result "
        "line goes to standard output, progress to standard error.",
        formatter_class=HelpFormatter,
        epilog=example(
            "simulate runtime/sample/EquityOption-100.csv --path normal --threshold 10",
            "simulate book.csv --path fast --fault crash-part=1 -o -",
        ),
    )
    simulate.add_argument("input", type=Path, help="the CSV file to upload")
    simulate.add_argument(
        "--path",
        choices=PATHS,
        required=True,
        help="the lane to upload to: fast (Lambda), normal or urgent (Batch; the urgent "
        "queue's priority 10 starts its jobs before the normal queue's), or auto (the planner "
        "chooses fast or normal)",
    )
    simulate.add_argument(
        "--threshold",
        type=positive_int,
        default=None,
        help="rows per part, as the stack's threshold (default: the stack's default)",
    )
    simulate.add_argument("--workers", type=positive_int, default=4, help="warm Lambda containers")
    simulate.add_argument(
        "--capacity",
        type=positive_int,
        default=None,
        metavar="N",
        help="Batch job slots, the compute environment's size in 1-vCPU jobs, shared by "
        "both queues (default: --workers); the next job or array child starts when one frees",
    )
    simulate.add_argument(
        "--fair-share",
        type=fair_share_weights,
        default=None,
        metavar="TEAM=W,...",
        help="fair share between teams on both Batch queues, as the stack's fairShare "
        "(e.g. risk=3,trading=1; uploads of other teams run in the share 'default', weight 1)",
    )
    simulate.add_argument(
        "--team", help="the upload's 'team' metadata (its share with --fair-share)"
    )
    simulate.add_argument(
        "--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE, help="pricing engine"
    )
    simulate.add_argument(
        "--greeks", action="store_true", help="the stack setting greeks: add the Greek columns"
    )
    simulate.add_argument(
        "--bounds", action="store_true", help="the stack setting bounds: add priceLow, priceHigh"
    )
    simulate.add_argument(
        "-o",
        "--out",
        type=Path,
        help="result file, - for standard output (default: INPUT-result beside the input; "
        "for the sample inside the project, a folder per lane in the system's temporary "
        "folder)",
    )
    simulate.add_argument(
        "--fault", action="append", default=[], type=_fault, metavar="FAULT", help=FAULT_HELP
    )
    simulate.add_argument(
        "--endpoint-url",
        help="run against this embedded AWS (python -m runtime.tools.local_cloud) instead of "
        "a fresh one, so the job commands can see the job afterwards (environment: "
        f"{ENDPOINT_VARIABLE})",
    )
    simulate.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="keep every container's and Batch job's JSON log lines in DIR",
    )
    simulate.add_argument(
        "--keep",
        action="store_true",
        help="keep the embedded AWS running after the simulation (for the job commands) "
        "until Ctrl-C",
    )

    submit = commands.add_parser(
        "submit",
        help="send a CSV file to a deployed stack",
        description="Upload a CSV file to a lane of a deployed stack and, with --wait, "
        "download its result.",
        formatter_class=HelpFormatter,
        epilog=example("submit book.csv --stack us-east-1 --path normal --wait"),
    )
    submit.add_argument("input", type=Path, help="the CSV file to upload")
    submit.add_argument(
        "--stack",
        help=f"Pulumi stack to read bucket names from (environment: {STACK_VARIABLE})",
    )
    submit.add_argument("--path", choices=PATHS, required=True, help="the lane to upload to")
    submit.add_argument("--input-bucket", help="instead of the stack's")
    submit.add_argument("--result-bucket", help="instead of the stack's")
    submit.add_argument("--wait", action="store_true", help="wait for the result")
    submit.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
    submit.add_argument(
        "-o",
        "--out",
        type=Path,
        help="with --wait: result file, - for standard output (default: INPUT-result)",
    )

    jobs = commands.add_parser(
        "jobs",
        help="list, show, cancel, retry jobs or download a result, on a stack or simulate's",
        description="The jobs of a deployed stack (--stack) or of the embedded AWS of "
        "simulate --keep (--endpoint-url). These flags work before or after the job command.",
        formatter_class=HelpFormatter,
        epilog=example(
            "jobs --stack us-east-1 list --state failed",
            "jobs show normal/book.csv --endpoint-url http://127.0.0.1:5000",
            "jobs result normal/book.csv -o book-result.csv",
        ),
    )
    add_arguments(jobs)

    generate = commands.add_parser(
        "generate",
        help="write a deterministic sample portfolio",
        description="Write a portfolio in the workshop's format (maturities up to about "
        "three months, moneyness 0.6 to 1.6): the same rows and seed, the same bytes.",
        formatter_class=HelpFormatter,
        epilog=example("generate --rows 1000 -o book.csv"),
    )
    generate.add_argument("--rows", type=positive_int, required=True, help="options to write")
    generate.add_argument("--seed", type=int, default=1, help="the same seed, the same file")
    generate.add_argument(
        "-o", "--out", type=Path, required=True, help="the CSV file to write, - for stdout"
    )
    return parser


def main(argv: list[str]) -> int:
    args = parse_arguments(_parser(), argv)
    try:
        if args.command == "generate":
            from runtime.tools.generate import generate_portfolio

            writable_output(args.out)
            written = write_output(args.out, generate_portfolio(args.rows, args.seed))
            print(f"wrote {args.rows} options to {written}", file=sys.stderr)
            return 0
        if args.command == "simulate":
            from runtime.tools.simulate import simulate

            return simulate(
                args.input,
                args.path,
                args.threshold,
                args.workers,
                args.engine,
                args.out,
                faults=args.fault,
                endpoint=args.endpoint_url or os.environ.get(ENDPOINT_VARIABLE) or None,
                keep=args.keep,
                logs=args.logs,
                greeks=args.greeks,
                bounds=args.bounds,
                capacity=args.capacity,
                fair_share=args.fair_share,
                team=args.team,
            )
        if args.command == "jobs":
            from runtime.tools.jobs import main as jobs

            return jobs(args)
        if args.command == "submit":
            from runtime.tools.submit import submit

            return submit(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {args.command}")
