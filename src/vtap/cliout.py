"""How read commands print (`-o`): a table for people, JSON or YAML for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
import yaml

from vtap.errors import VtapError

FORMATS = ("table", "json", "yaml")

OutputOpt = Annotated[
    str, typer.Option("-o", "--output", help="table (default), json or yaml", show_default=False)
]


def check(fmt: str) -> str:
    """The format, or a one-line error naming the choices (before anything is asked)."""
    if fmt not in FORMATS:
        raise VtapError(f"-o must be table, json or yaml, not {fmt!r}")
    return fmt


def emit(data: Any, fmt: str, table: Callable[[], None]) -> None:
    """Print `data` as JSON or YAML (exactly what the API answered), or call `table`."""
    check(fmt)
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
    elif fmt == "yaml":
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
    else:
        table()
