"""The TAP compiler's parts: allocations, cubes and shapes, pending reasons, cookies, rule
counts, the switch pipeline, ofctl text. (Packet-level guarantees: tests/sim.)"""

from __future__ import annotations

import pytest

from tests.sim.lab import Lab, ip, mac
from vtap.api.ofctl import to_ofctl
from vtap.compiler.alloc import Allocations, TapConfig
from vtap.compiler.cubes import CubeIndex, overlaps, policy_cube, shape_name, shape_of
from vtap.compiler.plan import PlanState
from vtap.compiler.resolve import StaticHosts
from vtap.domain.network import Host, PortRef
from vtap.openflow.pipeline import (
    GROUP_COPY,
    PRIO_COPY_TRANSIT,
    PRIO_FABRIC_MARK,
    PRIO_LLDP_TRAP,
    PRIO_TO_CLASSIFY,
    PRIO_WANT,
    SLOTS_PER_SWITCH,
    TABLE_CLASSIFY,
    TABLE_COPY,
    TABLE_EMIT,
    TABLE_INGRESS,
    TABLE_SHAPE_FIRST,
    TABLE_TRANSIT,
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
    LoadReg,
    Match,
    MoveBits,
    Output,
    PopMpls,
    PushMpls,
    ReservedPort,
    Resubmit,
    SetField,
    ToGroup,
)

# --- allocations -----------------------------------------------------------------------------


def test_labels_are_sticky_lowest_first_and_released_ones_reused_last() -> None:
    alloc = Allocations(TapConfig(100, 103))
    assert [alloc.label(k) for k in ("monitor:b", "monitor:a")] == [100, 101]
    assert alloc.label("monitor:b") == 100  # same key, same label
    alloc.release_label("monitor:b")
    assert alloc.label("monitor:c") == 102  # never-held labels first
    assert alloc.label("monitor:d") == 103
    assert alloc.label("monitor:e") == 100  # then the released one
    assert alloc.label("monitor:f") is None  # range exhausted
    saved, gone = alloc.changes()
    assert saved == {"monitor:a": 101, "monitor:c": 102, "monitor:d": 103, "monitor:e": 100}
    assert gone == ["monitor:b"]  # came and went between two saves: the store forgets it


def test_allocations_survive_a_reload_and_a_corrupt_store_loses_nothing_valid() -> None:
    alloc = Allocations(TapConfig(100, 200))
    alloc.label("monitor:a")
    alloc.slot(0x201, "monitor:a")
    alloc.table("want", "in_port+ipv4_src")
    saved = alloc.snapshot()
    again = Allocations(TapConfig(100, 200), saved)
    assert again.snapshot() == saved and again.changes() == ({}, [])
    # two keys claim one label, one label is out of range: those records are dropped
    bad = Allocations(TapConfig(100, 200), {"monitor:x": 150, "monitor:y": 150, "monitor:z": 5})
    assert bad.label_of("monitor:x") == 150 and bad.label_of("monitor:y") is None
    assert bad.changes() == ({}, ["monitor:y", "monitor:z"])


def test_slots_per_switch_and_reclaiming_idle_ones() -> None:
    alloc = Allocations(TapConfig())
    for i in range(SLOTS_PER_SWITCH):
        assert alloc.slot(1, f"monitor:{i}") == i
    assert alloc.slot(2, "monitor:0") == 0  # another switch, its own slots
    assert alloc.slot(1, "monitor:new", lambda: [f"monitor:{i}" for i in range(256)]) is None
    busy = [f"monitor:{i}" for i in range(1, SLOTS_PER_SWITCH)]  # monitor:0 is idle
    assert alloc.slot(1, "monitor:new", lambda: busy) == 0


def test_label_range_is_checked() -> None:
    with pytest.raises(ValueError, match="MPLS labels 16-1048575"):
        TapConfig(5, 100)
    with pytest.raises(ValueError):
        TapConfig(200, 100)


# --- cubes -----------------------------------------------------------------------------------


