"""A model of an OpenFlow 1.3 fabric: walk a packet through rules and see where copies land.
`vtap trace` walks the controller's intent through it; the tests walk compiled rule sets.

In the spirit of faucet's clib/fakeoftable.py (no code taken): each switch is a set of tables
of `FlowRule`s and a set of `GroupRule`s; a packet enters a switch port, table 0 is looked up by
priority with exact-match semantics, actions are applied in order, and whatever leaves by a
fabric port enters the switch at the other end of the link (from the Topology). Whatever leaves
by any other port is a delivery to the host there.

OpenFlow details modelled because the TAP design depends on them:
* output to the ingress port is dropped unless it is written as IN_PORT;
* an ALL group runs every bucket on its own copy of the packet and of its registers;
* `Resubmit(table)` looks the packet up in that table and runs the entry there (an action, so it
  works inside a bucket); a miss there does nothing, and what the entry changed (registers)
  stays changed; `goto_table` continues the pipeline after the apply-actions (forward only);
* registers reg0..reg15 and metadata start at 0 on every switch, `LoadReg` writes the bits of
  its mask, `write_metadata` the bits of its mask, `MoveBits` copies register bits into a field;
* `vlan_vid` matches the outermost tag (0x1000 | VID, whatever its TPID; 0 = untagged),
  `eth_type` is the type after all tags (OVS with vlan-limit 0), push_vlan copies the VID of
  the tag it covers (OF 1.3), set_field vlan_vid changes the outermost tag;
* push_mpls goes after the VLAN tags (as Open vSwitch does), makes the packet MPLS (no IP
  field matches any more) and remembers what it covered; pop_mpls sets the type it is told,
  so a wrong one shows as a changed packet;
* two entries of equal, highest priority that both match are an error here (OpenFlow leaves
  the choice undefined), so an ambiguous rule set fails the test instead of passing by luck.

Every entry a packet hits is recorded (`WalkResult.hits`): the trace names rules by cookie.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from vtap.domain.network import PortRef
from vtap.openflow.rules import (
    OFPVID_PRESENT,
    Action,
    FlowRule,
    GroupRule,
    GroupType,
    LoadReg,
    Match,
    MoveBits,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    ReservedPort,
    Resubmit,
    SetField,
    ToGroup,
)
from vtap.topology import Topology

MAX_HOPS = 32
_TCP, _UDP = 6, 17


@dataclass(frozen=True, slots=True)
class Packet:
    """The headers that matter. `vlans`: (tpid, vid) pairs, outermost first."""

    eth_src: str
    eth_dst: str
    eth_type: int = 0x0800
    vlans: tuple[tuple[int, int], ...] = ()
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    ip_proto: int | None = None
    src_port: int = 0
    dst_port: int = 0
    mpls: tuple[tuple[int, int, int], ...] = ()  # (label, tc, the type it covers), outermost first


@dataclass(frozen=True, slots=True)
class Regs:
    """A packet's pipeline registers on one switch (never on the wire)."""

    regs: tuple[int, ...] = (0,) * 16
    metadata: int = 0

    def load(self, reg: int, value: int, mask: int) -> Regs:
        regs = list(self.regs)
        regs[reg] = (regs[reg] & ~mask) | (value & mask)
        return replace(self, regs=tuple(regs))


@dataclass(frozen=True, slots=True)
class Delivery:
    port: PortRef
    packet: Packet


@dataclass(frozen=True, slots=True)
class Hit:
    """An entry a packet matched: on which switch, entering by which port, as what packet."""

    dpid: int
    in_port: int
    rule: FlowRule
    packet: Packet


@dataclass(slots=True)
class WalkResult:
    deliveries: list[Delivery] = field(default_factory=list)
    to_controller: list[tuple[int, Packet]] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    entered: list[tuple[PortRef, Packet]] = field(default_factory=list)  # switch by switch
    outputs: list[list[int]] = field(default_factory=list)  # ports each `entered` left by

    def at(self, port: PortRef) -> list[Packet]:
        return [d.packet for d in self.deliveries if d.port == port]


class AmbiguousMatch(AssertionError):
    pass


class SimError(AssertionError):
    pass


