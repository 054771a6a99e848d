"""Neutral OpenFlow 1.3 rules: what the compiler produces and the reconciler compares.

No os-ken here: the codec (vtap.ofchannel.codec) translates these to and from wire messages,
so the compiler and its tests stay pure and fast. Everything vtap installs is expressible
here, and the codec decodes every one of these back (a rule read from a switch compares equal
to the rule that was sent), so reconcile after a restart sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class ReservedPort(IntEnum):
    """OpenFlow 1.3 reserved port numbers (spec values)."""

    IN_PORT = 0xFFFFFFF8
    TABLE = 0xFFFFFFF9
    NORMAL = 0xFFFFFFFA
    FLOOD = 0xFFFFFFFB
    ALL = 0xFFFFFFFC
    CONTROLLER = 0xFFFFFFFD
    LOCAL = 0xFFFFFFFE
    ANY = 0xFFFFFFFF


OFPVID_PRESENT = 0x1000
NO_BUFFER = 0xFFFFFFFF
CONTROLLER_MAX_LEN = 0xFFFF  # OFPCML_NO_BUFFER: send the whole packet to the controller
REG_FULL = 0xFFFFFFFF  # mask of a whole 32-bit register
METADATA_FULL = 0xFFFFFFFFFFFFFFFF
N_REGS = 16  # Nicira registers reg0..reg15

# A masked match on one register: (register number, value, mask), value within mask.
RegMatch = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Match:
    """Match fields by their OpenFlow names. None means wildcard.

    `vlan_vid` is the wire value: 0x1000 | VID for a tagged frame, 0 for "no tag".
    `metadata` is (value, mask). `regs` holds masked matches on Nicira registers, one per
    register, sorted by register number (use `with_regs` to build it).
    """

    in_port: int | None = None
    eth_dst: str | None = None
    eth_src: str | None = None
    eth_type: int | None = None
    vlan_vid: int | None = None
    ip_proto: int | None = None
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    tcp_src: int | None = None
    tcp_dst: int | None = None
    udp_src: int | None = None
    udp_dst: int | None = None
    mpls_label: int | None = None
    mpls_tc: int | None = None
    metadata: tuple[int, int] | None = None
    regs: tuple[RegMatch, ...] = ()
    # Computed once: matches are dict keys everywhere (compiler, diffs, the switches' mirrors),
    # and hashing sixteen fields on every lookup cost 80 ms per 8,000-entry switch commit.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f) for f in _FIELDS)))

    def __hash__(self) -> int:
        return self._hash

    def items(self) -> list[tuple[str, object]]:
        """The set fields in declaration order (registers as reg<N>: (value, mask))."""
        out: list[tuple[str, object]] = []
        for name in _SCALAR_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out.append((name, value))
        out += [(f"reg{n}", (value, mask)) for n, value, mask in self.regs]
        return out


_FIELDS = tuple(f for f in Match.__dataclass_fields__ if f != "_hash")
_SCALAR_FIELDS = tuple(f for f in _FIELDS if f != "regs")


def with_regs(bits: dict[int, tuple[int, int]]) -> tuple[RegMatch, ...]:
    """A register match tuple from {register: (value, mask)}, normalised (sorted, no empty
    masks, value within mask) so that equal conditions compare equal."""
    out: list[RegMatch] = []
    for reg in sorted(bits):
        value, mask = bits[reg]
        if not 0 <= reg < N_REGS:
            raise ValueError(f"no register reg{reg}")
        if mask:
            out.append((reg, value & mask, mask & REG_FULL))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Output:
    port: int
    max_len: int = CONTROLLER_MAX_LEN


@dataclass(frozen=True, slots=True)
class SetField:
    field: str
    value: int | str


@dataclass(frozen=True, slots=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True, slots=True)
class PopVlan:
    pass


@dataclass(frozen=True, slots=True)
class PushMpls:
    """Push an MPLS label stack entry. Open vSwitch puts it after any VLAN tags, so a copy's
    own VLAN tags stay where they were."""

    ethertype: int = 0x8847


@dataclass(frozen=True, slots=True)
class PopMpls:
    """Pop the outermost MPLS entry; `ethertype` is what the payload is (MPLS cannot tell)."""

    ethertype: int


@dataclass(frozen=True, slots=True)
class LoadReg:
    """Write `value` into the bits of register `reg` selected by `mask` (Nicira reg_load2):
    other bits keep their value, which is what lets several tables each set their own bits."""

    reg: int
    value: int
    mask: int = REG_FULL


@dataclass(frozen=True, slots=True)
class MoveBits:
    """Copy `n_bits` from field `src` (from bit `src_ofs`) to field `dst` (Nicira reg_move)."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True, slots=True)
class ToGroup:
    group_id: int


@dataclass(frozen=True, slots=True)
class Resubmit:
    """Run the packet through `table_id` now, then carry on (Nicira `resubmit(,table)`).

    Unlike goto-table it is an action: it works inside a group bucket, it may go to a lower
    table, and several in a row visit several tables; a table with no matching entry does
    nothing. What the visited entries change (registers) stays changed afterwards.
    """

    table_id: int


Action = (
    Output | SetField | PushVlan | PopVlan | PushMpls | PopMpls | LoadReg | MoveBits | ToGroup
) | Resubmit

EntryKey = tuple[int, int, Match]  # (table_id, priority, match): a flow entry's identity


@dataclass(frozen=True, slots=True)
class FlowRule:
    """One flow entry. Its identity in a switch is (table_id, priority, match).

    `write_metadata` is the write-metadata instruction as (value, mask); `goto_table` the
    goto-table instruction. Apply-actions run first, then metadata is written, then goto.
    """

    table_id: int
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto_table: int | None = None
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    send_flow_rem: bool = False
    write_metadata: tuple[int, int] | None = None

    @property
    def key(self) -> EntryKey:
        return (self.table_id, self.priority, self.match)

    def same_treatment(self, other: FlowRule) -> bool:
        """True when `other` would behave as this rule does (what a reconciler keeps)."""
        return (
            self.actions == other.actions
            and self.goto_table == other.goto_table
            and self.write_metadata == other.write_metadata
            and self.cookie == other.cookie
            and self.idle_timeout == other.idle_timeout
            and self.hard_timeout == other.hard_timeout
        )


class GroupType(IntEnum):
    ALL = 0
    SELECT = 1
    INDIRECT = 2
    FF = 3


@dataclass(frozen=True, slots=True)
class Bucket:
    actions: tuple[Action, ...]
    weight: int = 0
    watch_port: int = ReservedPort.ANY
    watch_group: int = ReservedPort.ANY


@dataclass(frozen=True, slots=True)
class GroupRule:
    group_id: int
    group_type: GroupType
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True, slots=True)
class FlowStat:
    """A flow entry as read back from a switch, with its counters."""

    rule: FlowRule
    packet_count: int
    byte_count: int
    duration_sec: float
