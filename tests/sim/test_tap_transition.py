"""A change of TAP policies, walked at every moment of its install: a copy is never lost or
doubled while the switches change one after the other.

The reconciler sends each round as steps of bundles; the bundles of one step are in flight
together and may commit in any order. These tests hold every bundle until the step is
complete, then walk the packet through every mix the fabric can be in: each subset of the
step's bundles committed. The switch that classifies the packet may still act on any earlier
version of its rules (its datapath revalidates a moment after a commit), down to the version
the linger guarantees is gone. At each such moment the destination gets the packet once,
unchanged, and the monitors get exactly the copies of the old policies or of the new ones —
never none of either, never both.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

import pytest

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.alloc import Allocations
from vtap.compiler.forwarding import base_rules, path_rules
from vtap.compiler.tap import TapCompiler
from vtap.compiler.topoview import TopologyView
from vtap.controller.reconciler import Desired, Reconciler
from vtap.domain.network import FlowKey
from vtap.domain.policy import Policy, PolicyPatch
from vtap.ofchannel import messages as m
from vtap.openflow.rules import EntryKey, FlowRule, GroupRule, ToGroup
from vtap.topology import host_path
from vtap.trace.walker import Network, Packet

Tables = tuple[dict[EntryKey, FlowRule], dict[int, GroupRule]]
Check = Callable[[Mapping[int, Tables], Mapping[int, list[Tables]]], None]
LINGER = 2.0


class Gate:
    """Bundles in flight: held until the test has seen the whole step."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[TableSwitch, Tables, asyncio.Future[None]]] = {}
        self.arrived = asyncio.Event()

    async def hold(self, switch: TableSwitch, tables: Tables) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert switch.dpid not in self.pending, "two bundles to one switch in one step"
        self.pending[switch.dpid] = (switch, tables, done)
        self.arrived.set()
        await done


class TableSwitch:
    """Applies what it is sent as a switch would: a group delete with entries still pointing
    at it, or an entry pointing at a missing group, is a bug in the order of the changes."""

    def __init__(self, dpid: int, gate: Gate) -> None:
        self.dpid = dpid
        self.gate = gate
        self.flows: dict[EntryKey, FlowRule] = {}
        self.groups: dict[int, GroupRule] = {}

    async def multipart(self, _msg: object) -> list[object]:
        return []

    async def apply_bundle(self, msgs: list[object]) -> None:
        flows, groups = dict(self.flows), dict(self.groups)
        for msg in msgs:
            match msg:
                case m.FlowAdd(rule):
                    for gid in _groups_of(rule):
                        assert gid in groups, f"{rule} points at missing group {gid:#x}"
                    flows[rule.key] = rule
                case m.FlowDeleteStrict(rule):
                    flows.pop(rule.key, None)
                case m.GroupAdd(group) | m.GroupModify(group):
                    groups[group.group_id] = group
                case m.GroupDelete(gid):
                    users = [r for r in flows.values() if gid in _groups_of(r)]
                    assert not users, f"group {gid:#x} deleted under {users}"
                    groups.pop(gid, None)
                case _:
                    raise AssertionError(f"unexpected message {msg}")
        await self.gate.hold(self, (flows, groups))


def _groups_of(rule: FlowRule) -> list[int]:
    return [a.group_id for a in rule.actions if isinstance(a, ToGroup)]


