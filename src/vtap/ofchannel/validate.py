"""Structural checks on a switch's message before os-ken parses it.

os-ken walks every variable-length list by the length fields in the message and trusts them:
an entry, instruction, action, bucket or property of length zero makes it loop forever (a
multipart reply appends the same entry until memory runs out). A switch is an untrusted peer,
so every length that os-ken will follow is checked here first, and message kinds vtap does not
use never reach os-ken at all.
"""

from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_v1_3 as ofp

OFPMP_PARSED = frozenset(
    {ofp.OFPMP_FLOW, ofp.OFPMP_GROUP, ofp.OFPMP_GROUP_DESC, ofp.OFPMP_PORT_DESC,
     ofp.OFPMP_PORT_STATS, ofp.OFPMP_AGGREGATE}
)  # fmt: skip
"""Multipart replies vtap reads; any other kind is answered as 'other' without parsing."""

ONF_BUNDLE_CTRL = (0x4F4E4600, 2300)  # (ONF experimenter id, bundle control exp_type)

_U16 = struct.Struct("!H")
_U16x2 = struct.Struct("!HH")  # (type, length)

_FLOW_STATS = 48  # ofp_flow_stats up to its match
_GROUP_DESC = 8
_GROUP_STATS = 40
_BUCKET = 16
_BUCKET_COUNTER = 16
_PORT = 64
_PORT_STATS = 112
_AGGREGATE = 24
_PORT_STATUS = 80
_FEATURES = 32
_PACKET_IN = 24  # ofp_packet_in up to its match
_FLOW_REMOVED = 48  # ofp_flow_removed up to its match
_MULTIPART = 16
_EXPERIMENTER = 16
_BUNDLE_CTRL = 24
_ERROR = 12


class Malformed(ValueError):
    """The message contradicts its own lengths; the text says where."""


def _u16(buf: bytes, offset: int) -> int:
    return _U16.unpack_from(buf, offset)[0]


def _pad8(n: int) -> int:
    return (n + 7) // 8 * 8


def _need(buf: bytes, size: int, what: str) -> None:
    if len(buf) < size:
        raise Malformed(f"{what}: {len(buf)} bytes, at least {size} needed")


def _walk(
    buf: bytes, start: int, end: int, minimum: int, what: str, *, length_at: int = 0
) -> list[tuple[int, int]]:
    """(offset, length) of each element of buf[start:end], whose u16 at `length_at` is its
    length: each at least `minimum`, a multiple of 8, and inside the range."""
    found = []
    offset = start
    while offset < end:
        if end - offset < length_at + 2:
            raise Malformed(f"{what} at byte {offset}: truncated")
        length = _u16(buf, offset + length_at)
        if length < minimum or length % 8 or offset + length > end:
            raise Malformed(
                f"{what} at byte {offset}: length {length} (minimum {minimum}, "
                f"multiple of 8, {end - offset} bytes left)"
            )
        found.append((offset, length))
        offset += length
    return found


def match(buf: bytes, offset: int, end: int, what: str) -> int:
    """Check the ofp_match at `offset`; returns its padded size."""
    if end - offset < 4:
        raise Malformed(f"{what} match: truncated")
    type_, length = _U16x2.unpack_from(buf, offset)
    if type_ != ofp.OFPMT_OXM or length < 4 or offset + _pad8(length) > end:
        raise Malformed(f"{what} match: type {type_}, length {length}")
    at, stop = offset + 4, offset + length
    while at < stop:
        if stop - at < 4:
            raise Malformed(f"{what} match field at byte {at}: truncated")
        size = buf[at + 3]
        if at + 4 + size > stop:
            raise Malformed(f"{what} match field at byte {at}: length {size} overruns the match")
        at += 4 + size
    return _pad8(length)


_ACTION_SIZES = {
    ofp.OFPAT_OUTPUT: 16, ofp.OFPAT_COPY_TTL_OUT: 8, ofp.OFPAT_COPY_TTL_IN: 8,
    ofp.OFPAT_SET_MPLS_TTL: 8, ofp.OFPAT_DEC_MPLS_TTL: 8, ofp.OFPAT_PUSH_VLAN: 8,
    ofp.OFPAT_POP_VLAN: 8, ofp.OFPAT_PUSH_MPLS: 8, ofp.OFPAT_POP_MPLS: 8, ofp.OFPAT_SET_QUEUE: 8,
    ofp.OFPAT_GROUP: 8, ofp.OFPAT_SET_NW_TTL: 8, ofp.OFPAT_DEC_NW_TTL: 8, ofp.OFPAT_PUSH_PBB: 8,
    ofp.OFPAT_POP_PBB: 8,
}  # fmt: skip
"""Fixed-size actions: os-ken steps over these by its own size, not the declared length, so
a declared length that differs would desynchronise the walk."""

_INSTRUCTION_SIZES = {ofp.OFPIT_GOTO_TABLE: 8, ofp.OFPIT_WRITE_METADATA: 24, ofp.OFPIT_METER: 8}
_INSTRUCTION_ACTIONS = (ofp.OFPIT_WRITE_ACTIONS, ofp.OFPIT_APPLY_ACTIONS, ofp.OFPIT_CLEAR_ACTIONS)


