"""`vtap controller`: run the controller in the foreground."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from vtap.errors import VtapError
from vtap.settings import Settings


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise VtapError(f"{option} must be HOST:PORT (e.g. 127.0.0.1:8080), not {value!r}")
    return host.strip("[]"), int(port)


def controller(
    of_port: Annotated[int, typer.Option(help="TCP port for OpenFlow switches.")] = 6653,
    api: Annotated[str, typer.Option(help="HOST:PORT of the REST API.")] = "127.0.0.1:8080",
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="OpenFlow over TLS with the PKI of `vtap pki init` (VTAP_TLS_DIR)"),
    ] = None,
) -> None:
    """Run the vtap controller in the foreground (OpenFlow 1.3 + REST API)."""
    from vtap.service import serve

    if not 0 < of_port < 65536:
        raise VtapError(f"--of-port must be 1..65535, not {of_port}")
    api_host, api_port = parse_host_port(api, "--api")
    extra = {"tls_dir": tls_dir} if tls_dir is not None else {}
    settings = Settings(of_port=of_port, api_host=api_host, api_port=api_port, **extra)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(settings))


def register(app: typer.Typer) -> None:
    app.command("controller")(controller)
