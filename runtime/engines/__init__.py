"""Pricing engines behind one interface: a callable from a batch of options to quotes.

Engines take a whole batch so vectorised engines (``lsm``) can price a part at once;
a failure on one option becomes that option's ``Quote.error``, never an exception.
With ``greeks=True`` every priced quote also carries its ``Greeks``; an engine that takes
``bounds`` (``lsm``) gives ``price_low`` and ``price_high`` with ``bounds=True``
(``call_engine`` passes each only to an engine that takes it).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Protocol

from runtime.core.options import OptionSpec, Quote


class Engine(Protocol):
    def __call__(self, options: Sequence[OptionSpec], greeks: bool = False) -> list[Quote]: ...


# name -> (module, function); imported on first use, so a process loads only its engine.
_ENGINES = {
    "lsm": ("runtime.engines.lsm", "price_lsm"),
    "mc": ("runtime.engines.quantlib_engines", "price_mc"),
    "qdfp": ("runtime.engines.quantlib_engines", "price_qdfp"),
    "fd": ("runtime.engines.quantlib_engines", "price_fd"),
}
ENGINE_NAMES = tuple(_ENGINES)
# lsm beats the workshop's mc on speed and on accuracy: docs/performance.md.
DEFAULT_ENGINE = "lsm"


def get_engine(name: str) -> Engine:
    """Return the engine called ``name``; raise ValueError naming the choices otherwise."""
    if name not in _ENGINES:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)}")
    module, function = _ENGINES[name]
    return getattr(importlib.import_module(module), function)


# An option that killed a worker process twice is not priced again in this process.
WORKER_DIED = "pricing failed: worker process died"


def accepts(engine: Callable, name: str) -> bool:
    """Whether ``engine`` takes the argument ``name`` (``greeks``, ``bounds``): an engine
    written before it existed is still called, without it, and its rows say what is
    missing."""
    try:
        parameters = inspect.signature(engine).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def accepts_greeks(engine: Callable) -> bool:
    return accepts(engine, "greeks")


def call_engine(
    engine: Callable, options: Sequence[OptionSpec], greeks: bool, bounds: bool = False
) -> list[Quote]:
    """``engine(options)``, with ``greeks=True`` and ``bounds=True`` when requested and the
    engine takes them."""
    extra = {}
    if greeks and accepts(engine, "greeks"):
        extra["greeks"] = True
    if bounds and accepts(engine, "bounds"):
        extra["bounds"] = True
    return engine(options, **extra)
