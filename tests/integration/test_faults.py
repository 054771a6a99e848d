"""Faults injected on the real lab, while TAP policies copy across the fabric.

* A lying switch: thousands of malformed and mutated OpenFlow messages, the cases that once
  hung or crashed the controller, and an impostor with a real switch's datapath id. Every packet
  of the stream is still delivered once and copied once, the REST API answers throughout, the
  real switches keep their sessions, and the controller's sockets and memory come back.
* Tables changed behind vtap's back (`ovs-ofctl del-flows`/`del-groups`, a modified TAP rule, a
  foreign entry under vtap's cookie): each is repaired by the periodic audit, and forwarding and
  copies come back.
* Lies on the data plane: gratuitous ARP for the monitor's IP from another host, forged LLDP
  from the tapped source's port. The copies still go to the monitor only.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.integration.fuzzswitch import HEADER, FuzzSwitch
from tests.integration.labkit import Lab, edge_ports_ready, fabric_complete, running_lab, wait_until
from tests.unit.test_codec_hostile import _mutate, multipart, port_desc, valid_messages
from vtap.lab.traffic import Capture, FrameSpec, by_payload, send

pytestmark = pytest.mark.integration

MESSAGES = 10_000
FUZZ_DPID = 0xF022_0000_0000_0001
HEALTH_TIMEOUT = 5.0  # a liveness bound, not a speed target: the figure is reported


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("vtap-state")) as lab:
        wait_until(lambda: fabric_complete(lab) and edge_ports_ready(lab), timeout=30)
        yield lab


def _proc(pid: int) -> tuple[int, int]:
    """(open file descriptors, resident KiB) of a process."""
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return fds, rss


def known_cases() -> list[tuple[str, list[bytes], bytes | None]]:
    """(name, messages after the handshake, hello) of every case the issue reported."""
    zero = [
        (f"zero-length {name} entry", [multipart(kind, bytes(8))], None)
        for name, kind in (("GROUP_DESC", 7), ("FLOW", 1), ("GROUP", 6))
    ]
    reason9 = (
        HEADER.pack(4, ofp.OFPT_PORT_STATUS, 80, 3) + struct.pack("!B7x", 9) + port_desc(9, "x")
    )
    return [
        *zero,
        ("port status reason 9", [reason9], None),
        ("hello bitmap of length 0", [], HEADER.pack(4, 0, 12, 1) + struct.pack("!HH", 1, 0)),
        (
            "hello bitmap past its end",
            [],
            HEADER.pack(4, 0, 16, 1) + struct.pack("!HHI", 1, 99, 16),
        ),
    ]


def fuzz_messages(rng: random.Random, n: int) -> Iterator[list[bytes]]:
    """Batches of 1-4 messages (mutated well-formed ones, some pure noise), n in all."""
    seeds = valid_messages()[:-2]  # not HELLO/ECHO: the session is past the handshake
    made = 0
    while made < n:
        batch = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.15:
                body = rng.randbytes(rng.randint(0, 64))
                buf = (
                    HEADER.pack(4, rng.randrange(0, 36), 8 + len(body), rng.getrandbits(32)) + body
                )
            else:
                buf = bytearray(_mutate(rng, rng.choice(seeds)))
                struct.pack_into("!H", buf, 2, len(buf))  # framing stays intact
                buf = bytes(buf)
            batch.append(buf)
        made += len(batch)
        yield batch


def active_h1_to_h3(api: httpx.Client, name: str, dst_port: int) -> int:
    """A policy copying UDP h1 → h3 to h16 (across the fabric), once it is active."""
    policy = api.post(
        "/policies",
        json={"name": name, "src_ip": "10.0.0.1", "dst_ip": "10.0.0.3",
              "monitor_ip": "10.0.0.16", "ip_proto": 17, "dst_port": dst_port},
    )  # fmt: skip
    assert policy.status_code == 201, policy.text
    pid = policy.json()["id"]
    wait_until(lambda: api.get(f"/policies/{pid}").json()["status"] == "active", timeout=20)
    return pid


def test_a_lying_switch_costs_only_its_own_sessions(lab: Lab, tmp_path: Path) -> None:
    api = lab.client()
    controller_pid = lab.state["controller"]["pid"]
    pid = active_h1_to_h3(api, "watched", 5030)
    send("h1", FrameSpec("00:00:00:00:00:01", "00:00:00:00:00:03", "10.0.0.1", "10.0.0.3",
                         dport=5030, count=3), inter=0.05)  # fmt: skip
    time.sleep(1.0)
    fds_before, rss_before = _proc(controller_pid)
    leaf1 = 0x101  # holds the tapped source h1

    # --- the attack, in a thread; traffic and health probes meanwhile -------------------
    fake = FuzzSwitch(lab.state["of_port"], FUZZ_DPID)
    outcomes: dict[str, bool] = {}
    done = threading.Event()

    def attack() -> None:
        try:
            for name, msgs, hello in known_cases():
                outcomes[name] = fake.deliver(msgs, hello)
            impostor = FuzzSwitch(fake.port, leaf1)
            outcomes["impostor"] = impostor.deliver([])
            rng = random.Random(11)
            for batch in fuzz_messages(rng, MESSAGES):
                fake.deliver(batch)
        finally:
            done.set()

    latencies: list[float] = []
    failures: list[str] = []

    def probe() -> None:
        with lab.client(timeout=HEALTH_TIMEOUT) as client:
            while not done.is_set():
                start = time.monotonic()
                try:
                    client.get("/health").raise_for_status()
                    latencies.append(time.monotonic() - start)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                time.sleep(0.1)

    runs: list[FrameSpec] = []
    caps = {h: Capture(f"h{h}", tmp_path / f"h{h}.pcap") for h in (3, 16)}
    for cap in caps.values():
        cap.__enter__()
    attacker = threading.Thread(target=attack)
    prober = threading.Thread(target=probe)
    attacker.start()
    prober.start()
    try:
        while not done.is_set():
            frame = FrameSpec("00:00:00:00:00:01", "00:00:00:00:00:03", "10.0.0.1", "10.0.0.3",
                              dport=5030, count=1000)  # fmt: skip
            send("h1", frame, inter=0.002)
            runs.append(frame)
    finally:
        attacker.join()
        prober.join()
        seen = {h: cap.frames() for h, cap in caps.items()}

    # --- what the attack achieved -------------------------------------------------------
    report = {
        "messages": fake.sent, "sessions": fake.sessions, "kept": fake.kept,
        "closed": fake.closed, "stuck": fake.stuck, "handshakes_refused": fake.handshake_refused,
        "health_probes": len(latencies), "health_max_s": round(max(latencies), 3),
        "runs": len(runs), "cases": outcomes,
    }  # fmt: skip
    print(json.dumps(report))
    assert fake.sent >= MESSAGES and fake.stuck == 0, report
    assert not failures, failures[:3]
    assert not any(outcomes.values()), outcomes  # every known case closed its session
    assert fake.closed > 1000 and fake.kept > 100, report  # both kinds were really tried
    for frame in runs:  # nothing lost, nothing doubled, all along
        want = frame.payloads()
        at_dst, at_mon = by_payload(seen[3], frame.run), by_payload(seen[16], frame.run)
        assert set(at_dst) == want and all(len(v) == 1 for v in at_dst.values()), frame.run
        assert set(at_mon) == want and all(len(v) == 1 for v in at_mon.values()), frame.run
    alerts = api.get("/alerts", params={"limit": 1000}).json()
    kinds = {a["kind"] for a in alerts["alerts"]}
    assert alerts["counts"]["duplicate_datapath"] == 1 and "protocol_violation" in kinds
    assert api.get(f"/policies/{pid}").json()["status"] == "active"
    topo = lab.topology()
    connected = {s["dpid"] for s in topo["switches"] if s["connected"]}
    assert fabric_complete(lab) and f"{FUZZ_DPID:016x}" not in connected
    # Sockets back to where they were; memory did not run away (it grew 420 MiB in 5 s).
    wait_until(lambda: _proc(controller_pid)[0] <= fds_before, timeout=20)
    assert _proc(controller_pid)[1] - rss_before < 64 * 1024
    api.delete(f"/policies/{pid}")


def _stream_copied_once(lab: Lab, tmp_path: Path, tag: str, count: int = 200) -> None:
    frame = FrameSpec("00:00:00:00:00:01", "00:00:00:00:00:03", "10.0.0.1", "10.0.0.3",
                      dport=5031, count=count)  # fmt: skip
    send("h1", FrameSpec(**{**frame.__dict__, "count": 3, "run": "00000000"}), inter=0.05)
    time.sleep(0.5)
    caps = {h: Capture(f"h{h}", tmp_path / f"{tag}-h{h}.pcap") for h in (3, 16)}
    for cap in caps.values():
        cap.__enter__()
    try:
        send("h1", frame, inter=0.002)
    finally:
        seen = {h: by_payload(cap.frames(), frame.run) for h, cap in caps.items()}
    want = frame.payloads()
    for host in (3, 16):
        assert set(seen[host]) == want, f"{tag}: h{host} got {len(seen[host])}/{count}"
        assert all(len(v) == 1 for v in seen[host].values()), f"{tag}: duplicates at h{host}"


FOREIGN = "table=0,priority=65000,cookie=0x5654010000000077,ip,actions=drop"
# The TAP entries vtap shares between policies (owner TAP_SHARED) on a switch: the policy's
# classification and its switch's TAP pipeline.
TAP_RULES = "cookie=0x5654040000000000/0xffffff0000000000"


def reconciled(lab: Lab) -> list[str]:
    """leaf1's entries that vtap reconciles (its reactive path entries come and go)."""
    return [line for line in lab.our_flows("leaf1") if "cookie=0x565402" not in line]