def _ip_in(value: str, addr: str) -> bool:
    return ipaddress.IPv4Address(addr) in ipaddress.IPv4Network(value, strict=False)


def matches(m: Match, pkt: Packet, in_port: int, regs: Regs = Regs()) -> bool:
    if m.in_port is not None and m.in_port != in_port:
        return False
    for reg, value, mask in m.regs:
        if regs.regs[reg] & mask != value:
            return False
    if m.metadata is not None and regs.metadata & m.metadata[1] != m.metadata[0]:
        return False
    if m.mpls_label is not None or m.mpls_tc is not None:
        if pkt.eth_type != 0x8847 or not pkt.mpls:
            return False
        label, tc, _ = pkt.mpls[0]
        if m.mpls_label not in (None, label) or m.mpls_tc not in (None, tc):
            return False
    if m.eth_src is not None and m.eth_src != pkt.eth_src:
        return False
    if m.eth_dst is not None and m.eth_dst != pkt.eth_dst:
        return False
    if m.eth_type is not None and m.eth_type != pkt.eth_type:
        return False
    if m.vlan_vid is not None:
        if m.vlan_vid == 0:
            if pkt.vlans:
                return False
        elif not pkt.vlans or (OFPVID_PRESENT | pkt.vlans[0][1]) != m.vlan_vid:
            return False
    ip = pkt.eth_type == 0x0800
    for name, have in (("ipv4_src", pkt.ipv4_src), ("ipv4_dst", pkt.ipv4_dst)):
        want = getattr(m, name)
        if want is not None and (not ip or have is None or not _ip_in(want, have)):
            return False
    if m.ip_proto is not None and (not ip or m.ip_proto != pkt.ip_proto):
        return False
    for proto, src, dst in ((_TCP, m.tcp_src, m.tcp_dst), (_UDP, m.udp_src, m.udp_dst)):
        if src is None and dst is None:
            continue
        if not ip or pkt.ip_proto != proto:
            return False
        if src is not None and src != pkt.src_port:
            return False
        if dst is not None and dst != pkt.dst_port:
            return False
    return True


def _set_field(pkt: Packet, name: str, value: int | str) -> Packet:
    if name in ("mpls_label", "mpls_tc"):
        if pkt.eth_type != 0x8847 or not pkt.mpls:
            raise SimError(f"set_field {name} on a packet without MPLS")
        label, tc, covered = pkt.mpls[0]
        top = (
            (int(value), tc, covered) if name == "mpls_label" else (label, int(value) & 7, covered)
        )
        return replace(pkt, mpls=(top, *pkt.mpls[1:]))
    if name in ("ipv4_src", "ipv4_dst") and pkt.eth_type != 0x0800:
        raise SimError(f"set_field {name} on a non-IPv4 packet")
    if name == "vlan_vid":
        if not pkt.vlans:
            raise SimError("set_field vlan_vid on an untagged packet")
        tpid, _ = pkt.vlans[0]
        return replace(pkt, vlans=((tpid, int(value) & 0x0FFF), *pkt.vlans[1:]))
    if name in ("eth_src", "eth_dst", "ipv4_src", "ipv4_dst"):
        return replace(pkt, **{name: value})
    raise SimError(f"set_field {name} not modelled")


_MPLS = (0x8847, 0x8848)


