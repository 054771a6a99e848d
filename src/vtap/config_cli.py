"""`vtap config show|example`: the effective settings and where each came from; a documented
config file to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vtap import cliout
from vtap.cliout import OutputOpt
from vtap.config import DEFAULT_CONFIG, example, load, rows


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(
        help="Settings: the config file, VTAP_* variables, flags.", no_args_is_help=True
    )

    @config_app.command("show")
    def show(
        config: Annotated[
            Path | None, typer.Option(help=f"TOML settings file (default {DEFAULT_CONFIG}).")
        ] = None,
        output: OutputOpt = "table",
    ) -> None:
        """The effective settings of `vtap controller` and where each came from."""
        cliout.check(output)
        effective = load(config)
        data = rows(effective)

        def table() -> None:
            out = Table(title=f"config file: {effective.config or 'none'}")
            for column in ("setting", "value", "source"):
                out.add_column(column)
            for row in data:
                out.add_row(row["setting"], str(row["value"]), row["source"])
            Console().print(out)

        cliout.emit(data, output, table)

    @config_app.command("example")
    def example_() -> None:
        """A config file with every setting documented (commented out at its default)."""
        typer.echo(example())

    app.add_typer(config_app, name="config")
