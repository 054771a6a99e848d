"""Walk packets through TAP rules compiled with a tiny combination budget (max_combinations=3).

On leaf 2's fabric ports the destination policies D1 and D2 are combined with suppressors: S1
(a source policy that already copied h1's packets to h9 on leaf 1) and the virtual ones that keep
h9's and h12's own traffic from being copied to them. S1 does not fit in the budget. Leaving it
out would give h9 a second copy of h1 → h3, so D1 (monitor h9, overlaps S1) is refused instead;
D2 and the policies elsewhere still copy, and no packet gets a duplicate or a monitor's own copy.
Random policy sets under small budgets are checked the same way: whatever is refused, each
packet gets exactly the copies its ready policies call for.
"""

from __future__ import annotations

import itertools
import random

import pytest

from tests.sim.lab import Lab, ip, mac
from tests.sim.walker import Packet
from vtap.compiler.tags import TapConfig
from vtap.compiler.tap import PlanState, TapPlan
from vtap.domain.policy import Policy

TIGHT = TapConfig(max_combinations=3)


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
    """The monitors that must get one copy: those of the ready policies the packet matches,
    but never the sender itself."""
    hosts = {mac(i): i for i in range(1, 17)}
    ready = [p for p in policies.values() if plan.policies[p.id].state is PlanState.READY]
    return {hosts[p.monitor_mac] for p in ready if _matches(p, pkt)} - {src}


def test_a_suppressor_that_does_not_fit_refuses_the_policy_it_protects() -> None:
    lab = Lab(config=TIGHT)
    pol = _policies(lab)
    plan = lab.compile(*pol.values())
    d1 = plan.policies[pol["D1"].id]
    assert d1.state is PlanState.PENDING
    assert "too many overlapping policies on s202 port" in d1.reason
    assert "(limit 3 combinations)" in d1.reason
    assert "duplicate copies or its own traffic" in d1.reason
    assert not plan.rules_for(pol["D1"].id)
    for name in ("S1", "D2", "U"):
        assert plan.policies[pol[name].id].state is PlanState.READY, name


@pytest.mark.parametrize(
    ("src", "dst", "proto", "dport", "monitors"),
    [
        (1, 3, 6, 80, {9}),  # S1 copied it on leaf 1: D1 must not copy it again
        (1, 3, 17, 53, {9, 12}),  # S1 and D2: one copy each
        (9, 3, 6, 80, set()),  # h9's own traffic (D1 would have copied it to h9)
        (12, 3, 17, 53, set()),  # h12's own traffic, D2's monitor
        (9, 3, 17, 53, {12}),  # h9 → h3 on D2's port: D2 copies, to h12 only
        (2, 3, 17, 53, {12}),  # D2, unaffected
        (5, 7, 6, 80, {14}),  # U, on another leaf, unaffected
    ],
)
def test_b_c_no_duplicate_no_own_traffic_others_still_copy(
    src: int, dst: int, proto: int, dport: int, monitors: set[int]
) -> None:
    lab = Lab(config=TIGHT)
    plan = lab.compile(*_policies(lab).values())
    pkt = lab.packet(src, dst, proto=proto, dport=dport)
    lab.assert_delivered(lab.send(plan, src, pkt, dst), pkt, dst, monitors)


@pytest.mark.parametrize("config", [TIGHT, TapConfig()], ids=["tight", "default"])
def test_every_packet_gets_exactly_the_copies_of_the_ready_policies(config: TapConfig) -> None:
    """A sweep: whatever is refused, the rules left copy each packet exactly as the ready
    policies say, once per monitor, never to the sender."""
    lab = Lab(config=config)
    pol = _policies(lab)
    plan = lab.compile(*pol.values())
    if config is not TIGHT:
        assert all(p.state is PlanState.READY for p in plan.policies.values())
    senders = (1, 2, 4, 5, 9, 12, 14)
    for src, dst, (proto, dport) in itertools.product(
        senders, (3, 7), ((6, 80), (17, 53), (17, 99))
    ):
        if src == dst:
            continue
        pkt = lab.packet(src, dst, proto=proto, dport=dport)
        want = _expected(plan, pol, src, pkt)
        lab.assert_delivered(lab.send(plan, src, pkt, dst), pkt, dst, want)


def _random_policies(lab: Lab, rng: random.Random) -> dict[str, Policy]:
    """A few source, source+destination and destination-only policies, many overlapping."""
    out: dict[str, Policy] = {}
    for i in range(rng.randint(3, 10)):
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
        out[f"p{i}"] = lab.policy(**fields)
    return out


@pytest.mark.parametrize("seed", range(30))
def test_random_policies_under_small_budgets_never_mis_copy(seed: int) -> None:
    rng = random.Random(seed)
    lab = Lab(config=TapConfig(max_combinations=rng.choice([2, 3, 4, 6, 10])))
    pol = _random_policies(lab, rng)
    plan = lab.compile(*pol.values())
    for _ in range(25):
        src, dst = rng.sample(range(1, 17), 2)
        proto, dport = rng.choice([(6, 80), (17, 53), (17, 99)])
        pkt = lab.packet(src, dst, proto=proto, dport=dport)
        want = _expected(plan, pol, src, pkt)
        if dst not in want:  # a monitor that is the destination is another story
            lab.assert_delivered(lab.send(plan, src, pkt, dst), pkt, dst, want)
