"""TAP policies on real Open vSwitch: copies captured at the monitor with tcpdump.

For each case the monitor must capture exactly one copy of every matching packet, byte-identical
to what the destination received; no copy of anything else; the destination gets every
production packet exactly once and unchanged. Policies are created through the REST API, the
way an operator (or the CLI) does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.labkit import (
    Lab,
    edge_ports_ready,
    fabric_complete,
    running_lab,
    vtap,
    wait_until,
)
from vtap import apiauth
from vtap.demo import SEED_TAPS
from vtap.lab.traffic import Capture, FrameSpec, by_payload, send

API = f"{Lab.api}/api/v1"  # the lab's REST API (its token: apiauth reads the state dir)

COPIES = 1000


def mac(n: int) -> str:
    return f"00:00:00:00:00:{n:02x}"


def ip(n: int) -> str:
    return f"10.0.0.{n}"


# Copy labels near the top of MPLS's 20-bit range: what the switches carry is not bounded by
# the 4,094 VLAN ids the seed's copy tags came from.
HIGH_LABELS = 1_048_000


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    saved = os.environ.get("VTAP_LABEL_FIRST")
    os.environ["VTAP_LABEL_FIRST"] = str(HIGH_LABELS)  # the lab's controller inherits it
    try:
        with running_lab(tmp_path_factory.mktemp("vtap-state")) as lab:
            wait_until(lambda: fabric_complete(lab) and edge_ports_ready(lab), timeout=30)
            yield lab
    finally:
        if saved is None:
            os.environ.pop("VTAP_LABEL_FIRST", None)
        else:
            os.environ["VTAP_LABEL_FIRST"] = saved


@pytest.fixture(scope="module")
def api(lab: Lab) -> Iterator[httpx.Client]:
    with lab.client() as client:
        yield client


@pytest.fixture
def policies(lab: Lab, api: httpx.Client) -> Iterator[list[int]]:
    """Policies a test creates are deleted after it, whatever happens, and the next test starts
    once no switch holds anything of them (a label entry lingers a moment after a delete)."""
    created: list[int] = []
    yield created
    for pid in created:
        api.delete(f"/policies/{pid}")
    wait_until(lambda: not any(policy_traces(lab, pid) for pid in created), timeout=15)


def create(api: httpx.Client, created: list[int], **spec: object) -> dict:
    resp = api.post("/policies", json=spec)
    assert resp.status_code == 201, resp.text
    policy = resp.json()
    created.append(policy["id"])
    return wait_active(api, policy["id"])


def wait_active(api: httpx.Client, pid: int, timeout: float = 15) -> dict:
    policy: dict = {}

    def active() -> bool:
        nonlocal policy
        policy = api.get(f"/policies/{pid}").json()
        return policy["status"] == "active"

    try:
        wait_until(active, timeout)
    except AssertionError:
        raise AssertionError(f"policy {pid} not active: {policy}") from None
    return policy


def introduce(lab: Lab, *hosts: int) -> None:
    """Make hosts speak once, so the controller knows where they are (MAC-only policies)."""
    for h in hosts:
        peer = 1 if h != 1 else 2
        assert lab.exec(f"h{h}", "ping", "-c1", "-W2", ip(peer)).returncode == 0


def spec(src: int, dst: int, **kw: object) -> FrameSpec:
    return FrameSpec(mac(src), mac(dst), ip(src), ip(dst), **kw)  # type: ignore[arg-type]


def warm_up(src: int, frame: FrameSpec) -> None:
    """A few frames of the same 5-tuple first, until the controller confirmed their reactive
    path (the flows view lists a flow once every switch on its path confirmed its entry)."""
    proto = {"udp": 17, "tcp": 6, "icmp": 1}[frame.proto]

    def path_confirmed() -> bool:
        flows = apiauth.get(f"{API}/flows", params={"host": frame.src_ip}, timeout=10)
        return any(
            f["dst_ip"] == frame.dst_ip and f["ip_proto"] == proto for f in flows.json()["flows"]
        )

    warm = FrameSpec(**{**frame.__dict__, "count": 3, "run": "00000000"})
    send(f"h{src}", warm, inter=0.05)
    if frame.mpls is not None:
        return  # not IP on the wire: no reactive path to wait for
    try:
        wait_until(path_confirmed, timeout=5)
    except AssertionError:  # the first frames raced host discovery: once more
        send(f"h{src}", warm, inter=0.05)
        wait_until(path_confirmed, timeout=30)


def run_case(
    tmp_path: Path,
    src: int,
    dst: int,
    frame: FrameSpec,
    copied_to: tuple[int, ...] = (),
    not_copied_to: tuple[int, ...] = (),
) -> dict[int, int]:
    """Send `frame` from src; check delivery at dst and copies at the monitors.

    Returns how many frames of the run each watched host received."""
    warm_up(src, frame)
    watched = list(dict.fromkeys((dst, *copied_to, *not_copied_to)))
    caps = [Capture(f"h{h}", tmp_path / f"h{h}-{frame.run}.pcap") for h in watched]
    for cap in caps:
        cap.__enter__()
    try:
        send(f"h{src}", frame)
    finally:
        seen = {
            h: by_payload(cap.frames(), frame.run) for h, cap in zip(watched, caps, strict=True)
        }
    want = frame.payloads()
    at_dst = seen[dst]
    assert set(at_dst) == want, f"destination h{dst} got {len(at_dst)}/{len(want)}"
    assert all(len(v) == 1 for v in at_dst.values()), "destination got duplicates"
    for host in copied_to:
        at_mon = seen[host]
        assert set(at_mon) == want, f"monitor h{host} got {len(at_mon)}/{len(want)} copies"
        dups = sum(len(v) - 1 for v in at_mon.values())
        assert dups == 0, f"monitor h{host} got {dups} extra copies"
        differ = [p for p in want if at_mon[p][0] != at_dst[p][0]]
        assert not differ, f"h{host}: {len(differ)} copies differ from the original"
    for host in not_copied_to:
        if host != dst:
            assert seen[host] == {}, f"h{host} got {len(seen[host])} frames it must not"
    return {h: sum(len(v) for v in s.values()) for h, s in seen.items()}


def flows_and_groups(lab: Lab) -> dict[str, tuple[list[str], list[str]]]:
    """vtap's reconciled entries (not the reactive paths, which come and go) and groups."""
    out = {}
    for bridge in lab.plan.bridges:
        groups = [
            line.strip()
            for line in lab.ofctl("dump-groups", bridge).splitlines()
            if "group_id=" in line
        ]
        flows = [f for f in lab.our_flows(bridge) if "cookie=0x565402" not in f]
        out[bridge] = (flows, sorted(groups))
    return out