class Fabric:
    """A sim lab whose switches are TableSwitches, kept in step by a real compiler and a real
    reconciler; `change` runs one round and its linger clean-up, walking every moment."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.gate = Gate()
        self.switches = {d: TableSwitch(d, self.gate) for d in lab.topo.graph.nodes}
        self.compiler = TapCompiler(TopologyView(lab.topo), lab.hosts, Allocations(lab.config))
        self.now = 0.0
        self.reconciler = Reconciler(
            self.switches,  # type: ignore[arg-type]
            lambda: self.now,
            settle=0.0,
            linger=LINGER,
        )
        self._base = {r.key: r for r in base_rules()}

    async def start(self, *policies: Policy) -> None:
        for switch in self.switches.values():
            await self.reconciler.join(switch)  # type: ignore[arg-type]
        for p in policies:
            self.compiler.set_policy(p)
        self.compiler.flush()
        await self._run(self.reconciler.sync(self._desired, dict.fromkeys(self.switches)))

    def _desired(self, dpid: int, _tap: bool) -> Desired:
        flows, group = self.compiler.desired(dpid)
        return Desired({**self._base, **flows}, {group.group_id: group} if group else {})

    async def _run(self, sync: Coroutine[Any, Any, object]) -> list[dict[int, Tables]]:
        """Run one sync; returns its steps (the new tables of each bundle in flight)."""
        task = asyncio.ensure_future(sync)
        steps: list[dict[int, Tables]] = []
        while True:
            arrived = asyncio.ensure_future(self.gate.arrived.wait())
            await asyncio.wait({task, arrived}, return_when=asyncio.FIRST_COMPLETED)
            arrived.cancel()
            for _ in range(20):  # the rest of the step: every bundle of it is sent at once
                await asyncio.sleep(0)
            if not self.gate.pending:
                assert task.done()
                break
            steps.append({d: tables for d, (_, tables, _) in self.gate.pending.items()})
            for switch, tables, done in self.gate.pending.values():
                switch.flows, switch.groups = tables
                done.set_result(None)
            self.gate.pending.clear()
            self.gate.arrived.clear()
        results = await task
        assert all(r.ok for r in results.values()), results  # type: ignore[attr-defined]
        return steps

    def tables(self) -> dict[int, Tables]:
        return {d: (s.flows, s.groups) for d, s in self.switches.items()}

    async def change(self, edit: Callable[[TapCompiler], None], check: Check) -> None:
        """Apply `edit`, run the install round and (after the linger) its clean-up, and call
        `check(fabric, versions)` at every moment either could produce."""
        edit(self.compiler)
        delta = self.compiler.flush()
        changed: dict[int, set[EntryKey] | None] = {
            d: set(delta.flows.get(d, ())) for d in delta.dpids
        }
        start = self.tables()
        steps = await self._run(self.reconciler.sync(self._desired, changed))
        for fabric, versions in _moments(start, steps):
            check(fabric, versions)
        after_round = self.tables()
        self.now += LINGER + 0.1
        due = self.reconciler.cleanup_due()
        if due is not None:
            assert due[0] <= self.now
            cleanup = await self._run(self.reconciler.sync(self._desired, dict(due[1])))
            # by now the classifying switch acts on what the round left, at the oldest
            for fabric, versions in _moments(after_round, cleanup):
                check(fabric, versions)
        assert self.reconciler.cleanup_due() is None
        for dpid, (flows, groups) in self.tables().items():  # nothing left behind
            want = self._desired(dpid, True)
            assert flows == dict(want.flows), hex(dpid)
            assert groups == dict(want.groups), hex(dpid)


def _moments(
    start: dict[int, Tables], steps: list[dict[int, Tables]]
) -> Iterator[tuple[dict[int, Tables], dict[int, list[Tables]]]]:
    """Every state the fabric can be in while `steps` commit, each with every version of
    every switch's tables since `start` (what its datapath may still act on)."""
    current = dict(start)
    seen: dict[int, list[Tables]] = {d: [t] for d, t in start.items()}
    yield current, seen
    for step in steps:
        dpids = sorted(step)
        for n in range(1, len(dpids) + 1):
            for subset in itertools.combinations(dpids, n):
                moment = dict(current)
                versions = {d: list(v) for d, v in seen.items()}
                for d in subset:
                    moment[d] = step[d]
                    versions[d].append(step[d])
                yield moment, versions
        current.update(step)
        for d in dpids:
            seen[d].append(step[d])


def copies_check(
    lab: Lab, src: int, dst: int, pkt: Packet, classifier: int, old: list[int], new: list[int]
) -> Check:
    """At every moment: the destination gets `pkt` once, and the monitors get exactly `old`
    or exactly `new` (each an identical copy), whichever version the classifying leaf acts on."""
    key = FlowKey(pkt.ipv4_src, pkt.ipv4_dst, pkt.ip_proto, pkt.src_port, pkt.dst_port)  # type: ignore[arg-type]
    hops = host_path(lab.topo, lab.port(src), lab.port(dst), key)
    assert hops is not None
    forwarding = path_rules(key, hops, 30)
    where = {lab.port(h): h for h in range(1, lab.n_hosts + 1)}

    def check(fabric: Mapping[int, Tables], versions: Mapping[int, list[Tables]]) -> None:
        for version in versions[classifier]:
            rules = {}
            for dpid, (flows, groups) in fabric.items():
                if dpid == classifier:
                    flows, groups = version
                extra = [forwarding[dpid]] if dpid in forwarding else []
                rules[dpid] = ([*flows.values(), *extra], groups.values())
            result = Network(lab.topo, rules).send(pkt, lab.port(src))
            got = sorted(where[d.port] for d in result.deliveries)
            assert all(d.packet == pkt for d in result.deliveries), result
            copies = list(got)
            copies.remove(dst)
            assert dst not in copies, result
            assert copies in (sorted(old), sorted(new)), (copies, old, new, result.drops)

    return check


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