def test_cubes_and_shapes() -> None:
    lab = Lab()
    p = lab.policy(src_ip=ip(1), dst_ip=ip(2), ip_proto=6, dst_port=80, monitor_mac=mac(3))
    q = lab.policy(src_ip=ip(1), ip_proto=17, dst_port=80, monitor_mac=mac(3))
    assert policy_cube(p) == {
        "eth_type": 0x0800,
        "ipv4_src": ip(1),
        "ipv4_dst": ip(2),
        "ip_proto": 6,
        "tcp_dst": 80,
    }
    # TCP and UDP ports share a shape: such cubes are disjoint anyway
    assert shape_of(policy_cube(q)) == frozenset({"eth_type", "ipv4_src", "ip_proto", "l4_dst"})
    assert shape_name(shape_of(policy_cube(q))) == "eth_type+ip_proto+ipv4_src+l4_dst"
    assert not overlaps(policy_cube(p), policy_cube(q))
    assert overlaps(policy_cube(p), {"ipv4_src": ip(1)})


def test_cube_index_finds_exactly_the_overlapping_cubes_and_forgets_removed_ones() -> None:
    index = CubeIndex()
    cubes = {
        1: {"ipv4_src": "a"},
        2: {"ipv4_src": "b"},
        3: {"ipv4_src": "a", "tcp_dst": 80},
        4: {"ip_proto": 17, "udp_dst": 53},
        5: {},
    }
    for i, cube in cubes.items():
        index.add(i, cube)
    query = {"ipv4_src": "a", "tcp_dst": 81}
    assert sorted(index.overlapping(query)) == [1, 4, 5]  # 4: pins no field the query pins
    assert sorted(index.overlapping(query)) == sorted(
        i for i, c in cubes.items() if overlaps(c, query)
    )
    index.remove(1)
    index.remove(5)
    assert sorted(index.overlapping(query)) == [4]
    with pytest.raises(KeyError):
        index.add(3, {})


# --- plans -----------------------------------------------------------------------------------


def _is_want(rule: FlowRule) -> bool:
    """A classification entry (shape table, not a suppressor)."""
    return (
        rule.table_id >= TABLE_SHAPE_FIRST
        and rule.priority == PRIO_WANT
        and rule.match.metadata is None
    )


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
        "monitor host 00:00:00:00:00:04 is the destination host": lab.policy(
            dst_mac=mac(4), monitor_ip=ip(4)
        ),
    }
    disabled = lab.policy(src_ip=ip(1), monitor_mac=mac(4), enabled=False)
    plan = lab.compile(*cases.values(), disabled)
    for reason, policy in cases.items():
        got = plan.policies[policy.id]
        assert got.state == PlanState.PENDING
        assert reason in got.reason
    assert disabled.id not in plan.policies
    assert plan.flows == {}


def test_a_vlan_filter_anywhere_in_the_vlan_range_is_fine() -> None:
    """Copies carry MPLS labels, so no VLAN id is reserved for them any more."""
    lab = Lab()
    p = lab.policy(src_ip=ip(1), vlan_id=3950, monitor_mac=mac(9))
    assert lab.compile(p).policies[p.id].state == PlanState.READY


def test_pending_when_the_label_range_is_exhausted_and_ready_once_one_is_freed() -> None:
    lab = Lab(config=TapConfig(16, 16))
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(9))
    b = lab.policy(src_ip=ip(1), monitor_mac=mac(10))
    plan = lab.compile(a, b)
    assert plan.policies[a.id].state == PlanState.READY
    assert plan.policies[b.id].reason == "copy-label range 16-16 exhausted"
    compiler = plan.compiler
    compiler.remove_policy(a.id)
    compiler.flush()
    assert compiler.plan(b.id).state == PlanState.READY  # type: ignore[union-attr]


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