def check_prerequisites(rule: FlowRule) -> None:
    """What Open vSwitch checks before it accepts a flow (OFPBMC_BAD_PREREQ for the match,
    OFPBAC_MATCH_INCONSISTENT for actions): a field may be matched or set only where the
    match (and the actions before) make the packet of the right type."""
    m = rule.match
    if (m.ipv4_src or m.ipv4_dst or m.ip_proto is not None) and m.eth_type != 0x0800:
        raise SimError(f"BAD_PREREQ (IP field without eth_type 0x0800): {rule}")
    if (m.tcp_src or m.tcp_dst) and m.ip_proto != _TCP:
        raise SimError(f"BAD_PREREQ (TCP port without ip_proto 6): {rule}")
    if (m.udp_src or m.udp_dst) and m.ip_proto != _UDP:
        raise SimError(f"BAD_PREREQ (UDP port without ip_proto 17): {rule}")
    if (m.mpls_label is not None or m.mpls_tc is not None) and m.eth_type not in _MPLS:
        raise SimError(f"BAD_PREREQ (MPLS field without an MPLS eth_type): {rule}")
    dl_type = m.eth_type
    for action in rule.actions:
        match action:
            case SetField(field=name) if name.startswith("ipv4_") and dl_type != 0x0800:
                raise SimError(f"MATCH_INCONSISTENT (set {name} on a non-IPv4 match): {rule}")
            case SetField(field=name) if name.startswith("mpls_") and dl_type not in _MPLS:
                raise SimError(f"MATCH_INCONSISTENT (set {name} without MPLS): {rule}")
            case MoveBits(dst=dst) if dst.startswith("mpls_") and dl_type not in _MPLS:
                raise SimError(f"MATCH_INCONSISTENT (move to {dst} without MPLS): {rule}")
            case PushMpls(ethertype=ethertype):
                dl_type = ethertype
            case PopMpls(ethertype=ethertype):
                if dl_type not in _MPLS:
                    raise SimError(f"MATCH_INCONSISTENT (pop_mpls without MPLS): {rule}")
                dl_type = ethertype


class Switch:
    def __init__(self, dpid: int, flows: Iterable[FlowRule], groups: Iterable[GroupRule]) -> None:
        self.dpid = dpid
        self.tables: dict[int, list[FlowRule]] = {}
        for rule in flows:
            check_prerequisites(rule)
            self.tables.setdefault(rule.table_id, []).append(rule)
        for rules in self.tables.values():
            rules.sort(key=lambda r: -r.priority)
        self.groups = {g.group_id: g for g in groups}

    def lookup(self, table_id: int, pkt: Packet, in_port: int, regs: Regs) -> FlowRule | None:
        best: FlowRule | None = None
        for rule in self.tables.get(table_id, []):
            if best is not None and rule.priority < best.priority:
                break
            if matches(rule.match, pkt, in_port, regs):
                if best is not None:
                    raise AmbiguousMatch(f"{self.dpid:#x} table {table_id}: {best} / {rule}")
                best = rule
        return best