def test_tables_changed_behind_vtap_are_repaired(lab: Lab, tmp_path: Path) -> None:
    api = lab.client()
    pid = active_h1_to_h3(api, "drift", 5031)
    _stream_copied_once(lab, tmp_path, "before")
    interval = api.get("/health").json()["audit"]["interval_s"]
    alerts_before = api.get("/alerts").json()["last_id"]  # the lying switch raised many
    assert interval <= 10
    baseline = reconciled(lab)
    groups = lab.ofctl("dump-groups", "leaf1")
    faults = {
        "del-flows and del-groups": [("del-flows", "leaf1"), ("del-groups", "leaf1")],
        "a modified TAP rule": [("mod-flows", "leaf1", TAP_RULES + ",actions=drop")],
        "a foreign entry under vtap's cookie": [
            (
                "add-flow",
                "leaf1",
                "table=0,priority=65000,cookie=0x5654010000000077,ip,actions=drop",
            )
        ],
    }
    took = {}
    for name, commands in faults.items():
        repairs = api.get("/health").json()["audit"]["repairs"]
        for command in commands:
            lab.ofctl(*command)
        assert reconciled(lab) != baseline, name
        took[name] = wait_until(lambda: reconciled(lab) == baseline, timeout=3 * interval + 10)
        assert api.get("/health").json()["audit"]["repairs"] > repairs, name
        assert lab.ofctl("dump-groups", "leaf1") == groups, name
        wait_until(lambda: api.get(f"/policies/{pid}").json()["status"] == "active", timeout=20)
        ping = lab.exec("h1", "ping", "-c1", "-W2", "10.0.0.2")
        assert ping.returncode == 0, f"{name}: h1 cannot reach h2"
        _stream_copied_once(lab, tmp_path, name.split()[0])
    print(json.dumps({"repaired_after_s": {k: round(v, 2) for k, v in took.items()}}))
    since = api.get("/alerts", params={"after": alerts_before}).json()["alerts"]
    drift = [a for a in since if a["kind"] == "table_drift"]
    assert len(drift) >= 1 and "leaf1" in drift[0]["message"]
    api.delete(f"/policies/{pid}")


