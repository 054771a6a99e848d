"""TAP policies → OpenFlow rules: a classification pipeline that grows linearly with policies.

**The key fact.** Policies match exact values, so two policies that pin the same set of fields
(the same *shape*) are either disjoint or identical. One OpenFlow table per shape therefore
holds at most one matching entry per packet, and the union of the policies a packet matches is
found by walking the shape tables one after another (pipeline.py): each matching entry sets the
bits of the monitor slots it copies to in the "want" registers; then suppress tables clear the
bits of monitors that must not get a copy here; then one copy per set bit is made. No cross
product of policies, no combination limit: identical cubes merge into one entry with the union
of their bits, and every other policy costs one entry of its own.

**Where and what** (compiler/resolve.py): a source policy is classified at its source's port
on the source's edge switch; a destination policy at the destination's edge switch on every
port but the destination's own and its monitor's (higher-priority entries with fewer bits).

**Exactly one copy per monitor, across the fabric.** A packet is classified at its source's
switch (source policies, and destination policies when the destination hangs off the same
switch) and again at its destination's switch when it arrives there from the fabric
(destination policies). There, *suppressors* clear the bits of monitors it was copied to
already: for each source policy q classified elsewhere and each destination policy p here with
q's monitor whose cubes overlap, an entry `fabric, cube(q) → clear monitor(q)`; and per monitor
with destination policies here, `fabric, eth_src=<monitor> → clear monitor` (a monitor never
gets copies of its own traffic). Within one switch a monitor has one slot per copy key, and a
remote monitor fed both by tagged and by rewrite policies gets only the first slot's copy
(entries.SlotCopies.first).

**Copies cross the fabric labelled**: an MPLS label per copy key (alloc.py) is pushed after any
VLAN tags, with the copy's ethertype class in the MPLS TC. Switches on the monitor's copy tree
carry labelled copies by (in_port, label) above every classification (a copy is never
classified again); the monitor's edge pops the label back to the copy's ethertype and delivers
it with its original headers. Only packets that enter by a fabric port are ever treated as
copies, so no host can forge one. Any other MPLS frame from the fabric is dropped.

**Incremental.** `TapCompiler` keeps, per policy, what it contributed (its footprint) and, per
entry, who needs it; adding, changing or removing a policy, or a host appearing or moving,
touches only what depends on it. `flush()` turns the changed producers into the keys that
changed per switch (for the reconciler) and bumps those switches' versions. A full build is the
same code run over every policy, so the two cannot disagree (tests check it).

Pure: no I/O, no clock, no asyncio. Allocations (labels, slots, tables) come in and their
changes go out (`Allocations.changes()`), to be persisted before the rules are installed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field

from vtap.compiler.alloc import Allocations, TapConfig, monitor_key, policy_key
from vtap.compiler.cubes import CubeIndex, cube_key, policy_cube, shape_name, shape_of
from vtap.compiler.entries import (
    Delivery,
    Producer,
    SlotCopies,
    Suppressor,
    SwitchPipeline,
    SwitchRules,
    Transit,
    WantGroup,
)
from vtap.compiler.plan import Delta, PlanState, PolicyPlan
from vtap.compiler.resolve import HostLookup, Pending, Placement, StaticHosts, place
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import Host
from vtap.domain.policy import Policy
from vtap.openflow.pipeline import SLOTS_PER_SWITCH, TABLE_SHAPE_LAST
from vtap.openflow.rules import EntryKey, FlowRule, GroupRule

__all__ = [
    "Delta",
    "HostLookup",
    "PlanState",
    "PolicyPlan",
    "StaticHosts",
    "TapCompiler",
    "TapConfig",
]

_N_TABLES = TABLE_SHAPE_LAST  # for messages: "no OpenFlow table left (limit …)"


@dataclass(slots=True)
class _Footprint:
    """Everything one placed policy contributed, to take it back exactly."""

    placement: Placement
    want: WantGroup
    slot: SlotCopies
    transits: list[Transit] = field(default_factory=list)
    delivery: Delivery | None = None
    virtual: Suppressor | None = None
    pairs: dict[int, Suppressor] = field(default_factory=dict)  # other policy → suppressor
    dpids: frozenset[int] | None = None  # the switches of its producers (None: to compute)

    def producers(self) -> list[Producer]:
        out: list[Producer] = [self.want, self.slot, *self.transits]
        if self.delivery is not None:
            out.append(self.delivery)
        if self.virtual is not None:
            out.append(self.virtual)
        out += self.pairs.values()
        return out


def _want_shape(p: Placement) -> tuple[str, str]:
    name = shape_name(shape_of(p.cube))
    return ("want", f"in_port+{name}") if p.source_port is not None else ("want", name)


def _suppress_shape(cube: Mapping[str, object]) -> tuple[str, str]:
    return ("suppress", f"fabric+{shape_name(shape_of(cube))}")


_VIRTUAL_SHAPE = ("suppress", "fabric+eth_src")


class TapCompiler:
    """The TAP rules of every switch, kept up to date one change at a time (module doc)."""

    def __init__(
        self,
        view: TopologyView,
        hosts: HostLookup,
        allocations: Allocations,
    ) -> None:
        self.view = view
        self.hosts = hosts
        self.alloc = allocations
        self.switches: dict[int, SwitchRules] = {}
        self.versions: dict[int, int] = defaultdict(int)
        self.policies: dict[int, Policy] = {}  # every enabled policy given
        self.pending: dict[int, str] = {}
        self._placed: dict[int, _Footprint] = {}
        self._want: dict[tuple, WantGroup] = {}
        self._supp: dict[tuple, Suppressor] = {}
        self._slots: dict[int, dict[int, SlotCopies]] = defaultdict(dict)  # dpid → slot →
        self._transit: dict[tuple[int, int, int], Transit] = {}
        self._delivery: dict[tuple[int, int], Delivery] = {}
        self._pipes: dict[int, SwitchPipeline] = {}
        self._want_tables: dict[int, Counter[int]] = defaultdict(Counter)
        self._supp_tables: dict[int, Counter[int]] = defaultdict(Counter)
        self._live: Counter[int] = Counter()  # producers with entries, per switch
        self._mon_slots: dict[tuple[int, str], dict[str, SlotCopies]] = defaultdict(dict)
        self._supp_of_monitor: dict[tuple[int, str], set[Suppressor]] = defaultdict(set)
        self._dest_index: dict[str, CubeIndex] = defaultdict(CubeIndex)  # monitor → dest pids
        self._src_index: dict[str, CubeIndex] = defaultdict(CubeIndex)  # monitor → source pids
        self._by_host: dict[str, set[int]] = defaultdict(set)  # "mac:…"/"ip:…" → pids
        self._label_refs: Counter[str] = Counter()
        self._shape_refs: Counter[tuple[str, str]] = Counter()
        self._refs: dict[int, tuple[str | None, tuple[tuple[str, str], ...]]] = {}
        self._unresolved_monitors = 0
        self._released_later: set[str] = set()
        self._tables_released_later: set[tuple[str, str]] = set()
        self._stale: set[Producer] = set()
        self._stale_pipes: set[int] = set()
        self._changed: set[int] = set()
        self._starved: set[int] = set()  # pending for lack of a label, slot or table
        self._freed = False  # a slot was freed since the last flush

    # --- public: changes -------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> None:
        """Add or replace a policy (a disabled one is removed)."""
        self.remove_policy(policy.id)
        if not policy.enabled:
            return
        self.policies[policy.id] = policy
        self._ref(policy)
        self._place(policy)

    def remove_policy(self, policy_id: int) -> None:
        policy = self.policies.pop(policy_id, None)
        if policy is None:
            return
        freed = self._unplace(policy_id)
        self.pending.pop(policy_id, None)
        self._starved.discard(policy_id)
        self._unref(policy)
        self._changed.add(policy_id)
        self._freed |= freed

    def set_hosts(self, hosts: HostLookup, changed: Iterable[Host]) -> None:
        """The host table changed for these hosts (old and new versions): place again every
        policy that names one of them."""
        self.hosts = hosts
        affected: set[int] = set()
        for host in changed:
            affected |= self._by_host.get(f"mac:{host.mac}", set())
            if host.ip is not None:
                affected |= self._by_host.get(f"ip:{host.ip}", set())
        # Take them all back before placing any again: policies that share a monitor share
        # its label's transit entries, which must follow the monitor all at once.
        again = [self.policies[pid] for pid in sorted(affected) if pid in self.policies]
        for policy in again:
            self.remove_policy(policy.id)
        for policy in again:
            self.set_policy(policy)

    # --- public: reading -------------------------------------------------------------------

    def plan(self, policy_id: int) -> PolicyPlan | None:
        if policy_id not in self.policies:
            return None
        reason = self.pending.get(policy_id)
        if reason is not None:
            return PolicyPlan(policy_id, PlanState.PENDING, reason)
        return PolicyPlan(policy_id, PlanState.READY, "", self.dpids_of(policy_id))

    def placement(self, policy_id: int) -> Placement | None:
        fp = self._placed.get(policy_id)
        return fp.placement if fp is not None else None

    def dpids_of(self, policy_id: int) -> frozenset[int]:
        fp = self._placed.get(policy_id)
        if fp is None:
            return frozenset()
        if fp.dpids is None:
            fp.dpids = frozenset(p.dpid for p in fp.producers())
        return fp.dpids

    def rules_for(self, policy_id: int) -> dict[int, tuple[list[FlowRule], list[GroupRule]]]:
        """The rules that exist because of this policy (shared ones included), per switch."""
        fp = self._placed.get(policy_id)
        if fp is None:
            return {}
        out: dict[int, tuple[list[FlowRule], list[GroupRule]]] = {}
        for producer in fp.producers():
            if producer.emitted:
                out.setdefault(producer.dpid, ([], []))[0].extend(producer.emitted.values())
        sw = self.switches.get(fp.placement.origin)
        if sw is not None and sw.group is not None and fp.placement.origin in out:
            out[fp.placement.origin][1].append(sw.group)
        return dict(sorted(out.items()))

    def owners(self, dpid: int, key: EntryKey | int) -> set[int]:
        """The policies an entry (or, by group id, the copy group) of a switch exists for."""
        sw = self.switches.get(dpid)
        if sw is None:
            return set()
        if not isinstance(key, int):
            producer = sw.producers.get(key)
            if producer is None:
                return set()
            if not isinstance(producer, SwitchPipeline):
                return set(producer.owners())
        # the switch's pipeline and copy group serve every policy classified there
        return {pid for c in self._slots.get(dpid, {}).values() for pid in c.users}

    def copy_entries(self, dpid: int) -> dict[EntryKey, tuple[str, frozenset[int]]]:
        """The copy entries of a switch: key → (copy key, the policies the copy serves).
        Their packet counters are the copies made (stats/copies.py)."""
        out: dict[EntryKey, tuple[str, frozenset[int]]] = {}
        for copies in self._slots.get(dpid, {}).values():
            if copies.emitted:
                users = frozenset(copies.users)
                for key in copies.emitted:
                    out[key] = (copies.copy_key, users)
        return out

    def desired(self, dpid: int) -> tuple[Mapping[EntryKey, FlowRule], GroupRule | None]:
        sw = self.switches.get(dpid)
        if sw is None:
            return {}, None
        return sw.flows, sw.group

    # --- public: flush ---------------------------------------------------------------------

    def flush(self) -> Delta:
        """Turn every change since the last flush into per-switch changed keys."""
        steps = self.flush_steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def flush_steps(self, chunk: int = 1000) -> Generator[None, None, Delta]:
        """`flush`, in steps of about `chunk` producers: a caller in an event loop yields to
        it between steps (tens of thousands of changes take a second to materialise)."""
        if self._release() or self._freed:
            self._freed = False
            if self._starved:
                self._retry_starved()
                self._release()
        # Producers that lost their last user go first: a new producer for the same entries
        # (a policy placed again in the same flush) must find them gone.
        stale = sorted(self._stale, key=lambda p: bool(p.owners_left()))
        self._stale.clear()
        for n, producer in enumerate(stale):
            if n and n % chunk == 0:
                yield
            self._emit(producer)
        for dpid in sorted(self._stale_pipes):
            self._emit_pipeline(dpid)
        self._stale_pipes.clear()
        delta = Delta()
        for dpid, sw in self.switches.items():
            if sw.dirty or sw.group_dirty:
                self.versions[dpid] += 1
                if sw.dirty:
                    delta.flows[dpid] = sw.dirty
                    sw.dirty = set()
                if sw.group_dirty:
                    delta.groups.add(dpid)
                    sw.group_dirty = False
        delta.policies = self._changed
        self._changed = set()
        return delta

    # --- references (spec level: what stays allocated while a policy exists) ---------------

    def _ref(self, policy: Policy) -> None:
        for key in _host_keys(policy):
            self._by_host[key].add(policy.id)
        label: str | None
        if policy.delivery == "rewrite":
            label = policy_key(policy.id)
        elif policy.monitor_mac is not None:
            label = monitor_key(policy.monitor_mac)
        else:
            assert policy.monitor_ip is not None
            host = self.hosts.by_ip(policy.monitor_ip)
            label = monitor_key(host.mac) if host is not None else None
        if label is None:
            self._unresolved_monitors += 1
        else:
            self._label_refs[label] += 1
        cube = policy_cube(policy)
        shapes = (
            (("want", f"in_port+{shape_name(shape_of(cube))}"), _suppress_shape(cube))
            if policy.has_source
            else (("want", shape_name(shape_of(cube))), _VIRTUAL_SHAPE)
        )
        for shape in shapes:
            self._shape_refs[shape] += 1
        self._refs[policy.id] = (label, shapes)

    def _unref(self, policy: Policy) -> None:
        label, shapes = self._refs.pop(policy.id)
        for key in _host_keys(policy):
            pids = self._by_host[key]
            pids.discard(policy.id)
            if not pids:
                del self._by_host[key]
        if label is None:
            self._unresolved_monitors -= 1
        else:
            self._label_refs[label] -= 1
            if not self._label_refs[label]:
                del self._label_refs[label]
                self._released_later.add(label)
        for shape in shapes:
            self._shape_refs[shape] -= 1
            if not self._shape_refs[shape]:
                del self._shape_refs[shape]
                self._tables_released_later.add(shape)

    def _release(self) -> bool:
        """Release (at flush, so a policy replaced within one batch keeps its numbers) the
        tables and labels nobody names any more. While a policy's monitor is known only by an
        IP nobody has answered for, any monitor label may be its own: those are kept."""
        released = False
        for shape in sorted(self._tables_released_later):
            if shape not in self._shape_refs:
                self.alloc.release_table(*shape)
                released = True
        self._tables_released_later.clear()
        for label in sorted(self._released_later):
            if label in self._label_refs:
                self._released_later.discard(label)
                continue
            if label.startswith("monitor:") and self._unresolved_monitors:
                continue
            released = True
            self._released_later.discard(label)
            busy = [
                d
                for d, here in self._slots.items()
                if any(c.copy_key == label for c in here.values())
            ]
            self.alloc.release_label(label, busy)
        return released

    # --- placing ---------------------------------------------------------------------------

    def _place(self, policy: Policy) -> None:
        try:
            p = place(policy, self.hosts, self.view)
            tables = self._tables_for(p)
            slot = self._slot_for(p)
            label = None
            if p.remote:
                label = self.alloc.label(p.copy_key)
                if label is None:
                    raise _Starved(
                        f"copy-label range {self.alloc.config.describe_range()} exhausted"
                    )
        except _Starved as why:
            self.pending[policy.id] = str(why)
            self._starved.add(policy.id)
            self._changed.add(policy.id)
            return
        except Pending as why:
            self.pending[policy.id] = str(why)
            self._changed.add(policy.id)
            return
        want_table, suppress_table = tables
        fp = _Footprint(p, self._join_want(p, want_table, slot), self._join_slot(p, slot, label))
        self._placed[policy.id] = fp
        if label is not None:
            self._join_path(p, fp, label)
        mac = p.monitor.mac
        if p.source_port is None:
            fp.virtual = self._join_suppressor(
                p.origin, suppress_table, {"eth_src": mac}, mac, (p.pid,)
            )
            for q in self._src_index[mac].overlapping(p.cube):
                other = self._placed[q]  # type: ignore[index]
                if other.placement.origin != p.origin:
                    self._pair(dest=fp, source=other)
            self._dest_index[mac].add(p.pid, p.cube)
        else:
            for q in self._dest_index[mac].overlapping(p.cube):
                other = self._placed[q]  # type: ignore[index]
                if other.placement.origin != p.origin:
                    self._pair(dest=other, source=fp)
            self._src_index[mac].add(p.pid, p.cube)
        self._changed.add(policy.id)

    def _tables_for(self, p: Placement) -> tuple[int, int]:
        want = self.alloc.table(*_want_shape(p))
        shape = _suppress_shape(p.cube) if p.source_port is not None else _VIRTUAL_SHAPE
        suppress = self.alloc.table(*shape)
        if want is None or suppress is None:
            raise _Starved(f"no OpenFlow table left for this policy's shape (limit {_N_TABLES})")
        return want, suppress

    def _slot_for(self, p: Placement) -> int:
        here = self._slots.get(p.origin, {})
        slot = self.alloc.slot(p.origin, p.copy_key, lambda: [c.copy_key for c in here.values()])
        if slot is None:
            raise _Starved(
                f"no monitor slot left on {self.view.label(p.origin)} "
                f"(a switch copies to at most {SLOTS_PER_SWITCH} monitors)"
            )
        return slot

    def _unplace(self, policy_id: int) -> bool:
        """Take back what a policy contributed; True if that freed a label, slot or table."""
        fp = self._placed.pop(policy_id, None)
        if fp is None:
            return False
        p = fp.placement
        mac = p.monitor.mac
        index = self._dest_index if p.source_port is None else self._src_index
        index[mac].remove(p.pid)
        if not index[mac]:
            del index[mac]
        for other_id in list(fp.pairs):
            other = self._placed[other_id]
            if p.source_port is None:
                self._unpair(dest=fp, source=other)
            else:
                self._unpair(dest=other, source=fp)
        if fp.virtual is not None:
            self._leave_suppressor(fp.virtual, mac, (p.pid,))
        for transit in fp.transits:
            self._drop_user(transit, p.pid)
        if fp.delivery is not None:
            self._drop_user(fp.delivery, p.pid)
        group = fp.want
        del group.members[p.pid]
        self._touch(group)
        if not group.members:
            del self._want[(group.dpid, group.table, group.in_port, cube_key(group.cube))]
            self._table_count(self._want_tables, group.dpid, group.table, -1)
        freed = self._leave_slot(fp.slot, p.pid)
        self._changed.add(policy_id)
        return freed

    # --- contributions ---------------------------------------------------------------------

    def _touch(self, producer: Producer) -> None:
        self._stale.add(producer)

    def _join_want(self, p: Placement, table: int, slot: int) -> WantGroup:
        key = (p.origin, table, p.source_port, cube_key(p.cube))
        group = self._want.get(key)
        if group is None:
            group = self._want[key] = WantGroup(
                p.origin, table=table, in_port=p.source_port, cube=p.cube, dest_port=p.dest_port
            )
            self._table_count(self._want_tables, p.origin, table, +1)
        group.members[p.pid] = (slot, p.monitor_port if p.source_port is None else None)
        self._touch(group)
        return group

    def _join_slot(self, p: Placement, slot: int, label: int | None) -> SlotCopies:
        here = self._slots[p.origin]
        copies = here.get(slot)
        if copies is None:
            port = p.steps[0].out_port if p.steps else p.monitor.location.port_no
            copies = here[slot] = SlotCopies(
                p.origin,
                slot=slot,
                copy_key=p.copy_key,
                monitor=p.monitor.mac,
                port=port,
                label=label,
                rewrite=p.rewrite,
            )
        elif copies.copy_key != p.copy_key:
            raise AssertionError(f"slot {slot} on {p.origin:#x} has two copy keys")
        copies.users.add(p.pid)
        mine = self._mon_slots[(p.origin, p.monitor.mac)]
        if p.copy_key not in mine:
            mine[p.copy_key] = copies
            self._monitor_slots_changed(p.origin, p.monitor.mac)
        self._touch(copies)
        return copies

    def _leave_slot(self, copies: SlotCopies, pid: int) -> bool:
        copies.users.discard(pid)
        self._touch(copies)
        if copies.users:
            return False
        here = self._slots[copies.dpid]
        del here[copies.slot]
        if not here:
            del self._slots[copies.dpid]
        mine = self._mon_slots[(copies.dpid, copies.monitor)]
        del mine[copies.copy_key]
        if not mine:
            del self._mon_slots[(copies.dpid, copies.monitor)]
        self._monitor_slots_changed(copies.dpid, copies.monitor)
        return True

    def _monitor_slots_changed(self, dpid: int, mac: str) -> None:
        """A monitor's slots on a switch changed: its suppressors there clear other bits, and
        its remote slots' order (which copy wins) may have changed."""
        for supp in self._supp_of_monitor.get((dpid, mac), ()):
            self._touch(supp)
        mine = self._mon_slots.get((dpid, mac), {})
        remote = sorted(
            (c for c in mine.values() if c.label is not None), key=lambda c: _slot_rank(c.copy_key)
        )
        for i, copies in enumerate(remote):
            first = tuple(c.slot for c in remote[:i])
            if copies.first != first:
                copies.first = first
                self._touch(copies)
        self._stale_pipes.add(dpid)

    def _join_path(self, p: Placement, fp: _Footprint, label: int) -> None:
        for before, step in zip(p.steps, p.steps[1:], strict=False):
            key = (step.dpid, before.next_in_port, label)
            transit = self._transit.get(key)
            if transit is None:
                transit = self._transit[key] = Transit(
                    step.dpid, in_port=before.next_in_port, label=label, out_port=step.out_port
                )
            elif transit.out_port != step.out_port:
                raise AssertionError(f"two next hops for label {label} at {step.dpid:#x}")
            transit.users[p.pid] += 1
            self._touch(transit)
            fp.transits.append(transit)
        edge = p.monitor.location
        key2 = (edge.dpid, label)
        delivery = self._delivery.get(key2)
        restore = None
        if p.rewrite is not None:
            assert p.policy.dst_mac is not None and p.policy.dst_ip is not None
            restore = (p.policy.dst_mac, p.policy.dst_ip)
        if delivery is None:
            delivery = self._delivery[key2] = Delivery(
                edge.dpid, label=label, port=edge.port_no, restore=restore
            )
        delivery.users[p.pid] += 1
        self._touch(delivery)
        fp.delivery = delivery

    def _drop_user(self, producer: Transit | Delivery, pid: int) -> None:
        producer.users[pid] -= 1
        if not producer.users[pid]:
            del producer.users[pid]
        self._touch(producer)
        if not producer.users:
            if isinstance(producer, Transit):
                del self._transit[(producer.dpid, producer.in_port, producer.label)]
            else:
                del self._delivery[(producer.dpid, producer.label)]

    def _join_suppressor(
        self, dpid: int, table: int, cube: Mapping[str, object], mac: str, users: Iterable[int]
    ) -> Suppressor:
        key = (dpid, table, cube_key(cube))  # type: ignore[arg-type]
        supp = self._supp.get(key)
        if supp is None:
            supp = self._supp[key] = Suppressor(dpid, table=table, cube=dict(cube))  # type: ignore[arg-type]
            self._table_count(self._supp_tables, dpid, table, +1)
        if not supp.monitors[mac]:
            self._supp_of_monitor[(dpid, mac)].add(supp)
        supp.monitors[mac] += 1
        for pid in users:
            supp.users[pid] += 1
        self._touch(supp)
        return supp

    def _leave_suppressor(self, supp: Suppressor, mac: str, users: Iterable[int]) -> None:
        supp.monitors[mac] -= 1
        if not supp.monitors[mac]:
            del supp.monitors[mac]
            watchers = self._supp_of_monitor[(supp.dpid, mac)]
            watchers.discard(supp)
            if not watchers:
                del self._supp_of_monitor[(supp.dpid, mac)]
        for pid in users:
            supp.users[pid] -= 1
            if not supp.users[pid]:
                del supp.users[pid]
        self._touch(supp)
        if not supp.monitors:
            del self._supp[(supp.dpid, supp.table, cube_key(supp.cube))]  # type: ignore[arg-type]
            self._table_count(self._supp_tables, supp.dpid, supp.table, -1)

    def _pair(self, dest: _Footprint, source: _Footprint) -> None:
        """`source` copies some packets upstream that `dest` would copy again on arrival."""
        q = source.placement
        table = self.alloc.table(*_suppress_shape(q.cube))
        assert table is not None  # allocated when `source` was placed, kept while it exists
        d = dest.placement
        supp = self._join_suppressor(d.origin, table, q.cube, q.monitor.mac, (d.pid, q.pid))
        dest.pairs[q.pid] = supp
        source.pairs[d.pid] = supp
        dest.dpids = source.dpids = None
        self._changed |= {d.pid, q.pid}

    def _unpair(self, dest: _Footprint, source: _Footprint) -> None:
        d, q = dest.placement, source.placement
        supp = dest.pairs.pop(q.pid)
        del source.pairs[d.pid]
        dest.dpids = source.dpids = None
        self._changed |= {d.pid, q.pid}
        self._leave_suppressor(supp, q.monitor.mac, (d.pid, q.pid))

    def _table_count(self, counts: dict[int, Counter[int]], dpid: int, table: int, n: int) -> None:
        mine = counts[dpid]
        mine[table] += n
        if mine[table] <= 0:
            del mine[table]
            if not mine:
                del counts[dpid]
        self._stale_pipes.add(dpid)

    def _retry_starved(self) -> None:
        for pid in sorted(self._starved):
            self._starved.discard(pid)
            policy = self.policies[pid]
            self.pending.pop(pid, None)
            self._place(policy)

    # --- emitting --------------------------------------------------------------------------

    def _switch(self, dpid: int) -> SwitchRules:
        sw = self.switches.get(dpid)
        if sw is None:
            sw = self.switches[dpid] = SwitchRules(dpid)
        return sw

    def _emit(self, producer: Producer) -> None:
        had = bool(producer.emitted)
        if isinstance(producer, Suppressor):
            slots = {
                mac: [c.slot for c in self._mon_slots.get((producer.dpid, mac), {}).values()]
                for mac in producer.monitors
            }
            rules = producer.rules(slots)
        else:
            rules = producer.rules()  # type: ignore[attr-defined]
        self._switch(producer.dpid).emit(producer, rules)
        has = bool(producer.emitted)
        if had != has:
            self._live[producer.dpid] += 1 if has else -1
            self._stale_pipes.add(producer.dpid)

    def _emit_pipeline(self, dpid: int) -> None:
        pipe = self._pipes.get(dpid)
        if pipe is None:
            pipe = self._pipes[dpid] = SwitchPipeline(dpid)
        here = self._slots.get(dpid, {})
        inputs = (
            self.view.fabric_ports_of(dpid),
            tuple(sorted(self._want_tables.get(dpid, ()))),
            tuple(sorted(self._supp_tables.get(dpid, ()))),
            tuple(sorted(here)),
            any(c.label is not None for c in here.values()),
            self._live[dpid] > 0,
        )
        if inputs == pipe.inputs:
            return  # most changes leave the switch's pipeline as it was
        pipe.inputs = inputs
        rules, group = pipe.rules_and_group(*inputs[:5], active=inputs[5])
        sw = self._switch(dpid)
        sw.emit(pipe, rules)
        sw.set_group(group)


class _Starved(Pending):
    """Pending for lack of a label, a slot or a table: retried when one is freed."""


def _slot_rank(copy_key: str) -> tuple[int, int]:
    """Which of a monitor's remote slots wins: the tagged one, then rewrite ones by policy id."""
    if copy_key.startswith("policy:"):
        return (1, int(copy_key.split(":", 1)[1]))
    return (0, 0)


def _host_keys(policy: Policy) -> list[str]:
    """The host table keys a policy's placement depends on."""
    keys = [f"mac:{m}" for m in (policy.src_mac, policy.dst_mac, policy.monitor_mac) if m]
    keys += [f"ip:{i}" for i in (policy.src_ip, policy.dst_ip, policy.monitor_ip) if i]
    return keys
