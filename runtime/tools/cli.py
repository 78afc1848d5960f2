"""The local tools' command line: ``python -m runtime simulate|submit|jobs|generate|bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.cli import CommandError, writable_output
from runtime.core.keys import PATHS
from runtime.engines import DEFAULT_ENGINE, ENGINE_NAMES
from runtime.tools.faults import FAULT_HELP, Fault, parse_fault


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
    parser = argparse.ArgumentParser(prog="python -m runtime")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser(
        "simulate", help="run the deployed event flow on this machine against a local S3"
    )
    simulate.add_argument("input", type=Path)
    simulate.add_argument(
        "--path",
        choices=PATHS,
        required=True,
        help="the lane to upload to: fast (Lambda), normal or urgent (Batch; the urgent "
        "queue's priority 10 starts its jobs before the normal queue's), or auto (the planner "
        "chooses fast or normal)",
    )
    simulate.add_argument("--threshold", type=positive_int, default=None)
    simulate.add_argument(
        "--workers", type=positive_int, default=4, help="warm Lambda containers (default 4)"
    )
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
    simulate.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE)
    simulate.add_argument(
        "--greeks", action="store_true", help="the stack setting greeks: add the Greek columns"
    )
    simulate.add_argument(
        "--bounds", action="store_true", help="the stack setting bounds: add priceLow, priceHigh"
    )
    simulate.add_argument("-o", "--out", type=Path)
    simulate.add_argument(
        "--fault", action="append", default=[], type=_fault, metavar="FAULT", help=FAULT_HELP
    )
    simulate.add_argument(
        "--endpoint-url",
        help="run against this embedded AWS (python -m runtime.tools.local_cloud) instead of "
        "a fresh one, so the job commands can see the job afterwards",
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

    submit = commands.add_parser("submit", help="send a CSV file to a deployed stack")
    submit.add_argument("input", type=Path)
    submit.add_argument("--stack", help="Pulumi stack to read bucket names from")
    submit.add_argument("--path", choices=PATHS, required=True)
    submit.add_argument("--input-bucket")
    submit.add_argument("--result-bucket")
    submit.add_argument("--wait", action="store_true", help="wait for the result")
    submit.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
    submit.add_argument("-o", "--out", type=Path)

    jobs = commands.add_parser(
        "jobs", help="list, show, cancel or retry jobs of a deployed stack or of simulate"
    )
    from runtime.tools.jobs import add_arguments

    add_arguments(jobs)

    generate = commands.add_parser("generate", help="write a deterministic sample portfolio")
    generate.add_argument("--rows", type=positive_int, required=True)
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("-o", "--out", type=Path, required=True)

    commands.add_parser("bench", help="benchmark the engines", add_help=False)
    return parser


def main(argv: list[str]) -> int:
    if argv[:2] == ["bench", "--audit"]:  # issue 19's benchmark: bench --audit [quick|full]
        from runtime.tools.audit import main as audit

        return audit(["--full"] if argv[2:3] == ["full"] else [])
    if argv[:1] == ["bench"]:
        from runtime.tools.bench import main as bench

        return bench(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            from runtime.tools.generate import generate_portfolio

            writable_output(args.out).write_bytes(generate_portfolio(args.rows, args.seed))
            print(f"wrote {args.rows} options to {args.out}", file=sys.stderr)
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
                endpoint=args.endpoint_url,
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
