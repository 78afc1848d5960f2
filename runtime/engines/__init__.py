"""Pricing engines behind one interface: a callable from a batch of options to quotes.

Engines take a whole batch so vectorised engines (``lsm``) can price a part at once;
a failure on one option becomes that option's ``Quote.error``, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runtime.options import OptionSpec, Quote

Engine = Callable[[Sequence[OptionSpec]], list[Quote]]

ENGINE_NAMES = ("mc", "qdfp", "fd", "lsm")
DEFAULT_ENGINE = "mc"


def get_engine(name: str) -> Engine:
    """Return the engine called ``name``; raise ValueError naming the choices otherwise."""
    if name == "mc":
        from runtime.engines.quantlib_engines import price_mc

        return price_mc
    if name == "qdfp":
        from runtime.engines.quantlib_engines import price_qdfp

        return price_qdfp
    if name == "fd":
        from runtime.engines.quantlib_engines import price_fd

        return price_fd
    if name == "lsm":
        from runtime.engines.lsm import price_lsm

        return price_lsm
    raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)}")
