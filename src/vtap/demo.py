"""`vtap demo`: the main job on the embedded defaults, as `make demo` runs it.

Brings up the default leaf-spine lab with its controller (replacing a lab that runs already,
so re-running works), waits until the controller sees the whole fabric, proves that every host
reaches every other, and leaves the lab running for the operator to explore.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from vtap import apiauth
from vtap.errors import VtapError
from vtap.lab.reach import ping_all
from vtap.lab.topo import LeafSpinePlan
from vtap.lab.traffic import Capture, FrameSpec, by_payload, send
from vtap.settings import Settings


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
            topo = apiauth.get(f"{api}/api/v1/topology", timeout=2).json()
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


SEED_TAPS = [
    # TAP 1 of the seed (Fig. 3.4): h1 → h2, TCP port 80, monitor h3.
    {"name": "seed-tap1", "src_mac": "00:00:00:00:00:01", "src_ip": "10.0.0.1",
     "dst_mac": "00:00:00:00:00:02", "dst_ip": "10.0.0.2", "monitor_mac": "00:00:00:00:00:03",
     "monitor_ip": "10.0.0.3", "ip_proto": 6, "dst_port": 80},
    # TAP 2: source h1, any destination, UDP, VLAN 100, monitor h4.
    {"name": "seed-tap2", "src_mac": "00:00:00:00:00:01", "src_ip": "10.0.0.1",
     "monitor_mac": "00:00:00:00:00:04", "monitor_ip": "10.0.0.4", "ip_proto": 17,
     "vlan_id": 100},
]  # fmt: skip

# (policy, what is sent, destination host, FrameSpec fields, should it be copied)
SEED_TRAFFIC = [
    ("seed-tap1", "h1→h2 TCP dport 80", 2, {"proto": "tcp", "dport": 80}, True),
    ("seed-tap1", "h1→h2 TCP dport 81", 2, {"proto": "tcp", "dport": 81}, False),
    ("seed-tap2", "h1→h6 UDP VLAN 100", 6, {"vlan": 100, "dport": 5000}, True),
    ("seed-tap2", "h1→h6 UDP VLAN 200", 6, {"vlan": 200, "dport": 5000}, False),
    ("seed-tap2", "h1→h6 UDP untagged", 6, {"dport": 5000}, False),
]


def _host(n: int) -> tuple[str, str]:
    return f"00:00:00:00:00:{n:02x}", f"10.0.0.{n}"


def seed_taps(api: str, workdir: Path, count: int = 200) -> Table:
    """Apply the seed's two example policies, send matching and non-matching traffic and
    show what the monitors captured."""
    client = apiauth.client(f"{api}/api/v1", 30)
    existing = {p["name"]: p for p in client.get("/policies").json()}
    monitors = {}
    for spec in SEED_TAPS:
        if spec["name"] in existing:
            client.delete(f"/policies/{existing[spec['name']]['id']}")
        policy = client.post("/policies", json=spec).json()
        deadline = time.monotonic() + 15
        while policy.get("status") != "active" and time.monotonic() < deadline:
            time.sleep(0.2)
            policy = client.get(f"/policies/{policy['id']}").json()
        if policy.get("status") != "active":
            raise VtapError(f"policy {spec['name']} is not active: {policy.get('status_reason')}")
        monitors[spec["name"]] = int(str(spec["monitor_ip"]).rsplit(".", 1)[1])

    table = Table(title="The seed's TAP policies on the lab")
    for column in ("policy", "traffic", "sent", "delivered", "copies at monitor", "headers"):
        table.add_column(column)
    src_mac, src_ip = _host(1)
    for name, label, dst, fields, copied in SEED_TRAFFIC:
        dst_mac, dst_ip = _host(dst)
        frame = FrameSpec(src_mac, dst_mac, src_ip, dst_ip, count=count, **fields)
        send("h1", FrameSpec(**{**frame.__dict__, "count": 3, "run": "00000000"}), inter=0.05)
        mon = monitors[name]
        with (
            Capture(f"h{dst}", workdir / f"{frame.run}-dst.pcap") as at_dst,
            Capture(f"h{mon}", workdir / f"{frame.run}-mon.pcap") as at_mon,
        ):
            send("h1", frame, inter=0.002)
        delivered = by_payload(at_dst.frames(), frame.run)
        copies = by_payload(at_mon.frames(), frame.run)
        intact = all(copies[p][0] == delivered.get(p, [b""])[0] for p in copies)
        n_copies = sum(len(v) for v in copies.values())
        ok = n_copies == (count if copied else 0)
        table.add_row(
            name,
            label,
            str(count),
            str(sum(len(v) for v in delivered.values())),
            f"[{'green' if ok else 'red'}]{n_copies}[/] (want {count if copied else 0})",
            ("intact" if intact else "[red]changed[/]") if copies else "-",
        )
    return table


def demo(
    spines: Annotated[int, typer.Option(help="Spine switches.")] = 4,
    leaves: Annotated[int, typer.Option(help="Leaf switches.")] = 8,
    hosts_per_leaf: Annotated[int, typer.Option(help="Hosts on each leaf.")] = 2,
) -> None:
    """Bring up the emulated data center with the controller, show that every host reaches
    every other, apply the seed's two TAP policies and show the copies the monitors got."""
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
    topo = apiauth.get(f"{api}/api/v1/topology", timeout=5).json()
    console.print(f"Hosts discovered: {len(topo['hosts'])}")
    console.print(seed_taps(api, Path(tempfile.mkdtemp(prefix="vtap-demo-"))))
    console.print(f"REST API: {api}/api/v1/topology   OpenAPI: {api}/docs")
    token = apiauth.client_token()
    vtap_bin = Path(sys.executable).parent / "vtap"
    console.print(f"Console (logs in): {api}/?token={token}")
    console.print(
        f"API tokens: the lab's admin token is in {apiauth.token_file(Settings().state_dir)}; "
        f"more with {vtap_bin} token create --role viewer|operator|admin"
    )
    console.print(f"Try: {Path(sys.executable).parent / 'vtap'} lab exec h1 -- ping -c3 10.0.0.16")
    console.print(f"Policies: {Path(sys.executable).parent / 'vtap'} policy list")
    console.print(f"Stop everything: {Path(sys.executable).parent / 'vtap'} lab down")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
