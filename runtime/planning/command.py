"""``python -m runtime plan FILE``: what a file would cost and take on each path.

Reads the file here (no upload), takes the settings of ``--stack NAME`` (Pulumi.yaml and
Pulumi.<NAME>.yaml in the working directory, when there) or the stacks' defaults, then the
flags, and prints a table or, with ``--json``, ``{"rows", "cpuSeconds", "paths"}``. Every
problem with the input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from runtime.core.csvio import FileError
from runtime.engines import ENGINE_NAMES
from runtime.planning.decide import seconds_text, usd_text
from runtime.planning.model import ModelError
from runtime.planning.plan import Plan, plan_file
from runtime.planning.prices import ARCHITECTURES, PriceTableError, price_table
from runtime.planning.settings import PlanSettings, SettingsError
from runtime.planning.stackfile import StackFileError, read_stack

USAGE_ERROR = 2


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line and exit 2, like every other input problem here."""

    stream: TextIO | None = None

    def error(self, message: str) -> NoReturn:
        print(f"error: plan: {message}", file=self.stream or sys.stderr)
        raise SystemExit(USAGE_ERROR)


# flag -> (setting, type, help)
_SETTING_FLAGS = {
    "--threshold": ("threshold", int, "rows per part, a ceiling (stack: threshold)"),
    "--max-parts": ("maxParts", int, "fast-path parts at most"),
    "--lambda-memory-mb": ("lambdaMemoryMb", int, "Lambda memory (1,769 MB per vCPU)"),
    "--lambda-timeout-seconds": ("lambdaTimeoutSeconds", int, "Lambda timeout"),
    "--lambda-reserved-concurrency": ("lambdaReservedConcurrency", int, "-1: unreserved"),
    "--lambda-provisioned-concurrency": ("lambdaProvisionedConcurrency", int, "warm sandboxes"),
    "--max-vcpus": ("maxVcpus", int, "normal path's vCPU ceiling"),
    "--urgent-max-vcpus": ("urgentMaxVcpus", int, "urgent lane's vCPU ceiling (0: no lane)"),
    "--min-vcpus": ("minVcpus", int, "vCPUs kept running (no start-up wait)"),
    "--job-vcpus": ("jobVcpus", int, "vCPUs per Batch job"),
    "--job-memory-mb": ("jobMemoryMb", int, "memory per Batch job (0: automatic)"),
    "--job-timeout-seconds": ("jobTimeoutSeconds", int, "Batch attempt timeout"),
    "--region": ("region", str, "AWS region of the price table"),
    "--auto-fast-seconds": ("autoFastSeconds", int, "the auto lane's line"),
    "--max-job-usd": ("maxJobUsd", float, "the budget guard (0: off)"),
    "--price-table": ("priceTable", str, "JSON object replacing prices (docs/cost.md)"),
}


