"""OpenFlow 1.3 wire codec: neutral rules and messages <-> bytes.

This is the only module that imports os-ken, and it uses nothing of it but the OpenFlow 1.3
message classes. Everything it returns is a neutral type from `vtap.openflow.rules` or
`vtap.ofchannel.messages`, so the wire library can be replaced without touching the rest.
What vtap sends in bulk (flow and group mods, bundle-adds) is built as neutral outbound
messages and packed by `vtap.ofchannel.wire` without os-ken; `to_ofp` gives os-ken's
equivalent, the reference those bytes are tested against.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any

from os_ken.ofproto import ofproto_common, ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from vtap.domain.network import Port
from vtap.ofchannel import messages as m
from vtap.ofchannel import validate, wire
from vtap.openflow.diff import ChangeSet
from vtap.openflow.rules import (
    METADATA_FULL,
    N_REGS,
    NO_BUFFER,
    REG_FULL,
    Action,
    Bucket,
    FlowRule,
    FlowStat,
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
    with_regs,
)

OFP_VERSION = ofp.OFP_VERSION
HEADER_LEN = 8
_HEADER = struct.Struct("!BBHI")


# os-ken logs a hex dump with a traceback for each message it fails to parse: a switch sending
# garbage would flood the log. decode() raises CodecError with a one-line reason instead.
logging.getLogger("os_ken.ofproto.ofproto_parser").setLevel(logging.CRITICAL)


class CodecError(Exception):
    """A message we cannot decode or a rule we cannot encode."""


class _Datapath:
    """The little os-ken's message classes want from a datapath: the protocol modules."""

    ofproto = ofp
    ofproto_parser = parser
    id = 0


_DP = _Datapath()
_NX_IN_PORT = 0xFFF8  # Nicira actions use OpenFlow 1.0 port numbers: OFPP_IN_PORT
BUNDLE_FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
assert BUNDLE_FLAGS == wire.BUNDLE_FLAGS


def codec_parser() -> object:
    """The os-ken OpenFlow 1.3 parser module, for tests that build switch-side messages."""
    return parser


# ---------------------------------------------------------------- framing


def header(buf: bytes) -> tuple[int, int, int, int]:
    """(version, type, length, xid) of the 8-byte OpenFlow header."""
    if len(buf) < HEADER_LEN:
        raise CodecError("short OpenFlow header")
    return _HEADER.unpack_from(buf)


def encode(msg: object, xid: int) -> bytes:
    """The bytes of a neutral outbound message (packed by `wire`) or of an os-ken message
    (which takes its xid here, so each os-ken object is encoded once)."""
    try:
        if type(msg) is m.BundleAdd:
            return wire.bundle_add(msg.bundle_id, encode(msg.message, xid), xid)
        data = wire.encode(msg, xid)
    except (wire.WireError, struct.error) as exc:
        raise CodecError(f"cannot encode {type(msg).__name__}: {exc}") from exc
    if data is not None:
        return data
    msg.set_xid(xid)  # type: ignore[attr-defined]
    msg.serialize()  # type: ignore[attr-defined]
    return bytes(msg.buf)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- match / actions


@lru_cache(maxsize=4096)
def _ipv4_value(value: str) -> str | tuple[str, str]:
    if "/" not in value:
        return value
    net = ipaddress.IPv4Network(value, strict=False)
    return (str(net.network_address), str(net.netmask))


def _ipv4_text(value: object) -> str:
    if isinstance(value, tuple):
        addr, mask = value
        try:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        except ValueError as exc:  # a non-contiguous mask: not a prefix vtap sends
            raise CodecError(f"IPv4 mask {mask} is not supported by vtap") from exc
        return f"{addr}/{prefix}"
    return str(value)


# Match fields in the order os-ken's OFPMatch(**kwargs) sorts them (by OXM field number);
# `regs` last in the key. Registers (Nicira NXM_1) sort before every OpenFlow basic field.
_REG_NAMES = tuple(f"reg{n}" for n in range(N_REGS))
_REG_NUMBERS = {name: n for n, name in enumerate(_REG_NAMES)}
_OXM_ORDER = tuple(
    sorted(
        (f for f in Match.__dataclass_fields__ if f not in ("regs", "_hash")),
        key=ofp.oxm_from_user_header,
    )
)
_OXM_VALUES = attrgetter(*_OXM_ORDER, "regs")
_IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst"})
assert max(map(ofp.oxm_from_user_header, _REG_NAMES)) < ofp.oxm_from_user_header(_OXM_ORDER[0])

# os-ken's bytes and unpadded length per match (keyed by its field values), least recently used
# first. Bounded near the distinct matches of a 1,000-policy fabric (12,384 on 4 spines x 8 leaves);
# an entry is about 400 bytes.
_MATCH_WIRE: OrderedDict[tuple[object, ...], tuple[bytes, int]] = OrderedDict()
_MATCH_WIRE_SIZE = 16384


