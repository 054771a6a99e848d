"""Where traffic goes, for display: a flow's switches in path order, a policy's two paths.

The topology view highlights, for one policy, the *production path* (the way the tapped
packets travel to their destination) and the *copy path* (from the switch that classifies
them to the monitor). Both are read from what vtap decided rather than guessed:

* a flow's path is the chain of its installed forwarding entries, followed port by port over
  the fabric's links (the entries are per switch; their order is not stored anywhere);
* a policy's production paths are those of the in-flight flows it matches, or, while none
  runs, the path `host_path` would choose for its endpoints;
* a policy's copy path is the monitor's copy tree from the classifying switch, exactly as
  `compile_tap` builds it (same tree, same classifying switch).

Pure: topology, hosts and installed entries come in as arguments.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vtap.compiler.copytree import CopyTree
from vtap.compiler.resolve import HostLookup
from vtap.domain.network import FlowKey, Host, PortRef
from vtap.domain.policy import IP_PROTO_TCP, IP_PROTO_UDP, Policy
from vtap.openflow.rules import FlowRule, Output, ReservedPort
from vtap.topology.graph import Topology
from vtap.topology.paths import host_path

Cable = tuple[PortRef, PortRef]  # leaves the first port, arrives at the second


@dataclass(frozen=True, slots=True)
class Route:
    """Switches in travel order, the cables between them, and the hosts at either end."""

    switches: tuple[int, ...]
    cables: tuple[Cable, ...] = ()
    src_host: Host | None = None
    dst_host: Host | None = None
    flow: FlowKey | None = None  # the flow it was read from; None when computed


@dataclass(frozen=True, slots=True)
class PolicyRoutes:
    production: list[Route] = field(default_factory=list)
    copy: Route | None = None
    reason: str = ""  # why the copy path is unknown


def peer_map(topology: Topology) -> dict[PortRef, PortRef]:
    """Both ends of every usable link, each pointing at the other (one lookup per hop)."""
    peers: dict[PortRef, PortRef] = {}
    for link in topology.undirected_links():
        peers[link.src] = link.dst
        peers[link.dst] = link.src
    return peers


def _out_port(rule: FlowRule) -> int | None:
    return next((a.port for a in rule.actions if isinstance(a, Output)), None)


def order_hops(
    hops: Mapping[int, FlowRule], start: int | None, peers: Mapping[PortRef, PortRef]
) -> tuple[list[int], list[Cable]]:
    """A flow's switches in path order: from `start` (the source's edge switch), follow each
    entry's output port to the switch at the other end of the cable.

    When `start` is unknown the first switch is the one no other entry leads to. Switches the
    walk does not reach (a path being replaced) follow in dpid order, without cables.
    """
    leads_to: dict[int, Cable] = {}
    for dpid, rule in hops.items():
        port = _out_port(rule)
        if port is None or port == ReservedPort.IN_PORT:
            continue
        there = peers.get(PortRef(dpid, port))
        if there is not None and there.dpid in hops:
            leads_to[dpid] = (PortRef(dpid, port), there)
    if start not in hops:
        reached = {cable[1].dpid for cable in leads_to.values()}
        start = min((d for d in hops if d not in reached), default=min(hops, default=None))
    order: list[int] = []
    cables: list[Cable] = []
    here = start
    while here is not None and here not in order:
        order.append(here)
        cable = leads_to.get(here)
        if cable is None or cable[1].dpid in order:
            break
        cables.append(cable)
        here = cable[1].dpid
    order += sorted(d for d in hops if d not in order)
    return order, cables


def matches(policy: Policy, key: FlowKey, hosts: HostLookup) -> bool:
    """Whether packets of this flow match the policy's fields (the VLAN is not known here)."""

    def ip_of(mac: str) -> str | None:
        host = hosts.by_mac(mac)
        return host.ip if host is not None else None

    checks = (
        (policy.src_ip, key.ipv4_src),
        (policy.dst_ip, key.ipv4_dst),
        (policy.ip_proto, key.ip_proto),
    )
    if any(want is not None and want != have for want, have in checks):
        return False
    if policy.src_mac is not None and ip_of(policy.src_mac) != key.ipv4_src:
        return False
    if policy.dst_mac is not None and ip_of(policy.dst_mac) != key.ipv4_dst:
        return False
    if policy.src_port is not None or policy.dst_port is not None:
        if key.ip_proto not in (IP_PROTO_TCP, IP_PROTO_UDP):
            return False
        if policy.src_port is not None and policy.src_port != key.src_port:
            return False
        if policy.dst_port is not None and policy.dst_port != key.dst_port:
            return False
    return True


