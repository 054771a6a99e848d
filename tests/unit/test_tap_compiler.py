"""The TAP compiler's parts: tags, overlap combinations, plans, cookies, ids, ofctl text."""

from __future__ import annotations

import pytest

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.ofctl import to_ofctl
from vtap.compiler.overlap import Member, combine
from vtap.openflow.pipeline import (
    PRIO_COPY_TRANSIT,
    PRIO_GUARD,
    PRIO_LLDP_TRAP,
    PRIO_TAP_BASE,
    PRIO_TAP_DEFAULT,
    Owner,
    cookie,
    owner_of,
    owns_group,
)
from vtap.openflow.rules import (
    Bucket,
    FlowRule,
    GroupRule,
    GroupType,
    Match,
    Output,
    PopVlan,
    PushVlan,
    ReservedPort,
    Resubmit,
    SetField,
    ToGroup,
)
from vtap.compiler.tags import TapConfig, allocate
from vtap.compiler.tap import PlanState, StaticHosts, compile_tap
from vtap.domain.network import Host, PortRef

# --- tags ------------------------------------------------------------------------------------


def test_allocate_is_deterministic_and_keeps_existing() -> None:
    cfg = TapConfig(3900, 3903)
    first = allocate({}, ["monitor:b", "monitor:a"], cfg)
    assert first == {"monitor:a": 3900, "monitor:b": 3901}
    second = allocate(first, ["monitor:c", "monitor:b", "monitor:a"], cfg)
    assert second == {"monitor:a": 3900, "monitor:b": 3901, "monitor:c": 3902}
    # a released tag is reused only after the never-used ones
    third = allocate(second, ["monitor:a", "monitor:d", "monitor:e"], cfg)
    assert third == {"monitor:a": 3900, "monitor:d": 3903, "monitor:e": 3901}


def test_allocate_stops_when_the_range_is_full_and_fixes_bad_entries() -> None:
    cfg = TapConfig(10, 11)
    assert allocate({}, ["a", "b", "c"], cfg) == {"a": 10, "b": 11}
    assert allocate({"a": 99, "b": 10, "c": 10}, ["a", "b", "c"], cfg) == {"b": 10, "a": 11}


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        TapConfig(4000, 3900)
    with pytest.raises(ValueError):
        TapConfig(1, 4095)


# --- overlap ---------------------------------------------------------------------------------


def test_disjoint_policies_cost_one_rule_each() -> None:
    members = [Member(i, {"ipv4_dst": f"10.0.0.{i}"}) for i in range(1, 50)]
    out = combine(members, budget=10, max_members=100)
    assert len(out.combinations) == 49
    assert not out.refused


def test_overlaps_give_one_rule_per_distinct_intersection() -> None:
    a = Member(1, {"ipv4_src": "10.0.0.1"})
    b = Member(2, {"tcp_dst": 80, "ip_proto": 6})
    c = Member(3, {"ipv4_src": "10.0.0.1"})  # same match as a, other monitor
    d = Member(4, {"ipv4_src": "10.0.0.2"})
    out = combine([a, b, c, d], budget=100, max_members=100)
    by_cube = {tuple(sorted(x.cube.items())): x.policy_ids for x in out.combinations}
    assert by_cube == {
        (("ipv4_src", "10.0.0.1"),): (1, 3),
        (("ip_proto", 6), ("tcp_dst", 80)): (2,),
        (("ip_proto", 6), ("ipv4_src", "10.0.0.1"), ("tcp_dst", 80)): (1, 2, 3),
        (("ip_proto", 6), ("ipv4_src", "10.0.0.2"), ("tcp_dst", 80)): (2, 4),
        (("ipv4_src", "10.0.0.2"),): (4,),
    }


def test_budget_refuses_later_policies() -> None:
    members = [Member(i, {f"f{i}": i}) for i in range(1, 8)]  # all overlap: 2^7 - 1 cubes
    out = combine(members, budget=20, max_members=100)
    assert out.refused
    assert min(out.refused) > 2
    assert len(out.combinations) <= 20


def test_suppressor_never_starts_a_rule() -> None:
    real = Member(1, {"ipv4_dst": "10.0.0.3"})
    supp = Member(2, {"ipv4_src": "10.0.0.1"}, suppress=True)
    lone = Member(3, {"ipv4_src": "10.0.0.9"}, suppress=True)
    out = combine([real, supp, lone], budget=10, max_members=10)
    assert sorted(x.policy_ids for x in out.combinations) == [(1,), (1, 2), (1, 3)]


# --- plans -----------------------------------------------------------------------------------


