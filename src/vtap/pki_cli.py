"""`vtap pki init`: the certificates for OpenFlow over TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vtap.settings import Settings


def register(app: typer.Typer) -> None:
    pki = typer.Typer(help="Certificates for OpenFlow over TLS.", no_args_is_help=True)

    @pki.command("init")
    def init(
        directory: Annotated[
            Path | None, typer.Option("--dir", help="where (default: <state dir>/pki)")
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="replace an existing PKI")] = False,
    ) -> None:
        """Create a controller CA, a switch CA, and a certificate for each side."""
        from vtap.pki import init_pki

        made = init_pki(directory or Settings().state_dir / "pki", force=force)
        typer.echo(f"PKI in {made.directory}:")
        typer.echo(f"  controller: {made.cert('controller')} (key beside it)")
        typer.echo(f"  switches:   {made.cert('switch')}, trusting {made.controller_ca}")
        typer.echo(f"  run: VTAP_TLS_DIR={made.directory} vtap controller, or vtap lab up --tls")

    app.add_typer(pki, name="pki")