def _parser(stream: TextIO | None = None) -> argparse.ArgumentParser:
    program = "mc-pricing" if Path(sys.argv[0]).name == "mc-pricing" else "python -m runtime"
    parser = _OneLineParser(
        prog=f"{program} plan",
        description="Estimate CPU time, wall time and USD of a CSV file on each path, "
        "without uploading it. Every setting not given here is the stack's (--stack: "
        "Pulumi.yaml and Pulumi.STACK.yaml in this folder), else Pulumi.yaml's default.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"example:\n  {program} plan book.csv --stack us-east-1 --greeks --json",
    )
    parser.add_argument("input", type=Path)
    parser.add_argument("--engine", choices=ENGINE_NAMES, help="default: the stack's engine")
    parser.add_argument("--greeks", action="store_true", default=None, help="with Greeks")
    parser.add_argument("--stack", help="read Pulumi.yaml and Pulumi.STACK.yaml here")
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    parser.add_argument("--architecture", choices=ARCHITECTURES)
    parser.add_argument("--use-spot", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--use-fargate", action=argparse.BooleanOptionalAction, default=None)
    for flag, (_, kind, text) in _SETTING_FLAGS.items():
        parser.add_argument(flag, type=kind, help=text)
    parser.stream = stream
    return parser


def settings_from(args: argparse.Namespace, directory: Path) -> tuple[PlanSettings, str]:
    """Defaults, then the stack's files, then the flags; and where the settings came from."""
    values: dict = {}
    source = "the stacks' defaults (Pulumi.yaml's, no --stack)"
    if args.stack:
        values, source = read_stack(directory, args.stack)
    flags = {
        "engine": args.engine,
        "greeks": args.greeks,
        "architecture": args.architecture,
        "useSpot": args.use_spot,
        "useFargate": args.use_fargate,
    }
    for flag, (name, _, _) in _SETTING_FLAGS.items():
        flags[name] = getattr(args, flag.lstrip("-").replace("-", "_"))
    given = {name: value for name, value in flags.items() if value is not None}
    if given:
        source += "; flags: " + ", ".join(sorted(given))
    return PlanSettings().with_values({**values, **given}), source


def main(argv: Sequence[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = _parser(err).parse_args(list(argv))
    try:
        settings, source = settings_from(args, Path.cwd())
        price_table(settings.region, settings.architecture, settings.price_table)  # check first
        try:
            data = args.input.read_bytes()
        except OSError as exc:
            raise FileError(f"cannot read it: {exc.strerror or exc}") from None
        plan = plan_file(data, settings)
    except FileError as exc:
        print(f"error: {args.input}: {exc}", file=err)
        return USAGE_ERROR
    except (SettingsError, PriceTableError, StackFileError, ModelError) as exc:
        print(f"error: {exc}", file=err)
        return USAGE_ERROR
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1), file=out)
    else:
        print(render(plan, args.input.name, settings, source), file=out)
    return 0


def render(plan: Plan, name: str, settings: PlanSettings, source: str) -> str:
    """The plan as a table a person reads."""
    what = f"{settings.engine}{' with Greeks' if settings.greeks else ''}"
    lines = [
        f"{name}: {plan.rows:,} rows ({plan.options:,} options), engine {what}; "
        f"{settings.region}, {settings.architecture}",
        f"settings: {source}",
        f"estimated CPU: {plan.cpu_seconds:,.1f} s on one core (python -m runtime price)",
        "",
        f"{'path':<8}{'capacity':<24}{'parts x rows':>14}{'at once':>9}{'wall':>9}{'USD':>12}",
    ]
    for path in plan.paths.values():
        if not path.available:
            lines.append(f"{path.path:<8}not available: {path.reason}")
            continue
        capacity = {
            "LAMBDA": f"Lambda {settings.lambda_memory_mb} MB",
            "EC2": "Batch EC2 on-demand",
            "SPOT": "Batch EC2 Spot",
            "FARGATE": "Batch Fargate",
            "FARGATE_SPOT": "Batch Fargate Spot",
        }[path.capacity]
        shape = f"{path.parts:,} x {path.part_rows:,}"
        mark = "" if path.fits else "  ! " + path.reason
        lines.append(
            f"{path.path:<8}{capacity:<24}{shape:>14}{path.concurrency:>9,}"
            f"{seconds_text(path.wall_seconds):>9}{usd_text(path.usd):>12}{mark}"
        )
    lines += ["", f"auto/ would take: {plan.auto_reason}"]
    guard = [reason for reason in plan.budget.values() if reason]
    if settings.max_job_usd > 0:
        within = f"every path within maxJobUsd {usd_text(settings.max_job_usd)}"
        lines.append("budget guard: " + ("; ".join(guard) if guard else within))
    if not plan.model_current:
        lines.append(
            f"note: the {settings.engine} engine changed since the cost model was calibrated "
            f"({plan.calibrated}): python -m benchmarks.calibrate_planner --engines "
            f"{settings.engine}"
        )
    lines.append(
        "Estimates, not measurements: docs/cost.md says what they include and how far they "
        "can be from the bill."
    )
    return "\n".join(lines)
