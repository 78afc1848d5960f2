"""The documentation agrees with itself and with the code.

- README.md stays a front door: at most 250 lines, and its first two commands are the ones CI
  runs (`.ci/run`) and `scripts/setup` provides.
- Every relative Markdown link in README.md and docs/*.md names an existing file, and every
  `#anchor` an existing heading of its target (GitHub's slugs).
- docs/settings.md's table names exactly the settings and defaults of Pulumi.yaml's `config:`
  and of the code's own defaults (the planner's and the image's typed settings).
- No table cell is an essay, and no page speaks of the project's internal history.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from runtime import environment
from runtime.planning.settings import PlanSettings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
SETTINGS_PAGE = ROOT / "docs" / "settings.md"

README_MAX_LINES = 250
CELL_MAX_WORDS = 60

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!\!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks (shell comments there are no headings)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced and not line.startswith("    "):  # nor an indented code block
            lines.append(line)
    return lines


def without_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than
    `-` and `_` removed, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[str]:
    found = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        found += [m.group("target") for m in LINK.finditer(without_code_spans(line))]
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        target_path = (path.parent / file_part).resolve() if file_part else path
        if not target_path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and target_path.suffix == ".md" and anchor not in anchors(target_path):
            broken.append(f"{target}: no heading #{anchor} in {target_path.name}")
    return broken


def table_rows(text: str, header: tuple[str, ...]) -> list[list[str]]:
    """The body rows of the first table whose header row is `header`."""
    lines = text.splitlines()
    want = "| " + " | ".join(header) + " |"
    start = lines.index(want)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_blocks(text: str, language: str = "bash") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def doc_value(value: object) -> str:
    """A default as the settings table writes it (between backticks)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def documented_settings() -> dict[str, str]:
    rows = table_rows(SETTINGS_PAGE.read_text(), ("setting", "default", "meaning"))
    table = {}
    for key, default, meaning in rows:
        assert re.fullmatch(r"`\w+`", key), f"a setting cell is one name in backticks: {key}"
        assert re.fullmatch(r"`[^`]*`", default), f"{key}: the default in backticks: {default}"
        assert meaning and len(meaning.split()) <= 20, f"{key}: a one-line meaning: {meaning}"
        assert key.strip("`") not in table, f"{key} twice"
        table[key.strip("`")] = default.strip("`")
    return table


def pulumi_defaults() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    return {key: doc_value(spec["default"]) for key, spec in config.items()}


# --- (a) a short README --------------------------------------------------------------------


def test_readme_is_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


# --- (b) links and anchors -----------------------------------------------------------------


def test_the_slug_rule_is_githubs():
    assert github_slug("Lambda: memory and cost per 1,000 options") == (
        "lambda-memory-and-cost-per-1000-options"
    )
    assert github_slug("Failed jobs by email (`notifyEmail`)") == "failed-jobs-by-email-notifyemail"
    assert github_slug("Knobs (`LsmSettings`)") == "knobs-lsmsettings"
    assert github_slug("Dashboard `<p>-operations`") == "dashboard-p-operations"


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n")
    page.write_text(
        "# Page\n\n[ok](other.md#a-heading) [here](#page) [gone](missing.md)"
        " [bad anchor](other.md#nothing)\n\n```bash\n# not a heading [x](nowhere.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nothing: no heading #nothing in other.md",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_readme_indexes_every_page_of_docs():
    targets = {target.partition("#")[0] for target in links(README)}
    missing = [f"docs/{page.name}" for page in DOCS if f"docs/{page.name}" not in targets]
    assert missing == []


# --- (c) the settings table ----------------------------------------------------------------


def test_the_settings_table_matches_pulumi_yaml():
    documented = documented_settings()
    declared = pulumi_defaults()
    assert sorted(documented) == sorted(declared)
    assert {k: documented[k] for k in declared} == declared


def test_the_settings_table_matches_the_codes_defaults():
    documented = documented_settings()
    planner = {
        camel(field.name): field.default
        for field in dataclasses.fields(PlanSettings)
        if field.name != "region"  # a stack's region is aws:region, not a project setting
    }
    image = {
        camel(field.name): field.default
        for field in dataclasses.fields(environment.RuntimeConfig)
        if field.name
        in {
            "threshold",
            "engine",
            "max_rows",
            "max_bytes",
            "max_parts",
            "greeks",
            "bounds",
            "auto_fast_seconds",
            "max_job_usd",
        }
    }
    for source, defaults in (("PlanSettings", planner), ("RuntimeConfig", image)):
        for key, value in defaults.items():
            assert key in documented, f"{source}.{key} is not in docs/settings.md"
            # the code's "" for priceTable means no override, the table's {}
            shown = "{}" if key == "priceTable" and value == "" else doc_value(value)
            assert documented[key] == shown, f"{source}.{key}: {shown} vs {documented[key]}"


def test_the_settings_check_notices_a_wrong_default(monkeypatch):
    text = SETTINGS_PAGE.read_text()
    wrong = text.replace("| `threshold` | `200` |", "| `threshold` | `100` |")
    assert wrong != text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: wrong)
    assert documented_settings()["threshold"] == "100"


# --- (d) the README's commands are CI's ----------------------------------------------------


def test_the_readmes_first_two_commands_are_the_ones_ci_and_setup_use():
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    run, test = (block.strip() for block in blocks[:2])
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci, f"the README's test command is not what .ci/run runs: {test}"
    assert run.startswith("bash scripts/setup && .venv/bin/python -m runtime simulate ")
    assert (ROOT / "scripts" / "setup").exists()
    for path in re.findall(r"\S+\.csv", run):
        assert (ROOT / path).exists(), path
    assert "--path fast" in run and "--path normal" in run


# --- tables and tone -----------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_table_cell_is_an_essay(page):
    long = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        if line.startswith("|"):
            for cell in line.strip().strip("|").split("|"):
                if len(cell.split()) > CELL_MAX_WORDS:
                    long.append(cell.strip()[:60] + "...")
    assert long == []


HISTORY = re.compile(
    r"\bissues? \d+|first wave|the name stays|first release|formerly|\bformer\b", re.I
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_user_docs_state_facts_not_the_projects_history(page):
    found = [line.strip()[:80] for line in page.read_text().splitlines() if HISTORY.search(line)]
    assert found == []
