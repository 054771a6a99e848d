"""Neutral OpenFlow 1.3 rules: what the compiler produces and the reconciler compares.

No os-ken here: the codec (vtap.ofchannel.codec) translates these to and from wire messages,
so the compiler and its tests stay pure and fast.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
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


@dataclass(frozen=True, slots=True)
class Match:
    """OXM match fields by their OpenFlow names. None means wildcard.

    `vlan_vid` is the wire value: 0x1000 | VID for a tagged frame, 0 for "no tag".
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

    def items(self) -> list[tuple[str, int | str]]:
        """The set fields in declaration order (the order OXM prerequisites need)."""
        out: list[tuple[str, int | str]] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out.append((f.name, value))
        return out


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
class ToGroup:
    group_id: int


@dataclass(frozen=True, slots=True)
class Resubmit:
    """Run the packet through `table_id` now, then carry on (Nicira `resubmit(,table)`).

    Unlike goto-table it is an action, so it works inside a group bucket: a TAP group's
    production bucket resubmits to forwarding while another bucket carries the copy.
    """

    table_id: int


Action = Output | SetField | PushVlan | PopVlan | ToGroup | Resubmit


@dataclass(frozen=True, slots=True)
class FlowRule:
    """One flow entry. Its identity in a switch is (table_id, priority, match)."""

    table_id: int
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto_table: int | None = None
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    send_flow_rem: bool = False

    @property
    def key(self) -> tuple[int, int, Match]:
        return (self.table_id, self.priority, self.match)

    def same_treatment(self, other: FlowRule) -> bool:
        """True when `other` would behave as this rule does (what a reconciler keeps)."""
        return (
            self.actions == other.actions
            and self.goto_table == other.goto_table
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
