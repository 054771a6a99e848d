"""docs/deploy.md, run: two ordinary Open vSwitch bridges (not Mininet's) joined by a veth
pair, three network namespaces as hosts, `vtap controller` set as their controller with
`ovs-vsctl set-controller`, a token and a policy made with the CLI; the copies arrive once at
the monitor with their original headers, and the destination gets every packet."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vtap.lab.ovs import OvsEnv, OvsService
from vtap.lab.traffic import FrameSpec, by_payload, host_python

pytestmark = pytest.mark.integration

HOSTS = {  # namespace: (bridge, ip, mac)
    "vtp-a": ("vbr1", "10.9.0.1", "02:00:00:09:00:01"),
    "vtp-b": ("vbr2", "10.9.0.2", "02:00:00:09:00:02"),
    "vtp-m": ("vbr2", "10.9.0.3", "02:00:00:09:00:03"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=check)


def in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv)


@pytest.fixture
def ovs(tmp_path: Path) -> Iterator[OvsEnv]:
    service = OvsService(Path("/run/vtap-plain-ovs"))
    env = service.ensure()
    try:
        yield env
    finally:
        for bridge in ("vbr1", "vbr2"):
            env.vsctl("--if-exists", "del-br", bridge)
        sh("ip", "link", "del", "vl12", check=False)
        for ns in HOSTS:
            sh("ip", "netns", "del", ns, check=False)
        if env.started:
            service.stop()


def _build(env: OvsEnv) -> None:
    """The commands of docs/deploy.md, "Two bridges, three hosts"."""
    for n in (1, 2):
        env.vsctl(
            "add-br",
            f"vbr{n}",
            "--",
            "set",
            "bridge",
            f"vbr{n}",
            "datapath_type=netdev",
            "fail_mode=secure",
            "protocols=OpenFlow13",
            f"other-config:datapath-id=00000000000000a{n}",
        )
    sh("ip", "link", "add", "vl12", "type", "veth", "peer", "name", "vl21")
    for end in ("vl12", "vl21"):
        sh("ip", "link", "set", end, "up")
    env.vsctl("add-port", "vbr1", "vl12")
    env.vsctl("add-port", "vbr2", "vl21")
    for ns, (bridge, ip, mac) in HOSTS.items():
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"{ns}-eth0", "type", "veth", "peer", "name", f"{ns}-p")
        sh("ip", "link", "set", f"{ns}-eth0", "netns", ns)
        in_ns(ns, "ip", "link", "set", f"{ns}-eth0", "address", mac)
        in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", f"{ns}-eth0")
        in_ns(ns, "ip", "link", "set", f"{ns}-eth0", "up")
        in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(ns, "ethtool", "-K", f"{ns}-eth0", "tx", "off")
        in_ns(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "set", f"{ns}-p", "up")
        env.vsctl("add-port", bridge, f"{ns}-p")


def test_a_policy_on_ordinary_ovs_bridges_copies_once(ovs: OvsEnv, tmp_path: Path) -> None:
    _build(ovs)
    of_port, api_port = _free_port(), _free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTAP_")}
    env |= {"VTAP_STATE_DIR": str(tmp_path / "state"), "VTAP_API": api}
    vtap = [sys.executable, "-m", "vtap"]
    # Settings from a config file (as the systemd unit runs it), structured logs, access log.
    config = tmp_path / "vtap.toml"
    config.write_text(f"of_port = {of_port}\napi_port = {api_port}\naccess_log = true\n")
    log = (tmp_path / "controller.log").open("w")
    controller = subprocess.Popen(
        [*vtap, "controller", "--config", str(config), "--log-format", "json"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        for n in (1, 2):
            ovs.vsctl("set-controller", f"vbr{n}", f"tcp:127.0.0.1:{of_port}")
        made = subprocess.run(
            [*vtap, "token", "create", "--role", "operator", "--name", "me"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        env["VTAP_TOKEN"] = made.stdout.strip().splitlines()[-1]

        def topology() -> dict:
            out = subprocess.run(
                [*vtap, "topology", "-o", "json"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            return json.loads(out.stdout) if out.returncode == 0 else {}

        deadline = time.monotonic() + 60
        topo = topology()
        while time.monotonic() < deadline and not (
            sum(s["connected"] for s in topo.get("switches", [])) == 2 and topo.get("links")
        ):
            time.sleep(0.5)
            topo = topology()
        assert len(topo["links"]) == 1, topo
        time.sleep(2.5)  # host ports leave their edge grace (a liveness wait, not asserted)
        for ip in ("10.9.0.2", "10.9.0.3"):
            ping = subprocess.run(
                ["ip", "netns", "exec", "vtp-a", "ping", "-c3", "-W2", ip],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ping.returncode == 0, ping.stdout
        added = subprocess.run(
            [
                *vtap,
                "policy",
                "add",
                "--name",
                "plain",
                "--src-ip",
                "10.9.0.1",
                "--dst-ip",
                "10.9.0.2",
                "--ip-proto",
                "udp",
                "--dst-port",
                "5201",
                "--monitor-ip",
                "10.9.0.3",
                "--wait",
                "60",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip().endswith("active")

        frame = FrameSpec(
            HOSTS["vtp-a"][2], HOSTS["vtp-b"][2], "10.9.0.1", "10.9.0.2", dport=5201, count=200
        )
        spec = json.dumps(frame.__dict__)

        def send(count: int, run: str) -> None:
            body = json.dumps({**json.loads(spec), "count": count, "run": run})
            in_ns(
                "vtp-a",
                *host_python(),
                "send",
                "--iface",
                "vtp-a-eth0",
                "--inter",
                "0.002",
                "--spec",
                body,
            )

        send(3, "00000000")  # the reactive path first
        time.sleep(1.0)
        caps = {}
        for ns in ("vtp-b", "vtp-m"):
            path = tmp_path / f"{ns}.pcap"
            caps[ns] = (
                path,
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "tcpdump",
                        "-i",
                        f"{ns}-eth0",
                        "-Q",
                        "in",
                        "-U",
                        "-n",
                        "-w",
                        str(path),
                        "udp",
                        "port",
                        "5201",
                    ],
                    stderr=subprocess.PIPE,
                ),
            )
            assert b"listening" in caps[ns][1].stderr.readline()  # type: ignore[union-attr]
        send(200, frame.run)
        time.sleep(2.0)
        seen = {}
        for ns, (path, proc) in caps.items():
            proc.send_signal(2)
            proc.wait(10)
            from scapy.utils import rdpcap

            frames = [bytes(p) for p in rdpcap(str(path))] if path.stat().st_size else []
            seen[ns] = by_payload(frames, frame.run)
        want = frame.payloads()
        assert set(seen["vtp-b"]) == want, f"destination got {len(seen['vtp-b'])}/200"
        assert set(seen["vtp-m"]) == want, f"monitor got {len(seen['vtp-m'])}/200 copies"
        assert all(len(v) == 1 for v in seen["vtp-m"].values()), "a copy arrived twice"
        original = seen["vtp-b"][next(iter(want))][0]
        assert seen["vtp-m"][next(iter(want))][0] == original, "the copy's headers differ"
        metrics = httpx.get(
            f"{api}/metrics", timeout=10, headers={"Authorization": f"Bearer {env['VTAP_TOKEN']}"}
        )
        assert 'vtap_policy_copied_packets_total{id="1",policy="plain"}' in metrics.text
    finally:
        controller.terminate()
        controller.wait(30)
        log.close()
    records = [
        json.loads(line)
        for line in (tmp_path / "controller.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(r["logger"] == "vtap.controller.core" and "joined" in r["message"] for r in records)
    access = [r for r in records if r["logger"] == "vtap.access"]
    assert any(
        r["path"] == "/api/v1/policies"
        and r["method"] == "POST"
        and r["status"] == 201
        and r["token"] == "me"
        for r in access
    ), access[-3:]