def to_ofp_match(match: Match) -> parser.OFPMatch:
    """The match as os-ken's OFPMatch (see `_Match`)."""
    return _Match(match)


class _Match(parser.OFPMatch):
    """An OFPMatch built cheaply, whose bytes os-ken writes once per distinct match.

    `OFPMatch(**kwargs)` converts every field three times (normalise, to wire, back to user
    form) before serialize converts it once more; `_ordered_fields` in os-ken's user form and
    OXM order skips those three. Serialize then keeps os-ken's bytes: rules are re-sent with
    matches encoded before (a delete after its add, a rule replaced at another priority, a
    switch resynced), and an equal Match always encodes to the same bytes.
    (tests/unit/test_codec_encoding.py checks both paths against `OFPMatch(**kwargs)`.)
    """

    def __init__(self, match: Match) -> None:
        values = _OXM_VALUES(match)  # all fields, so equal exactly when the matches are
        # A full mask goes as an exact match: that is how Open vSwitch reports it back.
        fields: list[tuple[str, object]] = [
            (_REG_NAMES[reg], value if mask == REG_FULL else (value & mask, mask))
            for reg, value, mask in match.regs
        ]
        for name, value in zip(_OXM_ORDER, values[:-1], strict=True):
            if value is None:
                continue
            if name in _IPV4_FIELDS:
                value = _ipv4_value(str(value))
            elif name == "metadata":
                meta, mask = value
                value = meta if mask == METADATA_FULL else (meta & mask, mask)
            fields.append((name, value))
        super().__init__(_ordered_fields=fields)
        self._key = values

    def serialize(self, buf: bytearray, offset: int) -> int:
        cached = _MATCH_WIRE.get(self._key)
        if cached is None:
            size = super().serialize(buf, offset)
            _MATCH_WIRE[self._key] = (bytes(buf[offset : offset + size]), self.length)
            if len(_MATCH_WIRE) > _MATCH_WIRE_SIZE:
                _MATCH_WIRE.popitem(last=False)
            return size
        _MATCH_WIRE.move_to_end(self._key)
        data, self.length = cached
        if len(buf) < offset:  # as os-ken's msg_pack_into does
            buf += bytes(offset - len(buf))
        buf[offset : offset + len(data)] = data
        return len(data)


_SCALAR_FIELDS = frozenset(_OXM_ORDER)
_MOVE_FIELDS = _SCALAR_FIELDS | set(_REG_NAMES)  # fields MoveBits may name


def from_ofp_match(match: parser.OFPMatch) -> Match:
    """The neutral match; exact registers and metadata get the full mask (as `_Match` sends
    those exact)."""
    kwargs: dict[str, object] = {}
    regs: dict[int, tuple[int, int]] = {}
    for name, value in match.items():
        if name in _REG_NUMBERS:
            regs[_REG_NUMBERS[name]] = value if isinstance(value, tuple) else (value, REG_FULL)
        elif name == "metadata":
            kwargs[name] = value if isinstance(value, tuple) else (value, METADATA_FULL)
        elif name not in _SCALAR_FIELDS:
            raise CodecError(f"match field {name} is not supported by vtap")
        elif name in _IPV4_FIELDS:
            kwargs[name] = _ipv4_text(value)
        elif isinstance(value, tuple):
            raise CodecError(f"masked {name} is not supported by vtap")
        else:
            kwargs[name] = value
    if regs:
        kwargs["regs"] = with_regs(regs)
    return Match(**kwargs)  # type: ignore[arg-type]


def to_ofp_actions(actions: Iterable[Action]) -> list[object]:
    out: list[object] = []
    for action in actions:
        match action:
            case Output(port=port, max_len=max_len):
                out.append(parser.OFPActionOutput(port, max_len))
            case SetField(field=name, value=value):
                if name in _REG_NUMBERS:  # decoded as LoadReg: would never compare equal
                    raise CodecError(f"set_field {name}: use LoadReg for registers")
                out.append(parser.OFPActionSetField(**{name: value}))
            case PushVlan(ethertype=ethertype):
                out.append(parser.OFPActionPushVlan(ethertype))
            case PopVlan():
                out.append(parser.OFPActionPopVlan())
            case PushMpls(ethertype=ethertype):
                out.append(parser.OFPActionPushMpls(ethertype))
            case PopMpls(ethertype=ethertype):
                out.append(parser.OFPActionPopMpls(ethertype))
            case LoadReg(reg=reg, value=value, mask=mask):
                # Unmasked when full: Open vSwitch reports a full-mask load back that way.
                mask_ = None if mask == REG_FULL else mask
                out.append(parser.NXActionRegLoad2(dst=_REG_NAMES[reg], value=value, mask=mask_))
            case MoveBits(src=src, dst=dst, n_bits=n_bits, src_ofs=src_ofs, dst_ofs=dst_ofs):
                out.append(
                    parser.NXActionRegMove(
                        src_field=src,
                        dst_field=dst,
                        n_bits=n_bits,
                        src_ofs=src_ofs,
                        dst_ofs=dst_ofs,
                    )
                )
            case ToGroup(group_id=group_id):
                out.append(parser.OFPActionGroup(group_id))
            case Resubmit(table_id=table_id):
                # in_port OFPP_IN_PORT (16-bit 0xfff8): look up with the packet's own in_port.
                out.append(parser.NXActionResubmitTable(in_port=_NX_IN_PORT, table_id=table_id))
            case _:
                raise CodecError(f"cannot encode action {action!r}")
    return out


