"""Keep the top-level README's measured figures equal to what a benchmark run wrote.

Each benchmark writes `headline.md` next to its results; the README holds the same text
between `<!-- <name>:begin -->` and `<!-- <name>:end -->`. `--readme README.md` on a bench
command replaces that block, and a unit test checks the two agree, so no figure in the
README is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

from vtap.errors import VtapError


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def block(text: str, name: str) -> str | None:
    """The text between a block's markers (without them), or None when it has none."""
    begin, end = markers(name)
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = markers(name)
    if begin not in text or end not in text:
        raise VtapError(f"the README has no {begin} … {end} block to update")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{begin}\n{body.strip()}\n{end}{tail}"


def sync(readme: Path, name: str, body: str) -> None:
    try:
        text = readme.read_text()
    except OSError as exc:
        raise VtapError(f"cannot read {readme}: {exc.strerror}") from None
    readme.write_text(replace_block(text, name, body))
