"""Topology state: links, fabric and edge ports, failures and expiry."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.leafspine import Fabric, leaf_dpid, spine_dpid
from vtap.domain.network import LOCAL_PORT, Link, Port, PortRef, Switch
from vtap.topology import Topology

GRACE = 3.0
FAB = Fabric()


def test_default_fabric_has_32_links_and_16_edge_ports() -> None:
    topo = FAB.build(now=0.0)
    assert len(topo.switches()) == 12
    assert len(topo.links()) == 64  # directed
    undirected = topo.undirected_links()
    assert len(undirected) == 32
    assert all(link.src <= link.dst for link in undirected)
    assert topo.edge_ports(now=0.0, grace=GRACE) == []  # nobody is an edge port too early
    edges = topo.edge_ports(now=GRACE, grace=GRACE)
    assert edges == sorted(FAB.host_port(h) for h in range(1, 17))
    assert topo.graph.number_of_nodes() == 12
    assert topo.graph.number_of_edges() == 32


def test_one_direction_is_enough_for_a_usable_link() -> None:
    topo = FAB.build(now=0.0, both_directions=False)
    assert len(topo.links()) == 32
    assert len(topo.undirected_links()) == 32
    assert topo.is_fabric_port(PortRef(leaf_dpid(1), 1))
    assert topo.is_fabric_port(PortRef(spine_dpid(1), 1))


def test_lldp_seen_reports_new_links_only() -> None:
    topo = Topology()
    topo.switch_up(FAB.switch(spine_dpid(1)), 0.0)
    topo.switch_up(FAB.switch(leaf_dpid(1)), 0.0)
    link = Link(PortRef(spine_dpid(1), 1), PortRef(leaf_dpid(1), 1))
    gen = topo.generation
    assert topo.lldp_seen(link, 1.0) is True
    assert topo.generation > gen
    gen = topo.generation
    assert topo.lldp_seen(link, 2.0) is False
    assert topo.generation == gen  # a refresh changes nothing
    assert topo.last_seen(link) == 2.0
    assert topo.lldp_seen(link.reversed(), 2.0) is True


def test_local_and_reserved_ports_are_never_edge() -> None:
    topo = FAB.build()
    refs = topo.edge_ports(now=100.0, grace=GRACE)
    assert all(r.port_no != LOCAL_PORT for r in refs)
    assert not topo.is_edge_port(PortRef(leaf_dpid(1), LOCAL_PORT), 100.0, GRACE)


def test_is_edge_port() -> None:
    topo = FAB.build(now=0.0)
    host = FAB.host_port(1)
    assert not topo.is_edge_port(host, 1.0, GRACE)
    assert topo.is_edge_port(host, 3.0, GRACE)
    assert not topo.is_edge_port(PortRef(leaf_dpid(1), 1), 100.0, GRACE)  # fabric
    assert not topo.is_edge_port(PortRef(leaf_dpid(1), 99), 100.0, GRACE)  # unknown port
    assert not topo.is_edge_port(PortRef(0xDEAD, 1), 100.0, GRACE)  # unknown switch


def test_lldp_on_a_port_makes_it_fabric_even_after_grace() -> None:
    topo = Topology()
    topo.switch_up(FAB.switch(leaf_dpid(1)), 0.0)
    port = PortRef(leaf_dpid(1), 5)
    assert topo.is_edge_port(port, 10.0, GRACE)
    # A new switch gets cabled to a port that looked like a host port.
    topo.switch_up(FAB.switch(spine_dpid(9)), 10.0)
    assert topo.lldp_seen(Link(PortRef(spine_dpid(9), 1), port), 10.5)
    assert topo.is_fabric_port(port)
    assert not topo.is_edge_port(port, 11.0, GRACE)
    assert port not in topo.edge_ports(11.0, GRACE)


def test_port_down_removes_its_links_and_up_restarts_grace() -> None:
    topo = FAB.build(now=0.0)
    leaf1_up1 = PortRef(leaf_dpid(1), 1)
    sw = FAB.switch(leaf_dpid(1))
    down = replace(sw.port(1), up=False)  # type: ignore[arg-type]
    removed = topo.port_update(leaf_dpid(1), down, 5.0)
    assert removed == sorted(
        [
            Link(PortRef(spine_dpid(1), 1), leaf1_up1),
            Link(leaf1_up1, PortRef(spine_dpid(1), 1)),
        ]
    )
    assert len(topo.undirected_links()) == 31
    assert not topo.is_fabric_port(leaf1_up1)
    assert not topo.is_edge_port(leaf1_up1, 100.0, GRACE)  # down
    # The spine's end is up but no longer fabric: it must wait out the grace period again.
    spine_end = PortRef(spine_dpid(1), 1)
    assert not topo.is_edge_port(spine_end, 5.0 + GRACE - 0.1, GRACE)
    # LLDP still in flight from before the port went down is ignored.
    assert topo.lldp_seen(Link(spine_end, leaf1_up1), 5.1) is False
    # Up again: not edge at once, and LLDP rediscovers the link.
    assert topo.port_update(leaf_dpid(1), replace(down, up=True), 6.0) == []
    assert not topo.is_edge_port(leaf1_up1, 6.5, GRACE)
    assert topo.lldp_seen(Link(spine_end, leaf1_up1), 7.0)
    assert len(topo.undirected_links()) == 32


def test_port_update_for_unknown_switch_is_ignored() -> None:
    topo = Topology()
    assert topo.port_update(42, Port(1, "x", "02:00:00:00:00:01"), 0.0) == []
    assert topo.port_deleted(42, 1, 0.0) == []
    assert topo.switch_down(42, 0.0) == []


def test_port_modify_while_up_keeps_clock() -> None:
    topo = FAB.build(now=0.0)
    host = FAB.host_port(1)
    port = topo.port(host)
    assert port is not None
    topo.port_update(host.dpid, replace(port, name="renamed"), 2.5)
    assert topo.is_edge_port(host, 3.0, GRACE)
    assert topo.port(host).name == "renamed"  # type: ignore[union-attr]


def test_port_added_starts_clock() -> None:
    topo = FAB.build(now=0.0)
    new = Port(7, "leaf1-eth7", "0a:00:00:00:01:07")
    assert topo.port_update(leaf_dpid(1), new, 10.0) == []
    ref = PortRef(leaf_dpid(1), 7)
    assert not topo.is_edge_port(ref, 12.0, GRACE)
    assert topo.is_edge_port(ref, 13.0, GRACE)


def test_port_deleted() -> None:
    topo = FAB.build(now=0.0)
    removed = topo.port_deleted(spine_dpid(2), 3, 5.0)
    assert len(removed) == 2
    assert topo.port(PortRef(spine_dpid(2), 3)) is None
    assert len(topo.undirected_links()) == 31
    assert topo.port_deleted(spine_dpid(2), 3, 5.0) == []


def test_switch_down_removes_its_links() -> None:
    topo = FAB.build(now=0.0)
    removed = topo.switch_down(spine_dpid(4), 10.0)
    assert len(removed) == 16
    assert all(spine_dpid(4) in (k.src.dpid, k.dst.dpid) for k in removed)
    assert len(topo.undirected_links()) == 24
    assert topo.switch(spine_dpid(4)) is None
    assert spine_dpid(4) not in topo.graph
    # Leaf ports toward the dead spine are not host ports, at least not before the grace period.
    assert not topo.is_edge_port(PortRef(leaf_dpid(1), 4), 10.0 + GRACE / 2, GRACE)


def test_switch_reconnect_keeps_links_and_host_clocks() -> None:
    topo = FAB.build(now=0.0)
    removed = topo.switch_up(FAB.switch(leaf_dpid(1)), 50.0)
    assert removed == []
    assert len(topo.undirected_links()) == 32
    assert topo.is_edge_port(FAB.host_port(1), 50.0, GRACE)


def test_switch_reconnect_with_changed_ports() -> None:
    topo = FAB.build(now=0.0)
    sw = FAB.switch(leaf_dpid(1))
    kept = [replace(p, up=False) if p.port_no == 2 else p for p in sw.ports if p.port_no != 1]
    ports = (*kept, Port(9, "new", "0a:00:00:00:01:09"))
    removed = topo.switch_up(Switch(sw.dpid, sw.name, ports), 50.0)
    assert len(removed) == 4  # port 1 vanished, port 2 down: 2 directed links each
    assert len(topo.undirected_links()) == 30
    assert not topo.is_edge_port(PortRef(leaf_dpid(1), 9), 50.0, GRACE)
    assert topo.is_edge_port(PortRef(leaf_dpid(1), 9), 53.0, GRACE)


def test_switch_that_comes_up_with_port_down() -> None:
    topo = Topology()
    sw = FAB.switch(leaf_dpid(1))
    ports = tuple(replace(p, up=False) if p.port_no == 5 else p for p in sw.ports)
    topo.switch_up(Switch(sw.dpid, sw.name, ports), 0.0)
    assert PortRef(leaf_dpid(1), 5) not in topo.edge_ports(10.0, GRACE)
    assert PortRef(leaf_dpid(1), 6) in topo.edge_ports(10.0, GRACE)


def test_link_timeout_expiry() -> None:
    topo = FAB.build(now=0.0)
    cable = FAB.cables()[0]
    # Keep every link alive except one direction of the first cable and both of the second.
    for link in topo.links():
        if link not in (cable, *FAB.cables()[1:2], FAB.cables()[1].reversed()):
            topo.lldp_seen(link, 9.0)
    assert topo.expire(10.0, link_timeout=10.0) == []  # exactly at the timeout: still alive
    expired = topo.expire(10.5, link_timeout=10.0)
    assert expired == sorted([cable, FAB.cables()[1], FAB.cables()[1].reversed()])
    # First cable still usable through its other direction; second one gone.
    assert len(topo.undirected_links()) == 31
    assert not topo.is_fabric_port(FAB.cables()[1].src)
    # The spine end of the expired cable does not turn into a host port at once.
    assert not topo.is_edge_port(FAB.cables()[1].src, 11.0, GRACE)
    assert topo.is_edge_port(FAB.cables()[1].src, 13.5, GRACE)


def test_self_loop_is_fabric_but_not_usable() -> None:
    topo = Topology()
    topo.switch_up(FAB.switch(leaf_dpid(1)), 0.0)
    loop = Link(PortRef(leaf_dpid(1), 5), PortRef(leaf_dpid(1), 6))
    assert topo.lldp_seen(loop, 1.0)
    assert topo.is_fabric_port(PortRef(leaf_dpid(1), 5))
    assert topo.undirected_links() == []
    assert topo.graph.number_of_edges() == 0


def test_link_to_unknown_switch_is_fabric_but_not_usable() -> None:
    topo = Topology()
    topo.switch_up(FAB.switch(leaf_dpid(1)), 0.0)
    link = Link(PortRef(spine_dpid(1), 1), PortRef(leaf_dpid(1), 1))
    topo.lldp_seen(link, 0.0)
    assert topo.undirected_links() == []
    topo.switch_up(FAB.switch(spine_dpid(1)), 1.0)
    assert topo.undirected_links() == [Link(link.src, link.dst)]
    assert topo.peer(link.dst) == link.src
    assert topo.peer(link.src) == link.dst
    assert topo.peer(PortRef(leaf_dpid(1), 5)) is None


def test_parallel_links_between_two_switches() -> None:
    topo = Topology()
    topo.switch_up(FAB.switch(spine_dpid(1)), 0.0)
    topo.switch_up(FAB.switch(leaf_dpid(1)), 0.0)
    a = Link(PortRef(spine_dpid(1), 1), PortRef(leaf_dpid(1), 1))
    b = Link(PortRef(spine_dpid(1), 2), PortRef(leaf_dpid(1), 2))
    topo.lldp_seen(a, 0.0)
    topo.lldp_seen(b.reversed(), 0.0)
    assert topo.graph.number_of_edges() == 1
    assert topo.link_ports(spine_dpid(1), leaf_dpid(1)) == [(a.src, a.dst), (b.src, b.dst)]
    assert topo.link_ports(leaf_dpid(1), spine_dpid(1)) == [(a.dst, a.src), (b.dst, b.src)]
    assert topo.link_ports(leaf_dpid(1), leaf_dpid(2)) == []


def test_graph_is_cached_until_a_change() -> None:
    topo = FAB.build()
    g = topo.graph
    assert topo.graph is g
    topo.switch_down(spine_dpid(1), 1.0)
    assert topo.graph is not g
