"""Accuracy and cost of the QuantLib engines' prices and Greeks on a realistic book.

Not a test (pytest does not collect it): the figures quoted in README's engines paragraph.
Run: ``.venv/bin/python -m benchmarks.greeks_report [--rows N] [--mc N]``.

The book: dividend yields to 7 %, maturities to 2 years, volatilities to 0.6, some negative
rates, a quarter European. References as in test_pricing_model.py: QdFp at high precision
and its small bumps (theta on a fine finite-difference grid) for American options, the
Black-Scholes-Merton closed form for European ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

from runtime.core.options import OptionSpec
from runtime.engines import get_engine
from tests.runtime.test_pricing_model import (
    GREEK_NAMES,
    TARGETS,
    american_reference,
    black_scholes_merton,
)


def realistic_book(rows: int, seed: int = 13) -> list[OptionSpec]:
    rng = random.Random(seed)
    today = dt.date(2024, 3, 1)
    settlement = today + dt.timedelta(days=2)
    options = []
    for i in range(rows):
        spot = rng.uniform(20.0, 200.0)
        options.append(
            OptionSpec(
                today,
                settlement,
                settlement + dt.timedelta(days=rng.randint(14, 730)),
                rng.random() < 0.5,
                round(spot, 2),
                round(spot * rng.uniform(0.8, 1.2), 2),
                round(rng.uniform(-0.01, 0.06), 4),
                round(rng.uniform(0.1, 0.6), 3),
                dividend_yield=round(rng.choice([0.0, rng.uniform(0.0, 0.07)]), 4),
                american=i % 4 != 3,
            )
        )
    return options


def timed(engine, options, greeks):
    started = time.perf_counter()
    quotes = engine(options, greeks=greeks)
    return quotes, (time.perf_counter() - started) / len(options) * 1000


def report(name: str, options: list[OptionSpec]) -> None:
    engine = get_engine(name)
    plain, price_ms = timed(engine, options, False)
    quotes, greeks_ms = timed(engine, options, True)
    worst = dict.fromkeys(("price", "european", *GREEK_NAMES), 0.0)
    misses = dict.fromkeys(GREEK_NAMES, 0)
    for spec, quote in zip(options, quotes, strict=True):
        reference = american_reference(spec) if spec.american else black_scholes_merton(spec)
        price, greeks = reference
        error = abs(quote.price - price)
        worst["price" if spec.american else "european"] = max(
            worst["price" if spec.american else "european"], error
        )
        for greek in GREEK_NAMES:
            value, want = getattr(quote.greeks, greek), getattr(greeks, greek)
            absolute, relative = TARGETS[greek]
            worst[greek] = max(worst[greek], abs(value - want))
            misses[greek] += abs(value - want) > max(absolute, relative * abs(want))
    assert [q.price for q in plain] == [q.price for q in quotes]
    print(
        f"{name:5} {len(options):4} options: price {price_ms:8.2f} ms/option, with Greeks "
        f"{greeks_ms:8.2f} ms/option ({greeks_ms / price_ms:.1f}x)"
    )
    print(
        "      max abs error: "
        + ", ".join(f"{k} {v:.4g}" for k, v in worst.items())
        + "\n      outside issue 13's targets: "
        + ", ".join(f"{k} {v}/{len(options)}" for k, v in misses.items())
    )


def main() -> None:
    from runtime.cli import HelpFormatter  # defaults shown once

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.greeks_report",
        description="Each engine's Greeks against bumped QuantLib references.",
        formatter_class=HelpFormatter,
        epilog="example: python -m benchmarks.greeks_report --rows 50 --mc 2",
    )
    parser.add_argument("--rows", type=int, default=200, help="options of the book")
    parser.add_argument("--mc", type=int, default=4, help="options for mc (seconds each)")
    args = parser.parse_args()
    book = realistic_book(args.rows)
    for name in ("qdfp", "fd"):
        report(name, book)
    if args.mc:
        # mc's tolerance run takes seconds to a minute on long, volatile options: take
        # American options up to a year and volatility 0.3, like the workshop's sample
        short = [
            o
            for o in book
            if o.american and (o.maturity - o.settlement).days <= 365 and o.volatility <= 0.3
        ]
        puts, calls = [o for o in short if not o.is_call], [o for o in short if o.is_call]
        report("mc", (puts[: (args.mc + 1) // 2] + calls)[: args.mc])


if __name__ == "__main__":
    main()
