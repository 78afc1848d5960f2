"""Fixtures the infra tests share: each stack file's program, run once under mocks."""

from __future__ import annotations

import pytest

from .harness import STACKS, Run, run_stack
from .operations_cases import EMAIL


@pytest.fixture(scope="module", params=STACKS)
def run(request: pytest.FixtureRequest) -> Run:
    """The program of each stack file as it is (a module may define its own `run`)."""
    return run_stack(request.param)


@pytest.fixture(scope="module", params=STACKS)
def emailed(request: pytest.FixtureRequest) -> Run:
    """The program of each stack file with notifyEmail set."""
    return run_stack(request.param, (("notifyEmail", EMAIL),))
