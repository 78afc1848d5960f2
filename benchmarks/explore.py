"""Run the lifecycle explorer for many steps: ``python -m benchmarks.explore``.

Seeded random walks through the explorer's world (tests/explorer): the real handlers, with
Lambda, Batch, EventBridge and S3 modelled around them and faults injected. Each run is a
seed; a failing run prints its seed, the broken promise and the run's last steps, and
``--seed N --runs 1`` replays it exactly. ``--s3 moto`` runs against moto instead of the
in-memory double (about 20 times slower).

    python -m benchmarks.explore                     # 100,000 steps or more, in-memory S3
    python -m benchmarks.explore --steps 5000 --s3 moto
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from runtime.cli import HelpFormatter  # defaults shown once

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.explore",
        description="Random walks of the job lifecycle through the real handlers.",
        formatter_class=HelpFormatter,
        epilog="example: python -m benchmarks.explore --steps 120 --runs 50 --s3 memory",
    )
    parser.add_argument("--steps", type=int, default=100_000, help="steps at least")
    parser.add_argument("--run-length", type=int, default=120, help="steps per run")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--runs", type=int, default=0, help="runs exactly (0: until --steps)")
    parser.add_argument(
        "--s3", choices=("memory", "moto"), default="memory", help="the S3 the world uses"
    )
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the handlers log every step; the summary is ours
    from tests.explorer.machine import walk

    make_s3 = _s3_factory(args.s3)
    started = time.perf_counter()
    steps = runs = 0
    seed = args.seed
    while (args.runs and runs < args.runs) or (not args.runs and steps < args.steps):
        try:
            walk(seed, args.run_length, make_s3)
        except AssertionError as exc:
            print(f"VIOLATION in run seed={seed}: {exc}")
            _replay_trace(seed, args.run_length, make_s3)
            print(f"replay: python -m benchmarks.explore --seed {seed} --runs 1 --s3 {args.s3}")
            return 1
        steps += args.run_length
        runs += 1
        seed += 1
        if runs % 100 == 0:
            print(
                f"  {runs} runs, {steps} steps, {time.perf_counter() - started:.0f} s", flush=True
            )
    seconds = time.perf_counter() - started
    print(
        f"explorer ({args.s3} S3): {runs} runs of {args.run_length} steps = {steps} steps "
        f"(seeds {args.seed}..{seed - 1}), plus each run's drain; 0 invariant violations; "
        f"{seconds:.0f} s ({steps / seconds:.0f} steps/s)"
    )
    return 0


class _FreshMoto:
    """A fresh moto AWS for every run."""

    def __init__(self) -> None:
        self.mock = None

    def __call__(self):
        import boto3
        from moto import mock_aws

        if self.mock is not None:
            self.mock.stop()
        self.mock = mock_aws()
        self.mock.start()
        return boto3.client("s3", region_name="us-east-1")


def _s3_factory(kind: str):
    if kind == "memory":
        from tests.explorer.memory_s3 import MemoryS3

        return MemoryS3
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    return _FreshMoto()


def _replay_trace(seed: int, run_length: int, make_s3) -> None:
    """Replay the failing run, printing its steps up to the failure."""
    import random

    from tests.explorer.machine import RandomChooser, check_always, check_settled, drain, step
    from tests.explorer.world import World

    world = World(make_s3())
    chooser = RandomChooser(random.Random(seed))
    trace = []
    try:
        for _ in range(run_length):
            trace.append(step(world, chooser))
            check_always(world)
            if world.quiet() and not world.events.refusing:
                check_settled(world)
        drain(world)
        check_settled(world)
    except AssertionError:
        pass
    print("last steps:")
    for line in trace[-25:]:
        print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
