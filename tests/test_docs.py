"""The README and docs/ for readers: links that resolve, sizes a newcomer can read, the test command CI runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def local_links(doc: Path) -> list[str]:
    """Every relative link of a Markdown file (web addresses and in-page anchors left out), without its anchor."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    return [t.split("#")[0] for t in LINK.findall(text) if not re.match(r"[a-z]+:|#", t)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_local_link_resolves(doc):
    missing = [t for t in local_links(doc) if not (doc.parent / t).exists()]
    assert not missing, f"{doc.name} links to files that do not exist: {missing}"


def test_the_link_check_sees_a_broken_link(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("[a](a.md) [b](https://example.com) [c](#top) [d](d.md#part)\n```\n[e](e.md)\n```\n")
    (tmp_path / "a.md").write_text("")
    assert local_links(doc) == ["a.md", "d.md"]


def test_readme_and_benchmark_stay_short():
    assert len((ROOT / "README.md").read_bytes()) <= 16 * 1024
    assert len((ROOT / "docs" / "benchmark.md").read_bytes()) <= 12 * 1024


def test_readme_shows_the_test_command_ci_runs():
    command = re.search(r"^TEST_COMMAND='(.*)'$", (ROOT / ".ci" / "run").read_text(), re.M).group(1)
    assert command in (ROOT / "README.md").read_text().splitlines()
