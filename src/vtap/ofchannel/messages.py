"""Neutral OpenFlow messages: what a switch sends us (decoded by the codec) and what vtap
sends in bulk (encoded by the codec).

The session and the controller speak these, never os-ken classes, so only the codec knows the
wire library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from vtap.domain.network import Port
from vtap.openflow.rules import FlowRule, FlowStat, GroupRule

# ---------------------------------------------------------------- inbound


@dataclass(frozen=True, slots=True)
class Hello:
    version: int
    versions: frozenset[int]


@dataclass(frozen=True, slots=True)
class Error:
    """An OpenFlow error. For an experimenter error (type 0xffff, e.g. a failed ONF bundle)
    `code` is its exp_type and `experimenter` the experimenter id."""

    type: int
    code: int
    type_name: str
    code_name: str
    data: bytes = b""
    experimenter: int = 0

    def text(self) -> str:
        return f"{self.type_name}/{self.code_name}"


@dataclass(frozen=True, slots=True)
class EchoRequest:
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class EchoReply:
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class FeaturesReply:
    dpid: int
    n_tables: int
    n_buffers: int


@dataclass(frozen=True, slots=True)
class BarrierReply:
    pass


class BundleReplyKind(Enum):
    """Which ONF bundle control request a reply answers (the ONF_BCT_*_REPLY values)."""

    OPEN = 1
    CLOSE = 3
    COMMIT = 5
    DISCARD = 7


@dataclass(frozen=True, slots=True)
class BundleReply:
    bundle_id: int
    kind: BundleReplyKind


@dataclass(frozen=True, slots=True)
class PacketIn:
    in_port: int
    reason: int
    table_id: int
    cookie: int
    data: bytes


class PortReason(Enum):
    ADD = 0
    DELETE = 1
    MODIFY = 2


@dataclass(frozen=True, slots=True)
class PortStatus:
    reason: PortReason
    port: Port


@dataclass(frozen=True, slots=True)
class FlowRemoved:
    rule: FlowRule
    reason: int
    packet_count: int
    byte_count: int
    duration_sec: float


@dataclass(frozen=True, slots=True)
class PortCounters:
    port_no: int
    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int
    rx_dropped: int
    tx_dropped: int


@dataclass(frozen=True, slots=True)
class GroupCounters:
    group_id: int
    packet_count: int
    byte_count: int
    bucket_packets: tuple[int, ...]
    bucket_bytes: tuple[int, ...]


class MultipartKind(Enum):
    FLOW = "flow"
    GROUP = "group"
    GROUP_DESC = "group_desc"
    PORT_STATS = "port_stats"
    PORT_DESC = "port_desc"
    AGGREGATE = "aggregate"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class AggregateCounts:
    """How many flow entries matched an aggregate request, and their counters."""

    flows: int
    packets: int
    bytes: int


MultipartItem = FlowStat | GroupRule | Port | PortCounters | GroupCounters | AggregateCounts


@dataclass(frozen=True, slots=True)
class MultipartReply:
    kind: MultipartKind
    more: bool
    body: tuple[MultipartItem, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Unhandled:
    msg_type: int


Inbound = (
    Hello
    | Error
    | EchoRequest
    | EchoReply
    | FeaturesReply
    | BarrierReply
    | BundleReply
    | PacketIn
    | PortStatus
    | FlowRemoved
    | MultipartReply
    | Unhandled
)


# ---------------------------------------------------------------- outbound
# What vtap sends in bulk, as data: `codec.encode` packs these directly (vtap.ofchannel.wire),
# about ten times faster than building and serializing os-ken objects; `codec.to_ofp` gives the
# equivalent os-ken message.


@dataclass(frozen=True, slots=True)
class FlowAdd:
    rule: FlowRule


@dataclass(frozen=True, slots=True)
class FlowDeleteStrict:
    """Delete exactly this entry, and only if it still carries the rule's cookie."""

    rule: FlowRule


@dataclass(frozen=True, slots=True)
class GroupAdd:
    group: GroupRule


@dataclass(frozen=True, slots=True)
class GroupModify:
    group: GroupRule


@dataclass(frozen=True, slots=True)
class GroupDelete:
    group_id: int


@dataclass(frozen=True, slots=True)
class BundleAdd:
    """`message` (an outbound message above or an os-ken message) added to an ONF bundle.
    It is sent with the bundle-add's xid, so errors for it name that xid."""

    bundle_id: int
    message: object


Outbound = FlowAdd | FlowDeleteStrict | GroupAdd | GroupModify | GroupDelete | BundleAdd
