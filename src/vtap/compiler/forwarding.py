"""Rules of the forwarding app: the static pipeline and per-flow rules along a path.

Forwarding is reactive and per 5-tuple: the first packet of a flow goes to the controller,
which installs one exact-match rule on every switch of the flow's path. That costs a packet-in
per flow, but gives per-5-tuple counters at every hop, which the flow-statistics view needs,
and lets each flow take its own equal-cost path.
"""

from __future__ import annotations

from collections.abc import Sequence

from vtap.domain.network import FlowKey
from vtap.openflow.pipeline import (
    PRIO_ARP_TRAP,
    PRIO_IPV4_TRAP,
    PRIO_LLDP_TRAP,
    PRIO_PATH,
    PRIO_TAP_DEFAULT,
    TABLE_FORWARD,
    TABLE_TAP,
    Owner,
    cookie,
)
from vtap.openflow.rules import FlowRule, Match, Output, ReservedPort
from vtap.packets import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_LLDP, IP_PROTO_TCP, IP_PROTO_UDP
from vtap.topology.paths import Hop


def base_rules() -> list[FlowRule]:
    """The static pipeline every managed switch holds, whatever the topology.

    Table 0 (TAP classification) traps LLDP first, so that no TAP policy can copy discovery
    frames, and otherwise continues to forwarding. Table 1 sends ARP and the first packet of
    every IPv4 flow to the controller and has no table-miss rule: anything else is dropped.
    That is deliberate. The leaf-spine fabric is full of loops and there is no spanning tree,
    so flooding (or OFPP_NORMAL) would storm; broadcasts the hosts need (ARP) are answered or
    re-sent to edge ports only by the controller.
    """
    pipeline = cookie(Owner.PIPELINE)
    to_controller = (Output(int(ReservedPort.CONTROLLER)),)
    return [
        FlowRule(
            table_id=TABLE_TAP,
            priority=PRIO_LLDP_TRAP,
            match=Match(eth_type=ETH_TYPE_LLDP),
            actions=to_controller,
            cookie=pipeline,
        ),
        FlowRule(
            table_id=TABLE_TAP,
            priority=PRIO_TAP_DEFAULT,
            match=Match(),
            goto_table=TABLE_FORWARD,
            cookie=pipeline,
        ),
        FlowRule(
            table_id=TABLE_FORWARD,
            priority=PRIO_ARP_TRAP,
            match=Match(eth_type=ETH_TYPE_ARP),
            actions=to_controller,
            cookie=pipeline,
        ),
        FlowRule(
            table_id=TABLE_FORWARD,
            priority=PRIO_IPV4_TRAP,
            match=Match(eth_type=ETH_TYPE_IPV4),
            actions=to_controller,
            cookie=pipeline,
        ),
    ]


def flow_match(key: FlowKey) -> Match:
    """The exact match for one 5-tuple. Ports only for TCP/UDP (OXM prerequisites)."""
    tcp = key.ip_proto == IP_PROTO_TCP
    udp = key.ip_proto == IP_PROTO_UDP
    return Match(
        eth_type=ETH_TYPE_IPV4,
        ip_proto=key.ip_proto,
        ipv4_src=key.ipv4_src,
        ipv4_dst=key.ipv4_dst,
        tcp_src=key.src_port if tcp else None,
        tcp_dst=key.dst_port if tcp else None,
        udp_src=key.src_port if udp else None,
        udp_dst=key.dst_port if udp else None,
    )


def flow_key_of(match: Match) -> FlowKey | None:
    """The 5-tuple a match was built from by `flow_match`, or None if it is not such a match.

    Used to adopt forwarding rules read back from a switch after a controller restart; any
    extra or missing field means the rule is not one of ours in this shape.
    """
    if match.eth_type != ETH_TYPE_IPV4 or match.ip_proto is None:
        return None
    if match.ipv4_src is None or match.ipv4_dst is None:
        return None
    if match.ip_proto == IP_PROTO_TCP:
        src_port, dst_port = match.tcp_src, match.tcp_dst
    elif match.ip_proto == IP_PROTO_UDP:
        src_port, dst_port = match.udp_src, match.udp_dst
    else:
        src_port, dst_port = 0, 0
    if src_port is None or dst_port is None:
        return None
    key = FlowKey(match.ipv4_src, match.ipv4_dst, match.ip_proto, src_port, dst_port)
    return key if flow_match(key) == match else None


def path_rules(key: FlowKey, hops: Sequence[Hop], idle_timeout: int) -> dict[int, FlowRule]:
    """One rule per switch on the path (dpid → rule) that sends this flow out of the hop's port.

    Every hop needs its `out_port` (use `host_path`). When a hop's out port is its in port
    (two hosts behind one port, or a path that turns around) the action is OFPP_IN_PORT,
    because OpenFlow silently drops output to the port a packet came in on. The rules ask for
    flow-removed messages so the controller learns when a flow went idle.
    """
    match = flow_match(key)
    rules: dict[int, FlowRule] = {}
    for hop in hops:
        if hop.out_port is None:
            raise ValueError(f"hop on switch {hop.dpid:#x} has no out port")
        if hop.dpid in rules:
            raise ValueError(f"path visits switch {hop.dpid:#x} twice")
        port = int(ReservedPort.IN_PORT) if hop.out_port == hop.in_port else hop.out_port
        rules[hop.dpid] = FlowRule(
            table_id=TABLE_FORWARD,
            priority=PRIO_PATH,
            match=match,
            actions=(Output(port),),
            cookie=cookie(Owner.FORWARDING),
            idle_timeout=idle_timeout,
            send_flow_rem=True,
        )
    return rules
