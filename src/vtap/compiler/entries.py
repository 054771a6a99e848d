"""The rule producers of one switch: each owns a few flow entries and knows who needs them.

The TAP compiler (compiler/tap.py) changes producers as policies come and go, marks them
stale, and later asks each stale one for its rules (`rules()`); `SwitchRules.emit` then
records what changed. Every producer's entries have keys no other producer uses, so a
producer can replace its own entries without looking at anybody else's.

Cookies: an entry that exists for exactly one policy carries `cookie(POLICY, id)`; one shared
by several policies, and the switch's TAP pipeline, carry the TAP_SHARED kind with a 40-bit
hash of the entry's identity as id. Distinct cookies matter: Open vSwitch finds the entry a
delete names through its cookie, so 20,000 deletes of entries that all carried one cookie took
7-10 s (each scanned every entry with that cookie), against 0.3 s with distinct ones.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from vtap.compiler.cubes import Value
from vtap.openflow.pipeline import (
    ETH_TYPE_MPLS,
    ETHCLASS_KNOWN,
    ETHERTYPE_CLASSES,
    GROUP_COPY,
    META_FABRIC,
    PRIO_COPY,
    PRIO_COPY_BACK,
    PRIO_COPY_TRANSIT,
    PRIO_EMIT,
    PRIO_ETHCLASS,
    PRIO_FABRIC_MARK,
    PRIO_FOREIGN_MPLS,
    PRIO_NOTHING_WANTED,
    PRIO_SUPPRESS,
    PRIO_TO_CLASSIFY,
    PRIO_TRANSIT_DEFAULT,
    PRIO_WANT,
    PRIO_WANT_EXCLUDED_PORT,
    REG_ETHCLASS,
    REG_SLOT,
    TABLE_CLASSIFY,
    TABLE_COPY,
    TABLE_EMIT,
    TABLE_ETHCLASS,
    TABLE_FORWARD,
    TABLE_INGRESS,
    TABLE_TRANSIT,
    Owner,
    cookie,
)
from vtap.openflow.rules import (
    REG_FULL,
    Action,
    Bucket,
    EntryKey,
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
    with_regs,
)

SHARED = cookie(Owner.TAP_SHARED)  # placeholder: SwitchRules.emit makes it distinct per entry


@lru_cache(maxsize=1 << 16)
def shared_cookie(key: EntryKey) -> int:
    """A TAP_SHARED cookie of its own for one entry (stable across runs and processes)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=5).digest()
    return cookie(Owner.TAP_SHARED, int.from_bytes(digest, "big"))


def _own_cookie(rule: FlowRule) -> FlowRule:
    if rule.cookie != SHARED:
        return rule
    return replace(rule, cookie=shared_cookie(rule.key))


_IPV4_CLASS = ETHERTYPE_CLASSES.index(0x0800)


def owner_cookie(owners: Iterable[int]) -> int:
    """The cookie of an entry that exists for these policies."""
    it = iter(owners)
    first = next(it, None)
    if first is None or next(it, None) is not None:
        return SHARED
    return cookie(Owner.POLICY, first)


def slot_bits(slots: Iterable[int]) -> dict[int, int]:
    """Want-register masks for these slots: {register: bits}."""
    regs: dict[int, int] = {}
    for slot in slots:
        reg, bit = divmod(slot, 32)
        regs[reg] = regs.get(reg, 0) | (1 << bit)
    return regs


def _set_bits(slots: Iterable[int]) -> tuple[Action, ...]:
    return tuple(LoadReg(reg, bits, bits) for reg, bits in sorted(slot_bits(slots).items()))


def _clear_bits(slots: Iterable[int]) -> tuple[Action, ...]:
    return tuple(LoadReg(reg, 0, bits) for reg, bits in sorted(slot_bits(slots).items()))