def _load_reg(name: object, value: object, mask: object) -> LoadReg:
    """A register load however it came back: set_field, reg_load2 or (older) reg_load."""
    if name not in _REG_NUMBERS or not isinstance(value, int) or not isinstance(mask, int):
        raise CodecError(f"load into {name} is not supported by vtap")
    return LoadReg(_REG_NUMBERS[name], value, mask)  # type: ignore[index]


def from_ofp_actions(actions: Iterable[object]) -> tuple[Action, ...]:
    out: list[Action] = []
    for action in actions:
        if isinstance(action, parser.OFPActionOutput):
            # max_len only means something for CONTROLLER; normalise so read-back compares equal.
            max_len = action.max_len if action.port == ReservedPort.CONTROLLER else 0xFFFF
            out.append(Output(action.port, max_len))
        elif isinstance(action, parser.OFPActionSetField):
            key, value = action.key, action.value
            if key in _REG_NUMBERS:
                out.append(
                    _load_reg(key, *(value if isinstance(value, tuple) else (value, REG_FULL)))
                )
            elif isinstance(value, tuple):
                raise CodecError(f"masked set_field {key} is not supported by vtap")
            else:
                out.append(SetField(key, value))
        elif isinstance(action, parser.NXActionRegLoad2):
            mask = REG_FULL if action.mask is None else action.mask
            out.append(_load_reg(action.dst, action.value, mask))
        elif isinstance(action, parser.NXActionRegLoad):
            ofs, n_bits = action.ofs_nbits >> 6, (action.ofs_nbits & 0x3F) + 1
            mask = ((1 << n_bits) - 1) << ofs
            out.append(_load_reg(action.dst, (action.value << ofs) & mask, mask))
        elif isinstance(action, parser.NXActionRegMove):
            if not {action.src_field, action.dst_field} <= _MOVE_FIELDS:
                raise CodecError(f"move {action.src_field}->{action.dst_field} is not vtap's")
            out.append(
                MoveBits(
                    action.src_field,
                    action.dst_field,
                    action.n_bits,
                    action.src_ofs,
                    action.dst_ofs,
                )
            )
        elif isinstance(action, parser.OFPActionPushVlan):
            out.append(PushVlan(action.ethertype))
        elif isinstance(action, parser.OFPActionPopVlan):
            out.append(PopVlan())
        elif isinstance(action, parser.OFPActionPushMpls):
            out.append(PushMpls(action.ethertype))
        elif isinstance(action, parser.OFPActionPopMpls):
            out.append(PopMpls(action.ethertype))
        elif isinstance(action, parser.OFPActionGroup):
            out.append(ToGroup(action.group_id))
        elif isinstance(action, parser.NXActionResubmitTable) and action.in_port == _NX_IN_PORT:
            out.append(Resubmit(action.table_id))
        else:
            raise CodecError(f"action {type(action).__name__} is not supported by vtap")
    return tuple(out)


# Flows share few treatments and groups few buckets (a 1,000-policy install: 12,680 flows with
# 1,201 distinct instruction lists; 2,376 buckets, 71 distinct), so their os-ken objects are built
# once and shared by every message. That is safe: os-ken's serialize of them only (re)sets their
# own length fields, always to the same values.
_SHARED = 4096


@lru_cache(maxsize=_SHARED)
def _instructions(
    actions: tuple[Action, ...],
    goto_table: int | None,
    write_metadata: tuple[int, int] | None = None,
) -> tuple[object, ...]:
    """Instructions for one treatment, shared by every flow that has it (see `_SHARED`), in
    the order the switch runs them: apply-actions, write-metadata, goto-table."""
    inst: list[object] = []
    if actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, to_ofp_actions(actions)))
    if write_metadata is not None:
        inst.append(parser.OFPInstructionWriteMetadata(*write_metadata))
    if goto_table is not None:
        inst.append(parser.OFPInstructionGotoTable(goto_table))
    return tuple(inst)


