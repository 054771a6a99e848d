"""`vtap topology`, `vtap flows`, `vtap health`: what the controller sees, for people (a table)
and for scripts (`-o json|yaml`: exactly what the REST API answered)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vtap import cliout
from vtap.apiclient import DEFAULT_API, ApiClient, ApiOpt
from vtap.cliout import OutputOpt
from vtap.domain.protocols import NAMES as PROTO_NAMES


def _table(columns: tuple[str, ...], rows: list[tuple[Any, ...]], title: str = "") -> None:
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("topology")
    def topology(api: ApiOpt = DEFAULT_API, output: OutputOpt = "table") -> None:
        """Switches, links and hosts as the controller knows them."""
        cliout.check(output)
        topo = ApiClient(api).call("GET", "/topology")

        def tables() -> None:
            _table(
                ("switch", "dpid", "connected", "fabric ports", "edge ports"),
                [
                    (
                        s["name"],
                        s["dpid"],
                        "yes" if s["connected"] else "no",
                        sum(p["role"] == "fabric" for p in s["ports"]),
                        sum(p["role"] == "edge" for p in s["ports"]),
                    )
                    for s in topo["switches"]
                ],
                "switches",
            )
            _table(
                ("a", "b"),
                [
                    (
                        f"{x['a']['switch']}:{x['a']['port_no']}",
                        f"{x['b']['switch']}:{x['b']['port_no']}",
                    )
                    for x in topo["links"]
                ],
                "links",
            )
            _table(
                ("host", "ip", "mac", "switch", "port"),
                [
                    (h.get("name"), h["ip"], h["mac"], h["switch"], h["port_no"])
                    for h in topo["hosts"]
                ],
                "hosts",
            )

        cliout.emit(topo, output, tables)

    @app.command("flows")
    def flows(
        host: Annotated[
            str | None, typer.Option(help="Source or destination: IP, MAC or name.")
        ] = None,
        proto: Annotated[
            str | None, typer.Option(help="tcp, udp, icmp, icmpv6 or a number.")
        ] = None,
        port: Annotated[int | None, typer.Option(help="Source or destination port.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many flows.")] = 100,
        api: ApiOpt = DEFAULT_API,
        output: OutputOpt = "table",
    ) -> None:
        """Flows the switches forward now (newest first), with their rates."""
        cliout.check(output)
        params = {"limit": str(limit)}
        for key, value in (("host", host), ("proto", proto), ("port", port)):
            if value is not None:
                params[key] = str(value)
        found = ApiClient(api).call("GET", "/flows", params=params)

        def table() -> None:
            _table(
                ("flow", "src", "dst", "proto", "packets", "pps", "bps"),
                [
                    (
                        f["id"],
                        f"{f.get('src_host') or f['src_ip']}:{f['src_port']}",
                        f"{f.get('dst_host') or f['dst_ip']}:{f['dst_port']}",
                        PROTO_NAMES.get(f["ip_proto"], f["ip_proto"]),
                        f["packets"],
                        round(f.get("pps", 0.0), 1),
                        round(f.get("bps", 0.0)),
                    )
                    for f in found["flows"]
                ],
                f"{found['total']} flows",
            )

        cliout.emit(found, output, table)

    @app.command("health")
    def health(api: ApiOpt = DEFAULT_API, output: OutputOpt = "table") -> None:
        """The controller's health: switches, links, hosts, event-loop lag, install rounds."""
        cliout.check(output)
        out = ApiClient(api).call("GET", "/health")

        def table() -> None:
            rows: list[tuple[Any, ...]] = [
                (key, out[key])
                for key in ("status", "version", "uptime_s", "switches", "links", "hosts", "alerts")
                if key in out
            ]
            for section in ("install", "audit"):
                for key, value in (out.get(section) or {}).items():
                    rows.append((f"{section}.{key}", value))
            loop = out.get("event_loop") or {}
            if loop:
                rows.append(("event_loop.max_ms", loop.get("max_ms")))
                rows.append(("event_loop.stalls", len(loop.get("stalls", []))))
            _table(("what", "value"), rows)

        cliout.emit(out, output, table)
