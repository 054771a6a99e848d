"""Drift repair: what was removed, changed or added behind vtap's back is found by an audit and
put right by the next round, base pipeline included; policies there are not `active` meanwhile."""

from __future__ import annotations

from dataclasses import replace

from os_ken.ofproto import ofproto_v1_3_parser as parser

from vtap.compiler.forwarding import base_rules
from vtap.controller.reconciler import Desired, Reconciler
from vtap.controller.status import StatusBook
from vtap.domain.policy import PolicyStatus
from vtap.ofchannel import messages as m
from vtap.openflow.pipeline import Owner, cookie
from vtap.openflow.rules import EntryKey, FlowRule, FlowStat, GroupRule, Match, Output

DPID = 0x101


class Table:
    """A switch that holds what it is sent and answers table dumps and counts."""

    def __init__(self) -> None:
        self.flows: dict[EntryKey, FlowRule] = {}
        self.groups: dict[int, GroupRule] = {}
        self.dpid = DPID

    async def multipart(self, msg: object) -> list[object]:
        if isinstance(msg, parser.OFPFlowStatsRequest):
            return [FlowStat(r, 0, 0, 0.0) for r in self.flows.values()]
        if isinstance(msg, parser.OFPGroupDescStatsRequest):
            return list(self.groups.values())
        if isinstance(msg, parser.OFPAggregateStatsRequest):
            return [m.AggregateCounts(len(self.flows), 0, 0)]
        return []

    async def apply_bundle(self, msgs: list[object]) -> None:
        for msg in msgs:
            match msg:
                case m.FlowAdd(rule):
                    self.flows[rule.key] = rule
                case m.FlowDeleteStrict(rule):
                    self.flows.pop(rule.key, None)
                case m.GroupAdd(group) | m.GroupModify(group):
                    self.groups[group.group_id] = group
                case m.GroupDelete(gid):
                    self.groups.pop(gid, None)


WANT = {r.key: r for r in base_rules()}


def desired(_dpid: int, _tap: bool) -> Desired:
    return Desired(WANT, {})


async def _synced() -> tuple[Reconciler, Table]:
    table = Table()
    reconciler = Reconciler({DPID: table}, lambda: 100.0, settle=0.0)  # type: ignore[dict-item]
    await reconciler.join(table)  # type: ignore[arg-type]
    await reconciler.sync(desired, {DPID: None})
    assert table.flows == WANT
    return reconciler, table


async def test_nothing_changed_nothing_found() -> None:
    reconciler, _ = await _synced()
    drift = await reconciler.audit(DPID)
    assert drift is not None and not drift.found
    assert await reconciler.count_matches(DPID, forwarding=0) is True


async def test_deleted_modified_and_foreign_entries_are_found_and_repaired() -> None:
    reconciler, table = await _synced()
    gone, changed = sorted(table.flows)[:2]
    del table.flows[gone]  # ovs-ofctl del-flows (of part of the base pipeline)
    table.flows[changed] = replace(table.flows[changed], actions=())  # mod-flows: now drops
    foreign = FlowRule(0, 65000, Match(eth_type=0x0800), (Output(1),),
                       cookie=cookie(Owner.PIPELINE, 0x77))  # fmt: skip
    table.flows[foreign.key] = foreign  # someone else's entry under vtap's cookie
    assert await reconciler.count_matches(DPID, forwarding=0) is True  # same count...
    drift = await reconciler.audit(DPID)  # ...but the full read sees all three
    assert drift is not None and (drift.missing, drift.changed, drift.extra) == (1, 1, 1)
    assert "1 entries missing" in drift.text()
    await reconciler.sync(desired, {DPID: set()})  # the round the audit asks for
    assert table.flows == WANT  # everything put right, the foreign entry gone
    again = await reconciler.audit(DPID)
    assert again is not None and not again.found


async def test_an_audit_that_overlaps_a_commit_is_discarded() -> None:
    reconciler, table = await _synced()
    del table.flows[sorted(table.flows)[0]]
    mirror = reconciler._mirrors[DPID]
    mirror.busy += 1  # a bundle is in flight: what the read shows may be half of it
    assert await reconciler.audit(DPID) is None
    assert await reconciler.count_matches(DPID, 0) is None
    mirror.busy -= 1
    assert await reconciler.count_matches(DPID, 0) is False  # one entry short


def test_a_drifted_switch_keeps_its_policies_pending_until_it_committed_the_repair() -> None:
    class Compiler:
        versions = {DPID: 3}

        def plan(self, pid: int) -> object:
            from vtap.compiler.plan import PlanState

            return type("P", (), {"state": PlanState.READY, "dpids": {DPID}, "reason": ""})()

    book = StatusBook(lambda d: True, lambda d: 0.0, lambda d: "leaf1")
    compiler = Compiler()
    book.compiled(compiler, [7])  # type: ignore[arg-type]
    book.committed(DPID, 3)
    book.refresh(compiler, book.stale([7]))  # type: ignore[arg-type]
    assert book._status[7] == (PolicyStatus.ACTIVE, "")
    affected = book.drifted(DPID, "1 entries missing")
    book.refresh(compiler, affected)  # type: ignore[arg-type]
    assert book._status[7] == (PolicyStatus.PENDING, "switch leaf1 changed: 1 entries missing")
    book.committed(DPID, 3)  # the repair round committed
    book.refresh(compiler, book.stale([]))  # type: ignore[arg-type]
    assert book._status[7] == (PolicyStatus.ACTIVE, "")
