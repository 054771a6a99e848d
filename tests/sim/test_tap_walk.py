"""Walk packets through compiled TAP rules on a 4 × 8 leaf-spine with 16 hosts.

For every case: the destination receives the packet exactly once and unchanged, each monitor
receives exactly one copy identical to what the destination received, nothing else is
delivered, and packets that match no policy produce no copy.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.tap import PlanState
from vtap.domain.network import FlowKey
from vtap.domain.policy import Policy
from vtap.openflow.pipeline import TABLE_COPY
from vtap.openflow.rules import Output, ReservedPort
from vtap.topology import host_path
from vtap.trace.walker import Packet

# Lab hosts: h1, h2 on leaf 1; h3, h4 on leaf 2; ... h15, h16 on leaf 8.


@pytest.fixture
def lab() -> Lab:
    return Lab()


def test_1_source_and_monitor_on_one_leaf(lab: Lab) -> None:
    tap = lab.policy(src_ip=ip(1), dst_ip=ip(3), monitor_mac=mac(2), ip_proto=6, dst_port=80)
    plan = lab.compile(tap)
    assert plan.policies[tap.id].state == PlanState.READY
    assert not lab.labels  # the copy never leaves leaf 1: no label needed
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {2})
    # destination on the same leaf too
    tap2 = lab.policy(src_mac=mac(3), dst_mac=mac(4), monitor_ip=ip(1))
    plan = lab.compile(tap2)
    pkt = lab.packet(3, 4, proto=17)
    lab.assert_delivered(lab.send(plan, 3, pkt, 4), pkt, 4, {1})


def test_2_across_the_fabric(lab: Lab) -> None:
    tap = lab.policy(src_ip=ip(1), dst_ip=ip(3), monitor_mac=mac(16), ip_proto=6, dst_port=80)
    plan = lab.compile(tap)
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {16})
    other = lab.packet(3, 1, sport=80, dport=1000)  # the reply does not match
    lab.assert_delivered(lab.send(plan, 3, other, 1), other, 1)


def test_3_wildcard_destination(lab: Lab) -> None:
    tap = lab.policy(src_mac=mac(1), monitor_mac=mac(9))
    plan = lab.compile(tap)
    for dst in (2, 3, 12, 16):
        pkt = lab.packet(1, dst, proto=17, dport=dst)
        lab.assert_delivered(lab.send(plan, 1, pkt, dst), pkt, dst, {9})
    pkt = lab.packet(5, 3)
    lab.assert_delivered(lab.send(plan, 5, pkt, 3), pkt, 3)


def test_4_vlan_tagged_traffic_with_vlan_filter(lab: Lab) -> None:
    tap = lab.policy(src_ip=ip(1), vlan_id=100, ip_proto=17, monitor_mac=mac(7))
    plan = lab.compile(tap)
    tagged = lab.packet(1, 4, proto=17, vlans=((0x8100, 100),))
    result = lab.send(plan, 1, tagged, 4)
    lab.assert_delivered(result, tagged, 4, {7})
    assert result.at(lab.port(7))[0].vlans == ((0x8100, 100),)  # inner tag kept
    for vlans in (((0x8100, 200),), ()):
        pkt = lab.packet(1, 4, proto=17, vlans=vlans)
        lab.assert_delivered(lab.send(plan, 1, pkt, 4), pkt, 4)


def test_4b_tagged_traffic_without_vlan_filter_keeps_its_tag(lab: Lab) -> None:
    plan = lab.compile(lab.policy(src_ip=ip(1), monitor_mac=mac(12)))
    pkt = lab.packet(1, 5, vlans=((0x8100, 42),))
    lab.assert_delivered(lab.send(plan, 1, pkt, 5), pkt, 5, {12})


def test_5_tcp_and_udp_port_filters(lab: Lab) -> None:
    web = lab.policy(src_ip=ip(1), ip_proto=6, dst_port=80, monitor_mac=mac(10))
    dns = lab.policy(src_ip=ip(1), ip_proto=17, src_port=53, monitor_mac=mac(11))
    plan = lab.compile(web, dns)
    cases = [
        (lab.packet(1, 5, proto=6, dport=80), {10}),
        (lab.packet(1, 5, proto=6, dport=81), set()),
        (lab.packet(1, 5, proto=17, dport=80), set()),
        (lab.packet(1, 5, proto=17, sport=53, dport=999), {11}),
        (lab.packet(1, 5, proto=6, sport=53, dport=999), set()),
        (lab.packet(1, 5, proto=1), set()),
    ]
    for pkt, monitors in cases:
        lab.assert_delivered(lab.send(plan, 1, pkt, 5), pkt, 5, monitors)


@pytest.mark.parametrize("monitor", [2, 14])  # same leaf, other leaf
def test_6_rewrite_delivery_restores_the_original(lab: Lab, monitor: int) -> None:
    tap = lab.policy(
        src_ip=ip(1), dst_mac=mac(3), dst_ip=ip(3), monitor_mac=mac(monitor), delivery="rewrite"
    )
    plan = lab.compile(tap)
    assert plan.policies[tap.id].state == PlanState.READY
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {monitor})
    if monitor == 14:
        assert f"policy:{tap.id}" in lab.labels


def test_6_both_modes_side_by_side(lab: Lab) -> None:
    tagged = lab.policy(src_ip=ip(1), dst_ip=ip(3), monitor_mac=mac(9))
    rewrite = lab.policy(
        src_ip=ip(5), dst_mac=mac(3), dst_ip=ip(3), monitor_mac=mac(9), delivery="rewrite"
    )
    plan = lab.compile(tagged, rewrite)
    for src in (1, 5):
        pkt = lab.packet(src, 3)
        lab.assert_delivered(lab.send(plan, src, pkt, 3), pkt, 3, {9})


def test_7_two_policies_share_a_monitor(lab: Lab) -> None:
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(16))
    b = lab.policy(src_ip=ip(6), monitor_mac=mac(16))
    plan = lab.compile(a, b)
    assert len(lab.labels) == 1  # one label per monitor, not per policy
    for src, dst in ((1, 3), (6, 2)):
        pkt = lab.packet(src, dst)
        lab.assert_delivered(lab.send(plan, src, pkt, dst), pkt, dst, {16})


def test_7_two_policies_on_one_packet_different_monitors(lab: Lab) -> None:
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(12))
    b = lab.policy(src_ip=ip(1), ip_proto=6, dst_port=80, monitor_mac=mac(14))
    plan = lab.compile(a, b)
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {12, 14})
    only_a = lab.packet(1, 3, dport=22)
    lab.assert_delivered(lab.send(plan, 1, only_a, 3), only_a, 3, {12})


def test_7_two_policies_on_one_packet_same_monitor(lab: Lab) -> None:
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(12))
    b = lab.policy(src_ip=ip(1), dst_ip=ip(3), monitor_mac=mac(12))
    c = lab.policy(
        src_mac=mac(1), dst_mac=mac(3), dst_ip=ip(3), monitor_mac=mac(12), delivery="rewrite"
    )
    plan = lab.compile(a, b, c)
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {12})
    pkt = lab.packet(1, 4)
    lab.assert_delivered(lab.send(plan, 1, pkt, 4), pkt, 4, {12})


def test_7_source_and_destination_policies_on_two_switches_same_monitor(lab: Lab) -> None:
    """Classified at h1's leaf and at h3's leaf: the second must not copy again."""
    src = lab.policy(src_ip=ip(1), monitor_mac=mac(9))
    dst = lab.policy(dst_ip=ip(3), monitor_mac=mac(9))
    other = lab.policy(dst_ip=ip(3), ip_proto=6, monitor_mac=mac(10))
    plan = lab.compile(src, dst, other)
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {9, 10})
    pkt = lab.packet(5, 3, proto=17)
    lab.assert_delivered(lab.send(plan, 5, pkt, 3), pkt, 3, {9})


def test_8_genuine_traffic_to_the_monitor_is_untouched(lab: Lab) -> None:
    for delivery in ("tagged", "rewrite"):
        lab = Lab()
        tap = lab.policy(
            src_ip=ip(1),
            dst_mac=mac(3),
            dst_ip=ip(3),
            monitor_mac=mac(9),
            monitor_ip=ip(9),
            delivery=delivery,
        )
        plan = lab.compile(tap)
        genuine = lab.packet(1, 9)
        lab.assert_delivered(lab.send(plan, 1, genuine, 9), genuine, 9)
        genuine = lab.packet(5, 9)
        lab.assert_delivered(lab.send(plan, 5, genuine, 9), genuine, 9)
    # a wildcard-destination policy copies the source's traffic to its monitor too: the
    # monitor then gets the genuine packet and one identical copy
    lab = Lab()
    plan = lab.compile(lab.policy(src_ip=ip(1), monitor_mac=mac(9)))
    genuine = lab.packet(1, 9)
    result = lab.send(plan, 1, genuine, 9)
    assert result.at(lab.port(9)) == [genuine, genuine]


def test_9_a_host_cannot_forge_a_copy(lab: Lab) -> None:
    """Frames that carry the monitor's copy label are taken for copies only when they come
    from the fabric: from a host port they are just frames, and vtap forwards no MPLS."""
    plan = lab.compile(lab.policy(src_ip=ip(1), monitor_mac=mac(9)))
    label = lab.labels[f"monitor:{mac(9)}"]
    genuine = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, genuine, 3), genuine, 3, {9})  # the label works
    for sender in (5, 10, 1):
        for tc in range(8):
            inner = lab.packet(sender, 9, proto=17)
            forged = replace(inner, eth_type=0x8847, mpls=((label, tc, inner.eth_type),))
            result = lab.send(plan, sender, forged, 9)
            assert result.deliveries == []  # (an MPLS frame matches no IPv4 policy: no copy)
            assert not result.to_controller


def test_10_destination_only_policy_uses_in_port_toward_the_monitor(lab: Lab) -> None:
    tap = lab.policy(dst_ip=ip(3), monitor_mac=mac(5))
    plan = lab.compile(tap)
    leaf2 = lab.port(3).dpid
    hairpins = [
        r
        for r in plan.flows[leaf2]
        if r.table_id == TABLE_COPY and Output(ReservedPort.IN_PORT) in r.actions
    ]
    assert len(hairpins) == 1  # exactly the fabric port that is also the way to the monitor
    hairpin_port = hairpins[0].match.in_port
    assert hairpin_port is not None
    reached_back = 0
    for src in range(1, lab.n_hosts + 1):
        if src in (3, 5):
            continue
        pkt = lab.packet(src, 3, sport=src)
        result = lab.send(plan, src, pkt, 3)
        lab.assert_delivered(result, pkt, 3, {5})
        assert not result.drops
        path = host_path(lab.topo, lab.port(src), lab.port(3), FlowKey(ip(src), ip(3), 6, src, 80))
        assert path is not None
        if path[-1].in_port == hairpin_port:
            reached_back += 1
    assert reached_back > 0  # the IN_PORT case was really exercised
    # the monitor's own traffic to the destination is not copied back to it
    pkt = lab.packet(5, 3)
    lab.assert_delivered(lab.send(plan, 5, pkt, 3), pkt, 3)


def test_10b_destination_only_policy_with_monitor_on_the_destination_leaf(lab: Lab) -> None:
    plan = lab.compile(lab.policy(dst_mac=mac(3), monitor_mac=mac(4)))
    for src in (1, 9, 16):
        pkt = lab.packet(src, 3)
        lab.assert_delivered(lab.send(plan, src, pkt, 3), pkt, 3, {4})
    pkt = lab.packet(4, 3)  # the monitor is not a source of copies
    lab.assert_delivered(lab.send(plan, 4, pkt, 3), pkt, 3)


def test_11_copies_to_a_monitor_are_not_copied_again(lab: Lab) -> None:
    first = lab.policy(src_ip=ip(1), dst_ip=ip(3), monitor_mac=mac(5))
    second = lab.policy(src_mac=mac(5), monitor_mac=mac(7))  # the monitor is a source here
    third = lab.policy(dst_mac=mac(5), monitor_mac=mac(8))  # ... and a destination here
    plan = lab.compile(first, second, third)
    pkt = lab.packet(1, 3)
    lab.assert_delivered(lab.send(plan, 1, pkt, 3), pkt, 3, {5})
    own = lab.packet(5, 3)
    lab.assert_delivered(lab.send(plan, 5, own, 3), own, 3, {7})


def _expected_monitors(policies: list[Policy], pkt: Packet, sender: int) -> set[int]:
    out: set[int] = set()
    for p in policies:
        fields = {
            "src_mac": pkt.eth_src,
            "src_ip": pkt.ipv4_src,
            "dst_mac": pkt.eth_dst,
            "dst_ip": pkt.ipv4_dst,
            "ip_proto": pkt.ip_proto,
            "vlan_id": pkt.vlans[0][1] if pkt.vlans else None,
            "src_port": pkt.src_port,
            "dst_port": pkt.dst_port,
        }
        if all(getattr(p, f) is None or getattr(p, f) == v for f, v in fields.items()):
            assert p.monitor_mac is not None
            monitor = int(p.monitor_mac.rsplit(":", 1)[1], 16)
            if monitor != sender:
                out.add(monitor)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_random_overlapping_policies_each_monitor_gets_one_copy(seed: int) -> None:
    """Many overlapping policies: every packet's copies equal the brute-force expectation."""
    rnd = random.Random(seed)
    lab = Lab()
    policies = []
    seen = set()
    hosts = [1, 2, 3, 6, 9]
    while len(policies) < 14:
        fields: dict[str, object] = {"monitor_mac": mac(rnd.choice([4, 7, 12, 15, 16]))}
        if rnd.random() < 0.6:
            h = rnd.choice(hosts)
            fields.update(rnd.choice([{"src_ip": ip(h)}, {"src_mac": mac(h)}]))
        if len(fields) == 1 or rnd.random() < 0.5:
            h = rnd.choice(hosts)
            fields.update(rnd.choice([{"dst_ip": ip(h)}, {"dst_mac": mac(h)}]))
        if rnd.random() < 0.5:
            fields["ip_proto"] = rnd.choice([6, 17])
            if rnd.random() < 0.5:
                fields["dst_port"] = rnd.choice([80, 443])
        if rnd.random() < 0.2:
            fields["vlan_id"] = 100
        try:
            p = lab.policy(**fields)
        except Exception:
            continue
        if p.identity() in seen:
            continue
        seen.add(p.identity())
        policies.append(p)
    plan = lab.compile(*policies)
    ready = [p for p in policies if plan.policies[p.id].state == PlanState.READY]
    assert len(ready) == len(policies), [plan.policies[p.id] for p in policies]
    checked = 0
    for src in hosts:
        for dst in [*hosts, 4, 12]:
            if src == dst:
                continue
            for proto, dport, vlans in ((6, 80, ()), (17, 443, ((0x8100, 100),)), (6, 22, ())):
                pkt = lab.packet(src, dst, proto=proto, dport=dport, vlans=vlans)
                expected = _expected_monitors(policies, pkt, src)
                result = lab.send(plan, src, pkt, dst)
                for m in expected - {dst}:
                    assert result.at(lab.port(m)) == [pkt], (m, pkt, result)
                at_dst = 2 if dst in expected else 1
                assert result.at(lab.port(dst)) == [pkt] * at_dst
                assert len(result.deliveries) == len(expected - {dst}) + at_dst
                checked += 1
    assert checked == 90


def test_every_pair_with_one_destination_only_policy(lab: Lab) -> None:
    plan = lab.compile(lab.policy(dst_ip=ip(8), monitor_mac=mac(13)))
    for src in range(1, lab.n_hosts + 1):
        if src in (8, 13):
            continue
        pkt = lab.packet(src, 8)
        lab.assert_delivered(lab.send(plan, src, pkt, 8), pkt, 8, {13})