def test_pending_reasons() -> None:
    lab = Lab()
    cases = {
        "monitor host 00:00:00:00:00:63 not discovered yet": lab.policy(
            src_ip=ip(1), monitor_mac=mac(99)
        ),
        "source host 10.0.0.77 not discovered yet": lab.policy(
            src_ip="10.0.0.77", monitor_mac=mac(3)
        ),
        "source 00:00:00:00:00:01 and 10.0.0.2 are two different hosts": lab.policy(
            src_mac=mac(1), src_ip=ip(2), monitor_mac=mac(3)
        ),
        "monitor host 00:00:00:00:00:05 is the source host": lab.policy(
            src_mac=mac(5), monitor_ip=ip(5)
        ),
        "reserved copy-tag range": lab.policy(src_ip=ip(1), vlan_id=3950, monitor_mac=mac(3)),
    }
    disabled = lab.policy(src_ip=ip(1), monitor_mac=mac(4), enabled=False)
    plan = lab.compile(*cases.values(), disabled)
    for reason, policy in cases.items():
        got = plan.policies[policy.id]
        assert got.state == PlanState.PENDING
        assert reason in got.reason
    assert disabled.id not in plan.policies
    assert plan.flows == {}


def test_pending_until_the_tag_is_allocated_then_exhausted() -> None:
    lab = Lab(config=TapConfig(3900, 3900))
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(9))
    b = lab.policy(src_ip=ip(1), monitor_mac=mac(10))
    first = compile_tap([a, b], lab.topo, lab.hosts, {}, lab.config)
    assert first.policies[a.id].reason == "copy tag not allocated yet"
    assert first.missing_tags({}) == {"monitor:00:00:00:00:00:09", "monitor:00:00:00:00:00:0a"}
    plan = lab.compile(a, b)
    assert plan.policies[a.id].state == PlanState.READY
    assert plan.policies[b.id].reason == "copy-tag range 3900-3900 exhausted"


def test_no_path_is_pending() -> None:
    lab = Lab()
    for spine in lab.fab.spine_ids():
        lab.topo.switch_down(spine, 1.0)
    plan = lab.compile(lab.policy(src_ip=ip(1), monitor_mac=mac(9)))
    (only,) = plan.policies.values()
    assert only.reason == "no path from s201 to s205"


def test_a_host_known_later_makes_the_policy_ready() -> None:
    lab = Lab()
    tap = lab.policy(src_ip=ip(1), monitor_mac="00:00:00:00:00:99")
    assert lab.compile(tap).policies[tap.id].state == PlanState.PENDING
    lab.hosts.observe("00:00:00:00:00:99", "10.0.0.99", PortRef(lab.fab.leaf_ids()[3], 6), 5.0)
    assert lab.compile(tap).policies[tap.id].state == PlanState.READY


def test_static_hosts_lookup() -> None:
    h = Host("00:00:00:00:00:01", "10.0.0.1", PortRef(1, 1))
    hosts = StaticHosts([h])
    assert hosts.by_mac("00:00:00:00:00:01".upper()) == h
    assert hosts.by_ip("10.0.0.1") == h
    assert hosts.by_ip("10.0.0.2") is None


def test_cookies_group_ids_and_rules_for() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(9))
    b = lab.policy(src_ip=ip(1), ip_proto=6, monitor_mac=mac(9))
    c = lab.policy(src_ip=ip(3), monitor_mac=mac(12))
    plan = lab.compile(a, b, c)
    leaf1 = lab.port(1).dpid
    owners = {owner_of(r.cookie) for r in plan.flows[leaf1]}
    assert (Owner.TAP_SHARED, 0) in owners  # the a+b combination, guards, shared tag
    assert all(owns_group(g.group_id) for gs in plan.groups.values() for g in gs)
    own = [g for g in plan.groups[leaf1] if g.group_id == 0x56000000 + a.id]
    assert len(own) == 1
    # c's rules carry its own cookie wherever it is alone
    leaf2 = lab.port(3).dpid
    c_rules = plan.rules_for(c.id)
    classify = [r for r in c_rules[leaf2][0] if PRIO_TAP_BASE <= r.priority < PRIO_COPY_TRANSIT]
    assert [r.cookie for r in classify] == [cookie(Owner.POLICY, c.id)]
    # rules_for a includes the shared combination and the monitor's delivery rule
    a_rules = plan.rules_for(a.id)
    assert lab.port(9).dpid in a_rules
    assert any(r.priority == PRIO_TAP_BASE + 2 for r in a_rules[leaf1][0])
    assert plan.policies[a.id].dpids == frozenset(a_rules)
    # the same inputs give the same plan
    again = lab.compile(a, b, c)
    assert again.flows == plan.flows
    assert again.groups == plan.groups


def test_priorities_are_ordered() -> None:
    assert PRIO_LLDP_TRAP > PRIO_GUARD > PRIO_COPY_TRANSIT > PRIO_TAP_BASE > PRIO_TAP_DEFAULT


# --- ofctl -----------------------------------------------------------------------------------


