"""The layout's import rules, checked on the source: no cycles among the project's
modules; what the image ships imports only the standard library, other shipped modules
and the packages runtime/requirements.txt pins; the tools are never imported by it."""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.project.test_contract import pins

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"
# Distribution name -> the module it installs, where they differ.
_MODULES = {"quantlib": "QuantLib"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for folder in ("runtime", "components"):
        for path in (ROOT / folder).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports count too)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                names.add(candidate if candidate in modules else base)
    return {name.strip(".") for name in names}


def dockerignored(path: Path) -> bool:
    """Whether runtime/.dockerignore keeps ``path`` out of the build context."""
    relative = path.relative_to(RUNTIME).as_posix()
    for line in (RUNTIME / ".dockerignore").read_text().splitlines():
        pattern = line.strip().rstrip("/")
        if not pattern or pattern.startswith("#"):
            continue
        if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
            return True
        if fnmatch.fnmatch(relative, pattern.removeprefix("**/")) or any(
            fnmatch.fnmatch(part, pattern.removeprefix("**/")) for part in Path(relative).parts
        ):
            return True
    return False


def test_the_tools_are_left_out_of_the_image_and_the_service_is_not():
    assert dockerignored(RUNTIME / "tools" / "simulate.py")
    assert not dockerignored(RUNTIME / "entrypoint.py")
    assert not dockerignored(RUNTIME / "protocol" / "steps.py")


def test_no_import_cycles_among_the_projects_modules():
    modules = project_modules()
    graph = {
        name: {m for m in imports_of(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ is imported before its modules: an edge to it is an edge too.
    visiting, done, cycles = set(), set(), []

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append([*trail[trail.index(name) :], name])
            return
        visiting.add(name)
        for target in sorted(graph[name]):
            visit(target, [*trail, target])
        visiting.discard(name)
        done.add(name)

    for name in sorted(graph):
        visit(name, [name])
    assert cycles == []


def test_the_image_imports_only_the_standard_library_shipped_modules_and_pins():
    modules = project_modules()
    shipped = {
        name
        for name, path in modules.items()
        if name.startswith("runtime") and not dockerignored(path)
    }
    pinned = {
        _MODULES.get(name, name.replace("-", "_")) for name in pins(RUNTIME / "requirements.txt")
    }
    allowed_roots = set(sys.stdlib_module_names) | pinned | {"botocore", "__future__"}
    offenders = {}
    for name in sorted(shipped):
        for imported in imports_of(modules[name], modules):
            if imported.startswith("runtime"):
                if imported not in shipped and imported.split(".")[0] == "runtime":
                    offenders.setdefault(name, []).append(imported)
            elif imported.split(".")[0] not in allowed_roots:
                offenders.setdefault(name, []).append(imported)
    assert offenders == {}


def image_tree(target: Path) -> Path:
    """runtime/ as the Dockerfile's build context copies it (honouring .dockerignore)."""
    for path in RUNTIME.rglob("*"):
        if path.is_file() and not dockerignored(path) and "__pycache__" not in path.parts:
            destination = target / "runtime" / path.relative_to(RUNTIME)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())
    return target


def test_in_the_image_price_works_and_a_tool_says_in_one_line_it_is_not_there(tmp_path):
    app = image_tree(tmp_path / "app")
    assert not (app / "runtime" / "tools").exists()
    # As in the image: the installed packages, and runtime/ only from /app. ``-S`` skips the
    # site hooks, among them the development environment's editable install of this project,
    # which would otherwise find the checkout's runtime/ (tools and all) first.
    packages = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(app), packages]),
        "PRICING_WORKERS": "1",
    }
    sample = app / "runtime" / "sample" / "EquityOption-100.csv"
    out = tmp_path / "out.csv"
    entry = [sys.executable, "-S", "-m", "runtime.entrypoint"]
    done = subprocess.run(
        [*entry, "price", str(sample), "-o", str(out), "--engine", "qdfp"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().count(b"\n") == 101
    tool = subprocess.run(
        [*entry, "simulate", str(sample), "--path", "fast"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tool.returncode == 2
    assert tool.stderr.strip().splitlines() == [
        "error: 'simulate' is a local tool and not part of the image; "
        "run it from a checkout of the project (python -m runtime ...)"
    ]


def test_dependencies_point_one_way():
    """tools -> adapters -> protocol -> pricing -> engines -> core: no layer imports one
    above it (planning sits beside pricing: the cost of pricing, never its caller)."""
    layers = [
        "runtime.core",
        "runtime.engines",
        "runtime.pricing",
        "runtime.planning",
        "runtime.protocol",
        "runtime.adapters",
        "runtime.tools",
    ]
    rank = {
        "runtime.core": 0,
        "runtime.engines": 1,
        "runtime.pricing": 2,
        "runtime.planning": 2,
        "runtime.protocol": 3,
        "runtime.adapters": 4,
        "runtime.tools": 5,
    }
    modules = project_modules()

    def layer(name: str) -> str | None:
        return next(
            (prefix for prefix in layers if name == prefix or name.startswith(prefix + ".")), None
        )

    upward = []
    for name, path in modules.items():
        own = layer(name)
        if own is None:
            continue
        for imported in imports_of(path, modules):
            other = layer(imported)
            if other is not None and rank[other] > rank[own]:
                upward.append((name, imported))
    assert upward == []
