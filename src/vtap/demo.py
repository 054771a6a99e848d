"""`vtap demo`: the main job on the embedded defaults, as `make demo` runs it.

Brings up the default leaf-spine lab with its controller (replacing a lab that runs already,
so re-running works), waits until the controller sees the whole fabric, proves that every host
reaches every other, and leaves the lab running for the operator to explore.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from vtap.errors import VtapError
from vtap.lab.reach import ping_all
from vtap.lab.topo import LeafSpinePlan


def vtap_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a `vtap` sub-command as its own process (the lab holder outlives this one)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vtap", *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise VtapError(f"vtap {' '.join(args)}: {message.removeprefix('vtap: error: ')}")
    return proc


def wait_for_fabric(api: str, plan: LeafSpinePlan, timeout: float) -> dict:
    """Poll the topology API until every switch and leaf-spine link is known."""
    want_links = len(plan.fabric_links)
    want_switches = len(plan.switches)
    deadline = time.monotonic() + timeout
    topo: dict = {}
    while time.monotonic() < deadline:
        try:
            topo = httpx.get(f"{api}/api/v1/topology", timeout=2).json()
        except httpx.HTTPError:
            topo = {}
        switches = [s for s in topo.get("switches", []) if s.get("connected")]
        if len(switches) >= want_switches and len(topo.get("links", [])) >= want_links:
            return topo
        time.sleep(0.5)
    raise VtapError(
        f"the controller did not see the whole fabric within {timeout:.0f}s "
        f"({len(topo.get('switches', []))}/{want_switches} switches, "
        f"{len(topo.get('links', []))}/{want_links} links)"
    )


def demo(
    spines: Annotated[int, typer.Option(help="Spine switches.")] = 4,
    leaves: Annotated[int, typer.Option(help="Leaf switches.")] = 8,
    hosts_per_leaf: Annotated[int, typer.Option(help="Hosts on each leaf.")] = 2,
) -> None:
    """Bring up the emulated data center with the controller and show it working."""
    console = Console()
    plan = LeafSpinePlan(spines, leaves, hosts_per_leaf)
    api = "http://127.0.0.1:8080"
    console.rule("[bold]vtap demo")
    console.print("Replacing any running lab (vtap lab down) …")
    vtap_cli("lab", "down")
    started = time.monotonic()
    console.print(f"Starting the lab: {spines} spines × {leaves} leaves × {hosts_per_leaf} hosts …")
    up = vtap_cli(
        "lab", "up", "--detach",
        "--spines", str(spines), "--leaves", str(leaves), "--hosts-per-leaf", str(hosts_per_leaf),
    )  # fmt: skip
    console.print(up.stdout.rstrip())
    topo = wait_for_fabric(api, plan, timeout=30)
    fabric_s = time.monotonic() - started
    console.print(
        f"Controller sees {len(topo['switches'])} switches and {len(topo['links'])} "
        f"leaf-spine links after {fabric_s:.1f}s."
    )
    hosts = {h.name: h.ip for h in plan.hosts}
    report = ping_all(hosts)
    if report.failed:  # the very first packets race host discovery; one retry settles it
        report = ping_all(hosts)
    reach_s = time.monotonic() - started

    table = Table(title="All-pairs reachability")
    for column in ("pairs", "answered", "loss", "seconds since start"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report.pairs), str(len(report.ok)), f"{report.loss_percent:.1f} %", f"{reach_s:.1f}"
    )
    console.print(table)
    if report.failed:
        shown = ", ".join(f"{a}->{b}" for a, b in report.failed[:10])
        raise VtapError(f"{len(report.failed)} host pairs cannot reach each other: {shown}")
    topo = httpx.get(f"{api}/api/v1/topology", timeout=5).json()
    console.print(f"Hosts discovered: {len(topo['hosts'])}")
    console.print(f"REST API: {api}/api/v1/topology   OpenAPI: {api}/docs")
    console.print("Try: vtap lab exec h1 -- ping -c3 10.0.0.16")
    console.print("Stop everything: vtap lab down")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