def policy_traces(lab: Lab, pid: int) -> list[str]:
    """Entries on any switch that still name this policy (by cookie)."""
    cookie = f"cookie=0x565403{pid:010x}"
    hits = []
    for bridge, (flows, _groups) in flows_and_groups(lab).items():
        hits += [f"{bridge}: {f}" for f in flows if cookie in f]
    return hits


def copy_labels(api: httpx.Client, pid: int) -> set[int]:
    """The MPLS labels a policy's copies carry across the fabric."""
    rules = api.get(f"/policies/{pid}/rules").json()["switches"]
    texts = [r["ofctl"] for sw in rules for r in sw["rules"]]
    return {int(t) for text in texts for t in re.findall(r"mpls_label=(\d+)", text)}


# ---------------------------------------------------------------- the cases


def test_same_leaf_monitor(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    introduce(lab, 1, 2)
    p = create(api, policies, name="same-leaf", src_mac=mac(1), src_ip=ip(1), monitor_mac=mac(2),
               monitor_ip=ip(2))  # fmt: skip
    run_case(tmp_path, 1, 5, spec(1, 5, dport=5001), copied_to=(2,))
    # Open vSwitch folds datapath counters into its flow stats a moment later: wait for them.
    wait_until(
        lambda: api.get(f"/policies/{p['id']}/stats").json()["packets"] >= COPIES, timeout=30
    )


def test_seed_tap1_across_the_fabric_and_delete_leaves_nothing(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    p = create(api, policies, name="tap1", src_mac=mac(1), src_ip=ip(1), dst_mac=mac(2),
               dst_ip=ip(2), monitor_mac=mac(3), monitor_ip=ip(3), ip_proto=6,
               dst_port=80)  # fmt: skip
    run_case(tmp_path, 1, 2, spec(1, 2, proto="tcp", dport=80), copied_to=(3,))
    run_case(tmp_path, 1, 2, spec(1, 2, proto="tcp", dport=81), not_copied_to=(3,))
    assert policy_traces(lab, p["id"])
    assert api.delete(f"/policies/{p['id']}").status_code == 204
    policies.remove(p["id"])
    run_case(tmp_path, 1, 2, spec(1, 2, proto="tcp", dport=80), not_copied_to=(3,))
    # its label entries linger a moment (copies in flight still arrive), then go too
    wait_until(lambda: policy_traces(lab, p["id"]) == [], timeout=10)


def test_bulk_created_policies_copy_and_bulk_delete_leaves_nothing(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    bodies = [
        {"name": "bulk-a", "src_ip": ip(1), "ip_proto": 17, "dst_port": 7001,
         "monitor_ip": ip(16)},
        {"name": "bulk-b", "src_ip": ip(5), "ip_proto": 17, "dst_port": 7002,
         "monitor_ip": ip(12)},
    ]  # fmt: skip
    resp = api.post("/policies/bulk", json={"policies": bodies})
    assert resp.status_code == 201, resp.text
    ids = [p["id"] for p in resp.json()]
    policies.extend(ids)
    for pid in ids:
        wait_active(api, pid)
    run_case(tmp_path, 1, 3, spec(1, 3, dport=7001), copied_to=(16,), not_copied_to=(12,))
    run_case(tmp_path, 5, 7, spec(5, 7, dport=7002), copied_to=(12,), not_copied_to=(16,))
    resp = api.post("/policies/bulk-delete", json={"ids": ids})
    assert resp.status_code == 204, resp.text
    policies.clear()
    run_case(tmp_path, 1, 3, spec(1, 3, dport=7001), not_copied_to=(16,))
    wait_until(lambda: all(policy_traces(lab, pid) == [] for pid in ids), timeout=10)


def test_monitor_across_the_fabric(api: httpx.Client, policies: list[int], tmp_path: Path) -> None:
    p = create(api, policies, name="far", src_ip=ip(3), dst_ip=ip(4), monitor_ip=ip(16))
    run_case(tmp_path, 3, 4, spec(3, 4, dport=5002), copied_to=(16,))
    (label,) = copy_labels(api, p["id"])
    assert label >= HIGH_LABELS  # far beyond any VLAN id


def _copied_metric(api: httpx.Client, name: str) -> float:
    """The policy's copied-packets counter as Prometheus scrapes it (GET /metrics)."""
    text = api.get(f"{Lab.api}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("copied_packets_total") and sample.labels["policy"] == name:
                return sample.value
    return 0.0


def test_metrics_count_the_copies_as_they_arrive(
    api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    create(api, policies, name="scraped", src_ip=ip(3), dst_ip=ip(4), monitor_ip=ip(16))
    before = _copied_metric(api, "scraped")
    run_case(tmp_path, 3, 4, spec(3, 4, dport=5003), copied_to=(16,))
    # The counters are read from the switches every few seconds: wait for the next reading.
    wait_until(lambda: _copied_metric(api, "scraped") >= before + COPIES, timeout=60)


def test_wildcard_destination(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    introduce(lab, 5, 8)
    create(api, policies, name="any-dst", src_mac=mac(5), monitor_mac=mac(8), ip_proto=17)
    run_case(tmp_path, 5, 9, spec(5, 9, dport=5003), copied_to=(8,))
    run_case(tmp_path, 5, 12, spec(5, 12, dport=5004), copied_to=(8,))
    run_case(tmp_path, 5, 12, spec(5, 12, proto="tcp", dport=5004), not_copied_to=(8,))


def test_seed_tap2_vlan_filter(api: httpx.Client, policies: list[int], tmp_path: Path) -> None:
    create(api, policies, name="tap2", src_mac=mac(1), src_ip=ip(1), monitor_mac=mac(4),
           monitor_ip=ip(4), ip_proto=17, vlan_id=100)  # fmt: skip
    run_case(tmp_path, 1, 6, spec(1, 6, vlan=100, dport=5005), copied_to=(4,))
    run_case(tmp_path, 1, 6, spec(1, 6, vlan=200, dport=5005), not_copied_to=(4,))
    run_case(tmp_path, 1, 6, spec(1, 6, dport=5005), not_copied_to=(4,))


def _trace(lab: Lab, packet: str, *extra: str) -> tuple[int, dict, str]:
    token = lab.headers["Authorization"].split()[-1]
    proc = vtap("trace", "--from", "h1", "--packet", packet, "-o", "json", *extra,
                env=os.environ | {"VTAP_TOKEN": token})  # fmt: skip
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def test_trace_of_the_seed_taps_agrees_with_the_switches(
    lab: Lab, api: httpx.Client, policies: list[int]
) -> None:
    """`vtap trace` of TAP 1 and TAP 2 from the controller's model: the destination gets the
    packet and the monitor one copy, both with the original headers; --verify replays it on
    every switch with ofproto/trace and they agree. A switch that does something else (a
    foreign entry drops the copies) is named, with exit 1."""
    for seed in SEED_TAPS:  # TAP 1 and TAP 2 of the seed, as `make demo` applies them
        create(api, policies, **seed)
    cases = [  # packet, warm-up frame, destination, monitor, policy
        ("tcp,ipv4_dst=10.0.0.2,tcp_src=40001,tcp_dst=80",
         spec(1, 2, proto="tcp", sport=40001, dport=80), "h2", "h3", "seed-tap1"),
        ("udp,ipv4_dst=10.0.0.6,udp_src=40002,udp_dst=5000,dl_vlan=100",
         spec(1, 6, sport=40002, dport=5000, vlan=100), "h6", "h4", "seed-tap2"),
    ]  # fmt: skip
    for packet, frame, dst, monitor, name in cases:
        warm_up(1, frame)  # the reactive path, so the switches hold what the model walks
        code, out, err = _trace(lab, packet, "--verify")
        assert code == 0, err
        assert out["policies"] == [name] and out["path"] == "installed"
        roles = sorted((d["host"], d["role"], d["unchanged"]) for d in out["delivered"])
        assert roles == sorted([(dst, "destination", True), (monitor, "copy", True)]), roles
        assert all(v["agree"] for v in out["verify"]) and len(out["verify"]) >= 2
        assert any(h["owner"] == "policy" and name in h["policies"] for h in out["hops"])
    # Not a TAP 2 packet (VLAN 200): delivered, not copied.
    code, out, _ = _trace(lab, "udp,ipv4_dst=10.0.0.6,udp_dst=5000,dl_vlan=200")
    assert code == 0 and [d["role"] for d in out["delivered"]] == ["destination"]
    # Someone else's entry on the monitor's leaf (no vtap cookie: the audit leaves it alone)
    # drops the copies there: the switch now disagrees with the model until it is removed.
    foreign = "table=0,priority=65535,mpls"
    lab.ofctl("add-flow", "leaf2", f"{foreign},actions=drop")
    try:
        code, out, err = _trace(lab, cases[0][0], "--verify")
    finally:
        lab.ofctl("--strict", "del-flows", "leaf2", foreign)
    assert code == 1 and "leaf2" in err and "Traceback" not in err, err
    assert _trace(lab, cases[0][0], "--verify")[0] == 0


def test_udp_port_filter(api: httpx.Client, policies: list[int], tmp_path: Path) -> None:
    create(api, policies, name="dns", dst_ip=ip(10), monitor_ip=ip(11), ip_proto=17, dst_port=53)
    run_case(tmp_path, 2, 10, spec(2, 10, sport=3333, dport=53), copied_to=(11,))
    run_case(tmp_path, 2, 10, spec(2, 10, sport=3333, dport=54), not_copied_to=(11,))


def test_rewrite_delivery_restores_headers(
    api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    create(api, policies, name="seed-rewrite", src_mac=mac(7), src_ip=ip(7), dst_mac=mac(13),
           dst_ip=ip(13), monitor_mac=mac(14), monitor_ip=ip(14), delivery="rewrite")  # fmt: skip
    run_case(tmp_path, 7, 13, spec(7, 13, dport=5006), copied_to=(14,))


def test_two_policies_one_monitor_and_overlaps(
    api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    create(api, policies, name="a", src_ip=ip(1), dst_ip=ip(2), monitor_ip=ip(9), ip_proto=17)
    create(api, policies, name="b", src_ip=ip(5), dst_ip=ip(6), monitor_ip=ip(9), ip_proto=17)
    run_case(tmp_path, 1, 2, spec(1, 2, dport=5007), copied_to=(9,))
    run_case(tmp_path, 5, 6, spec(5, 6, dport=5007), copied_to=(9,))
    # Same packet, same monitor: one copy. Same packet, another monitor: one copy each.
    create(api, policies, name="c", src_ip=ip(1), monitor_ip=ip(9), ip_proto=17, dst_port=5008)
    run_case(tmp_path, 1, 2, spec(1, 2, dport=5008), copied_to=(9,))
    create(api, policies, name="d", dst_ip=ip(2), monitor_ip=ip(12), ip_proto=17)
    run_case(tmp_path, 1, 2, spec(1, 2, dport=5008), copied_to=(9, 12))


def test_genuine_traffic_to_the_monitor_is_untouched(
    api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    create(api, policies, name="watch-1-2", src_ip=ip(1), dst_ip=ip(2), monitor_ip=ip(3))
    counts = run_case(tmp_path, 1, 3, spec(1, 3, dport=5009), not_copied_to=(2,))
    assert counts[3] == COPIES


def test_a_host_cannot_inject_copies(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    """Frames carrying the monitor's copy label, sent by hosts, never reach the monitor: only
    frames from fabric ports are taken for copies (and vtap forwards no MPLS)."""
    p = create(api, policies, name="guarded", src_ip=ip(1), dst_ip=ip(2), monitor_ip=ip(13))
    # positive control: genuine copies do reach the monitor, carrying that label
    run_case(tmp_path, 1, 2, spec(1, 2, dport=5012), copied_to=(13,))
    (label,) = copy_labels(api, p["id"])
    with Capture("h13", tmp_path / "inject.pcap") as cap:
        for sender in (5, 1, 14):  # another leaf, the tapped source, the monitor's neighbour
            for tc in range(8):
                frame = FrameSpec(mac(sender), mac(13), ip(sender), ip(13), mpls=(label, tc),
                                  count=20, run=f"{sender:02x}{tc:02x}beef")  # fmt: skip
                send(f"h{sender}", frame)
    forged = [f for f in cap.frames() if b"beef" in f]
    assert forged == []


def test_full_size_frames_are_copied_across_the_fabric(
    api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    """A 1514-byte frame's copy is 1518 bytes on the fabric (its MPLS header)."""
    create(api, policies, name="jumbo", src_ip=ip(2), dst_ip=ip(6), monitor_ip=ip(11))
    frame = spec(2, 6, dport=5013, pad=1452, count=200)
    run_case(tmp_path, 2, 6, frame, copied_to=(11,))


def test_policy_waits_for_its_monitor_then_activates(
    api: httpx.Client, policies: list[int], lab: Lab
) -> None:
    resp = api.post(
        "/policies", json={"name": "late-monitor", "src_ip": ip(1), "monitor_mac": mac(15)}
    )
    assert resp.status_code == 201
    policy = resp.json()
    policies.append(policy["id"])
    assert policy["status"] == "pending"
    assert "not discovered" in policy["status_reason"]
    assert lab.exec("h15", "ping", "-c1", "-W1", ip(16)).returncode == 0
    wait_active(api, policy["id"], timeout=10)


def test_copy_path_is_recomputed_when_its_spine_link_fails(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    p = create(api, policies, name="reroute", src_ip=ip(1), dst_ip=ip(3), monitor_ip=ip(16))
    rules = api.get(f"/policies/{p['id']}/rules").json()["switches"]
    (spine,) = [sw["switch"] for sw in rules if sw["switch"].startswith("spine")]
    assert vtap("lab", "link", spine, "leaf1", "down").returncode == 0
    try:

        def rerouted() -> bool:
            now = api.get(f"/policies/{p['id']}/rules").json()["switches"]
            spines = [sw["switch"] for sw in now if sw["switch"].startswith("spine")]
            return bool(spines) and spine not in spines

        wait_until(rerouted, timeout=10)
        wait_active(api, p["id"])
        run_case(tmp_path, 1, 3, spec(1, 3, dport=5010), copied_to=(16,))
    finally:
        assert vtap("lab", "link", spine, "leaf1", "up").returncode == 0
        wait_until(lambda: fabric_complete(lab), timeout=15)


def test_policy_keeps_its_copy_label_while_its_monitor_leaf_is_away(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    """A policy pending for a moment (its monitor's leaf lost the controller) keeps its copy
    label: a policy created meanwhile takes another, and when the leaf is back the fabric holds
    exactly the rules it held before — no switch's transit, delivery or copy rule changed."""
    a = create(api, policies, name="sticky-a", src_ip=ip(1), dst_ip=ip(3), monitor_mac=mac(16),
               monitor_ip=ip(16), ip_proto=17)  # fmt: skip
    rules_before = api.get(f"/policies/{a['id']}/rules").json()["switches"]
    (tag,) = copy_labels(api, a["id"])
    fabric_before = flows_and_groups(lab)
    leaf = lab.plan.hosts[15].leaf
    # The leaf loses the controller: its Controller row (max_backoff and the rest) stays, only
    # the target moves to a socket nobody listens on, and is put back exactly as it was.
    uuid = lab.vsctl("get", "Bridge", leaf, "controller").strip().strip("[]")
    target = lab.vsctl("get", "Controller", uuid, "target").strip()
    lab.vsctl("set", "Controller", uuid, f'target="unix:{tmp_path}/nowhere.sock"')
    try:
        wait_until(lambda: api.get(f"/policies/{a['id']}").json()["status"] != "active", 10)
        b = create(api, policies, name="sticky-b", src_ip=ip(5), dst_ip=ip(7), monitor_ip=ip(12),
                   ip_proto=17)  # fmt: skip
        (tag_b,) = copy_labels(api, b["id"])
    finally:
        lab.vsctl("set", "Controller", uuid, f"target={target}")
        wait_until(lambda: fabric_complete(lab) and edge_ports_ready(lab), timeout=20)
    wait_active(api, a["id"])
    assert copy_labels(api, a["id"]) == {tag}, f"A's label changed ({tag} before, B has {tag_b})"
    assert api.get(f"/policies/{a['id']}/rules").json()["switches"] == rules_before
    assert tag_b != tag
    run_case(tmp_path, 1, 3, spec(1, 3, dport=5011), copied_to=(16,), not_copied_to=(12,))
    run_case(tmp_path, 5, 7, spec(5, 7, dport=5011), copied_to=(12,), not_copied_to=(16,))
    # Without B, every switch holds exactly what it held before the leaf went away.
    assert api.delete(f"/policies/{b['id']}").status_code == 204
    policies.remove(b["id"])
    wait_until(lambda: policy_traces(lab, b["id"]) == [], timeout=10)
    assert flows_and_groups(lab) == fabric_before


def test_patch_moves_the_monitor_under_traffic_each_packet_copied_once(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    """A PATCH moves a policy's monitor to another leaf while about 1,000 matching packets a
    second flow: every packet is copied exactly once, to the old monitor or the new one —
    none lost, none to both (the new label's path is installed before the source switch
    changes, atomically, and the old path lingers until nothing sends on it)."""
    introduce(lab, 12, 16)
    p = create(api, policies, name="mover", src_ip=ip(1), dst_ip=ip(3), monitor_ip=ip(16),
               ip_proto=17, dst_port=5014)  # fmt: skip
    frame = spec(1, 3, dport=5014, count=6000)
    warm_up(1, frame)
    caps = {h: Capture(f"h{h}", tmp_path / f"move-h{h}.pcap") for h in (3, 16, 12)}
    for cap in caps.values():
        cap.__enter__()
    sender = threading.Thread(target=send, args=("h1", frame), kwargs={"inter": 0.001})
    sender.start()
    try:
        old = caps[16].path
        wait_until(lambda: old.exists() and old.stat().st_size > 50_000, timeout=60)
        resp = api.patch(f"/policies/{p['id']}", json={"monitor_ip": ip(12)})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "active", resp.json()
        still_sending = sender.is_alive()
    finally:
        sender.join()
        seen = {h: by_payload(cap.frames(), frame.run) for h, cap in caps.items()}
    want = frame.payloads()
    assert set(seen[3]) == want and all(len(v) == 1 for v in seen[3].values())
    before, after = seen[16], seen[12]
    assert still_sending and before and after, "the move did not happen mid-stream"
    both = before.keys() & after.keys()
    lost = want - before.keys() - after.keys()
    dups = sum(len(v) - 1 for v in (*before.values(), *after.values()))
    assert not both, f"{len(both)} packets copied to both monitors"
    assert not lost, f"{len(lost)} packets copied to neither monitor"
    assert dups == 0, f"{dups} duplicate copies"
    assert all(v[0] == seen[3][k][0] for k, v in (*before.items(), *after.items()))


def test_a_rejected_bundle_changes_nothing_and_names_the_switch_error(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    """A switch that rejects a message (here: its shape table is full) discards the whole
    bundle: nothing of the rejected policy reaches any table, the policy goes `error` with
    the switch's own text, the other policy of the same request gets installed, and once
    there is room again a change of the policy makes it active."""
    a = create(api, policies, name="fits", src_ip=ip(9), ip_proto=17, dst_port=5015,
               monitor_ip=ip(11))  # fmt: skip
    leaf = lab.plan.hosts[8].leaf
    rules = api.get(f"/policies/{a['id']}/rules").json()["switches"]
    (table,) = {
        r["table_id"]
        for sw in rules
        if sw["switch"] == leaf
        for r in sw["rules"]
        if r["kind"] == "flow"
        and r["table_id"] >= 10
        and "reg0=" not in r["ofctl"]
        and "metadata=" not in r["ofctl"]
    }
    held = [
        f for f in lab.ofctl("dump-flows", leaf, f"table={table}").splitlines() if "cookie" in f
    ]
    lab.vsctl("--", "--id=@t", "create", "Flow_Table", f"flow_limit={len(held)}",
              "overflow_policy=refuse", "--", "set", "Bridge", leaf,
              f"flow_tables:{table}=@t")  # fmt: skip
    try:
        bodies = [
            {"name": "overflow", "src_ip": ip(9), "ip_proto": 17, "dst_port": 5016,
             "monitor_ip": ip(11)},  # same shape as "fits": one more entry in the full table
            {"name": "elsewhere", "src_ip": ip(9), "dst_ip": ip(10), "monitor_ip": ip(11)},
        ]  # fmt: skip
        resp = api.post("/policies/bulk", json={"policies": bodies})
        assert resp.status_code == 201, resp.text
        over, other = resp.json()
        policies += [over["id"], other["id"]]
        wait_until(lambda: api.get(f"/policies/{over['id']}").json()["status"] == "error", 10)
        reason = api.get(f"/policies/{over['id']}").json()["status_reason"]
        dpid = next(s.dpid_hex for s in lab.plan.switches if s.name == leaf)
        assert "TABLE_FULL" in reason and dpid in reason, reason
        wait_active(api, other["id"])
        assert policy_traces(lab, over["id"]) == []
        run_case(tmp_path, 9, 10, spec(9, 10, dport=5015), copied_to=(11,))
    finally:
        lab.vsctl("clear", "Bridge", leaf, "flow_tables")
    resp = api.patch(f"/policies/{over['id']}", json={"dst_port": 5017})
    assert resp.status_code == 200 and resp.json()["status"] == "active", resp.text
    run_case(tmp_path, 9, 12, spec(9, 12, dport=5017), copied_to=(11,))


def test_controller_restart_with_100_policies_reconciles_exactly(
    lab: Lab, api: httpx.Client, policies: list[int], tmp_path: Path
) -> None:
    for i in range(100):
        src, mon = 1 + i % 8, 9 + i % 8
        resp = api.post("/policies", json={
            "name": f"bulk-{i}", "src_ip": ip(src), "monitor_ip": ip(mon), "ip_proto": 17,
            "dst_port": 6000 + i,
        })  # fmt: skip
        assert resp.status_code == 201, resp.text
        policies.append(resp.json()["id"])
    wait_until(lambda: all(p["status"] == "active" for p in api.get("/policies").json()), 30)
    before = flows_and_groups(lab)
    assert sum(len(f) for f, _ in before.values()) >= 100

    pid = lab.state["controller"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=5)
    log_path = tmp_path / "controller.log"
    with log_path.open("w") as log:
        controller = subprocess.Popen(
            [sys.executable, "-m", "vtap", "controller"], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until(lambda: fabric_complete(lab), timeout=20)
            wait_until(
                lambda: all(p["status"] == "active" for p in api.get("/policies").json()), 30
            )
            after = flows_and_groups(lab)
            assert after == before
            text = log_path.read_text()
            assert "GROUP_EXISTS" not in text
            changes = [int(n) for n in re.findall(r"(\d+) change\(s\) committed", text)]
            assert changes == [], f"restart changed switches: {changes}"
            run_case(tmp_path, 1, 2, spec(1, 2, dport=6000), copied_to=(9,))
        finally:
            for p in list(policies):
                api.delete(f"/policies/{p}")
            policies.clear()
            controller.send_signal(signal.SIGTERM)
            controller.wait(15)
