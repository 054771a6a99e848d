"""What keeps an install round cheap must never keep it wrong: the topology view is rebuilt when
the topology changes, a switch is skipped only while its desired rules and mirror are unchanged,
and an urgent request cuts the debounce short while a burst still makes one round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.sim.lab import Lab, ip, mac
from tests.unit.fakeswitches import FakeSwitch, controller_with_fakes
from tests.unit.leafspine import Fabric
from vtap.openflow.pipeline import PRIO_GUARD, Owner, cookie
from vtap.openflow.rules import FlowRule, Match
from vtap.compiler.tap import compile_tap
from vtap.compiler.topoview import TopologyView
from vtap.controller import reconciler as reconciler_module
from vtap.controller.core import Controller
from vtap.controller.reconciler import Desired, Reconciler
from vtap.domain.network import Port, PortRef
from vtap.domain.policy import PolicyPatch, PolicySpec, PolicyStatus

# --- topology view ---------------------------------------------------------------------------


def test_a_view_compiles_exactly_as_the_topology_it_was_taken_from() -> None:
    lab = Lab()
    policies = [
        lab.policy(src_ip=ip(1), monitor_ip=ip(9)),
        lab.policy(dst_ip=ip(16), monitor_ip=ip(2)),
        lab.policy(
            src_ip=ip(3), dst_ip=ip(4), dst_mac=mac(4), monitor_ip=ip(9), delivery="rewrite"
        ),
    ]
    tags = {"monitor:00:00:00:00:00:09": 3900, "monitor:00:00:00:00:00:02": 3901}
    tags["policy:3"] = 3902
    view = TopologyView(lab.topo)
    by_view = compile_tap(policies, view, lab.hosts, tags, lab.config)
    again = compile_tap(policies, view, lab.hosts, tags, lab.config)  # memos filled now
    plain = compile_tap(policies, lab.topo, lab.hosts, tags, lab.config)
    for plan in (by_view, again):
        assert plan.flows == plain.flows and plan.groups == plain.groups
        assert plan.policies == plain.policies and plan.flow_owners == plain.flow_owners


def test_a_view_is_memoised_per_state_and_stale_after_a_change() -> None:
    lab = Lab()
    view = TopologyView(lab.topo)
    leaf = lab.port(1).dpid
    assert view.matches(lab.topo)
    assert view.copy_tree(leaf, "m") is view.copy_tree(leaf, "m")
    assert lab.port(1).port_no in view.edge_ports(leaf)
    uplink = next(p for p in view.link_ports(leaf, 0x101))[0]

    lab.topo.port_update(leaf, Port(uplink.port_no, "x", "0a:00:00:00:00:99", up=False), 1.0)
    assert not view.matches(lab.topo)
    assert not view.matches(Lab().topo)  # another topology in the same generation
    # the old view still answers for the state it captured; a new one sees the change
    assert view.link_ports(leaf, 0x101)
    fresh = TopologyView(lab.topo)
    assert fresh.link_ports(leaf, 0x101) == []
    assert fresh.copy_tree(0x208, "m").path(leaf)[0].out_port != uplink.port_no
    assert uplink.port_no not in fresh.edge_ports(leaf)  # down: needs no guard


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[tuple[Controller, dict[int, FakeSwitch]]]:
    async with controller_with_fakes(tmp_path, Fabric(spines=2, leaves=3, hosts_per_leaf=2)) as c:
        yield c


async def test_the_controller_keeps_its_view_until_the_topology_changes(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, _switches = controller
    view = ctl.policies.topology_view()
    assert ctl.policies.topology_view() is view
    ctl.state.hosts.observe("00:00:00:00:00:99", "10.0.0.99", PortRef(0x201, 3), 5.0)
    assert ctl.policies.topology_view() is view  # hosts are not part of the view
    ctl.state.topology.port_deleted(0x201, 1, 5.0)
    assert ctl.policies.topology_view() is not view
    assert PortRef(0x201, 1) not in ctl.policies.topology_view().fabric_ports


# --- reconciler: skip unchanged switches ----------------------------------------------------


@pytest.fixture
def diffed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The switches the reconciler diffed, in order (its diff, counted)."""
    calls: list[int] = []
    real = reconciler_module.diff

    def counting(desired_flows: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(desired_flows, *args, **kwargs)

    monkeypatch.setattr(reconciler_module, "diff", counting)
    return calls


async def test_only_switches_whose_rules_changed_are_diffed_and_sent_a_batch(
    controller: tuple[Controller, dict[int, FakeSwitch]], diffed: list[int]
) -> None:
    ctl, switches = controller
    spec = PolicySpec(name="p", src_ip="10.0.0.1", monitor_ip="10.0.0.2", ip_proto=17)
    policy = await ctl.policies.create(spec)  # monitor on the source's leaf: one switch
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason
    for fake in switches.values():
        fake.batches.clear()
    diffed.clear()

    await ctl.reconciler.sync_all()  # nothing changed anywhere
    assert diffed == [] and all(not f.batches for f in switches.values())

    policy = await ctl.policies.update(policy.id, PolicyPatch(dst_port=53))
    source_leaf = ctl.state.hosts.by_ip("10.0.0.1").location.dpid  # type: ignore[union-attr]
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason
    assert len(diffed) == 1
    assert [d for d, f in switches.items() if f.batches] == [source_leaf]


async def test_a_switch_is_diffed_again_after_a_failed_batch_and_repaired(
    controller: tuple[Controller, dict[int, FakeSwitch]], diffed: list[int]
) -> None:
    ctl, switches = controller
    spec = PolicySpec(name="p", src_ip="10.0.0.1", monitor_ip="10.0.0.5", ip_proto=17)
    source_leaf = ctl.state.hosts.by_ip("10.0.0.1").location.dpid  # type: ignore[union-attr]
    switches[source_leaf].reject = True
    policy = await ctl.policies.create(spec)
    assert policy.status is PolicyStatus.ERROR
    switches[source_leaf].reject = False
    for fake in switches.values():
        fake.batches.clear()
    diffed.clear()

    # The desired rules are the same as in the failed round: the switch must still be synced.
    results = await ctl.reconciler.sync_all()
    assert len(diffed) == 1 and switches[source_leaf].batches
    assert results[source_leaf].ok and results[source_leaf].applied > 0
    diffed.clear()
    await ctl.reconciler.sync_all()
    assert diffed == []


async def test_a_rejoined_switch_is_diffed_in_full(
    controller: tuple[Controller, dict[int, FakeSwitch]], diffed: list[int]
) -> None:
    ctl, switches = controller
    await ctl.reconciler.sync_all()
    leaf = 0x201
    switches[leaf].batches.clear()
    diffed.clear()
    _adopted, result = await ctl.reconciler.join(switches[leaf])  # type: ignore[arg-type]
    assert diffed == [1] and result.applied > 0  # the fake holds nothing: everything again


async def test_a_settled_switch_is_diffed_again_with_its_tap_rules() -> None:
    now = [0.0]
    fake = FakeSwitch(1)
    guard = FlowRule(0, PRIO_GUARD, Match(in_port=1), cookie=cookie(Owner.TAP_SHARED))
    rec = Reconciler(
        {1: fake},  # type: ignore[dict-item]
        lambda _d, tap: Desired([guard] if tap else [], []),
        lambda: now[0],
        settle=5.0,
    )
    _adopted, first = await rec.join(fake)  # type: ignore[arg-type]
    assert not first.tap_synced
    assert not (await rec.sync(1)).tap_synced and not fake.batches
    now[0] = 6.0
    result = await rec.sync(1)
    assert result.tap_synced and result.applied == 1 and fake.batches == [1]


# --- debounce ---------------------------------------------------------------------------------


async def test_urgent_requests_skip_the_debounce_and_a_burst_makes_one_round() -> None:
    rounds: list[int] = []
    rec = Reconciler({}, lambda _d, _tap: Desired([], []), lambda: 0.0, settle=0.0)
    rec.before_round = lambda: rounds.append(1)
    task = asyncio.create_task(rec.run(debounce=30.0))
    try:
        ticket = rec.request(urgent=True)
        assert await rec.wait(ticket, 1.0)
        assert rounds == [1]

        tickets = [rec.request() for _ in range(5)]
        assert not await rec.wait(tickets[-1], 0.05)  # still coalescing
        tickets.append(rec.request(urgent=True))
        assert await rec.wait(tickets[-1], 1.0)
        assert rounds == [1, 1]  # the five and the urgent one: one round
    finally:
        task.cancel()


def test_guards_from_a_view_follow_their_tag_s_users() -> None:
    lab = Lab()
    one = lab.policy(src_ip=ip(1), monitor_ip=ip(9))
    two = lab.policy(src_ip=ip(3), monitor_ip=ip(9))
    tags = {"monitor:00:00:00:00:00:09": 3900}
    view = TopologyView(lab.topo)
    guard_cookies = set()
    for policies, owner in (([one], cookie(Owner.POLICY, one.id)), ([one, two], None)):
        plan = compile_tap(policies, view, lab.hosts, tags, lab.config)
        assert plan.flows == compile_tap(policies, lab.topo, lab.hosts, tags, lab.config).flows
        cookies = {
            r.cookie for rules in plan.flows.values() for r in rules if r.priority == PRIO_GUARD
        }
        assert cookies == {owner or cookie(Owner.TAP_SHARED)}
        guard_cookies |= cookies
    assert len(guard_cookies) == 2
