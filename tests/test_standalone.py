"""The repository stands alone: a clone with nothing beside it has everything it refers to.

- No tracked file points outside the repository for the contract or the test corpus:
  the contract lives in `docs/contract.md`, the corpus in `tests/corpus/`.
- Every link into the docs (`docs/contract.md#tie-outs` in a comment, `[..](outputs.md)` in
  a page) names a file that exists and a heading that exists in it, so a pointer that
  replaced an outside reference cannot rot silently.
- xlwings is needed only by the Excel add-in: an extra, not a dependency.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Spelled in pieces so this file does not match itself.
OUTSIDE_REFERENCES = ("SPEC" + ".md", "SPEC" + " §", "../" + "shared", "shared" + "/corpus")


@cache
def tracked_text_files() -> list[Path]:
    """Every file git tracks that reads as UTF-8 text (the corpus workbooks are binary)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.fail(f"`git ls-files` failed in {ROOT}: {listed.stderr.strip()}", pytrace=False)
    files = []
    for name in filter(None, listed.stdout.split("\0")):
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    assert len(files) > 50, f"git lists only {len(files)} text files under {ROOT}"
    return files


def test_no_file_refers_to_a_contract_or_corpus_outside_the_repository():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in tracked_text_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if any(ref in line for ref in OUTSIDE_REFERENCES)
    ]
    assert not found, (
        "these lines point outside the repository; link docs/contract.md#<section> or "
        "docs/rules-language.md instead:\n" + "\n".join(found)
    )


# --- links into the docs ------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
_DOC_ANCHOR = re.compile(r"(?P<path>[\w./-]+\.md)#(?P<anchor>[\w-]+)")


def slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown page (repeats get -1, -2, … as GitHub does)."""
    seen: Counter[str] = Counter()
    found, fenced = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return frozenset(found)


def test_slug_matches_github_anchors():
    assert slug("ALLOCATE — spread a pool's cost") == "allocate--spread-a-pools-cost"
    assert slug("Tie-outs") == "tie-outs"
    assert slug("Break-even rates (`RATE` rows)") == "break-even-rates-rate-rows"
    assert slug("1. The `Forecast` sheet") == "1-the-forecast-sheet"


def _resolve(source: Path, target: str, root: Path) -> Path | None:
    """A link target relative to the linking file, or (as code comments write it) to the root."""
    for base in (source.parent, root):
        candidate = (base / target).resolve()
        if candidate.is_file() and root in candidate.parents:
            return candidate
    return None


def _broken_links(path: Path, root: Path = ROOT) -> list[str]:
    text = path.read_text(encoding="utf-8")
    targets: list[str] = []
    if path.suffix == ".md":
        targets += [t for t in _MARKDOWN_LINK.findall(text) if "://" not in t]
        targets = [t for t in targets if not t.startswith("mailto:")]
    for match in _DOC_ANCHOR.finditer(text):
        if text[max(0, match.start() - 1) : match.start()] != ":":  # not part of a URL
            targets.append(match.group(0))
    broken = []
    for target in targets:
        file_part, _, anchor = target.partition("#")
        page = path if not file_part else _resolve(path, file_part, root)
        if page is None:
            broken.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif anchor and page.suffix == ".md" and anchor not in anchors(page):
            broken.append(
                f"{path.relative_to(root)}: {target} (no heading #{anchor} in "
                f"{page.relative_to(root)})"
            )
    return broken


def test_every_link_into_the_docs_names_a_real_file_and_heading():
    this_test = Path(__file__).resolve()  # its own examples of broken links are on purpose
    broken = [b for path in tracked_text_files() if path != this_test for b in _broken_links(path)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_check_catches_a_missing_file_or_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Tie-outs\n\n[up](#guide)\n")
    code = tmp_path / "money.py"
    code.write_text(
        "# (docs/guide.md#tie-outs) (docs/guide.md#journal) (docs/gone.md#x)\n"
        "# https://example.org/README.md#anything\n"
    )
    assert _broken_links(code, root=tmp_path.resolve()) == [
        "money.py: docs/guide.md#journal (no heading #journal in docs/guide.md)",
        "money.py: docs/gone.md#x (no such file)",
    ]
    assert _broken_links((tmp_path / "docs" / "guide.md").resolve(), root=tmp_path.resolve()) == []


# --- the contract page covers the contract ---------------------------------------------


def test_contract_page_has_every_section_the_code_links_to():
    sections = anchors(ROOT / "docs" / "contract.md")
    for section in [
        "workbook-contract",
        "general-rules-for-input-sheets",
        "input-sheets",
        "settings",
        "email-settings",
        "output-sheets",
        "ownership",
        "money-and-rounding",
        "journal",
        "tie-outs",
        "errors",
        "command-line",
        "exit-codes",
    ]:
        assert section in sections, f"docs/contract.md has no section #{section}"


# --- xlwings is the add-in's, not the engine's ---------------------------------------


def test_xlwings_is_an_extra_not_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name = re.compile(r"^\s*xlwings\b", re.IGNORECASE)
    assert not any(name.match(d) for d in project["dependencies"])
    assert any(name.match(d) for d in project["optional-dependencies"]["excel"])
    assert any(name.match(d) for d in project["optional-dependencies"]["test"])


def test_the_command_line_and_engine_never_import_xlwings():
    imports = re.compile(r"^\s*(import|from)\s+xlwings\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("costloop", "engine", "rules", "workbooks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if imports.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"only the Excel add-in may import xlwings: {offenders}"
