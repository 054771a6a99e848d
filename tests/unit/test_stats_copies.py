"""Copies per policy from the counters of the copy entries the compiler says serve it."""

from __future__ import annotations

from tests.sim.lab import Lab, ip
from vtap.compiler.plan import TapPlan
from vtap.openflow.pipeline import TABLE_COPY
from vtap.stats.copies import CopyTotal, copy_totals


def _entries(plan: TapPlan) -> dict:  # type: ignore[type-arg]
    return {d: plan.compiler.copy_entries(d) for d in plan.flows}


def _counters(plan: TapPlan, packets: int) -> dict:  # type: ignore[type-arg]
    """Every copy entry of the plan with `packets` (bytes = 100 × packets); other entries too,
    which must never count."""
    return {
        d: {r.key: (packets if r.table_id == TABLE_COPY else 999, packets * 100) for r in flows}
        for d, flows in plan.flows.items()
    }


def test_each_policy_is_credited_with_its_monitor_slot_only() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))  # across the fabric: labelled copies
    b = lab.policy(src_ip=ip(3), monitor_ip=ip(4))  # same leaf: plain output
    plan = lab.compile(a, b)
    entries = _entries(plan)
    # a's slot has two copy entries (one for the port toward the monitor, IN_PORT): both count
    totals = copy_totals([a.id, b.id], entries, _counters(plan, 7))
    assert totals == {a.id: CopyTotal(14, 1400), b.id: CopyTotal(7, 700)}
    assert {k for (k, _users) in (v for e in entries.values() for v in e.values())} == {
        "monitor:00:00:00:00:00:10",
        "monitor:00:00:00:00:00:04",
    }


def test_two_policies_sharing_a_monitor_slot_both_see_its_copies() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))
    b = lab.policy(src_ip=ip(1), ip_proto=6, monitor_ip=ip(16))
    plan = lab.compile(a, b)
    totals = copy_totals([a.id, b.id], _entries(plan), _counters(plan, 3))
    assert totals[a.id] == totals[b.id] == CopyTotal(6, 600)


def test_switches_not_read_count_nothing() -> None:
    lab = Lab()
    a = lab.policy(src_ip=ip(1), monitor_ip=ip(16))
    plan = lab.compile(a)
    assert copy_totals([a.id], _entries(plan), {}) == {a.id: CopyTotal()}
