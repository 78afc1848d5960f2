"""The project installs: a wheel builds, and it carries the command and the version."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from runtime import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_a_wheel_builds_with_the_command_and_without_the_infrastructure(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("mc_pricing-*.whl")
    assert wheel.name.startswith(f"mc_pricing-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "runtime/cli.py" in names and "runtime/sample/EquityOption-100.csv" in names
    assert not any(name.startswith(("components/", "tests/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mc-pricing = runtime.cli:console" in text


def test_the_command_prints_its_version():
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"mc-pricing {__version__}")
