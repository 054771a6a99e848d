"""Paths for display: a flow's switches in order, a policy's production and copy paths."""

from __future__ import annotations

import itertools

from tests.sim.lab import Lab, ip, mac
from vtap.api.tappaths import matches, order_hops, peer_map, policy_routes
from vtap.compiler.copytree import CopyTree
from vtap.compiler.forwarding import path_rules
from vtap.domain.network import FlowKey, PortRef
from vtap.topology import host_path

KEY = FlowKey(ip(1), ip(16), 6, 40000, 80)


def installed(lab: Lab, key: FlowKey, src: int, dst: int) -> dict:
    path = host_path(lab.topo, lab.port(src), lab.port(dst), key)
    assert path is not None
    return path_rules(key, path, 30)


def test_entries_are_ordered_along_the_path_from_the_source_edge() -> None:
    lab = Lab()
    rules = installed(lab, KEY, 1, 16)
    path = host_path(lab.topo, lab.port(1), lab.port(16), KEY)
    assert path is not None
    want = [h.dpid for h in path]
    peers = peer_map(lab.topo)
    shuffled = dict(sorted(rules.items(), reverse=True))
    order, cables = order_hops(shuffled, lab.port(1).dpid, peers)
    assert order == want
    assert [(a.dpid, b.dpid) for a, b in cables] == list(itertools.pairwise(want))
    # without knowing the source, the switch no entry leads to comes first
    assert order_hops(shuffled, None, peers)[0] == want


def test_a_single_switch_flow_is_one_hop_without_cables() -> None:
    lab = Lab()
    key = FlowKey(ip(1), ip(2), 1)
    order, cables = order_hops(installed(lab, key, 1, 2), lab.port(1).dpid, peer_map(lab.topo))
    assert order == [lab.port(1).dpid] and cables == []


def test_policy_match_against_a_flow() -> None:
    lab = Lab()
    assert matches(
        lab.policy(src_ip=ip(1), ip_proto=6, dst_port=80, monitor_ip=ip(3)), KEY, lab.hosts
    )
    assert matches(lab.policy(src_mac=mac(1), monitor_ip=ip(3)), KEY, lab.hosts)
    assert not matches(lab.policy(src_mac=mac(2), monitor_ip=ip(3)), KEY, lab.hosts)
    assert not matches(lab.policy(dst_ip=ip(16), ip_proto=17, monitor_ip=ip(3)), KEY, lab.hosts)
    assert not matches(
        lab.policy(dst_ip=ip(16), ip_proto=6, dst_port=443, monitor_ip=ip(3)), KEY, lab.hosts
    )


def test_policy_routes_follow_matching_flows_and_the_copy_tree() -> None:
    lab = Lab()
    policy = lab.policy(src_ip=ip(1), dst_ip=ip(16), monitor_ip=ip(9))
    rules = installed(lab, KEY, 1, 16)
    other = FlowKey(ip(5), ip(6), 1)
    routes = policy_routes(policy, lab.topo, lab.hosts, [(KEY, rules), (other, {})])
    assert len(routes.production) == 1
    prod = routes.production[0]
    assert prod.flow == KEY and prod.switches[0] == lab.port(1).dpid
    assert prod.switches[-1] == lab.port(16).dpid
    copy = routes.copy
    assert copy is not None
    tree = CopyTree(lab.topo, lab.port(9).dpid, mac(9))
    steps = tree.path(lab.port(1).dpid)
    assert copy.switches == (lab.port(1).dpid, *(s.next_dpid for s in steps))
    assert copy.dst_host is not None and copy.dst_host.mac == mac(9)
    assert copy.cables[0][0] == PortRef(steps[0].dpid, steps[0].out_port)


def test_without_flows_the_production_path_is_computed() -> None:
    lab = Lab()
    policy = lab.policy(src_ip=ip(1), dst_ip=ip(16), monitor_ip=ip(9))
    routes = policy_routes(policy, lab.topo, lab.hosts, [])
    assert len(routes.production) == 1
    assert routes.production[0].flow is None
    assert len(routes.production[0].switches) == 3  # leaf, spine, leaf


def test_destination_only_policies_copy_from_the_destination_edge() -> None:
    lab = Lab()
    policy = lab.policy(dst_ip=ip(16), monitor_ip=ip(2))
    routes = policy_routes(policy, lab.topo, lab.hosts, [])
    assert routes.production == []  # no source: nothing to compute until a flow runs
    assert routes.copy is not None and routes.copy.switches[0] == lab.port(16).dpid


def test_unknown_monitor_has_no_copy_path_and_says_why() -> None:
    lab = Lab()
    policy = lab.policy(src_ip=ip(1), monitor_ip="10.0.0.99")
    routes = policy_routes(policy, lab.topo, lab.hosts, [])
    assert routes.copy is None and routes.reason == "monitor not discovered"