def _actions(buf: bytes, start: int, end: int, what: str) -> None:
    for at, length in _walk(buf, start, end, 8, f"{what} action", length_at=2):
        type_ = _u16(buf, at)
        if type_ == ofp.OFPAT_SET_FIELD:
            expected = _pad8(8 + buf[at + 7])
        elif type_ == ofp.OFPAT_EXPERIMENTER:
            expected = max(length, 16)
        elif type_ in _ACTION_SIZES:
            expected = _ACTION_SIZES[type_]
        else:
            raise Malformed(f"{what} action at byte {at}: unknown type {type_}")
        if length != expected:
            raise Malformed(f"{what} action type {type_} at byte {at}: length {length}")


def instructions(buf: bytes, start: int, end: int, what: str) -> None:
    for at, length in _walk(buf, start, end, 8, f"{what} instruction", length_at=2):
        type_ = _u16(buf, at)
        if type_ in _INSTRUCTION_ACTIONS:
            _actions(buf, at + 8, at + length, what)
        elif _INSTRUCTION_SIZES.get(type_) != length:
            raise Malformed(f"{what} instruction type {type_} at byte {at}: length {length}")


def _flow_stats(buf: bytes) -> None:
    for at, length in _walk(buf, _MULTIPART, len(buf), _FLOW_STATS + 8, "flow stats entry"):
        end = at + length
        size = match(buf, at + _FLOW_STATS, end, "flow stats entry")
        instructions(buf, at + _FLOW_STATS + size, end, "flow stats entry")


def _group_desc(buf: bytes) -> None:
    for at, length in _walk(buf, _MULTIPART, len(buf), _GROUP_DESC, "group description"):
        for b_at, b_len in _walk(buf, at + _GROUP_DESC, at + length, _BUCKET, "bucket"):
            _actions(buf, b_at + _BUCKET, b_at + b_len, "bucket")


def _group_stats(buf: bytes) -> None:
    for at, length in _walk(buf, _MULTIPART, len(buf), _GROUP_STATS, "group stats entry"):
        if (length - _GROUP_STATS) % _BUCKET_COUNTER:
            raise Malformed(f"group stats entry at byte {at}: length {length}")


def _fixed(buf: bytes, size: int, what: str) -> None:
    if (len(buf) - _MULTIPART) % size:
        raise Malformed(f"{what}: body of {len(buf) - _MULTIPART} bytes is not n × {size}")


def multipart(buf: bytes) -> None:
    """Check a multipart reply whose kind is in OFPMP_PARSED."""
    kind = _u16(buf, 8)
    if kind == ofp.OFPMP_FLOW:
        _flow_stats(buf)
    elif kind == ofp.OFPMP_GROUP_DESC:
        _group_desc(buf)
    elif kind == ofp.OFPMP_GROUP:
        _group_stats(buf)
    elif kind == ofp.OFPMP_PORT_DESC:
        _fixed(buf, _PORT, "port description")
    elif kind == ofp.OFPMP_PORT_STATS:
        _fixed(buf, _PORT_STATS, "port stats")
    elif kind == ofp.OFPMP_AGGREGATE and len(buf) != _MULTIPART + _AGGREGATE:
        raise Malformed(f"aggregate reply: {len(buf) - _MULTIPART} bytes, not {_AGGREGATE}")


def bundle_ctrl(buf: bytes) -> None:
    """Properties are (type, length) with length counting the header, each padded to 8."""
    _need(buf, _BUNDLE_CTRL, "bundle control")
    at = _BUNDLE_CTRL
    while at < len(buf):
        if len(buf) - at < 4:
            raise Malformed(f"bundle property at byte {at}: truncated")
        length = _u16(buf, at + 2)
        if length < 4 or at + _pad8(length) > len(buf):
            raise Malformed(f"bundle property at byte {at}: length {length}")
        at += _pad8(length)


def message(buf: bytes, msg_type: int) -> None:
    """Malformed unless every length os-ken follows in this message is consistent."""
    if msg_type == ofp.OFPT_ERROR:
        _need(buf, _ERROR, "error")
    elif msg_type == ofp.OFPT_FEATURES_REPLY:
        _need(buf, _FEATURES, "features reply")
    elif msg_type == ofp.OFPT_PORT_STATUS:
        _need(buf, _PORT_STATUS, "port status")
    elif msg_type == ofp.OFPT_PACKET_IN:
        _need(buf, _PACKET_IN + 8, "packet-in")
        size = match(buf, _PACKET_IN, len(buf), "packet-in")
        _need(buf, _PACKET_IN + size + 2, "packet-in")
    elif msg_type == ofp.OFPT_FLOW_REMOVED:
        _need(buf, _FLOW_REMOVED + 8, "flow removed")
        match(buf, _FLOW_REMOVED, len(buf), "flow removed")
    elif msg_type == ofp.OFPT_MULTIPART_REPLY:
        _need(buf, _MULTIPART, "multipart reply")
        multipart(buf)
    elif msg_type == ofp.OFPT_EXPERIMENTER:
        _need(buf, _EXPERIMENTER, "experimenter")
