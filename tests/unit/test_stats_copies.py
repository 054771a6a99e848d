"""Copies per policy from group bucket counters, one pass for all policies."""

from __future__ import annotations

from tests.sim.lab import Lab, ip
from vtap.openflow.rules import Resubmit
from vtap.ofchannel.messages import GroupCounters
from vtap.stats.copies import CopyTotal, copy_totals


def counters_for(plan, packets: int) -> dict:  # type: ignore[no-untyped-def]
    """Every group of the plan with `packets` per bucket (bytes = 100 × packets)."""
    out: dict = {}
    for dpid, groups in plan.groups.items():
        out[dpid] = {
            g.group_id: GroupCounters(
                g.group_id,
                packets,
                packets * 100,
                tuple(packets for _ in g.buckets),
                tuple(packets * 100 for _ in g.buckets),
            )
            for g in groups
        }
    return out


def test_each_policy_is_credited_with_its_monitor_bucket_only() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))  # across the fabric: tagged
    b = lab.policy(src_ip=ip(3), monitor_ip=ip(4))  # same leaf: plain output
    plan = lab.compile(a, b)
    totals = copy_totals(plan, [a, b], lab.tags, lab.hosts, counters_for(plan, 7))
    assert totals == {a.id: CopyTotal(7, 700), b.id: CopyTotal(7, 700)}
    # production buckets are never counted as copies
    for groups in plan.groups.values():
        for g in groups:
            assert g.buckets[0].actions == (Resubmit(1),)


def test_two_policies_sharing_a_packet_and_a_monitor_both_see_the_copy() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))
    b = lab.policy(src_ip=ip(1), ip_proto=6, monitor_ip=ip(16))
    plan = lab.compile(a, b)
    totals = copy_totals(plan, [a, b], lab.tags, lab.hosts, counters_for(plan, 3))
    assert totals[a.id].packets >= 3 and totals[b.id].packets == 3


def test_switches_not_read_count_nothing() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))
    plan = lab.compile(a)
    assert copy_totals(plan, [a], lab.tags, lab.hosts, {}) == {a.id: CopyTotal()}