class SwitchRules:
    """What the TAP compiler wants one switch to hold, and which keys changed lately."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.flows: dict[EntryKey, FlowRule] = {}
        self.producers: dict[EntryKey, Producer] = {}
        self.group: GroupRule | None = None
        self.dirty: set[EntryKey] = set()
        self.group_dirty = False

    def emit(self, producer: Producer, rules: Iterable[FlowRule]) -> None:
        """Make `producer`'s entries exactly `rules`, recording the keys that changed."""
        old = producer.emitted
        new = {r.key: _own_cookie(r) for r in rules}
        flows, dirty = self.flows, self.dirty
        for key in old.keys() - new.keys():
            del flows[key]
            del self.producers[key]
            dirty.add(key)
        for key, rule in new.items():
            have = old.get(key)
            if have is None:
                if key in flows:
                    raise AssertionError(f"two TAP producers want {key} on {self.dpid:#x}")
                self.producers[key] = producer
            elif have == rule:
                continue
            flows[key] = rule
            dirty.add(key)
        producer.emitted = new

    def set_group(self, group: GroupRule | None) -> None:
        if group != self.group:
            self.group = group
            self.group_dirty = True


@dataclass(eq=False)
class Producer:
    """Base: the entries last emitted and the policies they exist for."""

    dpid: int
    emitted: dict[EntryKey, FlowRule] = field(default_factory=dict, init=False)

    def owners(self) -> Iterable[int]:
        return ()

    def owners_left(self) -> bool:
        """False once nobody needs this producer: its entries are about to go."""
        return any(True for _ in self.owners())


@dataclass(eq=False)
class WantGroup(Producer):
    """Policies with one cube at one place: a source port (source policies) or the whole
    switch (destination policies). One entry sets the bits of all their slots; a
    destination group adds higher-priority entries for the ports it must not copy from."""

    table: int = 0
    in_port: int | None = None  # source policies' port
    cube: Mapping[str, Value] = field(default_factory=dict)
    dest_port: int | None = None  # destination policies: never classified there
    members: dict[int, tuple[int, int | None]] = field(default_factory=dict)  # pid → slot, mon port

    def owners(self) -> Iterable[int]:
        return self.members.keys()

    def rules(self) -> list[FlowRule]:
        if not self.members:
            return []
        value = owner_cookie(self.members)
        slots = {slot for slot, _ in self.members.values()}
        base = Match(in_port=self.in_port, **self.cube)  # type: ignore[arg-type]
        out = [FlowRule(self.table, PRIO_WANT, base, _set_bits(sorted(slots)), cookie=value)]
        if self.dest_port is None:
            return out
        excluded = {self.dest_port: set()}  # the destination's own port copies nothing
        for _, port in self.members.values():
            if port is not None and port not in excluded:
                excluded[port] = {s for s, p in self.members.values() if p != port}
        for port, keep in sorted(excluded.items()):
            match = Match(in_port=port, **self.cube)  # type: ignore[arg-type]
            out.append(
                FlowRule(
                    self.table,
                    PRIO_WANT_EXCLUDED_PORT,
                    match,
                    _set_bits(sorted(keep)),
                    cookie=value,
                )
            )
        return out


@dataclass(eq=False)
class Suppressor(Producer):
    """On packets from the fabric that match `cube`: clear the bits of `monitors` (a source
    policy copied such packets to them upstream, or they are the monitor's own)."""

    table: int = 0
    cube: Mapping[str, Value] = field(default_factory=dict)
    monitors: Counter[str] = field(default_factory=Counter)
    users: Counter[int] = field(default_factory=Counter)

    def owners(self) -> Iterable[int]:
        return self.users.keys()

    def rules(self, slots_of: Mapping[str, Iterable[int]]) -> list[FlowRule]:
        slots = sorted({s for mac in self.monitors for s in slots_of.get(mac, ())})
        if not slots:
            return []
        match = Match(metadata=(META_FABRIC, META_FABRIC), **self.cube)  # type: ignore[arg-type]
        return [
            FlowRule(
                self.table,
                PRIO_SUPPRESS,
                match,
                _clear_bits(slots),
                cookie=owner_cookie(self.users),
            )
        ]