_Treatment = tuple[tuple[Action, ...], int | None, tuple[int, int] | None]


def _from_instructions(instructions: Iterable[object]) -> _Treatment:
    """(actions, goto_table, write_metadata) of a flow's instructions."""
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    metadata: tuple[int, int] | None = None
    for inst in instructions:
        if isinstance(inst, parser.OFPInstructionActions):
            if inst.type != ofp.OFPIT_APPLY_ACTIONS:
                raise CodecError("only apply-actions instructions are supported by vtap")
            actions = from_ofp_actions(inst.actions)
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = inst.table_id
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            metadata = (inst.metadata, inst.metadata_mask)
        else:
            raise CodecError(f"instruction {type(inst).__name__} is not supported by vtap")
    return actions, goto, metadata


# ---------------------------------------------------------------- outbound builders


def hello() -> parser.OFPHello:
    return parser.OFPHello(_DP, elements=[parser.OFPHelloElemVersionBitmap([OFP_VERSION])])


def features_request() -> object:
    return parser.OFPFeaturesRequest(_DP)


def set_config(miss_send_len: int = 0xFFFF) -> object:
    return parser.OFPSetConfig(_DP, ofp.OFPC_FRAG_NORMAL, miss_send_len)


def echo_request(data: bytes = b"") -> object:
    return parser.OFPEchoRequest(_DP, data)


def echo_reply(data: bytes = b"") -> object:
    return parser.OFPEchoReply(_DP, data)


def barrier_request() -> object:
    return parser.OFPBarrierRequest(_DP)


def hello_failed(text: str) -> object:
    return parser.OFPErrorMsg(
        _DP, type_=ofp.OFPET_HELLO_FAILED, code=ofp.OFPHFC_INCOMPATIBLE, data=text.encode()
    )


def flow_add(rule: FlowRule) -> m.FlowAdd:
    return m.FlowAdd(rule)


def flow_delete_strict(rule: FlowRule) -> m.FlowDeleteStrict:
    """Delete exactly this entry, and only if it still carries our cookie."""
    return m.FlowDeleteStrict(rule)


def group_add(group: GroupRule) -> m.GroupAdd:
    return m.GroupAdd(group)


def group_modify(group: GroupRule) -> m.GroupModify:
    return m.GroupModify(group)


def group_delete(group_id: int) -> m.GroupDelete:
    return m.GroupDelete(group_id)


def flow_delete(
    cookie: int,
    cookie_mask: int,
    table_id: int = ofp.OFPTT_ALL,
    match: Match | None = None,
    out_port: int = ofp.OFPP_ANY,
) -> object:
    """Delete every entry whose cookie matches under the mask (and the optional filters)."""
    return parser.OFPFlowMod(
        _DP,
        cookie=cookie,
        cookie_mask=cookie_mask,
        table_id=table_id,
        command=ofp.OFPFC_DELETE,
        buffer_id=NO_BUFFER,
        out_port=out_port,
        out_group=ofp.OFPG_ANY,
        match=to_ofp_match(match or Match()),
    )


# ---------------------------------------------------------------- ONF bundles (OpenFlow 1.3)


def _bundle_ctrl(bundle_id: int, type_: int) -> object:
    return parser.ONFBundleCtrlMsg(_DP, bundle_id, type_, BUNDLE_FLAGS, [])


def bundle_open(bundle_id: int) -> object:
    return _bundle_ctrl(bundle_id, ofp.ONF_BCT_OPEN_REQUEST)


def bundle_add(bundle_id: int, msg: object) -> m.BundleAdd:
    """`msg` (outbound or a fresh os-ken message) added to the bundle, under the add's xid."""
    return m.BundleAdd(bundle_id, msg)


def bundle_commit(bundle_id: int) -> object:
    return _bundle_ctrl(bundle_id, ofp.ONF_BCT_COMMIT_REQUEST)


def bundle_discard(bundle_id: int) -> object:
    return _bundle_ctrl(bundle_id, ofp.ONF_BCT_DISCARD_REQUEST)


# ---------------------------------------------------------------- os-ken equivalents


def _ofp_flow_add(rule: FlowRule) -> object:
    flags = ofp.OFPFF_SEND_FLOW_REM if rule.send_flow_rem else 0
    return parser.OFPFlowMod(
        _DP,
        cookie=rule.cookie,
        table_id=rule.table_id,
        command=ofp.OFPFC_ADD,
        idle_timeout=rule.idle_timeout,
        hard_timeout=rule.hard_timeout,
        priority=rule.priority,
        buffer_id=NO_BUFFER,
        flags=flags,
        match=to_ofp_match(rule.match),
        instructions=list(_instructions(rule.actions, rule.goto_table, rule.write_metadata)),
    )


