"""OpenFlow 1.3 bytes for what vtap sends in bulk, packed directly with struct.

Through os-ken a flow-mod costs 50-75 µs (OFPMatch.serialize and the Nicira actions dominate)
and an install is tens of thousands of them. This module packs exactly the bulk messages (flow
add and delete-strict, group add/modify/delete, the ONF bundle-add wrapper) and keeps the bytes
of each distinct match, treatment and bucket: ~5 µs for a flow-mod with a new match, ~2 µs
when the match was sent before. It writes the bytes os-ken writes (tests/unit/test_codec_wire.py
compares them for every field and action): os-ken stays the reference and the decoder, and the
codec module the only place that imports it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable
from functools import lru_cache, partial
from operator import attrgetter
from typing import Any, NamedTuple

from vtap.ofchannel import messages as m
from vtap.openflow.rules import (
    METADATA_FULL,
    N_REGS,
    NO_BUFFER,
    REG_FULL,
    Action,
    Bucket,
    FlowRule,
    GroupRule,
    LoadReg,
    Match,
    MoveBits,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    Resubmit,
    SetField,
    ToGroup,
)


class WireError(ValueError):
    """A rule that cannot be put on the wire (unknown field, value out of range)."""


OFP_VERSION = 4
OFPT_EXPERIMENTER, OFPT_FLOW_MOD, OFPT_GROUP_MOD = 4, 14, 15
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
OFPGC_ADD, OFPGC_MODIFY, OFPGC_DELETE = 0, 1, 2
OFPFF_SEND_FLOW_REM = 1
OFPP_ANY = OFPG_ANY = 0xFFFFFFFF
NX_EXPERIMENTER_ID = 0x00002320
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
BUNDLE_FLAGS = 3  # ONF_BF_ATOMIC | ONF_BF_ORDERED
_NX_IN_PORT = 0xFFF8  # Nicira actions use OpenFlow 1.0 port numbers: OFPP_IN_PORT
_NXAST_REG_MOVE, _NXAST_RESUBMIT_TABLE, _NXAST_REG_LOAD2 = 6, 14, 33
_OFPIT_GOTO_TABLE, _OFPIT_WRITE_METADATA, _OFPIT_APPLY_ACTIONS = 1, 2, 4
_OFPAT_OUTPUT, _OFPAT_PUSH_VLAN, _OFPAT_POP_VLAN = 0, 17, 18
_OFPAT_PUSH_MPLS, _OFPAT_POP_MPLS, _OFPAT_GROUP, _OFPAT_SET_FIELD = 19, 20, 22, 25
_OFPAT_EXPERIMENTER = 0xFFFF

_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")  # header + ofp_flow_mod up to the match
_GROUP_MOD = struct.Struct("!BBHIHBxI")
_BUNDLE_ADD = struct.Struct("!BBHIIIIxxH")  # header, experimenter, exp_type, bundle id, flags
_BUCKET = struct.Struct("!HHII4x")
_INST = struct.Struct("!HH4x")
_GOTO = struct.Struct("!HHB3x")
_WRITE_METADATA = struct.Struct("!HH4xQQ")
_OUTPUT = struct.Struct("!HHIH6x")
_ACTION_ETHERTYPE = struct.Struct("!HHH2x")  # push vlan / push mpls / pop mpls
_POP_VLAN = struct.Struct("!HH4x").pack(_OFPAT_POP_VLAN, 8)
_GROUP = struct.Struct("!HHI")
_NX_HEADER = struct.Struct("!HHIH")  # type, len, experimenter, subtype
_RESUBMIT = struct.Struct("!HB3x")
_REG_MOVE = struct.Struct("!HHHII")  # n_bits, src_ofs, dst_ofs, src header, dst header
_U32 = struct.Struct("!I")
_OFP_MATCH = struct.Struct("!HH")

# ---------------------------------------------------------------- OXM fields


def _ipv4(text: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, text)  # dotted quad only
    except (OSError, TypeError) as exc:
        raise WireError(f"bad IPv4 address {text!r}") from exc


def _mac(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.replace(":", ""))
    except (ValueError, AttributeError) as exc:
        raise WireError(f"bad MAC address {text!r}") from exc
    if len(raw) != 6:
        raise WireError(f"bad MAC address {text!r}")
    return raw


class _Field(NamedTuple):
    """How one OXM field is packed: its exact header, and whole TLVs exact and masked.
    Integers go through a struct (out of range: struct.error, turned into WireError by
    `encode`)."""

    header: int
    exact: Callable[[Any], bytes]
    masked: Callable[[Any, Any], bytes]


_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _oxm_field(cls: int, field: int, size: int, text: Callable[[str], bytes] | None) -> _Field:
    header = cls << 16 | field << 9 | size
    masked_header = cls << 16 | field << 9 | 1 << 8 | 2 * size
    if text is None:
        f = _INT_FORMATS[size]
        exact = partial(struct.Struct(f"!I{f}").pack, header)
        masked = partial(struct.Struct(f"!I{f}{f}").pack, masked_header)
        return _Field(header, exact, masked)
    head, masked_head = _U32.pack(header), _U32.pack(masked_header)
    return _Field(header, lambda v: head + text(v), lambda v, m: masked_head + text(v) + text(m))


_OFB, _NXM1 = 0x8000, 0x0001  # OXM classes: OpenFlow basic, Nicira extended 1
# OXM numbers and sizes as os-ken's oxm_types; None: an integer, else its text parser.
_FIELDS: dict[str, _Field] = {
    "in_port": _oxm_field(_OFB, 0, 4, None),
    "metadata": _oxm_field(_OFB, 2, 8, None),
    "eth_dst": _oxm_field(_OFB, 3, 6, _mac),
    "eth_src": _oxm_field(_OFB, 4, 6, _mac),
    "eth_type": _oxm_field(_OFB, 5, 2, None),
    "vlan_vid": _oxm_field(_OFB, 6, 2, None),
    "ip_proto": _oxm_field(_OFB, 10, 1, None),
    "ipv4_src": _oxm_field(_OFB, 11, 4, _ipv4),
    "ipv4_dst": _oxm_field(_OFB, 12, 4, _ipv4),
    "tcp_src": _oxm_field(_OFB, 13, 2, None),
    "tcp_dst": _oxm_field(_OFB, 14, 2, None),
    "udp_src": _oxm_field(_OFB, 15, 2, None),
    "udp_dst": _oxm_field(_OFB, 16, 2, None),
    "mpls_label": _oxm_field(_OFB, 34, 4, None),
    "mpls_tc": _oxm_field(_OFB, 35, 1, None),
    **{f"reg{n}": _oxm_field(_NXM1, n, 4, None) for n in range(N_REGS)},
}
_REGS = tuple(_FIELDS[f"reg{n}"] for n in range(N_REGS))
assert _NXM1 < _OFB  # registers (class NXM_1) go before every OpenFlow basic field


def _field(name: str) -> _Field:
    try:
        return _FIELDS[name]
    except KeyError:
        raise WireError(f"field {name} is not supported by vtap") from None


def _ipv4_match(name: str) -> Callable[[str], bytes]:
    field = _FIELDS[name]

    def pack(text: str) -> bytes:
        if "/" not in text:
            return field.exact(text)
        try:
            net = ipaddress.IPv4Network(text, strict=False)  # host bits cleared, as os-ken does
        except ValueError as exc:
            raise WireError(str(exc)) from exc
        return field.masked(str(net.network_address), str(net.netmask))

    return pack


def _metadata_match(value: tuple[int, int]) -> bytes:
    meta, mask = value
    if mask == METADATA_FULL:
        return _FIELDS["metadata"].exact(meta)
    return _FIELDS["metadata"].masked(meta & mask, mask)


# Match fields in OXM number order, as os-ken sorts OFPMatch(**kwargs), each with its packer
# (a full mask goes as an exact match: that is how Open vSwitch reports it back).
_SCALARS = tuple(
    sorted(
        (f for f in Match.__dataclass_fields__ if f not in ("regs", "_hash")),
        key=lambda f: _FIELDS[f].header >> 9,
    )
)
_SCALAR_VALUES = attrgetter(*_SCALARS)
_PACKERS: tuple[Callable[[Any], bytes], ...] = tuple(
    _metadata_match
    if name == "metadata"
    else _ipv4_match(name)
    if name in ("ipv4_src", "ipv4_dst")
    else _FIELDS[name].exact
    for name in _SCALARS
)


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


@lru_cache(maxsize=16384)
def match_bytes(match: Match) -> bytes:
    """The ofp_match (OXM, padded to 8) of a match, kept per distinct match (bounded near
    the distinct matches of a 1,000-policy fabric: a delete or re-send finds them)."""
    parts = [
        _REGS[reg].exact(value) if mask == REG_FULL else _REGS[reg].masked(value & mask, mask)
        for reg, value, mask in match.regs
    ]
    values = _SCALAR_VALUES(match)
    parts += [pack(v) for pack, v in zip(_PACKERS, values, strict=True) if v is not None]
    body = b"".join(parts)
    return _pad8(_OFP_MATCH.pack(1, 4 + len(body)) + body)  # OFPMT_OXM


# ---------------------------------------------------------------- actions


def _nx(subtype: int, body: bytes) -> bytes:
    """A Nicira action: 10 bytes of header, then the body, padded to 8."""
    length = (10 + len(body) + 7) // 8 * 8
    return _pad8(_NX_HEADER.pack(_OFPAT_EXPERIMENTER, length, NX_EXPERIMENTER_ID, subtype) + body)


def _action(action: Action) -> bytes:
    match action:
        case Output(port=port, max_len=max_len):
            return _OUTPUT.pack(_OFPAT_OUTPUT, 16, port, max_len)
        case SetField(field=name, value=value):
            if name.startswith("reg"):  # decoded as LoadReg: a SetField would never compare equal
                raise WireError(f"set_field {name}: use LoadReg for registers")
            oxm = _field(name).exact(value)
            return _pad8(struct.pack("!HH", _OFPAT_SET_FIELD, (4 + len(oxm) + 7) // 8 * 8) + oxm)
        case PushVlan(ethertype=ethertype):
            return _ACTION_ETHERTYPE.pack(_OFPAT_PUSH_VLAN, 8, ethertype)
        case PopVlan():
            return _POP_VLAN
        case PushMpls(ethertype=ethertype):
            return _ACTION_ETHERTYPE.pack(_OFPAT_PUSH_MPLS, 8, ethertype)
        case PopMpls(ethertype=ethertype):
            return _ACTION_ETHERTYPE.pack(_OFPAT_POP_MPLS, 8, ethertype)
        case LoadReg(reg=reg, value=value, mask=mask):
            field = _field(f"reg{reg}")
            oxm = field.exact(value) if mask == REG_FULL else field.masked(value, mask)
            return _nx(_NXAST_REG_LOAD2, oxm)
        case MoveBits(src=src, dst=dst, n_bits=n_bits, src_ofs=src_ofs, dst_ofs=dst_ofs):
            src_header, dst_header = _field(src).header, _field(dst).header
            body = _REG_MOVE.pack(n_bits, src_ofs, dst_ofs, src_header, dst_header)
            return _nx(_NXAST_REG_MOVE, body)
        case ToGroup(group_id=group_id):
            return _GROUP.pack(_OFPAT_GROUP, 8, group_id)
        case Resubmit(table_id=table_id):
            return _nx(_NXAST_RESUBMIT_TABLE, _RESUBMIT.pack(_NX_IN_PORT, table_id))
    raise WireError(f"cannot encode action {action!r}")


def actions_bytes(actions: tuple[Action, ...]) -> bytes:
    return b"".join(_action(a) for a in actions)


@lru_cache(maxsize=4096)
def instructions_bytes(
    actions: tuple[Action, ...], goto_table: int | None, write_metadata: tuple[int, int] | None
) -> bytes:
    """The instructions of one treatment, kept per distinct treatment (flows share few: a
    1,000-policy install has ~1,200 distinct among ~12,700 flows)."""
    out = b""
    if actions:
        acts = actions_bytes(actions)
        out += _INST.pack(_OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts
    if write_metadata is not None:
        out += _WRITE_METADATA.pack(_OFPIT_WRITE_METADATA, 24, *write_metadata)
    if goto_table is not None:
        out += _GOTO.pack(_OFPIT_GOTO_TABLE, 8, goto_table)
    return out


@lru_cache(maxsize=4096)
def bucket_bytes(bucket: Bucket) -> bytes:
    acts = actions_bytes(bucket.actions)
    length = (16 + len(acts) + 7) // 8 * 8
    head = _BUCKET.pack(length, bucket.weight, bucket.watch_port, bucket.watch_group)
    return _pad8(head + acts)


# ---------------------------------------------------------------- messages


def _length(n: int) -> int:
    if n > 0xFFFF:
        raise WireError(f"message of {n} bytes exceeds OpenFlow's 65535")
    return n


def flow_add(rule: FlowRule, xid: int) -> bytes:
    match = match_bytes(rule.match)
    inst = instructions_bytes(rule.actions, rule.goto_table, rule.write_metadata)
    head = _FLOW_MOD.pack(
        OFP_VERSION,
        OFPT_FLOW_MOD,
        _length(48 + len(match) + len(inst)),
        xid,
        rule.cookie,
        0,
        rule.table_id,
        OFPFC_ADD,
        rule.idle_timeout,
        rule.hard_timeout,
        rule.priority,
        NO_BUFFER,
        0,
        0,
        OFPFF_SEND_FLOW_REM if rule.send_flow_rem else 0,
    )
    return head + match + inst


def flow_delete_strict(rule: FlowRule, xid: int) -> bytes:
    match = match_bytes(rule.match)
    head = _FLOW_MOD.pack(
        OFP_VERSION,
        OFPT_FLOW_MOD,
        48 + len(match),
        xid,
        rule.cookie,
        0xFFFFFFFFFFFFFFFF,
        rule.table_id,
        OFPFC_DELETE_STRICT,
        0,
        0,
        rule.priority,
        NO_BUFFER,
        OFPP_ANY,
        OFPG_ANY,
        0,
    )
    return head + match


def group_mod(command: int, group: GroupRule, xid: int) -> bytes:
    buckets = b"".join([bucket_bytes(b) for b in group.buckets])
    head = _GROUP_MOD.pack(
        OFP_VERSION,
        OFPT_GROUP_MOD,
        _length(16 + len(buckets)),
        xid,
        command,
        group.group_type,
        group.group_id,
    )
    return head + buckets


def group_delete(group_id: int, xid: int) -> bytes:
    return _GROUP_MOD.pack(OFP_VERSION, OFPT_GROUP_MOD, 16, xid, OFPGC_DELETE, 0, group_id)


def bundle_add(bundle_id: int, inner: bytes, xid: int) -> bytes:
    """Wrap an encoded message (whose xid must be `xid`) in an ONF bundle-add."""
    head = _BUNDLE_ADD.pack(
        OFP_VERSION,
        OFPT_EXPERIMENTER,
        _length(24 + len(inner)),
        xid,
        ONF_EXPERIMENTER_ID,
        ONF_ET_BUNDLE_ADD_MESSAGE,
        bundle_id,
        BUNDLE_FLAGS,
    )
    return head + inner


def encode(msg: object, xid: int) -> bytes | None:
    """The bytes of an outbound message (vtap.ofchannel.messages), None for any other object.
    (Bundle-adds are wrapped by the codec: their inner message may be an os-ken one.)"""
    try:
        return _encode(msg, xid)
    except struct.error as exc:  # a header field out of range
        raise WireError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def _encode(msg: object, xid: int) -> bytes | None:
    match msg:
        case m.FlowAdd(rule=rule):
            return flow_add(rule, xid)
        case m.FlowDeleteStrict(rule=rule):
            return flow_delete_strict(rule, xid)
        case m.GroupAdd(group=group):
            return group_mod(OFPGC_ADD, group, xid)
        case m.GroupModify(group=group):
            return group_mod(OFPGC_MODIFY, group, xid)
        case m.GroupDelete(group_id=group_id):
            return group_delete(group_id, xid)
    return None


def clear_caches() -> None:
    """Forget kept bytes (tests that count or compare first encodings)."""
    match_bytes.cache_clear()
    instructions_bytes.cache_clear()
    bucket_bytes.cache_clear()
