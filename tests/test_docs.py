"""The user documentation is self-contained: every local link in README.md and docs/ leads to a
file (and heading) that exists, and nothing in the repository points at documents that ship
outside it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*$", re.M)
# Spelled in two parts so this file does not match itself.
OUTSIDE_REFERENCES = [
    "shared" + "/spec",
    "aml-model-" + "resolution.md",
    "aml-inference-" + "server.md",
]
SKIPPED_DIRS = {
    ".git", ".tox", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "build",
    "dist", "results", "tour",
}  # fmt: skip


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces
    turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " _-")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    return {github_anchor(heading) for heading in HEADING.findall(text)}


def local_links(page: Path) -> Iterator[str]:
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    for target in LINK.findall(text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            yield target


def repository_text_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED_DIRS and not d.startswith(".venv") and not d.endswith(".egg-info")
        ]
        for name in files:
            yield Path(folder) / name


def test_the_readme_links_to_every_docs_page() -> None:
    linked = {target.split("#")[0] for target in local_links(REPO / "README.md")}
    pages = {f"docs/{page.name}" for page in PAGES if page.parent.name == "docs"}
    assert pages <= linked | {"docs/README.md"}, f"not linked from README.md: {pages - linked}"
    assert "docs/README.md" in linked


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_local_link_leads_to_an_existing_file_and_heading(page: Path) -> None:
    broken = []
    for target in local_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, f"broken links in {page.relative_to(REPO)}: {broken}"


def test_no_repository_file_points_at_documents_outside_the_repository() -> None:
    offenders: list[str] = []
    for path in repository_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # images, pickles, sockets
        offenders.extend(
            f"{path.relative_to(REPO)}: {needle}" for needle in OUTSIDE_REFERENCES if needle in text
        )
    assert not offenders, "write what users need into docs/ instead: " + ", ".join(offenders)