def _ofp_flow_delete_strict(rule: FlowRule) -> object:
    return parser.OFPFlowMod(
        _DP,
        cookie=rule.cookie,
        cookie_mask=0xFFFFFFFFFFFFFFFF,
        table_id=rule.table_id,
        command=ofp.OFPFC_DELETE_STRICT,
        priority=rule.priority,
        buffer_id=NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=to_ofp_match(rule.match),
    )


@lru_cache(maxsize=_SHARED)
def _bucket(bucket: Bucket) -> object:
    """One os-ken bucket, shared by every group that has it (see `_SHARED`)."""
    return parser.OFPBucket(
        weight=bucket.weight,
        watch_port=bucket.watch_port,
        watch_group=bucket.watch_group,
        actions=to_ofp_actions(bucket.actions),
    )


def _ofp_group_mod(command: int, group: GroupRule) -> object:
    buckets = [_bucket(b) for b in group.buckets]
    return parser.OFPGroupMod(_DP, command, int(group.group_type), group.group_id, buckets)


def to_ofp(msg: object) -> object:
    """The os-ken message equivalent to a neutral outbound message (any other object as is):
    what `wire` packs is tested byte for byte against it. A new object on every call."""
    match msg:
        case m.FlowAdd(rule=rule):
            return _ofp_flow_add(rule)
        case m.FlowDeleteStrict(rule=rule):
            return _ofp_flow_delete_strict(rule)
        case m.GroupAdd(group=group):
            return _ofp_group_mod(ofp.OFPGC_ADD, group)
        case m.GroupModify(group=group):
            return _ofp_group_mod(ofp.OFPGC_MODIFY, group)
        case m.GroupDelete(group_id=group_id):
            return parser.OFPGroupMod(_DP, ofp.OFPGC_DELETE, 0, group_id, [])
        case m.BundleAdd(bundle_id=bundle_id, message=inner):
            return parser.ONFBundleAddMsg(_DP, bundle_id, BUNDLE_FLAGS, to_ofp(inner), [])
    return msg


class ChangeMessages(Sequence[m.Outbound]):
    """A change set as outbound messages, in the order the change set prescribes, each built
    when it is read (a 1,000-policy install is ~14,000 messages: no list of them is kept)."""

    def __init__(self, changes: ChangeSet) -> None:
        self._parts: tuple[tuple[Callable[[Any], m.Outbound], Sequence[Any]], ...] = (
            (m.GroupAdd, changes.group_adds),
            (m.GroupModify, changes.group_mods),
            (m.FlowAdd, changes.flow_adds),
            (m.FlowDeleteStrict, changes.flow_deletes),
            (m.GroupDelete, changes.group_deletes),
        )
        self._len = len(changes)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[m.Outbound]:
        for build, items in self._parts:
            for item in items:
                yield build(item)

    def __getitem__(self, index: int) -> m.Outbound:  # type: ignore[override]
        if not -self._len <= index < self._len:
            raise IndexError(index)
        index %= self._len
        for build, items in self._parts:
            if index < len(items):
                return build(items[index])
            index -= len(items)
        raise AssertionError("unreachable")


def change_messages(changes: ChangeSet) -> ChangeMessages:
    """A change set as outbound messages, in the order the change set prescribes."""
    return ChangeMessages(changes)


def packet_out(
    data: bytes, actions: Iterable[Action], in_port: int = ofp.OFPP_CONTROLLER
) -> object:
    return parser.OFPPacketOut(
        _DP, buffer_id=NO_BUFFER, in_port=in_port, actions=to_ofp_actions(actions), data=data
    )


def flow_stats_request(
    cookie: int = 0, cookie_mask: int = 0, table_id: int = ofp.OFPTT_ALL
) -> object:
    """Flow entries with their counters: every table, or one (e.g. the copy entries)."""
    return parser.OFPFlowStatsRequest(
        _DP, table_id=table_id, cookie=cookie, cookie_mask=cookie_mask, match=parser.OFPMatch()
    )


def aggregate_request(cookie: int = 0, cookie_mask: int = 0) -> object:
    """How many entries (of every table) carry a cookie under the mask: a cheap count."""
    return parser.OFPAggregateStatsRequest(
        _DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, cookie, cookie_mask, parser.OFPMatch()
    )


def group_desc_request() -> object:
    return parser.OFPGroupDescStatsRequest(_DP)


def group_stats_request() -> object:
    return parser.OFPGroupStatsRequest(_DP, group_id=ofp.OFPG_ALL)


def port_desc_request() -> object:
    return parser.OFPPortDescStatsRequest(_DP)


