"""A stack's settings from Pulumi.yaml (the defaults) and Pulumi.<stack>.yaml (its values).

The image carries no YAML library (runtime/requirements.txt), so this reads the small part
of YAML those two files use: ``config:`` with one block per setting and its ``default:``
(Pulumi.yaml), or ``project:name: value`` lines and one level of nested mapping
(Pulumi.<stack>.yaml). Scalars: booleans, numbers, quoted or plain strings, ``[]``, ``{}``
and flow lists. tests/runtime/test_planning_stackfile.py checks it reads the project's own
files as a YAML library does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_FILE = "Pulumi.yaml"


class StackFileError(ValueError):
    """A stack name without a file, or a line this reader cannot read."""


def _scalar(text: str) -> Any:
    text = _strip_comment(text).strip()
    if text in ("", "~", "null"):
        return None
    if text[0] in "\"'":
        if text[0] == '"':
            return json.loads(text)
        return text[1:-1].replace("''", "'")
    if text[0] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            if text[0] == "[":
                inner = text[1:-1].strip()
                return [_scalar(item) for item in inner.split(",")] if inner else []
            raise StackFileError(f"cannot read the value {text!r}") from None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _strip_comment(text: str) -> str:
    quote = None
    for i, char in enumerate(text):
        if char in "\"'" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or text[i - 1].isspace()):
            return text[:i]
    return text


def _entry(line: str) -> tuple[int, str, str] | None:
    """(indent, key, value text) of a ``key: value`` line; keys may hold a colon
    (``aws:region``), so the key ends at the first colon followed by a space or the end."""
    stripped = line.lstrip(" ")
    if not stripped or stripped.startswith(("#", "-")):
        return None
    indent = len(line) - len(stripped)
    found = stripped.find(": ")
    if found < 0:
        body = _strip_comment(stripped).rstrip()
        return (indent, body[:-1].strip(), "") if body.endswith(":") else None
    return indent, stripped[:found].strip(), stripped[found + 2 :]


def _config_lines(text: str) -> list[str]:
    """The lines of the top-level ``config:`` block."""
    lines, inside = [], False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.split(":", 1)[0].strip() == "config"
            continue
        if inside:
            lines.append(line)
    return lines


def project_defaults(text: str) -> tuple[str, dict[str, Any]]:
    """(project name, setting -> default) from Pulumi.yaml's text."""
    name = ""
    for line in text.splitlines():
        if line.startswith("name:"):
            name = str(_scalar(line.split(":", 1)[1]))
    defaults: dict[str, Any] = {}
    setting = None
    for line in _config_lines(text):
        entry = _entry(line)
        if entry is None:
            continue
        indent, key, value = entry
        if indent == 2:
            setting = key
        elif indent == 4 and setting and key == "default":
            defaults[setting] = _scalar(value)
    return name, defaults


def stack_values(text: str) -> dict[str, Any]:
    """key -> value from a stack file's ``config:`` (``aws:region``, ``mc-pricing:x``...);
    a key with a nested mapping gets a dict of its direct children."""
    values: dict[str, Any] = {}
    current = None
    for line in _config_lines(text):
        entry = _entry(line)
        if entry is None:
            continue
        indent, key, value = entry
        if indent == 2:
            current = key
            values[key] = _scalar(value) if _strip_comment(value).strip() else {}
        elif indent == 4 and current and isinstance(values.get(current), dict):
            values[current][key] = _scalar(value)
    return values


def read_stack(directory: Path, stack: str) -> tuple[dict[str, Any], str]:
    """The settings of ``stack`` (camelCase names, ``region`` from aws:region), and a note
    saying where they came from. Without Pulumi.yaml here (the image), no settings and a
    note saying so; a Pulumi.yaml without the stack's file is an error."""
    project_file = directory / PROJECT_FILE
    if not project_file.is_file():
        return {}, (
            f"no {PROJECT_FILE} in {directory} (the image has none): the stack's defaults "
            "and the flags given are used"
        )
    name, settings = project_defaults(project_file.read_text())
    stack_file = directory / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        known = sorted(p.name[7:-5] for p in directory.glob("Pulumi.*.yaml"))
        raise StackFileError(
            f"no stack file {stack_file.name} in {directory} (stacks here: "
            f"{', '.join(known) or 'none'})"
        )
    for key, value in stack_values(stack_file.read_text()).items():
        if key == "aws:region":
            settings["region"] = value
        elif name and key.startswith(f"{name}:"):
            settings[key.split(":", 1)[1]] = value
    return settings, f"settings of stack {stack} ({stack_file.name} over {PROJECT_FILE})"