def _lookup(hosts: HostLookup, mac: str | None, ip: str | None) -> Host | None:
    if mac is not None:
        return hosts.by_mac(mac)
    if ip is not None:
        return hosts.by_ip(ip)
    return None


def flow_route(
    key: FlowKey,
    hops: Mapping[int, FlowRule],
    hosts: HostLookup,
    peers: Mapping[PortRef, PortRef],
) -> Route:
    src, dst = hosts.by_ip(key.ipv4_src), hosts.by_ip(key.ipv4_dst)
    start = src.location.dpid if src is not None else None
    switches, cables = order_hops(hops, start, peers)
    return Route(tuple(switches), tuple(cables), src, dst, key)


def _computed_route(policy: Policy, topology: Topology, hosts: HostLookup) -> Route | None:
    src = _lookup(hosts, policy.src_mac, policy.src_ip)
    dst = _lookup(hosts, policy.dst_mac, policy.dst_ip)
    if src is None or dst is None:
        return None
    key = FlowKey(
        src.ip or "0.0.0.0",
        dst.ip or "0.0.0.0",
        policy.ip_proto or 0,
        policy.src_port or 0,
        policy.dst_port or 0,
    )
    path = host_path(topology, src.location, dst.location, key)
    if path is None:
        return None
    cables: list[Cable] = []
    for hop, nxt in itertools.pairwise(path):
        assert hop.out_port is not None and nxt.in_port is not None
        cables.append((PortRef(hop.dpid, hop.out_port), PortRef(nxt.dpid, nxt.in_port)))
    return Route(tuple(h.dpid for h in path), tuple(cables), src, dst)


def _copy_route(policy: Policy, topology: Topology, hosts: HostLookup) -> tuple[Route | None, str]:
    """The copy tree from the classifying switch, as compile_tap chooses both."""
    monitor = _lookup(hosts, policy.monitor_mac, policy.monitor_ip)
    if monitor is None:
        return None, "monitor not discovered"
    if policy.has_source:
        classifier = _lookup(hosts, policy.src_mac, policy.src_ip)
        role = "source"
    else:
        classifier = _lookup(hosts, policy.dst_mac, policy.dst_ip)
        role = "destination"
    if classifier is None:
        return None, f"{role} not discovered"
    origin = classifier.location.dpid
    tree = CopyTree(topology, monitor.location.dpid, monitor.mac)
    if not tree.reaches(origin):
        return None, "no path to the monitor"
    steps = tree.path(origin)
    switches = (origin, *(s.next_dpid for s in steps))
    cables = tuple(
        (PortRef(s.dpid, s.out_port), PortRef(s.next_dpid, s.next_in_port)) for s in steps
    )
    return Route(switches, cables, classifier, monitor), ""


def policy_routes(
    policy: Policy,
    topology: Topology,
    hosts: HostLookup,
    flows: Iterable[tuple[FlowKey, Mapping[int, FlowRule]]],
    limit: int = 16,
) -> PolicyRoutes:
    """The production paths (matching in-flight flows, at most `limit`, else the computed
    path between the policy's endpoints) and the copy path to its monitor."""
    peers = peer_map(topology)
    production: list[Route] = []
    for key, hops in flows:
        if hops and matches(policy, key, hosts):
            production.append(flow_route(key, hops, hosts, peers))
            if len(production) >= limit:
                break
    if not production:
        computed = _computed_route(policy, topology, hosts)
        if computed is not None:
            production.append(computed)
    copy, reason = _copy_route(policy, topology, hosts)
    return PolicyRoutes(production, copy, reason)
