"""`vtap trace --from HOST --packet 'tcp,ipv4_dst=…,tcp_dst=80' [--verify]`."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vtap import cliout
from vtap.apiclient import DEFAULT_API, ApiClient, ApiOpt
from vtap.cliout import OutputOpt
from vtap.errors import VtapError


def _ovs_env() -> dict[str, str]:
    """Where this machine's switches are: OVS_RUNDIR if set, else the lab's, else vtap's own
    or the system's Open vSwitch."""
    env = dict(os.environ)
    if "OVS_RUNDIR" in env:
        return env
    from vtap.lab.ovs import OvsService
    from vtap.lab.state import StateStore
    from vtap.settings import Settings

    settings = Settings()
    state = StateStore(settings.state_dir).load()
    if state is not None and state.ovs_rundir:
        return env | {"OVS_RUNDIR": state.ovs_rundir}
    status = OvsService.from_settings(settings).status()
    return env | {"OVS_RUNDIR": str(status.rundir)}


def _print(out: dict[str, Any], verdicts: list[Any] | None) -> None:
    console = Console()
    console.print(f"packet: {out['packet']}")
    path = {
        "installed": "installed",
        "computed": "computed (its first packet installs it)",
        "none": "none",
    }[out["path"]]
    console.print(f"forwarding path: {path}")
    console.print(f"policies matching: {', '.join(out['policies']) or 'none'}")
    table = Table()
    for column in ("switch", "in", "table", "prio", "cookie", "owner", "for policies", "what"):
        table.add_column(column)
    for hop in out["hops"]:
        table.add_row(
            hop["switch"],
            str(hop["in_port"]),
            str(hop["table"]),
            str(hop["priority"]),
            hop["cookie"],
            hop["owner"],
            ", ".join(hop["policies"]),
            "copy" if hop["copy_in_flight"] else "packet",
        )
    console.print(table)
    for d in out["delivered"]:
        headers = "original headers" if d["unchanged"] else "headers CHANGED"
        console.print(
            f"delivered: {d['host'] or '?'} ({d['switch']} port {d['port_no']}), "
            f"{d['role']}, {headers}"
        )
    for sw in out["to_controller"]:
        console.print(f"to the controller at {sw}")
    for drop in out["drops"]:
        console.print(f"dropped: {drop}")
    if verdicts is not None:
        for v in verdicts:
            mark = "ok  " if v.agree else "DIFF"
            console.print(f"verify {mark} {v.switch} in_port {v.in_port}: {v.detail}")


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace_command(
        from_: Annotated[str, typer.Option("--from", help="Sending host: name, IP or MAC.")],
        packet: Annotated[
            str, typer.Option(help="e.g. 'tcp,ipv4_dst=10.0.0.5,tcp_dst=80' (ovs-ofctl style).")
        ],
        verify: Annotated[
            bool,
            typer.Option(
                "--verify",
                help="Also run it through ovs-appctl ofproto/trace on "
                "each switch (here) and report any disagreement (exit 1).",
            ),
        ] = False,
        api: ApiOpt = DEFAULT_API,
        output: OutputOpt = "table",
    ) -> None:
        """Where a packet goes, from the controller's model of the rules it compiled: every
        entry it hits (switch, table, cookie, the policies it exists for), where it is
        delivered, and where each copy goes."""
        cliout.check(output)
        out = ApiClient(api).call("POST", "/trace", {"from": from_, "packet": packet})
        verdicts = None
        if verify:
            from vtap.trace.verify import run_appctl
            from vtap.trace.verify import verify as check

            verdicts = check(out["entered"], run_appctl(_ovs_env()))
            out["verify"] = [v.__dict__ for v in verdicts]
        cliout.emit(out, output, lambda: _print(out, verdicts))
        if verdicts is not None and not all(v.agree for v in verdicts):
            differ = [f"{v.switch} ({v.detail})" for v in verdicts if not v.agree]
            raise VtapError(f"the switches disagree with the model: {'; '.join(differ)}")
