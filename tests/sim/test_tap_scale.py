"""Scale without refusals: thousands of policies and thousands of monitors compile, every
policy is ready, the rule count stays linear, and sampled packets are copied exactly once.
(Timing belongs to `vtap bench controlplane`, not here.)"""

from __future__ import annotations

import random

from tests.sim.lab import Lab, ip, mac
from tests.unit.leafspine import Fabric
from vtap.compiler.tap import PlanState
from vtap.domain.network import Host
from vtap.trace.walker import Packet


def test_ten_thousand_overlapping_policies_all_ready_and_linear() -> None:
    lab = Lab()
    policies = []
    monitors = [13, 14, 15, 16]
    port = 0
    while len(policies) < 10_000:
        port += 1
        for src in range(1, 13):
            for dst in range(1, 13):
                if src == dst or len(policies) == 10_000:
                    continue
                monitor = monitors[(src + dst + port) % 4]
                policies.append(
                    lab.policy(
                        src_ip=ip(src),
                        dst_ip=ip(dst),
                        ip_proto=6,
                        dst_port=port,
                        monitor_mac=mac(monitor),
                    )
                )
    plan = lab.compile(*policies)
    assert all(p.state == PlanState.READY for p in plan.policies.values())
    assert len(lab.labels) == 4  # one copy label per monitor
    flows = sum(len(f) for f in plan.flows.values())
    # one classification entry per policy, plus a bounded pipeline per switch
    assert 10_000 <= flows <= 10_000 + 100 * len(plan.flows)
    rng = random.Random(5)
    for _ in range(30):
        p = rng.choice(policies)
        src, dst = int(p.src_ip.rsplit(".", 1)[1]), int(p.dst_ip.rsplit(".", 1)[1])
        pkt = lab.packet(src, dst, dport=p.dst_port)
        monitor = int(p.monitor_mac.rsplit(":", 1)[1], 16)
        lab.assert_copies(lab.send(plan, src, pkt, dst), pkt, dst, {monitor})


def _mac(i: int) -> str:
    return f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"


def _ip(i: int) -> str:
    return f"10.1.{i >> 8}.{i & 0xFF}"


def test_four_thousand_monitors_each_get_their_copies() -> None:
    """4,000 distinct monitors on a 4 × 64 fabric with 64 hosts per leaf (the seed's VLAN tags
    stopped at about 100)."""
    fab = Fabric(spines=4, leaves=64, hosts_per_leaf=64)
    lab = Lab(fabric=fab)
    n = fab.leaves * fab.hosts_per_leaf
    lab.hosts = type(lab.hosts)()
    for i in range(1, n + 1):
        lab.hosts.observe(_mac(i), _ip(i), fab.host_port(i), 0.0)
    policies = {}
    for i in range(1, 4001):
        monitor = (i + n // 2 - 1) % n + 1
        policies[i] = (lab.policy(src_ip=_ip(i), monitor_mac=_mac(monitor)), monitor)
    plan = lab.compile(*(p for p, _ in policies.values()))
    assert all(p.state == PlanState.READY for p in plan.policies.values())
    assert len(set(lab.labels.values())) == 4000
    rng = random.Random(7)
    for i in rng.sample(sorted(policies), 25):
        _, monitor = policies[i]
        dst = rng.choice([j for j in range(1, n + 1) if j not in (i, monitor)])
        pkt = Packet(_mac(i), _mac(dst), ipv4_src=_ip(i), ipv4_dst=_ip(dst), ip_proto=17)
        result = lab.send(plan, i, pkt)
        copies = [d for d in result.deliveries if d.port == fab.host_port(monitor)]
        assert [d.packet for d in copies] == [pkt]
        assert len(result.deliveries) == 1  # no forwarding installed: the copy alone
        assert isinstance(lab.hosts.by_mac(_mac(monitor)), Host)
