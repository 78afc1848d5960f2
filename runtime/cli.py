"""The local command line: ``python -m runtime COMMAND ...``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from runtime.engines import DEFAULT_ENGINE, ENGINE_NAMES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime", description="Price American equity options from CSV files."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    price = commands.add_parser("price", help="price a CSV file on this machine")
    price.add_argument("input", type=Path)
    price.add_argument("-o", "--out", type=Path, help="result file (default: INPUT-result)")
    price.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE)

    generate = commands.add_parser("generate", help="write a deterministic sample portfolio")
    generate.add_argument("--rows", type=int, required=True)
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("-o", "--out", type=Path, required=True)

    simulate = commands.add_parser(
        "simulate", help="run the deployed event flow on this machine against a local S3"
    )
    simulate.add_argument("input", type=Path)
    simulate.add_argument("--path", choices=("fast", "normal"), required=True)
    simulate.add_argument("--threshold", type=int, default=None)
    simulate.add_argument("--workers", type=int, default=4)
    simulate.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE)
    simulate.add_argument("-o", "--out", type=Path)

    submit = commands.add_parser("submit", help="send a CSV file to a deployed stack")
    submit.add_argument("input", type=Path)
    submit.add_argument("--stack", help="Pulumi stack to read bucket names from")
    submit.add_argument("--path", choices=("fast", "normal"), required=True)
    submit.add_argument("--input-bucket")
    submit.add_argument("--result-bucket")
    submit.add_argument("--wait", action="store_true", help="wait for the result")
    submit.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
    submit.add_argument("-o", "--out", type=Path)

    commands.add_parser(
        "bench", help="benchmark the engines (see docs/performance.md)", add_help=False
    )
    return parser


def main(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        from runtime.bench import main as bench

        return bench(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "price":
            return price_file(args.input, args.out, args.engine)
        if args.command == "generate":
            from runtime.generate import generate_portfolio

            args.out.write_bytes(generate_portfolio(args.rows, args.seed))
            print(f"wrote {args.rows} options to {args.out}", file=sys.stderr)
            return 0
        if args.command == "simulate":
            from runtime.simulate import simulate

            return simulate(
                args.input, args.path, args.threshold, args.workers, args.engine, args.out
            )
        if args.command == "submit":
            from runtime.submit import submit

            return submit(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {args.command}")


class CommandError(Exception):
    """A problem to report to the user in one line, without a traceback."""


def read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc


def price_file(input_path: Path, out: Path | None, engine_name: str) -> int:
    """Price a file here, with a progress bar on stderr; row errors do not fail the run."""
    from tqdm import tqdm

    from runtime.csvio import FileError, read_table
    from runtime.pricing import make_pricer, price_table

    out = out or input_path.with_name(input_path.name + "-result")
    try:
        table = read_table(read_input(input_path))
    except FileError as exc:
        raise CommandError(f"{input_path}: {exc}") from exc
    started = time.perf_counter()
    with tqdm(total=len(table.records), unit="option", file=sys.stderr, disable=None) as bar:
        priced = price_table(table, make_pricer(engine_name), bar.update)
    seconds = time.perf_counter() - started
    out.write_bytes(priced.csv)
    per_option = seconds / max(1, priced.rows - priced.errors)
    print(
        f"priced {priced.rows - priced.errors} of {priced.rows} rows ({priced.errors} with errors) "
        f"with {engine_name} in {seconds:.2f} s ({per_option * 1000:.1f} ms per option) -> {out}",
        file=sys.stderr,
    )
    return 0
