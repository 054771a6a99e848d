"""`vtap controller`: run the controller in the foreground."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from vtap.config import DEFAULT_CONFIG, load
from vtap.errors import VtapError
from vtap.logs import FORMATS, configure


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise VtapError(f"{option} must be HOST:PORT (e.g. 127.0.0.1:8080), not {value!r}")
    return host.strip("[]"), int(port)


def controller(
    config: Annotated[
        Path | None,
        typer.Option(help=f"TOML settings file (default {DEFAULT_CONFIG} if it exists)."),
    ] = None,
    of_host: Annotated[
        str | None, typer.Option(help="Address for OpenFlow switches [default: 127.0.0.1].")
    ] = None,
    of_port: Annotated[
        int | None, typer.Option(help="TCP port for OpenFlow switches [default: 6653].")
    ] = None,
    api: Annotated[
        str | None, typer.Option(help="HOST:PORT of the REST API [default: 127.0.0.1:8080].")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text, or json: one JSON object per line (log collectors).")
    ] = "text",
    access_log: Annotated[
        bool | None,
        typer.Option("--access-log/--no-access-log", help="Log every REST request."),
    ] = None,
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="OpenFlow over TLS with the PKI of `vtap pki init` (VTAP_TLS_DIR)"),
    ] = None,
) -> None:
    """Run the vtap controller in the foreground (OpenFlow 1.3 + REST API). Settings: flags,
    then VTAP_* variables, then the config file, then defaults (`vtap config show`)."""
    from vtap.service import serve

    if of_port is not None and not 0 < of_port < 65536:
        raise VtapError(f"--of-port must be 1..65535, not {of_port}")
    if log_format not in FORMATS:
        raise VtapError(f"--log-format must be text or json, not {log_format!r}")
    flags: dict[str, object] = {
        "of_host": of_host,
        "of_port": of_port,
        "tls_dir": tls_dir,
        "access_log": access_log,
    }
    if api is not None:
        flags["api_host"], flags["api_port"] = parse_host_port(api, "--api")
    settings = load(config, flags).settings
    configure(log_level, log_format)
    asyncio.run(serve(settings))


def register(app: typer.Typer) -> None:
    app.command("controller")(controller)