@dataclass(eq=False)
class SlotCopies(Producer):
    """The copy one slot makes: local output, or the labelled copy toward the monitor.

    `first` (for remote copies of a monitor fed through several slots: a tagged one and
    rewrite ones) are the slots that win over this one: their bits must be clear, so a
    monitor gets one copy however many of its slots a packet sets."""

    slot: int = 0
    copy_key: str = ""
    monitor: str = ""
    users: set[int] = field(default_factory=set)
    port: int = 0  # local: the monitor's port; remote: the first hop toward it
    label: int | None = None  # None: the monitor hangs off this switch
    rewrite: tuple[str, str] | None = None  # (mac, ip) to write into a rewrite copy
    first: tuple[int, ...] = ()

    def owners(self) -> Iterable[int]:
        return self.users

    def rules(self) -> list[FlowRule]:
        if not self.users:
            return []
        value = owner_cookie(self.users)
        regs = slot_bits([self.slot])
        conditions = {reg: (bits, bits) for reg, bits in regs.items()}
        for reg, bits in slot_bits(self.first).items():
            have_value, have_mask = conditions.get(reg, (0, 0))
            conditions[reg] = (have_value, have_mask | bits)
        conditions[REG_SLOT] = (self.slot, REG_FULL)
        if self.label is None:
            match = Match(regs=with_regs(conditions))
            return [FlowRule(TABLE_COPY, PRIO_COPY, match, (Output(self.port),), cookie=value)]
        conditions[REG_ETHCLASS] = (ETHCLASS_KNOWN, ETHCLASS_KNOWN)
        actions: list[Action] = []
        eth_type = None
        if self.rewrite is not None:  # IPv4 only: set_field ipv4_dst needs it in the match
            eth_type = 0x0800
            actions += [SetField("eth_dst", self.rewrite[0]), SetField("ipv4_dst", self.rewrite[1])]
        actions += [
            PushMpls(ETH_TYPE_MPLS),
            SetField("mpls_label", self.label),
            MoveBits(f"reg{REG_ETHCLASS}", "mpls_tc", 3),
        ]
        regs_match = with_regs(conditions)
        return [
            FlowRule(
                TABLE_COPY,
                PRIO_COPY,
                Match(eth_type=eth_type, regs=regs_match),
                (*actions, Output(self.port)),
                cookie=value,
            ),
            FlowRule(
                TABLE_COPY,
                PRIO_COPY_BACK,
                Match(in_port=self.port, eth_type=eth_type, regs=regs_match),
                (*actions, Output(ReservedPort.IN_PORT)),
                cookie=value,
            ),
        ]


@dataclass(eq=False)
class Transit(Producer):
    """Carry copies with `label` that arrive on `in_port` on toward the monitor."""

    in_port: int = 0
    label: int = 0
    out_port: int = 0
    users: Counter[int] = field(default_factory=Counter)

    def owners(self) -> Iterable[int]:
        return self.users.keys()

    def rules(self) -> list[FlowRule]:
        if not self.users:
            return []
        match = Match(in_port=self.in_port, eth_type=ETH_TYPE_MPLS, mpls_label=self.label)
        return [
            FlowRule(
                TABLE_TRANSIT,
                PRIO_COPY_TRANSIT,
                match,
                (Output(self.out_port),),
                cookie=owner_cookie(self.users),
            )
        ]


@dataclass(eq=False)
class Delivery(Producer):
    """At the monitor's edge: pop the label back to the copy's own ethertype (its class),
    restore a rewrite copy's destination, output to the monitor."""

    label: int = 0
    port: int = 0
    restore: tuple[str, str] | None = None  # rewrite: the original (dst MAC, dst IP)
    users: Counter[int] = field(default_factory=Counter)

    def owners(self) -> Iterable[int]:
        return self.users.keys()

    def rules(self) -> list[FlowRule]:
        if not self.users:
            return []
        value = owner_cookie(self.users)
        classes = (_IPV4_CLASS,) if self.restore is not None else range(len(ETHERTYPE_CLASSES))
        out = []
        for tc in classes:
            actions: list[Action] = [PopMpls(ETHERTYPE_CLASSES[tc])]
            if self.restore is not None:
                actions += [
                    SetField("eth_dst", self.restore[0]),
                    SetField("ipv4_dst", self.restore[1]),
                ]
            actions.append(Output(self.port))
            match = Match(eth_type=ETH_TYPE_MPLS, mpls_label=self.label, mpls_tc=tc)
            out.append(
                FlowRule(TABLE_TRANSIT, PRIO_COPY_TRANSIT, match, tuple(actions), cookie=value)
            )
        return out