def port_stats_request() -> object:
    return parser.OFPPortStatsRequest(_DP, port_no=ofp.OFPP_ANY)


# ---------------------------------------------------------------- inbound decoding


def _names(prefix: str) -> dict[int, str]:
    return {
        getattr(ofp, n): n[len(prefix) :]
        for n in dir(ofp)
        if n.startswith(prefix) and isinstance(getattr(ofp, n), int)
    }


_ERROR_TYPES = _names("OFPET_")
_ERROR_CODE_PREFIX = {
    ofp.OFPET_HELLO_FAILED: "OFPHFC_",
    ofp.OFPET_BAD_REQUEST: "OFPBRC_",
    ofp.OFPET_BAD_ACTION: "OFPBAC_",
    ofp.OFPET_BAD_INSTRUCTION: "OFPBIC_",
    ofp.OFPET_BAD_MATCH: "OFPBMC_",
    ofp.OFPET_FLOW_MOD_FAILED: "OFPFMFC_",
    ofp.OFPET_GROUP_MOD_FAILED: "OFPGMFC_",
    ofp.OFPET_PORT_MOD_FAILED: "OFPPMFC_",
    ofp.OFPET_TABLE_MOD_FAILED: "OFPTMFC_",
    ofp.OFPET_QUEUE_OP_FAILED: "OFPQOFC_",
    ofp.OFPET_SWITCH_CONFIG_FAILED: "OFPSCFC_",
    ofp.OFPET_ROLE_REQUEST_FAILED: "OFPRRFC_",
    ofp.OFPET_METER_MOD_FAILED: "OFPMMFC_",
    ofp.OFPET_TABLE_FEATURES_FAILED: "OFPTFFC_",
}
_ERROR_CODES = {t: _names(prefix) for t, prefix in _ERROR_CODE_PREFIX.items()}


# ONF bundle errors are exp_type 2300 + OpenFlow 1.4's OFPBFC_* code; named as Open vSwitch
# names them (os-ken 4.2.2 only has ONFERR_ET_* for these, with other names).
_ONF_BUNDLE_ERRORS = (
    "UNKNOWN",
    "EPERM",
    "BAD_ID",
    "BUNDLE_EXIST",
    "BUNDLE_CLOSED",
    "OUT_OF_BUNDLES",
    "BAD_TYPE",
    "BAD_FLAGS",
    "MSG_BAD_LEN",
    "MSG_BAD_XID",
    "MSG_UNSUP",
    "MSG_CONFLICT",
    "MSG_TOO_MANY",
    "MSG_FAILED",
    "TIMEOUT",
    "BUNDLE_IN_PROGRESS",
)
_ONF_ERRORS = {
    **{getattr(ofp, n): n for n in dir(ofp) if n.startswith("ONFERR_")},
    **{ofp.ONFERR_ET_UNKNOWN + i: f"ONFBFC_{n}" for i, n in enumerate(_ONF_BUNDLE_ERRORS)},
}


def error_names(type_: int, code: int, experimenter: int = 0) -> tuple[str, str]:
    """Readable (type, code); for an experimenter error `code` is its exp_type."""
    type_name = _ERROR_TYPES.get(type_, f"TYPE_{type_}")
    if type_ == ofp.OFPET_EXPERIMENTER:
        if experimenter == ofproto_common.ONF_EXPERIMENTER_ID and code in _ONF_ERRORS:
            return type_name, _ONF_ERRORS[code]
        return type_name, f"EXP_{experimenter:#x}_{code}"
    code_name = _ERROR_CODES.get(type_, {}).get(code, f"CODE_{code}")
    return type_name, code_name


def _port(p: object) -> Port:
    name = p.name.decode(errors="replace") if isinstance(p.name, bytes) else str(p.name)  # type: ignore[attr-defined]
    up = not (p.config & ofp.OFPPC_PORT_DOWN) and not (p.state & ofp.OFPPS_LINK_DOWN)  # type: ignore[attr-defined]
    return Port(port_no=p.port_no, name=name.rstrip("\x00"), hw_addr=p.hw_addr, up=up)  # type: ignore[attr-defined]


def _flow_rule(stat: object) -> FlowRule:
    actions, goto, metadata = _from_instructions(getattr(stat, "instructions", ()))
    flags = getattr(stat, "flags", 0)
    return FlowRule(
        table_id=stat.table_id,  # type: ignore[attr-defined]
        priority=stat.priority,  # type: ignore[attr-defined]
        match=from_ofp_match(stat.match),  # type: ignore[attr-defined]
        actions=actions,
        goto_table=goto,
        cookie=stat.cookie,  # type: ignore[attr-defined]
        idle_timeout=stat.idle_timeout,  # type: ignore[attr-defined]
        hard_timeout=stat.hard_timeout,  # type: ignore[attr-defined]
        send_flow_rem=bool(flags & ofp.OFPFF_SEND_FLOW_REM),
        write_metadata=metadata,
    )


