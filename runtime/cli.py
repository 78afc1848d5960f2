"""The command line: ``mc-pricing COMMAND ...``, the same as ``python -m runtime COMMAND ...``.

``price`` and ``plan`` are part of the image. The other commands are local tools
(``runtime/tools/``, left out of the image by ``runtime/.dockerignore``); in the image they
say so in one line. The habits every command shares live here: ``-o -`` for stdout, an
unknown flag reported with its own command's usage, defaults and an example in ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from runtime import __version__
from runtime.engines import DEFAULT_ENGINE, ENGINE_NAMES

# The local tools' commands, with their one-line help (their arguments live in the tools).
TOOL_COMMANDS = {
    "simulate": "run the deployed event flow on this machine against a local S3 and Batch",
    "submit": "send a CSV file to a deployed stack",
    "jobs": "list, show, cancel, retry jobs or download a result (a stack's or simulate's)",
    "generate": "write a deterministic sample portfolio",
}


class CommandError(Exception):
    """A problem to report to the user in one line, without a traceback."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help``: every option's default, and the description and example as written.
    An option whose help already says its default, or has none, is left as it is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None:
            return text
        return super()._get_help_string(action)


def program() -> str:
    """The name the user typed: ``mc-pricing`` (the installed command) or ``python -m runtime``."""
    return "mc-pricing" if Path(sys.argv[0]).name == "mc-pricing" else "python -m runtime"


def example(*commands: str) -> str:
    """A ``--help`` epilog: commands as the user types them."""
    return "example:\n" + "\n".join(f"  {program()} {command}" for command in commands)


STDOUT = Path("-")  # ``-o -``: the result on standard output


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parse_args``, except that an unknown argument is reported with the usage of the
    sub-command it was given to (argparse reports it with the top-level usage)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The innermost sub-command's parser that ``args`` went through (argparse keeps its
    sub-parsers in a private action: there is no public way to find them)."""
    while True:
        subcommands = [
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        ]
        if not subcommands:
            return parser
        chosen = getattr(args, subcommands[0].dest, None)
        if chosen not in subcommands[0].choices:
            return parser
        parser = subcommands[0].choices[chosen]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program(),
        description="Price equity options from CSV files: here, or on a deployed stack.",
        formatter_class=HelpFormatter,
        epilog=example(
            "price runtime/sample/EquityOption-100.csv -o book-result.csv",
            "simulate runtime/sample/EquityOption-100.csv --path fast",
            "COMMAND --help",
        ),
    )
    parser.add_argument("--version", action="version", version=f"mc-pricing {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    price = commands.add_parser(
        "price",
        help="price a CSV file on this machine",
        description="Price a CSV file on this machine, on every vCPU; row errors stay in "
        "their rows and do not fail the run.",
        formatter_class=HelpFormatter,
        epilog=example("price book.csv --greeks -o -"),
    )
    price.add_argument("input", type=Path, help="the CSV file (docs/protocol.md: columns)")
    price.add_argument(
        "-o", "--out", type=Path, help="result file, - for standard output (default: INPUT-result)"
    )
    price.add_argument(
        "--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE, help="pricing engine"
    )
    price.add_argument(
        "--greeks",
        action="store_true",
        help="add delta, gamma, vega, theta, rho columns (QuantLib conventions: vega and rho "
        "per 1.00 change, theta per year)",
    )
    price.add_argument(
        "--bounds",
        action="store_true",
        help="add priceLow, priceHigh columns: an interval that contains the value (engine lsm)",
    )
    commands.add_parser("plan", help=PLAN_HELP, add_help=False)  # its own parser
    for name, summary in TOOL_COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


PLAN_HELP = "estimate CPU time, wall time and USD of a file on each path (no upload)"


# The tools' own command line, looked up by name: the image has no runtime/tools/, and
# the service must run without it (tests/project/test_imports.py builds that image tree).
TOOLS_CLI = "runtime.tools.cli"


def tools_available() -> bool:
    return importlib.util.find_spec("runtime.tools") is not None


def console() -> None:
    """The ``mc-pricing`` command (pyproject.toml), and ``python -m runtime``."""
    try:
        code = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours. Standard output is
        # pointed at nothing, so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    sys.exit(code)


def main(argv: list[str]) -> int:
    if argv[:1] == ["plan"]:
        from runtime.planning.command import main as plan

        return plan(argv[1:])
    if argv[:1] and argv[0] in TOOL_COMMANDS:
        if not tools_available():
            print(
                f"error: '{argv[0]}' is a local tool and not part of the image; "
                "run it from a checkout of the project (python -m runtime ...)",
                file=sys.stderr,
            )
            return 2
        return importlib.import_module(TOOLS_CLI).main(argv)
    args = parse_arguments(_parser(), argv)
    try:
        return price_file(args.input, args.out, args.engine, greeks=args.greeks, bounds=args.bounds)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc


def writable_output(path: Path) -> Path:
    """Fail before any work when the result could not be written."""
    if path == STDOUT:
        return path
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise CommandError(f"cannot write {path}: it is a directory")
    return path


def price_file(
    input_path: Path,
    out: Path | None,
    engine_name: str,
    greeks: bool = False,
    bounds: bool = False,
) -> int:
    """Price a file here, with progress on stderr; row errors do not fail the run."""
    from runtime.core.csvio import FileError, read_table
    from runtime.engines.parallel import parallel_engine
    from runtime.environment import cpu_limits
    from runtime.pricing import price_table
    from runtime.progress import progress_bar

    out = writable_output(out or input_path.with_name(input_path.name + "-result"))
    try:
        table = read_table(read_input(input_path), greeks=greeks, bounds=bounds)
    except FileError as exc:
        raise CommandError(f"{input_path}: {exc}") from exc
    started = time.perf_counter()
    with progress_bar(len(table.records), "option") as advance:
        engine = parallel_engine(engine_name, cpu_limits())
        priced = price_table(table, engine, advance, greeks=greeks, bounds=bounds)
    seconds = time.perf_counter() - started
    written = write_output(out, priced.csv)
    per_option = seconds / max(1, priced.rows - priced.errors)
    what = " and ".join(
        [engine_name, *(["Greeks"] if greeks else []), *(["bounds"] if bounds else [])]
    )
    print(
        f"priced {priced.rows - priced.errors} of {priced.rows} rows ({priced.errors} with errors) "
        f"with {what} in {seconds:.2f} s ({per_option * 1000:.1f} ms per option) -> {written}",
        file=sys.stderr,
    )
    return 0


def write_output(path: Path, data: bytes) -> str:
    """Write a result to ``path`` (``-``: standard output); where it went, for the user."""
    if path == STDOUT:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return "standard output"
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from exc
    return str(path)
