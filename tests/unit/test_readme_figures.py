"""The README's measured figures are the ones the benchmarks wrote (headline.md), not typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from vtap.bench import readme
from vtap.errors import VtapError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "page"),
    [
        ("controlplane", "README.md"),
        ("dataplane", "README.md"),
        ("faults", "README.md"),
        ("faults", "docs/reliability.md"),
    ],
)
def test_readme_block_is_the_benchmarks_headline(name: str, page: str) -> None:
    headline = (ROOT / "docs" / "results" / name / "headline.md").read_text().strip("\n")
    assert readme.block((ROOT / page).read_text(), name) == headline


def test_replace_block_keeps_the_rest_and_names_a_missing_block() -> None:
    text = "intro\n<!-- x:begin -->\nold\n<!-- x:end -->\noutro\n"
    new = readme.replace_block(text, "x", "new figures\n")
    assert new == "intro\n<!-- x:begin -->\nnew figures\n<!-- x:end -->\noutro\n"
    assert readme.block(new, "x") == "new figures"
    with pytest.raises(VtapError, match="no <!-- y:begin -->"):
        readme.replace_block(text, "y", "z")
