"""Forwarding rules: the static pipeline, 5-tuple matches and per-hop path rules."""

from __future__ import annotations

import pytest

from tests.unit.leafspine import Fabric
from vtap.compiler.forwarding import base_rules, flow_key_of, flow_match, path_rules
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
    owner_of,
)
from vtap.openflow.rules import FlowRule, Match, Output, ReservedPort
from vtap.topology import Hop, host_path

TCP_KEY = FlowKey("10.0.0.1", "10.0.0.16", 6, 40000, 80)
UDP_KEY = FlowKey("10.0.0.3", "10.0.0.4", 17, 5353, 53)
ICMP_KEY = FlowKey("10.0.0.1", "10.0.0.2", 1)


def test_base_rules() -> None:
    rules = base_rules()
    by_key = {(r.table_id, r.match): r for r in rules}
    assert len(by_key) == len(rules) == 4
    lldp = by_key[(TABLE_TAP, Match(eth_type=0x88CC))]
    assert lldp.priority == PRIO_LLDP_TRAP
    assert lldp.actions == (Output(ReservedPort.CONTROLLER),)
    miss = by_key[(TABLE_TAP, Match())]
    assert miss.priority == PRIO_TAP_DEFAULT
    assert miss.actions == () and miss.goto_table == TABLE_FORWARD
    arp = by_key[(TABLE_FORWARD, Match(eth_type=0x0806))]
    assert arp.priority == PRIO_ARP_TRAP and arp.actions == (Output(ReservedPort.CONTROLLER),)
    ipv4 = by_key[(TABLE_FORWARD, Match(eth_type=0x0800))]
    assert ipv4.priority == PRIO_IPV4_TRAP and ipv4.actions == (Output(ReservedPort.CONTROLLER),)
    for rule in rules:
        assert rule.cookie == cookie(Owner.PIPELINE)
        assert owner_of(rule.cookie) == (Owner.PIPELINE, 0)
        assert rule.idle_timeout == rule.hard_timeout == 0
        assert rule.actions == () or rule.actions[0].max_len == 0xFFFF  # type: ignore[union-attr]
    # No flooding anywhere, and no table-miss in the forwarding table.
    assert not any(
        a.port in (ReservedPort.FLOOD, ReservedPort.ALL, ReservedPort.NORMAL)  # type: ignore[union-attr]
        for r in rules
        for a in r.actions
    )
    assert (TABLE_FORWARD, Match()) not in by_key
    assert base_rules() == rules  # pure and stable


def test_flow_match_tcp_udp_icmp() -> None:
    assert flow_match(TCP_KEY) == Match(
        eth_type=0x0800,
        ip_proto=6,
        ipv4_src="10.0.0.1",
        ipv4_dst="10.0.0.16",
        tcp_src=40000,
        tcp_dst=80,
    )
    assert flow_match(UDP_KEY) == Match(
        eth_type=0x0800,
        ip_proto=17,
        ipv4_src="10.0.0.3",
        ipv4_dst="10.0.0.4",
        udp_src=5353,
        udp_dst=53,
    )
    assert flow_match(ICMP_KEY) == Match(
        eth_type=0x0800, ip_proto=1, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2"
    )
    # Field order is the OXM prerequisite order (eth_type before ip_proto before ports).
    names = [name for name, _ in flow_match(TCP_KEY).items()]
    assert names.index("eth_type") < names.index("ip_proto") < names.index("tcp_src")


@pytest.mark.parametrize("key", [TCP_KEY, UDP_KEY, ICMP_KEY, FlowKey("1.2.3.4", "5.6.7.8", 6)])
def test_flow_key_round_trip(key: FlowKey) -> None:
    assert flow_key_of(flow_match(key)) == key


@pytest.mark.parametrize(
    "match",
    [
        Match(),
        Match(eth_type=0x0800),
        Match(eth_type=0x0806),
        Match(eth_type=0x88CC),
        Match(eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1"),
        Match(eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2", tcp_src=1),
        Match(eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2", udp_src=1),
        Match(
            eth_type=0x0800,
            ip_proto=17,
            ipv4_src="10.0.0.1",
            ipv4_dst="10.0.0.2",
            tcp_src=1,
            tcp_dst=2,
        ),
        Match(in_port=3, eth_type=0x0800, ip_proto=1, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2"),
        Match(eth_type=0x0800, ip_proto=1, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2", vlan_vid=0),
    ],
)
def test_flow_key_of_rejects_other_matches(match: Match) -> None:
    assert flow_key_of(match) is None


def test_path_rules_across_the_fabric() -> None:
    fab = Fabric()
    topo = fab.build()
    path = host_path(topo, fab.host_port(1), fab.host_port(16), TCP_KEY)
    assert path is not None and len(path) == 3
    rules = path_rules(TCP_KEY, path, idle_timeout=30)
    assert list(rules) == [h.dpid for h in path]
    for hop in path:
        rule = rules[hop.dpid]
        assert rule == FlowRule(
            table_id=TABLE_FORWARD,
            priority=PRIO_PATH,
            match=flow_match(TCP_KEY),
            actions=(Output(hop.out_port),),  # type: ignore[arg-type]
            cookie=cookie(Owner.FORWARDING),
            idle_timeout=30,
            send_flow_rem=True,
        )
    assert rules[path[-1].dpid].actions == (Output(fab.host_port(16).port_no),)


def test_path_rules_same_switch_and_hairpin() -> None:
    rules = path_rules(ICMP_KEY, [Hop(0x201, 5, 6)], idle_timeout=10)
    assert rules[0x201].actions == (Output(6),)
    hairpin = path_rules(ICMP_KEY, [Hop(0x201, 5, 5)], idle_timeout=10)
    assert hairpin[0x201].actions == (Output(ReservedPort.IN_PORT),)


def test_path_rules_reject_incomplete_paths() -> None:
    with pytest.raises(ValueError, match="no out port"):
        path_rules(TCP_KEY, [Hop(1, None, 2), Hop(2, 1, None)], idle_timeout=10)
    with pytest.raises(ValueError, match="twice"):
        path_rules(TCP_KEY, [Hop(1, 3, 2), Hop(1, 2, 4)], idle_timeout=10)
    assert path_rules(TCP_KEY, [], idle_timeout=10) == {}


def test_flow_key_of_adopts_path_rules() -> None:
    """What a controller restart relies on: rules read back give their flow key again."""
    rules = path_rules(UDP_KEY, [Hop(0x201, 5, 1), Hop(0x101, 1, 2), Hop(0x202, 1, 6)], 30)
    assert {flow_key_of(r.match) for r in rules.values()} == {UDP_KEY}
    assert all(flow_key_of(r.match) is None for r in base_rules())