@dataclass(eq=False)
class SwitchPipeline(Producer):
    """The switch's TAP pipeline: fabric marks, the shape-table walk, emit, ethertype classes,
    and the copy group. Derived from what the switch holds, so it follows every change."""

    inputs: tuple[object, ...] | None = field(default=None, init=False)  # of the last rules

    def rules_and_group(
        self,
        fabric_ports: Iterable[int],
        want_tables: Iterable[int],
        suppress_tables: Iterable[int],
        slots: Iterable[int],
        labelled: bool,
        active: bool,
    ) -> tuple[list[FlowRule], GroupRule | None]:
        if not active:
            return [], None
        want = sorted(want_tables)
        walk = [Resubmit(t) for t in (*want, *sorted(suppress_tables))]
        classifies = bool(want)
        out = [
            FlowRule(
                TABLE_INGRESS,
                PRIO_FABRIC_MARK,
                Match(in_port=port),
                goto_table=TABLE_TRANSIT,
                cookie=SHARED,
                write_metadata=(META_FABRIC, META_FABRIC),
            )
            for port in sorted(fabric_ports)
        ]
        out.append(
            FlowRule(TABLE_TRANSIT, PRIO_FOREIGN_MPLS, Match(eth_type=ETH_TYPE_MPLS), cookie=SHARED)
        )
        if not classifies:
            out.append(
                FlowRule(
                    TABLE_TRANSIT,
                    PRIO_TRANSIT_DEFAULT,
                    Match(),
                    (Resubmit(TABLE_FORWARD),),
                    cookie=SHARED,
                )
            )
            return out, None
        used = sorted(slots)
        out += [
            FlowRule(
                TABLE_TRANSIT,
                PRIO_TRANSIT_DEFAULT,
                Match(),
                goto_table=TABLE_CLASSIFY,
                cookie=SHARED,
            ),
            FlowRule(
                TABLE_INGRESS, PRIO_TO_CLASSIFY, Match(), goto_table=TABLE_CLASSIFY, cookie=SHARED
            ),
            FlowRule(TABLE_CLASSIFY, 0, Match(), tuple(walk), goto_table=TABLE_EMIT, cookie=SHARED),
        ]
        nothing = with_regs({reg: (0, REG_FULL) for reg in slot_bits(used)})
        out.append(
            FlowRule(
                TABLE_EMIT,
                PRIO_NOTHING_WANTED,
                Match(regs=nothing),
                (Resubmit(TABLE_FORWARD),),
                cookie=SHARED,
            )
        )
        emit: list[Action] = []
        if labelled:
            emit.append(Resubmit(TABLE_ETHCLASS))
            out += [
                FlowRule(
                    TABLE_ETHCLASS,
                    PRIO_ETHCLASS,
                    Match(eth_type=ethertype),
                    (LoadReg(REG_ETHCLASS, ETHCLASS_KNOWN | tc, ETHCLASS_KNOWN | 0x7),),
                    cookie=SHARED,
                )
                for tc, ethertype in enumerate(ETHERTYPE_CLASSES)
            ]
        group = None
        if used:
            emit.append(ToGroup(GROUP_COPY))
            buckets = tuple(
                Bucket((LoadReg(REG_SLOT, slot), Resubmit(TABLE_COPY))) for slot in used
            )
            group = GroupRule(GROUP_COPY, GroupType.ALL, buckets)
        emit.append(Resubmit(TABLE_FORWARD))
        out.append(FlowRule(TABLE_EMIT, PRIO_EMIT, Match(), tuple(emit), cookie=SHARED))
        return out, group