def _group_rule(desc: object) -> GroupRule:
    buckets = tuple(
        Bucket(
            actions=from_ofp_actions(b.actions),
            weight=b.weight,
            watch_port=b.watch_port,
            watch_group=b.watch_group,
        )
        for b in desc.buckets  # type: ignore[attr-defined]
    )
    return GroupRule(desc.group_id, GroupType(desc.type), buckets)  # type: ignore[attr-defined]


def _multipart(msg: object) -> m.MultipartReply:
    more = bool(msg.flags & ofp.OFPMPF_REPLY_MORE)  # type: ignore[attr-defined]
    body = msg.body  # type: ignore[attr-defined]
    if isinstance(msg, parser.OFPFlowStatsReply):
        items: list[m.MultipartItem] = []
        for s in body:
            try:
                rule = _flow_rule(s)
            except Exception:  # whatever os-ken made of it
                # A rule vtap cannot express is not vtap's; the reconciler never touches it.
                continue
            duration = s.duration_sec + s.duration_nsec / 1e9
            items.append(FlowStat(rule, s.packet_count, s.byte_count, duration))
        return m.MultipartReply(m.MultipartKind.FLOW, more, tuple(items))
    if isinstance(msg, parser.OFPGroupDescStatsReply):
        groups: list[m.MultipartItem] = []
        for d in body:
            try:
                groups.append(_group_rule(d))
            except Exception:  # a group vtap cannot express is not vtap's
                continue
        return m.MultipartReply(m.MultipartKind.GROUP_DESC, more, tuple(groups))
    if isinstance(msg, parser.OFPGroupStatsReply):
        return m.MultipartReply(
            m.MultipartKind.GROUP,
            more,
            tuple(
                m.GroupCounters(
                    g.group_id,
                    g.packet_count,
                    g.byte_count,
                    tuple(b.packet_count for b in g.bucket_stats),
                    tuple(b.byte_count for b in g.bucket_stats),
                )
                for g in body
            ),
        )
    if isinstance(msg, parser.OFPPortDescStatsReply):
        return m.MultipartReply(m.MultipartKind.PORT_DESC, more, tuple(_port(p) for p in body))
    if isinstance(msg, parser.OFPPortStatsReply):
        return m.MultipartReply(
            m.MultipartKind.PORT_STATS,
            more,
            tuple(
                m.PortCounters(
                    p.port_no,
                    p.rx_packets,
                    p.tx_packets,
                    p.rx_bytes,
                    p.tx_bytes,
                    p.rx_dropped,
                    p.tx_dropped,
                )
                for p in body
            ),
        )
    if isinstance(msg, parser.OFPAggregateStatsReply):
        agg = body  # os-ken gives the one aggregate body itself, not a list
        counts = m.AggregateCounts(agg.flow_count, agg.packet_count, agg.byte_count)
        return m.MultipartReply(m.MultipartKind.AGGREGATE, more, (counts,))
    return m.MultipartReply(m.MultipartKind.OTHER, more, ())


_PORT_REASONS = {
    ofp.OFPPR_ADD: m.PortReason.ADD,
    ofp.OFPPR_DELETE: m.PortReason.DELETE,
    ofp.OFPPR_MODIFY: m.PortReason.MODIFY,
}


def _hello(buf: bytes, version: int) -> m.Hello:
    """Versions the peer offers: its header version plus any version bitmap it sent. Only the
    bitmap's first word is read (versions 0-31; OpenFlow 1.3 is 4), whatever its length."""
    versions = {version}
    offset = HEADER_LEN
    while offset + 4 <= len(buf):
        etype, elen = struct.unpack_from("!HH", buf, offset)
        if elen < 4 or offset + elen > len(buf):
            raise CodecError(f"hello element at byte {offset}: length {elen}")
        if etype == ofp.OFPHET_VERSIONBITMAP and elen >= 8:
            (word,) = struct.unpack_from("!I", buf, offset + 4)
            versions |= {bit for bit in range(32) if word >> bit & 1}
        offset += (elen + 7) // 8 * 8
    return m.Hello(version, frozenset(versions))


_PARSED = frozenset(
    {ofp.OFPT_ERROR, ofp.OFPT_ECHO_REQUEST, ofp.OFPT_ECHO_REPLY, ofp.OFPT_FEATURES_REPLY,
     ofp.OFPT_PACKET_IN, ofp.OFPT_FLOW_REMOVED, ofp.OFPT_PORT_STATUS, ofp.OFPT_MULTIPART_REPLY,
     ofp.OFPT_BARRIER_REPLY, ofp.OFPT_EXPERIMENTER}
)  # fmt: skip
"""Message types vtap reads; os-ken never sees any other (see `validate`)."""