def test_cookies_name_the_owner_and_rules_for_lists_shared_ones() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(9))
    b = lab.policy(src_ip=ip(1), ip_proto=6, monitor_mac=mac(9))
    c = lab.policy(src_ip=ip(3), monitor_mac=mac(12))
    plan = lab.compile(a, b, c)
    leaf1, leaf2 = lab.port(1).dpid, lab.port(3).dpid
    # a and b have their own classification entries (two shapes), share the copy to h9
    a_rules = plan.rules_for(a.id)
    want = [r for r in a_rules[leaf1][0] if r.table_id >= TABLE_SHAPE_FIRST]
    assert [r.cookie for r in want] == [cookie(Owner.POLICY, a.id)]
    copies = [r for r in a_rules[leaf1][0] if r.table_id == TABLE_COPY]
    assert copies and {owner_of(r.cookie)[0] for r in copies} == {Owner.TAP_SHARED}  # type: ignore[index]
    # shared entries still have cookies of their own on each switch (OVS finds the entry a
    # delete names by its cookie)
    for flows in plan.flows.values():
        shared = [r.cookie for r in flows if owner_of(r.cookie)[0] is Owner.TAP_SHARED]  # type: ignore[index]
        assert len(set(shared)) == len(shared)
    assert a_rules[leaf1][1] == plan.groups[leaf1]  # the switch's copy group
    assert lab.port(9).dpid in a_rules  # the delivery at the monitor's edge
    assert plan.policies[a.id].dpids == frozenset(a_rules)
    # c is alone on leaf 2: every rule of its own carries its cookie
    mine = [r for r in plan.rules_for(c.id)[leaf2][0]]
    assert {r.cookie for r in mine} == {cookie(Owner.POLICY, c.id)}
    assert all(owns_group(g.group_id) for gs in plan.groups.values() for g in gs)
    assert all(owner_of(r.cookie) is not None for fs in plan.flows.values() for r in fs)
    # the same inputs give the same rules
    again = lab.compile(a, b, c)
    assert {d: set(f) for d, f in again.flows.items()} == {d: set(f) for d, f in plan.flows.items()}
    assert again.groups == plan.groups


def test_a_switch_pipeline_walks_its_shape_tables_then_emits() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_mac=mac(9))
    b = lab.policy(dst_ip=ip(2), ip_proto=17, monitor_mac=mac(12))
    plan = lab.compile(a, b)
    leaf1 = lab.port(1).dpid
    flows = {(r.table_id, r.priority): r for r in plan.flows[leaf1] if r.match == Match()}
    walk = flows[(TABLE_CLASSIFY, 0)]
    tables = [x.table_id for x in walk.actions if isinstance(x, Resubmit)]
    want = sorted({r.table_id for r in plan.flows[leaf1] if _is_want(r)})
    assert tables[: len(want)] == want and len(tables) > len(want)  # then suppress tables
    assert walk.goto_table == TABLE_EMIT
    assert flows[(TABLE_INGRESS, PRIO_TO_CLASSIFY)].goto_table == TABLE_CLASSIFY
    marks = [
        r
        for r in plan.flows[leaf1]
        if (r.table_id, r.priority) == (TABLE_INGRESS, PRIO_FABRIC_MARK)
    ]
    assert {r.match.in_port for r in marks} == set(range(1, lab.fab.spines + 1))
    assert all(r.goto_table == TABLE_TRANSIT for r in marks)
    (group,) = plan.groups[leaf1]
    assert group.group_id == GROUP_COPY and len(group.buckets) == 2  # h9 and h12


def test_rule_count_is_linear_in_policies() -> None:
    """One classification entry per policy; everything else depends on the switches and the
    monitors, not on how many policies there are."""
    shared = []
    for count in (300, 600):
        lab = Lab()
        policies = [
            lab.policy(src_ip=ip(1 + i % 8), ip_proto=17, dst_port=1000 + i, monitor_mac=mac(16))
            for i in range(count)
        ]
        plan = lab.compile(*policies)
        per_policy = [r for fs in plan.flows.values() for r in fs if _is_want(r)]
        assert len(per_policy) == count
        shared.append(sum(len(fs) for fs in plan.flows.values()) - count)
    assert shared[0] == shared[1]


