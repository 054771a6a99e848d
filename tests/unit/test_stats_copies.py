"""Copies per monitor slot from the counters of the copy entries the compiler says serve it;
a policy is credited with its slot's copies."""

from __future__ import annotations

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.plan import TapPlan
from vtap.openflow.pipeline import TABLE_COPY
from vtap.stats.copies import CopyTotal, slot_totals


def _entries(plan: TapPlan) -> dict:  # type: ignore[type-arg]
    return {d: plan.compiler.copy_entries(d) for d in plan.flows}


def _counters(plan: TapPlan, packets: int) -> dict:  # type: ignore[type-arg]
    """Every copy entry of the plan with `packets` (bytes = 100 × packets); other entries too,
    which must never count."""
    return {
        d: {r.key: (packets if r.table_id == TABLE_COPY else 999, packets * 100) for r in flows}
        for d, flows in plan.flows.items()
    }


def _slot_of(plan: TapPlan, policy_id: int) -> tuple[int, str]:
    placement = plan.compiler.placement(policy_id)
    assert placement is not None
    return (placement.origin, placement.copy_key)


def test_each_slot_counts_its_own_copy_entries_only() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))  # across the fabric: labelled copies
    b = lab.policy(src_ip=ip(3), monitor_ip=ip(4))  # same leaf: plain output
    plan = lab.compile(a, b)
    totals = slot_totals(_entries(plan), _counters(plan, 7))
    # a's slot has two copy entries (toward the monitor, and back by IN_PORT): both count
    assert totals == {
        (lab.port(1).dpid, f"monitor:{mac(16)}"): CopyTotal(14, 1400),
        (lab.port(3).dpid, f"monitor:{mac(4)}"): CopyTotal(7, 700),
    }
    assert _slot_of(plan, a.id) in totals and _slot_of(plan, b.id) in totals


def test_two_policies_sharing_a_monitor_slot_share_its_copies() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))
    b = lab.policy(src_ip=ip(1), ip_proto=6, monitor_ip=ip(16))
    plan = lab.compile(a, b)
    assert _slot_of(plan, a.id) == _slot_of(plan, b.id)
    totals = slot_totals(_entries(plan), _counters(plan, 3))
    assert totals[_slot_of(plan, a.id)] == CopyTotal(6, 600)


def test_switches_not_read_count_nothing() -> None:
    lab = Lab()
    plan = lab.compile(lab.policy(src_ip=ip(1), monitor_ip=ip(16)))
    assert slot_totals(_entries(plan), {}) == {}
