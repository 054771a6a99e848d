"""Walk packets through compiled path rules on the discovered fabric: do they arrive?

Ties topology, path choice and rule building together without a switch: each switch's rule for
the flow says where the packet goes, the topology says which switch is on the other end.
"""

from __future__ import annotations

from dataclasses import replace

from tests.unit.leafspine import Fabric, spine_dpid
from vtap.compiler.forwarding import path_rules
from vtap.domain.network import FlowKey, PortRef
from vtap.openflow.rules import FlowRule, Output, ReservedPort
from vtap.topology import Topology, host_path

GRACE = 2.0


def walk(topo: Topology, rules: dict[int, FlowRule], start: PortRef) -> PortRef:
    """Follow the rules from a host port until the packet leaves on an edge port."""
    here = start
    for _ in range(16):
        rule = rules[here.dpid]
        (action,) = rule.actions
        assert isinstance(action, Output)
        port = here.port_no if action.port == ReservedPort.IN_PORT else action.port
        out = PortRef(here.dpid, port)
        if topo.is_edge_port(out, 100.0, GRACE):
            return out
        peer = topo.peer(out)
        assert peer is not None, f"{out} leads nowhere"
        here = peer
    raise AssertionError("loop")


def all_pairs(fab: Fabric) -> list[tuple[int, int]]:
    n = fab.leaves * fab.hosts_per_leaf
    return [(a, b) for a in range(1, n + 1) for b in range(1, n + 1) if a != b]


def test_every_host_pair_is_delivered() -> None:
    fab = Fabric()
    topo = fab.build()
    pairs = all_pairs(fab)
    assert len(pairs) == 240
    for a, b in pairs:
        key = FlowKey(f"10.0.0.{a}", f"10.0.0.{b}", 1)
        src, dst = fab.host_port(a), fab.host_port(b)
        path = host_path(topo, src, dst, key)
        assert path is not None
        assert walk(topo, path_rules(key, path, 30), src) == dst


def test_delivery_after_a_spine_fails() -> None:
    fab = Fabric()
    topo = fab.build()
    topo.switch_down(spine_dpid(3), 1.0)
    uplink = PortRef(fab.host_port(1).dpid, 1)  # leaf 1 to spine 1
    port = topo.port(uplink)
    assert port is not None
    topo.port_update(uplink.dpid, replace(port, up=False), 1.0)
    for a, b in all_pairs(fab):
        key = FlowKey(f"10.0.0.{a}", f"10.0.0.{b}", 6, 1000 + a, 2000 + b)
        path = host_path(topo, fab.host_port(a), fab.host_port(b), key)
        assert path is not None
        assert spine_dpid(3) not in {h.dpid for h in path}
        rules = path_rules(key, path, 30)
        assert walk(topo, rules, fab.host_port(a)) == fab.host_port(b)


def test_smaller_and_larger_fabrics() -> None:
    for fab in (Fabric(1, 2, 1), Fabric(2, 3, 3), Fabric(6, 10, 2)):
        topo = fab.build()
        assert len(topo.undirected_links()) == fab.spines * fab.leaves
        assert len(topo.edge_ports(100.0, GRACE)) == fab.leaves * fab.hosts_per_leaf
        for a, b in all_pairs(fab)[:60]:
            key = FlowKey(f"10.0.0.{a}", f"10.0.0.{b}", 17, a, b)
            path = host_path(topo, fab.host_port(a), fab.host_port(b), key)
            assert path is not None
            assert walk(topo, path_rules(key, path, 30), fab.host_port(a)) == fab.host_port(b)