def test_ofctl_flow() -> None:
    rule = FlowRule(
        0,
        1001,
        Match(in_port=1, eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1", tcp_dst=80),
        (ToGroup(0x56000001),),
    )
    assert (
        to_ofctl(rule)
        == "table=0,priority=1001,in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80 actions=group:0x56000001"
    )


def test_ofctl_transit_delivery_guard_and_default() -> None:
    transit = FlowRule(0, 50000, Match(in_port=3, vlan_vid=0x1000 | 3900), (Output(1),), cookie=5)
    assert (
        to_ofctl(transit)
        == "table=0,priority=50000,cookie=0x0000000000000005,in_port=3,dl_vlan=3900"
        " actions=output:1"
    )
    delivery = FlowRule(
        0,
        50000,
        Match(eth_type=0x0800, vlan_vid=0x1000 | 3901),
        (
            PopVlan(),
            SetField("eth_dst", "00:00:00:00:00:03"),
            SetField("ipv4_dst", "10.0.0.3"),
            Output(ReservedPort.IN_PORT),
        ),
    )
    assert to_ofctl(delivery) == (
        "table=0,priority=50000,ip,dl_vlan=3901 actions=pop_vlan,"
        "set_field:00:00:00:00:00:03->eth_dst,set_field:10.0.0.3->ip_dst,IN_PORT"
    )
    guard = FlowRule(0, 60000, Match(in_port=5, vlan_vid=0x1000 | 3900))
    assert to_ofctl(guard) == "table=0,priority=60000,in_port=5,dl_vlan=3900 actions=drop"
    default = FlowRule(0, 0, Match(), goto_table=1)
    assert to_ofctl(default) == "table=0,priority=0 actions=goto_table:1"
    udp = FlowRule(1, 7, Match(eth_type=0x0800, ip_proto=17, udp_src=53, vlan_vid=0), ())
    assert to_ofctl(udp) == "table=1,priority=7,udp,vlan_tci=0x0000/0x1fff,tp_src=53 actions=drop"


def test_ofctl_group() -> None:
    group = GroupRule(
        0x56000001,
        GroupType.ALL,
        (
            Bucket((Resubmit(1),)),
            Bucket((PushVlan(0x88A8), SetField("vlan_vid", 4196), Output(2))),
        ),
    )
    assert to_ofctl(group) == (
        "group_id=0x56000001,type=all,bucket=resubmit(,1),"
        "bucket=push_vlan:0x88a8,set_field:4196->vlan_vid,output:2"
    )


def _reference_group_ids(texts: dict[tuple[tuple[int, ...], int], str]) -> dict:
    """The rule group ids follow, stated plainly: keys in text order, own id if free, else a
    hashed slot probed in that order."""
    import hashlib

    from vtap.compiler.tap import _HASHED_GROUPS

    ids, used, hashed = {}, set(), []
    for key, text in sorted(texts.items(), key=lambda kt: kt[1]):
        owners = key[0]
        own = 0x56000000 + owners[0]
        if len(owners) == 1 and owners[0] < _HASHED_GROUPS and own not in used:
            ids[key] = own
            used.add(own)
        else:
            hashed.append((key, text))
    for key, text in hashed:
        slot = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")
        slot %= _HASHED_GROUPS
        while 0x56000000 + _HASHED_GROUPS + slot in used:
            slot = (slot + 1) % _HASHED_GROUPS
        ids[key] = 0x56000000 + _HASHED_GROUPS + slot
        used.add(ids[key])
    return ids


def test_group_ids_follow_the_text_order_though_texts_are_made_lazily() -> None:
    import random

    from vtap.compiler.tap import _HASHED_GROUPS, _assign_group_ids

    rng = random.Random(7)
    for _ in range(50):
        keys = {
            (tuple(sorted(rng.sample([1, 2, 3, 4, _HASHED_GROUPS + 1], rng.randint(1, 2)))), b)
            for b in range(rng.randint(1, 12))
        }
        texts = {k: f"{k[0]}|bucket-{rng.randint(0, 5)}-{k[1]}" for k in keys}
        made: list = []

        def text(key: tuple[tuple[int, ...], int], texts: dict = texts, made: list = made) -> str:
            made.append(key)
            return texts[key]

        assert _assign_group_ids(keys, text) == _reference_group_ids(texts)
        # a policy's only group needs no text
        alone = [k for k in keys if len(k[0]) == 1 and sum(j[0] == k[0] for j in keys) == 1]
        assert not {k for k in alone if k[0][0] < _HASHED_GROUPS} & set(made)


def test_builder_refuses_a_grouped_rule_that_repeats_a_merged_rules_key() -> None:
    from vtap.compiler.tap import _Builder

    b = _Builder()
    match = Match(in_port=1, eth_src="00:00:00:00:00:01")
    b.flow(1, FlowRule(0, PRIO_TAP_BASE + 1, match, goto_table=1), (7,))
    b.grouped_flow(1, PRIO_TAP_BASE + 1, match, (7,), b.bucket_id((), 0x88A8))
    with pytest.raises(AssertionError, match="one key twice"):
        b.finish()
