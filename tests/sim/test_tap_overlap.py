"""Overlapping policies of different shapes, on several switches: every policy is accepted and
every packet gets exactly one copy per monitor its policies name, never one of its own.

On leaf 2's fabric ports the destination policies D1 and D2 meet packets that S1 (a source
policy on leaf 1 with D1's monitor h9) already copied, and packets from their monitors
themselves: suppressors keep h9 from a second copy and both monitors from their own traffic.
(The seed's cross-product compiler had to refuse D1 when its combination budget ran out;
the classification pipeline has no such budget.)
"""

from __future__ import annotations

import itertools
import random

import pytest

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.plan import PlanState, TapPlan
from vtap.domain.policy import Policy
from vtap.trace.walker import Packet


def _policies(lab: Lab) -> dict[str, Policy]:
    return {
        "S1": lab.policy(src_ip=ip(1), monitor_mac=mac(9)),
        "D1": lab.policy(dst_ip=ip(3), monitor_mac=mac(9)),
        "D2": lab.policy(dst_ip=ip(3), ip_proto=17, dst_port=53, monitor_mac=mac(12)),
        "U": lab.policy(src_ip=ip(5), dst_ip=ip(7), monitor_mac=mac(14)),
    }


def _matches(p: Policy, pkt: Packet) -> bool:
    """The fields these tests use (anything else would make this check wrong)."""
    assert p.src_mac is p.dst_mac is p.vlan_id is p.src_port is None
    return (
        p.src_ip in (None, pkt.ipv4_src)
        and p.dst_ip in (None, pkt.ipv4_dst)
        and p.ip_proto in (None, pkt.ip_proto)
        and p.dst_port in (None, pkt.dst_port)
    )


def _expected(plan: TapPlan, policies: dict[str, Policy], src: int, pkt: Packet) -> set[int]:
    """The monitors that must get one copy: those of the policies the packet matches, but
    never the sender itself. Every policy must be ready: nothing is refused any more."""
    assert all(plan.policies[p.id].state is PlanState.READY for p in policies.values())
    hosts = {mac(i): i for i in range(1, 17)}
    return {hosts[p.monitor_mac] for p in policies.values() if _matches(p, pkt)} - {src}


@pytest.mark.parametrize(
    ("src", "dst", "proto", "dport", "monitors"),
    [
        (1, 3, 6, 80, {9}),  # S1 copied it on leaf 1: D1 must not copy it again
        (1, 3, 17, 53, {9, 12}),  # S1 and D2: one copy each
        (9, 3, 6, 80, set()),  # h9's own traffic (D1 would have copied it to h9)
        (12, 3, 17, 53, {9}),  # h12's own traffic: D2 (its monitor) does not copy, D1 does
        (9, 3, 17, 53, {12}),  # h9 → h3 on D2's port: D2 copies, to h12 only
        (2, 3, 17, 53, {9, 12}),  # D1 and D2 on h2's port (leaf 1 is not h3's leaf)
        (4, 3, 6, 80, {9}),  # D1 on the destination's own leaf, from a host port
        (5, 7, 6, 80, {14}),  # U, on another leaf, unaffected
    ],
)
def test_no_duplicate_no_own_traffic_others_still_copy(
    src: int, dst: int, proto: int, dport: int, monitors: set[int]
) -> None:
    lab = Lab()
    pol = _policies(lab)
    plan = lab.compile(*pol.values())
    assert all(p.state is PlanState.READY for p in plan.policies.values())
    pkt = lab.packet(src, dst, proto=proto, dport=dport)
    assert _expected(plan, pol, src, pkt) == monitors
    lab.assert_delivered(lab.send(plan, src, pkt, dst), pkt, dst, monitors)


def test_every_packet_gets_exactly_the_copies_of_its_policies() -> None:
    lab = Lab()
    pol = _policies(lab)
    plan = lab.compile(*pol.values())
    senders = (1, 2, 4, 5, 9, 12, 14)
    for src, dst, (proto, dport) in itertools.product(
        senders, (3, 7), ((6, 80), (17, 53), (17, 99))
    ):
        if src == dst:
            continue
        pkt = lab.packet(src, dst, proto=proto, dport=dport)
        want = _expected(plan, pol, src, pkt)
        lab.assert_copies(lab.send(plan, src, pkt, dst), pkt, dst, want)


def _random_policies(lab: Lab, rng: random.Random) -> dict[str, Policy]:
    """A few source, source+destination and destination-only policies, many overlapping."""
    out: dict[str, Policy] = {}
    seen = set()
    for i in range(rng.randint(3, 14)):
        kind = rng.choice(["src", "srcdst", "dst", "dst"])
        s, d, m = rng.sample(range(1, 17), 3)
        fields: dict[str, object] = {"monitor_mac": mac(m)}
        if kind in ("src", "srcdst"):
            fields["src_ip"] = ip(s)
        if kind in ("dst", "srcdst"):
            fields["dst_ip"] = ip(d)
        roll = rng.random()
        if roll < 0.4:
            fields |= {"ip_proto": 17, "dst_port": rng.choice([53, 99])}
        elif roll < 0.6:
            fields["ip_proto"] = 6
        policy = lab.policy(**fields)
        if policy.identity() not in seen:
            seen.add(policy.identity())
            out[f"p{i}"] = policy
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_overlapping_policies_copy_exactly_once(seed: int) -> None:
    """Including packets whose destination is itself a monitor of a policy they match: it
    gets the packet and one copy of it."""
    rng = random.Random(seed)
    lab = Lab()
    pol = _random_policies(lab, rng)
    plan = lab.compile(*pol.values())
    for _ in range(40):
        src, dst = rng.sample(range(1, 17), 2)
        proto, dport = rng.choice([(6, 80), (17, 53), (17, 99)])
        pkt = lab.packet(src, dst, proto=proto, dport=dport)
        want = _expected(plan, pol, src, pkt)
        lab.assert_copies(lab.send(plan, src, pkt, dst), pkt, dst, want)