def decode(buf: bytes) -> tuple[int, m.Inbound]:
    """(xid, neutral message) for one whole OpenFlow message. CodecError, naming what is
    wrong, for anything malformed: never another exception, never a hang."""
    version, msg_type, length, xid = header(buf)
    if length != len(buf):
        raise CodecError(f"message length {length} but {len(buf)} bytes")
    if msg_type == ofp.OFPT_HELLO:
        return xid, _hello(buf, version)
    if version != OFP_VERSION:
        raise CodecError(f"OpenFlow version 0x{version:02x} after hello")
    if msg_type not in _PARSED:
        return xid, m.Unhandled(msg_type)
    try:
        if msg_type == ofp.OFPT_MULTIPART_REPLY and len(buf) >= 16:
            kind, flags = struct.unpack_from("!HH", buf, 8)
            if kind not in validate.OFPMP_PARSED:
                more = bool(flags & ofp.OFPMPF_REPLY_MORE)
                return xid, m.MultipartReply(m.MultipartKind.OTHER, more, ())
        if msg_type == ofp.OFPT_EXPERIMENTER:
            if len(buf) < 16 or struct.unpack_from("!II", buf, 8) != validate.ONF_BUNDLE_CTRL:
                return xid, m.Unhandled(msg_type)
            validate.bundle_ctrl(buf)
        validate.message(buf, msg_type)
    except validate.Malformed as exc:
        raise CodecError(str(exc)) from None
    try:
        msg = ofproto_parser.msg(_DP, version, msg_type, length, xid, buf)
    except Exception as exc:  # os-ken raises bare errors on malformed input
        raise CodecError(f"cannot parse message type {msg_type}: {exc!r}") from None
    if msg is None:  # os-ken swallowed its own parse error (and logged it, see _OSKEN_LOG)
        raise CodecError(f"cannot parse message type {msg_type}")
    try:
        return xid, _neutral(msg_type, msg)
    except CodecError:
        raise
    except Exception as exc:  # a value os-ken accepted but that means nothing in OF 1.3
        raise CodecError(f"message type {msg_type}: {exc!r}") from None


def _neutral(msg_type: int, msg: Any) -> m.Inbound:
    if isinstance(msg, parser.OFPErrorMsg):
        data = bytes(msg.data or b"")
        if msg.type == ofp.OFPET_EXPERIMENTER:
            exp, code = msg.experimenter, msg.exp_type
            type_name, code_name = error_names(msg.type, code, exp)
            return m.Error(msg.type, code, type_name, code_name, data, exp)
        type_name, code_name = error_names(msg.type, msg.code)
        return m.Error(msg.type, msg.code, type_name, code_name, data)
    if isinstance(msg, parser.OFPEchoRequest):
        return m.EchoRequest(bytes(msg.data or b""))
    if isinstance(msg, parser.OFPEchoReply):
        return m.EchoReply(bytes(msg.data or b""))
    if isinstance(msg, parser.OFPSwitchFeatures):
        return m.FeaturesReply(msg.datapath_id, msg.n_tables, msg.n_buffers)
    if isinstance(msg, parser.OFPBarrierReply):
        return m.BarrierReply()
    if isinstance(msg, parser.ONFBundleCtrlMsg):
        kinds = {k.value: k for k in m.BundleReplyKind}
        if msg.type not in kinds:
            return m.Unhandled(msg_type)
        return m.BundleReply(msg.bundle_id, kinds[msg.type])
    if isinstance(msg, parser.OFPPacketIn):
        in_port = msg.match.get("in_port", 0)
        return m.PacketIn(in_port, msg.reason, msg.table_id, msg.cookie, bytes(msg.data))
    if isinstance(msg, parser.OFPPortStatus):
        if msg.reason not in _PORT_REASONS:
            raise CodecError(f"port status reason {msg.reason} is not defined in OpenFlow 1.3")
        return m.PortStatus(_PORT_REASONS[msg.reason], _port(msg.desc))
    if isinstance(msg, parser.OFPFlowRemoved):
        try:
            match = from_ofp_match(msg.match)
        except (CodecError, ValueError):
            return m.Unhandled(msg_type)
        rule = FlowRule(msg.table_id, msg.priority, match, cookie=msg.cookie)
        duration = msg.duration_sec + msg.duration_nsec / 1e9
        return m.FlowRemoved(rule, msg.reason, msg.packet_count, msg.byte_count, duration)
    if isinstance(msg, parser.OFPMultipartReply):
        return _multipart(msg)
    return m.Unhandled(msg_type)