GARP_FLOOD = """
from scapy.all import ARP, Ether, sendp
mac = {mac!r}
frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
    op=2, hwsrc=mac, psrc={ip!r}, hwdst="ff:ff:ff:ff:ff:ff", pdst={ip!r})
sendp(frame, iface={iface!r}, count={count}, inter=0.005, verbose=False)
"""
LLDP_FORGERY = """
from scapy.all import Raw, sendp
from vtap.packets import build_lldp
frames = [Raw(build_lldp(0x201, 1, {mac!r})),  # unsigned, claiming spine1 port 1
          Raw(build_lldp(0x201, 1, {mac!r}, stamp=1, signature=bytes(16)))]  # a bad HMAC
sendp(frames * {count}, iface={iface!r}, inter=0.01, verbose=False)
"""


def _in_host(host: str, script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vtap", "lab", "exec", host, "--", sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_spoofed_arp_and_forged_lldp_do_not_redirect_or_stop_a_tap(
    lab: Lab, tmp_path: Path
) -> None:
    """h16 floods gratuitous ARPs claiming the monitor's (h3's) IP while h1, the tapped source,
    sends forged LLDP claiming its port is a fabric link: the policy stays active, h3 gets every
    copy once, h16 none, and both are raised as alerts."""
    api = lab.client()
    h1, h3, h5, h16 = (lab.plan.hosts[i - 1] for i in (1, 3, 5, 16))
    spec = {"name": "trust", "src_ip": h1.ip, "dst_ip": h5.ip, "monitor_ip": h3.ip,
            "ip_proto": 17, "dst_port": 5101}  # fmt: skip
    policy = api.post("/policies", json=spec)
    assert policy.status_code == 201, policy.text
    pid = policy.json()["id"]
    wait_until(lambda: api.get(f"/policies/{pid}").json()["status"] == "active", timeout=20)
    counts_before = api.get("/alerts").json()["counts"]
    frame = FrameSpec(h1.mac, h5.mac, h1.ip, h5.ip, dport=5101, count=1000)
    send("h1", FrameSpec(**{**frame.__dict__, "count": 3, "run": "00000000"}), inter=0.05)
    caps = {name: Capture(name, tmp_path / f"trust-{name}.pcap") for name in ("h3", "h16")}
    for cap in caps.values():
        cap.__enter__()
    attackers = [
        _in_host("h16", GARP_FLOOD.format(mac=h16.mac, ip=h3.ip, iface="h16-eth0", count=1000)),
        _in_host("h1", LLDP_FORGERY.format(mac=h1.mac, iface="h1-eth0", count=250)),
    ]
    try:
        time.sleep(1.0)  # the floods are under way before the stream starts
        send("h1", frame, inter=0.003)
        statuses = {api.get(f"/policies/{pid}").json()["status"]}
    finally:
        for proc in attackers:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()[-500:]
        seen = {name: by_payload(cap.frames(), frame.run) for name, cap in caps.items()}
    assert statuses == {"active"}
    assert set(seen["h3"]) == frame.payloads(), f"h3 got {len(seen['h3'])}/1000 copies"
    assert all(len(v) == 1 for v in seen["h3"].values()), "duplicate copies at h3"
    assert seen["h16"] == {}, f"h16 received {len(seen['h16'])} copies"
    after = api.get("/alerts").json()["counts"]
    for kind in ("host_claim_refused", "forged_lldp"):
        assert after.get(kind, 0) > counts_before.get(kind, 0), f"no {kind} alert"
    assert api.get(f"/policies/{pid}").json()["status"] == "active"
    host = next(h for h in lab.topology()["hosts"] if h["ip"] == h3.ip)
    assert host["mac"] == h3.mac, "the monitor's binding moved"
    api.delete(f"/policies/{pid}")
