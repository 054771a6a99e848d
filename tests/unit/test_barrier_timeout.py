"""A live switch that does not answer in time: the bundle's outcome is unknown, so the next
sync reads the switch before diffing, and sends exactly what is still missing."""

from __future__ import annotations

import asyncio

from vtap.compiler.forwarding import base_rules
from vtap.controller.reconciler import Desired, Reconciler
from vtap.ofchannel.session import SessionClosed
from vtap.openflow.pipeline import (
    GROUP_ID_FIRST,
    TABLE_SHAPE_FIRST,
    TABLE_TRANSIT,
    Owner,
    cookie,
)
from vtap.openflow.rules import FlowRule, GroupRule, GroupType, Match, Output

from .test_audit import DPID, Table

BASE = {r.key: r for r in base_rules()}
GROUP = GroupRule(GROUP_ID_FIRST, GroupType.ALL, ())


class SlowSwitch(Table):
    """Commits what it is sent, but (once) answers too late: the controller times out."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = asyncio.Event()  # the session stays up: the switch is alive
        self.late = False
        self.bundles: list[list[object]] = []

    async def apply_bundle(self, msgs: list[object]) -> None:
        self.bundles.append(list(msgs))
        await super().apply_bundle(msgs)
        if self.late:
            self.late = False
            raise SessionClosed("switch leaf1 did not answer in time")


def _desired(_dpid: int, _tap: bool) -> Desired:
    return Desired(BASE, {GROUP.group_id: GROUP})


async def test_after_a_timeout_the_switch_is_read_before_the_next_diff() -> None:
    switch = SlowSwitch()
    reconciler = Reconciler({DPID: switch}, lambda: 100.0, settle=0.0)  # type: ignore[dict-item]
    await reconciler.join(switch)  # type: ignore[arg-type]
    switch.late = True
    first = (await reconciler.sync(_desired, {DPID: None}))[DPID]
    assert "did not answer" in first.error
    assert switch.groups == {GROUP.group_id: GROUP}, "it committed after all"
    switch.bundles.clear()
    second = (await reconciler.sync(_desired, {DPID: None}))[DPID]
    # Diffed against what it really holds: nothing to send (a second GroupAdd would have been
    # refused with GROUP_EXISTS and put the policies using the group in error).
    assert second.ok and switch.bundles == []
    assert dict(reconciler.holds(DPID)) == BASE


LABEL_ENTRY = FlowRule(TABLE_TRANSIT, 100, Match(mpls_label=17), (Output(2),),
                       cookie=cookie(Owner.TAP_SHARED, 1))  # fmt: skip
CLASSIFY = FlowRule(TABLE_SHAPE_FIRST, 100, Match(eth_type=0x0800, ip_proto=17), (),
                    cookie=cookie(Owner.POLICY, 7))  # fmt: skip
TRANSIT, EDGE = 0x201, 0x101


async def test_no_switch_uses_a_label_before_every_switch_confirmed_it() -> None:
    """The transit switch does not confirm its new label entry in time: the classifying
    switch must not start sending copies with that label in the same round."""
    transit, edge = SlowSwitch(), SlowSwitch()
    transit.dpid, edge.dpid = TRANSIT, EDGE
    want = {TRANSIT: LABEL_ENTRY, EDGE: CLASSIFY}

    def desired(dpid: int, _tap: bool) -> Desired:
        return Desired(BASE | {want[dpid].key: want[dpid]}, {})

    sessions = {TRANSIT: transit, EDGE: edge}
    reconciler = Reconciler(sessions, lambda: 100.0, settle=0.0)  # type: ignore[arg-type]
    for switch in sessions.values():
        await reconciler.join(switch)  # type: ignore[arg-type]
    transit.late = True
    results = await reconciler.sync(desired, {TRANSIT: None, EDGE: None})
    assert "did not answer" in results[TRANSIT].error
    assert not results[EDGE].ok, "the edge switch cannot count as committed"
    assert CLASSIFY.key not in edge.flows, "copies would carry a label the fabric lacks"
    results = await reconciler.sync(desired, {TRANSIT: [], EDGE: []})
    assert all(r.ok for r in results.values())
    assert CLASSIFY.key in edge.flows and LABEL_ENTRY.key in transit.flows