def test_priorities_are_ordered() -> None:
    assert PRIO_LLDP_TRAP > PRIO_FABRIC_MARK > PRIO_TO_CLASSIFY
    assert PRIO_COPY_TRANSIT > 0


# --- ofctl -----------------------------------------------------------------------------------


def test_ofctl_flow() -> None:
    rule = FlowRule(
        10,
        100,
        Match(in_port=1, eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1", tcp_dst=80),
        (LoadReg(0, 0x5, 0x5),),
    )
    assert (
        to_ofctl(rule) == "table=10,priority=100,in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80"
        " actions=set_field:0x5/0x5->reg0"
    )


def test_ofctl_copy_transit_delivery_and_marks() -> None:
    copy = FlowRule(
        TABLE_COPY,
        10,
        Match(regs=((0, 1, 1), (8, 0, 0xFFFFFFFF), (9, 0x100, 0x100))),
        (PushMpls(), SetField("mpls_label", 20), MoveBits("reg9", "mpls_tc", 3), Output(2)),
        cookie=5,
    )
    assert to_ofctl(copy) == (
        "table=5,priority=10,cookie=0x0000000000000005,reg0=0x1/0x1,reg8=0x0,reg9=0x100/0x100"
        " actions=push_mpls:0x8847,set_field:20->mpls_label,"
        "move:NXM_NX_REG9[0..2]->OXM_OF_MPLS_TC[0..2],output:2"
    )
    transit = FlowRule(2, 100, Match(in_port=3, eth_type=0x8847, mpls_label=20), (Output(1),))
    assert to_ofctl(transit) == "table=2,priority=100,in_port=3,mpls,mpls_label=20 actions=output:1"
    delivery = FlowRule(
        2,
        100,
        Match(eth_type=0x8847, mpls_label=21, mpls_tc=0),
        (
            PopMpls(0x0800),
            SetField("eth_dst", "00:00:00:00:00:03"),
            SetField("ipv4_dst", "10.0.0.3"),
            Output(ReservedPort.IN_PORT),
        ),
    )
    assert to_ofctl(delivery) == (
        "table=2,priority=100,mpls,mpls_label=21,mpls_tc=0 actions=pop_mpls:0x0800,"
        "set_field:00:00:00:00:00:03->eth_dst,set_field:10.0.0.3->ip_dst,IN_PORT"
    )
    mark = FlowRule(0, 100, Match(in_port=1), goto_table=2, write_metadata=(1, 1))
    assert to_ofctl(mark) == (
        "table=0,priority=100,in_port=1 actions=write_metadata:0x1/0x1,goto_table:2"
    )
    suppress = FlowRule(11, 100, Match(metadata=(1, 1), eth_src="00:00:00:00:00:09"))
    assert to_ofctl(suppress) == (
        "table=11,priority=100,metadata=0x1/0x1,dl_src=00:00:00:00:00:09 actions=drop"
    )
    udp = FlowRule(1, 7, Match(eth_type=0x0800, ip_proto=17, udp_src=53, vlan_vid=0), ())
    assert to_ofctl(udp) == "table=1,priority=7,udp,vlan_tci=0x0000/0x1fff,tp_src=53 actions=drop"


def test_ofctl_group() -> None:
    group = GroupRule(
        GROUP_COPY,
        GroupType.ALL,
        (Bucket((LoadReg(8, 0), Resubmit(5))), Bucket((LoadReg(8, 1), Resubmit(5)))),
    )
    assert to_ofctl(group) == (
        "group_id=0x56000001,type=all,bucket=set_field:0x0->reg8,resubmit(,5),"
        "bucket=set_field:0x1->reg8,resubmit(,5)"
    )
    assert to_ofctl(FlowRule(4, 0, Match(), (ToGroup(GROUP_COPY),))) == (
        "table=4,priority=0 actions=group:0x56000001"
    )
