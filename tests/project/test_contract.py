"""The two halves agree: components/ and runtime/ never import each other, so check here."""

from __future__ import annotations

import re
from pathlib import Path

from components.settings import ENGINES
from runtime.engines import ENGINE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\\\]+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_the_stack_offers_exactly_the_engines_the_image_has():
    assert set(ENGINES) == set(ENGINE_NAMES)


def test_development_pins_of_runtime_packages_equal_the_image_pins():
    image = pins(ROOT / "runtime" / "requirements.txt")
    development = pins(ROOT / "requirements-dev.txt")
    shared = set(image) & set(development)
    assert {"quantlib", "numpy", "boto3", "awslambdaric", "tqdm"} <= shared
    assert {name: development[name] for name in shared} == {name: image[name] for name in shared}