# Lab hosts: h1, h2 on leaf 1; h3, h4 on leaf 2; ... h15, h16 on leaf 8 (4 spines).
LEAF1 = 0x201


def _mover(lab: Lab, monitor: int, **fields: Any) -> Policy:
    fields = {"src_ip": ip(1), "dst_ip": ip(3), "ip_proto": 17, "dst_port": 5014, **fields}
    return lab.policy(monitor_mac=mac(monitor), **fields)


def _patched(p: Policy, **changes: Any) -> Policy:
    spec = PolicyPatch(**changes).apply(p)
    return Policy.stored(p.id, spec, p.created_at, p.updated_at)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (16, 12),  # to a leaf that holds no TAP entry yet; the old leaf is left with none
        (16, 2),  # to the source's own leaf (a local copy)
        (2, 16),  # from the source's leaf across the fabric
        (16, 15),  # to another port of the same leaf (same label path)
    ],
)
def test_a_monitor_moves_and_every_packet_is_copied_once(first: int, then: int) -> None:
    lab = Lab()
    fabric = Fabric(lab)
    p = _mover(lab, first)
    pkt = lab.packet(1, 3, proto=17, dport=5014)

    async def scenario() -> None:
        await fabric.start(p)
        moved = _patched(p, monitor_mac=mac(then))
        check = copies_check(lab, 1, 3, pkt, LEAF1, [first], [then])
        await fabric.change(lambda c: c.set_policy(moved), check)
        back = copies_check(lab, 1, 3, pkt, LEAF1, [then], [first])
        await fabric.change(lambda c: c.set_policy(p), back)  # and back within the linger

    _run(scenario())


def test_a_monitor_moves_while_another_policy_keeps_both_leaves_busy() -> None:
    lab = Lab()
    fabric = Fabric(lab)
    p = _mover(lab, 16)
    # other traffic copied to a monitor on the new leaf: its pipeline is there already
    q = lab.policy(src_ip=ip(5), monitor_mac=mac(11), ip_proto=6)
    pkt = lab.packet(1, 3, proto=17, dport=5014)

    async def scenario() -> None:
        await fabric.start(p, q)
        moved = _patched(p, monitor_mac=mac(12))
        await fabric.change(
            lambda c: c.set_policy(moved), copies_check(lab, 1, 3, pkt, LEAF1, [16], [12])
        )

    _run(scenario())


def test_a_second_monitor_is_added_and_the_policy_then_deleted() -> None:
    lab = Lab()
    fabric = Fabric(lab)
    p = _mover(lab, 16)
    q = _mover(lab, 12, dst_port=None)  # wider: the same packets, another monitor
    pkt = lab.packet(1, 3, proto=17, dport=5014)

    async def scenario() -> None:
        await fabric.start(p)
        await fabric.change(
            lambda c: c.set_policy(q), copies_check(lab, 1, 3, pkt, LEAF1, [16], [12, 16])
        )
        await fabric.change(
            lambda c: c.remove_policy(p.id), copies_check(lab, 1, 3, pkt, LEAF1, [12, 16], [12])
        )
        await fabric.change(
            lambda c: c.remove_policy(q.id), copies_check(lab, 1, 3, pkt, LEAF1, [12], [])
        )

    _run(scenario())


def test_a_destination_policy_moves_its_monitor() -> None:
    lab = Lab()
    fabric = Fabric(lab)
    p = lab.policy(dst_ip=ip(3), ip_proto=17, monitor_mac=mac(16))
    pkt = lab.packet(1, 3, proto=17, dport=5014)
    leaf2 = lab.port(3).dpid  # a destination policy classifies at the destination's leaf

    async def scenario() -> None:
        await fabric.start(p)
        moved = _patched(p, monitor_mac=mac(9))
        await fabric.change(
            lambda c: c.set_policy(moved), copies_check(lab, 1, 3, pkt, leaf2, [16], [9])
        )

    _run(scenario())
