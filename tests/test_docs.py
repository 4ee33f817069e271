"""The README and the docs site: every link leads somewhere, every repository path they name exists,
the README stays a front door, and mkdocs.yml lists every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
#: a repository path, in prose or in a command: starts at a top-level folder; ends before a placeholder or glob
REPO_PATH = re.compile(r"(?<![\w/.-])((?:fiqa_edge|train|converters|benchmarks|docs|tests|\.ci)/[\w./-]*+)(?![*<{])")


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def _anchors(page: Path) -> set[str]:
    """The heading ids Python-Markdown's toc gives a page (lower case, punctuation dropped, spaces to '-')."""
    ids = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M):
        slug = re.sub(r"[^\w\s-]", "", heading.lower()).strip()
        ids.add(re.sub(r"[-\s]+", "-", slug))
    return ids


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_to_files_and_headings_that_exist(page):
    broken = []
    for link in _links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(link)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(link)
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_in_the_text_exist(page):
    named = set(REPO_PATH.findall(page.read_text(encoding="utf-8")))
    missing = sorted(p for p in named if not (ROOT / p.rstrip(".")).exists())
    assert not missing, f"{page.name} names {missing}"


def test_the_checkers_see_a_broken_link_and_a_missing_path(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n[gone](nowhere.md) [here](page.md#top) [bad](page.md#bottom) `docs/no-such-file.md`\n")
    assert _links(page) == ["nowhere.md", "page.md#top", "page.md#bottom"]
    assert _anchors(page) == {"top"}
    assert REPO_PATH.findall(page.read_text()) == ["docs/no-such-file.md"]
    assert REPO_PATH.findall("fiqa-edge bench train/x.csv docs/bench/run1.* tests/<name>") == ["train/x.csv"]


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)
    assert lines[3].startswith("python3 -m venv .venv") and lines[4] == ".venv/bin/python -m pytest -q"


def test_mkdocs_lists_every_page():
    yml = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", yml, flags=re.M))
    top = {p.name for p in DOCS.glob("*.md")}
    assert listed == top, (sorted(top - listed), sorted(listed - top))