class Network:
    """Switches joined by the topology's links; hosts hang off every other port."""

    def __init__(
        self,
        topology: Topology,
        rules: Mapping[int, tuple[Iterable[FlowRule], Iterable[GroupRule]]],
    ) -> None:
        self.topology = topology
        self.switches = {d: Switch(d, f, g) for d, (f, g) in rules.items()}

    def send(self, pkt: Packet, at: PortRef) -> WalkResult:
        """Inject `pkt` as if a host sent it into port `at`; follow every copy to its end."""
        result = WalkResult()
        queue: list[tuple[PortRef, Packet, int]] = [(at, pkt, 0)]
        while queue:
            where, p, hops = queue.pop(0)
            if hops > MAX_HOPS:
                raise SimError(f"packet loops: {p} at {where}")
            emitted: list[tuple[int, Packet]] = []
            result.entered.append((where, p))
            sw = self.switches[where.dpid]
            self._table(sw, 0, p, Regs(), where.port_no, emitted, result, 0, resubmit=False)
            result.outputs.append(sorted({port for port, _ in emitted}))
            for port, out in emitted:
                ref = PortRef(where.dpid, port)
                peer = self.topology.peer(ref)
                if peer is None:
                    result.deliveries.append(Delivery(ref, out))
                else:
                    queue.append((peer, out, hops + 1))
        return result

    def _table(
        self,
        sw: Switch,
        table_id: int,
        pkt: Packet,
        regs: Regs,
        in_port: int,
        emitted: list[tuple[int, Packet]],
        result: WalkResult,
        depth: int,
        *,
        resubmit: bool,
    ) -> tuple[Packet, Regs]:
        if depth > 16:
            raise SimError("resubmit/goto recursion too deep")
        rule = sw.lookup(table_id, pkt, in_port, regs)
        if rule is not None:
            result.hits.append(Hit(sw.dpid, in_port, rule, pkt))
        if rule is None:
            if not resubmit:
                result.drops.append(f"{sw.dpid:#x}: table {table_id} miss")
            return pkt, regs
        if not rule.actions and rule.goto_table is None and rule.write_metadata is None:
            if not resubmit:
                result.drops.append(f"{sw.dpid:#x}: dropped by {rule.match}")
            return pkt, regs
        pkt, regs = self._apply(sw, rule.actions, pkt, regs, in_port, emitted, result, depth)
        if rule.write_metadata is not None:
            value, mask = rule.write_metadata
            regs = replace(regs, metadata=(regs.metadata & ~mask) | (value & mask))
        if rule.goto_table is not None:
            if rule.goto_table <= table_id:
                raise SimError("goto_table must go forward")
            return self._table(
                sw,
                rule.goto_table,
                pkt,
                regs,
                in_port,
                emitted,
                result,
                depth + 1,
                resubmit=resubmit,
            )
        return pkt, regs

    def _apply(
        self,
        sw: Switch,
        actions: Iterable[Action],
        pkt: Packet,
        regs: Regs,
        in_port: int,
        emitted: list[tuple[int, Packet]],
        result: WalkResult,
        depth: int,
    ) -> tuple[Packet, Regs]:
        for action in actions:
            match action:
                case Output(port=port):
                    if port == ReservedPort.IN_PORT:
                        emitted.append((in_port, pkt))
                    elif port == ReservedPort.CONTROLLER:
                        result.to_controller.append((sw.dpid, pkt))
                    elif port == in_port:
                        result.drops.append(f"{sw.dpid:#x}: output to ingress port {port}")
                    elif port > 0xFFFFFF00:
                        raise SimError(f"reserved port {port:#x} not modelled")
                    else:
                        emitted.append((port, pkt))
                case SetField(field=name, value=value):
                    if name.startswith("reg"):
                        raise SimError("registers are written with LoadReg")
                    pkt = _set_field(pkt, name, value)
                case LoadReg(reg=reg, value=value, mask=mask):
                    regs = regs.load(reg, value, mask)
                case MoveBits(src=src, dst=dst, n_bits=n, src_ofs=so, dst_ofs=do):
                    if not src.startswith("reg"):
                        raise SimError(f"move from {src} not modelled")
                    bits = (regs.regs[int(src[3:])] >> so) & ((1 << n) - 1)
                    if dst.startswith("reg"):
                        regs = regs.load(int(dst[3:]), bits << do, ((1 << n) - 1) << do)
                    elif dst == "mpls_tc" and do == 0 and n <= 3:
                        pkt = _set_field(pkt, "mpls_tc", bits)
                    else:
                        raise SimError(f"move to {dst} not modelled")
                case PushVlan(ethertype=tpid):
                    vid = pkt.vlans[0][1] if pkt.vlans else 0
                    pkt = replace(pkt, vlans=((tpid, vid), *pkt.vlans))
                case PopVlan():
                    if not pkt.vlans:
                        raise SimError("pop_vlan on an untagged packet")
                    pkt = replace(pkt, vlans=pkt.vlans[1:])
                case PushMpls(ethertype=ethertype):
                    if ethertype != 0x8847:
                        raise SimError("only MPLS unicast is modelled")
                    # OVS copies the IP TTL (none modelled); label and TC start at 0
                    pkt = replace(pkt, eth_type=0x8847, mpls=((0, 0, pkt.eth_type), *pkt.mpls))
                case PopMpls(ethertype=ethertype):
                    if pkt.eth_type != 0x8847 or not pkt.mpls:
                        raise SimError("pop_mpls on a packet without MPLS")
                    rest = pkt.mpls[1:]
                    pkt = replace(pkt, eth_type=0x8847 if rest else ethertype, mpls=rest)
                case ToGroup(group_id=gid):
                    group = sw.groups.get(gid)
                    if group is None:
                        raise SimError(f"{sw.dpid:#x}: no group {gid:#x}")
                    if group.group_type != GroupType.ALL:
                        raise SimError("only ALL groups are modelled")
                    for bucket in group.buckets:
                        self._apply(sw, bucket.actions, pkt, regs, in_port, emitted, result, depth)
                case Resubmit(table_id=table_id):
                    pkt, regs = self._table(
                        sw, table_id, pkt, regs, in_port, emitted, result, depth + 1, resubmit=True
                    )
                case _:
                    raise SimError(f"action {action} not modelled")
        return pkt, regs
