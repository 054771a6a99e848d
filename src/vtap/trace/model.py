"""Trace one packet through the controller's intent: the rules it compiled for every switch, the
reactive path entries it installed (or the path the first packet would get), walked by the
fabric model (walker.py). Pure: the caller hands in the rules, the topology and the hosts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vtap.compiler.forwarding import flow_match, path_rules
from vtap.domain.network import FlowKey, Host, PortRef
from vtap.domain.policy import Policy
from vtap.openflow.pipeline import Owner, owner_of
from vtap.openflow.rules import EntryKey, FlowRule, GroupRule
from vtap.topology import Topology, host_path
from vtap.trace.walker import Network, Packet

MPLS = 0x8847


@dataclass(frozen=True)
class TraceHop:
    dpid: int
    in_port: int
    rule: FlowRule
    owner: str  # pipeline, forwarding, policy, tap-shared
    policies: tuple[int, ...]  # the policies the entry exists for
    copy: bool  # the packet here is a copy in flight (it carries a copy label)


@dataclass(frozen=True)
class TraceDelivery:
    port: PortRef
    host: Host | None
    role: str  # "destination" (the packet itself) or "copy"
    unchanged: bool  # the headers are the original's


@dataclass
class Trace:
    path: str  # "installed", "computed" (the first packet installs it) or "none"
    hops: list[TraceHop] = field(default_factory=list)
    deliveries: list[TraceDelivery] = field(default_factory=list)
    policies: list[int] = field(default_factory=list)
    to_controller: list[int] = field(default_factory=list)  # switches that punt it
    drops: list[str] = field(default_factory=list)
    entered: list[tuple[PortRef, Packet, list[int]]] = field(default_factory=list)


def trace(
    topology: Topology,
    rules: Mapping[int, tuple[Sequence[FlowRule], Sequence[GroupRule]]],
    owners: Callable[[int, EntryKey], set[int]],
    hosts: Sequence[Host],
    source: Host,
    packet: Packet,
    idle_timeout: int = 30,
) -> Trace:
    """Where `packet`, sent by `source`, goes: every entry it hits, every delivery."""
    at = {h.location: h for h in hosts}
    flows = {dpid: list(f) for dpid, (f, _g) in rules.items()}
    groups = {dpid: list(g) for dpid, (_f, g) in rules.items()}
    destination = next((h for h in hosts if h.ip == packet.ipv4_dst), None)
    path = "none"
    key = _flow_key(packet)
    if key is not None and destination is not None:
        match = flow_match(key)
        if any(r.match == match for r in flows.get(source.location.dpid, [])):
            path = "installed"
        else:
            hops = host_path(topology, source.location, destination.location, key)
            if hops is not None:
                for dpid, rule in path_rules(key, hops, idle_timeout).items():
                    flows.setdefault(dpid, []).append(rule)
                path = "computed"
    network = Network(topology, {d: (flows[d], groups.get(d, [])) for d in flows})
    walked = network.send(packet, source.location)
    entered = [(w, p, out) for (w, p), out in zip(walked.entered, walked.outputs, strict=True)]
    result = Trace(path=path, drops=list(walked.drops), entered=entered)
    result.to_controller = [dpid for dpid, _ in walked.to_controller]
    seen: dict[int, None] = {}
    for hit in walked.hits:
        owner = owner_of(hit.rule.cookie)
        kind, policies = "foreign", ()
        if owner is not None:
            kind = owner[0].name.lower().replace("_", "-")
            if owner[0] is Owner.POLICY:
                policies = (owner[1],)
            elif owner[0] is Owner.TAP_SHARED:
                policies = tuple(sorted(owners(hit.dpid, hit.rule.key)))
        for pid in policies:
            seen.setdefault(pid)
        copy = hit.packet.eth_type == MPLS and packet.eth_type != MPLS
        result.hops.append(TraceHop(hit.dpid, hit.in_port, hit.rule, kind, policies, copy))
    result.policies = list(seen)
    original_delivered = False
    for delivery in walked.deliveries:
        host = at.get(delivery.port)
        unchanged = delivery.packet == packet
        is_destination = (
            destination is not None
            and delivery.port == destination.location
            and unchanged
            and not original_delivered
        )
        original_delivered = original_delivered or is_destination
        role = "destination" if is_destination else "copy"
        result.deliveries.append(TraceDelivery(delivery.port, host, role, unchanged))
    return result


def covers(policy: Policy, packet: Packet) -> bool:
    """The policy's match covers the packet as its source sends it (fields it leaves open
    match anything)."""
    vlan = packet.vlans[0][1] if packet.vlans else None
    ip = packet.eth_type == 0x0800
    wanted = (
        (policy.src_mac, packet.eth_src),
        (policy.dst_mac, packet.eth_dst),
        (policy.src_ip, packet.ipv4_src if ip else None),
        (policy.dst_ip, packet.ipv4_dst if ip else None),
        (policy.vlan_id, vlan),
        (policy.ip_proto, packet.ip_proto if ip else None),
        (policy.src_port, packet.src_port if ip else None),
        (policy.dst_port, packet.dst_port if ip else None),
    )
    return all(want is None or want == have for want, have in wanted)


def _flow_key(packet: Packet) -> FlowKey | None:
    if packet.eth_type != 0x0800 or not packet.ipv4_src or not packet.ipv4_dst:
        return None
    proto = packet.ip_proto if packet.ip_proto is not None else 0
    return FlowKey(packet.ipv4_src, packet.ipv4_dst, proto, packet.src_port, packet.dst_port)
