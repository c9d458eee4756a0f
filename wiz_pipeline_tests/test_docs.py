"""The README and the pages under docs/: every relative link leads somewhere, and the README stays short
and leads to every page."""

from __future__ import annotations

import pathlib
import re
from urllib.parse import unquote

import pytest

from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.landing.tables import columns_table
from wiz_pipeline.ocsf import CLASSES as OCSF_CLASSES
from wiz_pipeline.ocsf.columns import columns_text

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 250

# [text](target) and ![alt](target); a target may carry a "title" after a space.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The Markdown outside fenced code blocks and inline code, where a link is a link."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but ``-`` and ``_`` dropped, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
    """Every heading's anchor on a page; a repeated heading gets ``-1``, ``-2``... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: pathlib.Path) -> list[str]:
    return LINK.findall(prose(path.read_text()))


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE)  # http:, https:, mailto:


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_a_heading_of_it(page):
    broken = []
    for target in filter(relative, links(page)):
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_finds_the_links():
    # The check above must have something to check: the README links pages and their headings.
    assert any(relative(t) and "#" in t for t in links(README))
    assert any(t.endswith(".png") for t in links(README))


def test_the_readme_fits_on_a_few_screens_and_links_every_page():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    linked = {
        (README.parent / unquote(t.partition("#")[0])).resolve()
        for t in filter(relative, links(README))
        if t.partition("#")[0]
    }
    missing = [str(page.relative_to(ROOT)) for page in PAGES if page.resolve() not in linked]
    assert not missing, f"README.md links none of {missing}"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("TLS and proxies", "tls-and-proxies"),
        (
            "The current state of every issue (`issues_current`)",
            "the-current-state-of-every-issue-issues_current",
        ),
        ("The collector's cost", "the-collectors-cost"),
        ("Windows, checkpoints and the schedule", "windows-checkpoints-and-the-schedule"),
        ("From a schedule tick to a file", "from-a-schedule-tick-to-a-file"),
    ],
)
def test_anchors_follow_githubs_rules(heading, anchor):
    assert slug(heading) == anchor


@pytest.mark.parametrize("name", list(DATA_TYPES))
def test_the_output_page_has_each_data_types_column_table_as_declared(name):
    # The tables are generated from the declarations: paste columns_table(DATA_TYPES[name]) after a change.
    page = (ROOT / "docs" / "output.md").read_text()
    assert f"`{name}`:\n\n{columns_table(DATA_TYPES[name])}\n" in page


@pytest.mark.parametrize("class_name", list(OCSF_CLASSES))
def test_the_ocsf_page_lists_each_class_columns_as_declared(class_name):
    # Generated from the declarations: paste columns_text(class_name) after a change.
    page = (ROOT / "docs" / "ocsf.md").read_text()
    assert f"`{class_name}`: {columns_text(class_name)}\n" in page
