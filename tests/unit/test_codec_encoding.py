"""The codec's encodings against os-ken's plain kwargs path, byte for byte.

Two encodings are checked: `wire` packs flow and group mods directly (what the session sends),
and `codec.to_ofp` builds os-ken messages with `OFPMatch(_ordered_fields=...)`, bytes kept per
match and instruction and bucket objects shared between messages. The references here are
built the slow, obvious way (`OFPMatch(**kwargs)`, fresh objects for every message), so a
wrong field order or value form, bytes kept for the wrong match or a shared object changed by
serialize shows up as different bytes. (test_codec_wire.py adds a generated corpus.)
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.unit.test_session import FakeSwitch, _connect
from vtap.ofchannel import codec, wire
from vtap.openflow.diff import ChangeSet
from vtap.openflow.rules import (
    METADATA_FULL,
    NO_BUFFER,
    REG_FULL,
    Action,
    Bucket,
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
    with_regs,
)

P = codec.codec_parser()
DP = codec._DP

# ---------------------------------------------------------------- references, the slow way


def _ref_match(match: Match) -> object:
    # os-ken takes CIDR text itself ("10.0.0.0/24"): an independent check of our masking.
    # A full mask is sent as an exact match (Open vSwitch reports it back so).
    kwargs: dict[str, object] = {}
    for name, value in match.items():
        if name.startswith("reg") or name == "metadata":
            full = METADATA_FULL if name == "metadata" else REG_FULL
            value = value[0] if value[1] == full else value  # type: ignore[index]
        kwargs[name] = value
    return P.OFPMatch(**kwargs)


def _ref_actions(actions: tuple[Action, ...]) -> list[object]:
    out: list[object] = []
    for a in actions:
        match a:
            case Output():
                out.append(P.OFPActionOutput(a.port, a.max_len))
            case SetField():
                out.append(P.OFPActionSetField(**{a.field: a.value}))
            case PushVlan():
                out.append(P.OFPActionPushVlan(a.ethertype))
            case PopVlan():
                out.append(P.OFPActionPopVlan())
            case PushMpls():
                out.append(P.OFPActionPushMpls(a.ethertype))
            case PopMpls():
                out.append(P.OFPActionPopMpls(a.ethertype))
            case LoadReg():
                mask = None if a.mask == REG_FULL else a.mask
                out.append(P.NXActionRegLoad2(dst=f"reg{a.reg}", value=a.value, mask=mask))
            case MoveBits():
                out.append(P.NXActionRegMove(a.src, a.dst, a.n_bits, a.src_ofs, a.dst_ofs))
            case ToGroup():
                out.append(P.OFPActionGroup(a.group_id))
            case Resubmit():
                out.append(P.NXActionResubmitTable(in_port=0xFFF8, table_id=a.table_id))
    return out


def _ref_flow_add(rule: FlowRule) -> object:
    inst: list[object] = []
    if rule.actions:
        inst.append(P.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, _ref_actions(rule.actions)))
    if rule.write_metadata is not None:
        inst.append(P.OFPInstructionWriteMetadata(*rule.write_metadata))
    if rule.goto_table is not None:
        inst.append(P.OFPInstructionGotoTable(rule.goto_table))
    return P.OFPFlowMod(
        DP,
        cookie=rule.cookie,
        table_id=rule.table_id,
        command=ofp.OFPFC_ADD,
        idle_timeout=rule.idle_timeout,
        hard_timeout=rule.hard_timeout,
        priority=rule.priority,
        buffer_id=NO_BUFFER,
        flags=ofp.OFPFF_SEND_FLOW_REM if rule.send_flow_rem else 0,
        match=_ref_match(rule.match),
        instructions=inst,
    )


def _ref_flow_delete_strict(rule: FlowRule) -> object:
    return P.OFPFlowMod(
        DP,
        cookie=rule.cookie,
        cookie_mask=0xFFFFFFFFFFFFFFFF,
        table_id=rule.table_id,
        command=ofp.OFPFC_DELETE_STRICT,
        priority=rule.priority,
        buffer_id=NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=_ref_match(rule.match),
    )


def _ref_group(command: int, group: GroupRule) -> object:
    buckets = [
        P.OFPBucket(b.weight, b.watch_port, b.watch_group, _ref_actions(b.actions))
        for b in group.buckets
    ]
    return P.OFPGroupMod(DP, command, int(group.group_type), group.group_id, buckets)


def _ref_messages(changes: ChangeSet) -> list[object]:
    return [
        *(_ref_group(ofp.OFPGC_ADD, g) for g in changes.group_adds),
        *(_ref_group(ofp.OFPGC_MODIFY, g) for g in changes.group_mods),
        *(_ref_flow_add(r) for r in changes.flow_adds),
        *(_ref_flow_delete_strict(r) for r in changes.flow_deletes),
        *(P.OFPGroupMod(DP, ofp.OFPGC_DELETE, 0, gid, []) for gid in changes.group_deletes),
    ]


def _wire(msg: object, xid: int) -> bytes:
    """os-ken's bytes for a message (which takes its xid here: use each object once)."""
    msg.set_xid(xid)  # type: ignore[attr-defined]
    msg.serialize()  # type: ignore[attr-defined]
    return bytes(msg.buf)  # type: ignore[attr-defined]


def _match_wire(match: object) -> bytes:
    buf = bytearray()
    match.serialize(buf, 0)  # type: ignore[attr-defined]
    return bytes(buf)


def _parse(buf: bytes) -> object:
    version, msg_type, length, xid = codec.header(buf)
    return ofproto_parser.msg(DP, version, msg_type, length, xid, buf)


def _parse_flow(buf: bytes) -> FlowRule:
    return codec._flow_rule(_parse(buf))


def _parse_group(buf: bytes) -> GroupRule:
    _, group_type, group_id = struct.unpack_from("!HBxI", buf, 8)
    buckets, offset = [], 16
    while offset < len(buf):
        bucket = P.OFPBucket.parser(buf, offset)
        buckets.append(bucket)
        offset += bucket.len
    desc = SimpleNamespace(group_id=group_id, type=group_type, buckets=buckets)
    return codec._group_rule(desc)


# ---------------------------------------------------------------- corpus

MATCHES = [
    Match(),
    Match(in_port=3),
    Match(in_port=ReservedPort.LOCAL),
    Match(eth_dst="00:00:00:00:00:0a"),
    Match(eth_src="0a:00:00:00:01:ff"),
    Match(eth_type=0x88CC),
    Match(vlan_vid=0x1000 | 3900),
    Match(vlan_vid=0),
    Match(eth_type=0x0800, ip_proto=1),
    Match(eth_type=0x0800, ipv4_src="10.0.0.1"),
    Match(eth_type=0x0800, ipv4_dst="10.0.0.0/24"),
    Match(eth_type=0x0800, ipv4_src="10.0.0.7/32"),
    Match(eth_type=0x0800, ip_proto=6, tcp_src=1234),
    Match(eth_type=0x0800, ip_proto=6, tcp_dst=80),
    Match(eth_type=0x0800, ip_proto=17, udp_src=5353),
    Match(eth_type=0x0800, ip_proto=17, udp_dst=65535),
    # every field at once, given in no particular order
    Match(
        udp_dst=53,
        ipv4_dst="10.0.0.9",
        ip_proto=17,
        vlan_vid=0x1000 | 7,
        eth_type=0x0800,
        eth_src="00:00:00:00:00:01",
        eth_dst="00:00:00:00:00:02",
        in_port=2,
        ipv4_src="10.0.0.0/16",
    ),
    Match(metadata=(1, 1)),
    Match(metadata=(0x1234, METADATA_FULL)),
    Match(metadata=(0, 0xFF00000000000000)),
    Match(regs=with_regs({8: (3, REG_FULL)})),
    Match(regs=with_regs({0: (4, 4), 2: (0, 0x10), 15: (0xFFFFFFFF, REG_FULL)})),
    Match(eth_type=0x8847, mpls_label=77),
    Match(eth_type=0x8847, mpls_label=0xFFFFF, mpls_tc=7),
    # registers and metadata with OpenFlow fields: registers go first on the wire
    Match(in_port=4, metadata=(2, 3), regs=with_regs({1: (0, 1), 9: (5, REG_FULL)})),
    Match(
        in_port=1,
        eth_src="00:00:00:00:00:08",
        eth_type=0x0800,
        ip_proto=6,
        ipv4_src="10.0.0.8",
        ipv4_dst="10.0.0.13",
        tcp_src=40000,
        tcp_dst=1513,
        metadata=(1, 1),
        regs=with_regs({0: (4, 4), 8: (3, REG_FULL)}),
    ),
]

ALL_ACTIONS: tuple[Action, ...] = (
    PopVlan(),
    PushVlan(0x88A8),
    SetField("vlan_vid", 0x1000 | 3900),
    SetField("eth_dst", "00:00:00:00:00:03"),
    SetField("ipv4_dst", "10.0.0.3"),
    Resubmit(1),
    Output(2),
    Output(ReservedPort.IN_PORT),
    PushMpls(0x8847),
    SetField("mpls_label", 77),
    MoveBits("reg10", "mpls_tc", 3),
    MoveBits("reg9", "reg3", 8, src_ofs=4, dst_ofs=16),
    PopMpls(0x0806),
    LoadReg(0, 5, 5),
    LoadReg(8, 3),
    LoadReg(15, 0, 0xFFFF0000),
    ToGroup(0x56000001),
)

RULES = [
    FlowRule(0, 0, Match(), goto_table=1, cookie=1),
    FlowRule(0, 65000, Match(eth_type=0x88CC), (Output(ReservedPort.CONTROLLER),), cookie=2),
    FlowRule(0, 65000, Match(eth_type=0x0806), (Output(ReservedPort.CONTROLLER, 128),)),
    FlowRule(1, 5, Match(eth_dst="00:00:00:00:00:02"), (PopVlan(), Output(ReservedPort.IN_PORT))),
    FlowRule(0, 2000, MATCHES[-2], ALL_ACTIONS, goto_table=1, cookie=(1 << 64) - 1),
    FlowRule(
        1, 1000, MATCHES[-1], (Output(3),), idle_timeout=30, hard_timeout=60, send_flow_rem=True
    ),
    FlowRule(0, 1003, MATCHES[-1], (ToGroup(1442841066),), cookie=6220600283840381418),
    FlowRule(0, 100, Match(in_port=4), goto_table=2, write_metadata=(1, 1)),
    FlowRule(3, 7, MATCHES[-2], (LoadReg(0, 1, 1),), 9, write_metadata=(5, METADATA_FULL)),
    *(FlowRule(0, 100 + i, m, (ToGroup(7),), cookie=i) for i, m in enumerate(MATCHES)),
]

GROUPS = [
    GroupRule(
        0x56000001,
        GroupType.ALL,
        (
            Bucket((Resubmit(1),)),
            Bucket((PushVlan(0x88A8), SetField("vlan_vid", 0x1000 | 3900), Output(2))),
        ),
    ),
    GroupRule(9, GroupType.SELECT, (Bucket((Output(1),), weight=3), Bucket((Output(2),), 1))),
    GroupRule(10, GroupType.FF, (Bucket((Output(1),), watch_port=1), Bucket((Output(2),), 0, 2))),
    GroupRule(11, GroupType.INDIRECT, (Bucket(ALL_ACTIONS[:-1]),)),
    GroupRule(12, GroupType.ALL, ()),
    GroupRule(13, GroupType.ALL, tuple(Bucket((LoadReg(8, k), Resubmit(5))) for k in range(3))),
    GroupRule(14, GroupType.ALL, (Bucket((LoadReg(9, 2, 3), Resubmit(5))), Bucket((Resubmit(6),)))),
]


# ---------------------------------------------------------------- tests


@pytest.fixture(autouse=True)
def no_encoded_matches() -> None:
    """Each test starts with no match encoded yet, so it sees os-ken serialize one first (and
    `wire` pack one first)."""
    codec._MATCH_WIRE.clear()
    wire.clear_caches()


@pytest.mark.parametrize("match", MATCHES, ids=lambda m: "+".join(n for n, _ in m.items()))
def test_match_bytes_equal_the_kwargs_path(match: Match) -> None:
    expected = _match_wire(_ref_match(match))
    assert _match_wire(codec.to_ofp_match(match)) == expected  # os-ken serializes it
    assert _match_wire(codec.to_ofp_match(match)) == expected  # the kept bytes
    assert wire.match_bytes(match) == expected
    assert codec.from_ofp_match(P.OFPMatch.parser(expected, 0)) == match
    assert dict(codec.to_ofp_match(match).items()) == dict(_ref_match(match).items())


def test_kept_match_bytes_are_bounded_and_per_match(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_MATCH_WIRE_SIZE", 2)
    first, second, third = MATCHES[1], MATCHES[4], MATCHES[-1]
    for match in (first, second, first, third):  # `first` was used again, so `second` goes
        assert _match_wire(codec.to_ofp_match(match)) == _match_wire(_ref_match(match))
    assert list(codec._MATCH_WIRE) == [codec._OXM_VALUES(first), codec._OXM_VALUES(third)]
    assert _match_wire(codec.to_ofp_match(second)) == _match_wire(_ref_match(second))


def test_a_masked_address_with_host_bits_is_masked_as_os_ken_does() -> None:
    match = Match(eth_type=0x0800, ipv4_src="10.1.2.3/16")
    assert _match_wire(codec.to_ofp_match(match)) == _match_wire(_ref_match(match))


def test_the_byte_comparison_sees_field_order() -> None:
    """Guards the guard: os-ken writes `_ordered_fields` as given, so a wrong order would
    produce different bytes and the comparisons above would fail."""
    match = MATCHES[-1]
    fields = codec.to_ofp_match(match).items()
    reversed_match = P.OFPMatch(_ordered_fields=list(reversed(fields)))
    assert _match_wire(reversed_match) != _match_wire(_ref_match(match))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"t{r.table_id}p{r.priority}")
def test_flow_mods_equal_the_kwargs_path_and_parse_back(rule: FlowRule) -> None:
    add = codec.encode(codec.flow_add(rule), 41)
    assert add == _wire(_ref_flow_add(rule), 41)
    assert add == _wire(codec.to_ofp(codec.flow_add(rule)), 41)
    assert _parse_flow(add) == rule

    delete = codec.encode(codec.flow_delete_strict(rule), 42)
    assert delete == _wire(_ref_flow_delete_strict(rule), 42)
    assert delete == _wire(codec.to_ofp(codec.flow_delete_strict(rule)), 42)
    assert codec.from_ofp_match(_parse(delete).match) == rule.match  # type: ignore[attr-defined]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: f"group{g.group_id}")
def test_group_mods_equal_the_kwargs_path_and_parse_back(group: GroupRule) -> None:
    add = codec.encode(codec.group_add(group), 7)
    assert add == _wire(_ref_group(ofp.OFPGC_ADD, group), 7)
    assert add == _wire(codec.to_ofp(codec.group_add(group)), 7)
    assert _parse_group(add) == group
    mod = codec.encode(codec.group_modify(group), 8)
    assert mod == _wire(_ref_group(ofp.OFPGC_MODIFY, group), 8)
    assert mod == _wire(codec.to_ofp(codec.group_modify(group)), 8)
    delete = codec.encode(codec.group_delete(group.group_id), 9)
    assert delete == _wire(P.OFPGroupMod(DP, ofp.OFPGC_DELETE, 0, group.group_id, []), 9)
    assert delete == _wire(codec.to_ofp(codec.group_delete(group.group_id)), 9)


def test_shared_pieces_stay_the_same_across_messages() -> None:
    """Instructions and buckets are shared between messages (os-ken objects in `to_ofp`,
    bytes in `wire`): encoding others in between, and the same rule again, must not change
    what a message encodes to."""
    corpus = RULES + RULES[::-1]
    for xid, rule in enumerate(corpus, 1):
        expected = _wire(_ref_flow_add(rule), xid)
        assert codec.encode(codec.flow_add(rule), xid) == expected
        assert _wire(codec.to_ofp(codec.flow_add(rule)), xid) == expected
    for xid, group in enumerate(GROUPS + GROUPS[::-1], 1):
        expected = _wire(_ref_group(ofp.OFPGC_ADD, group), xid)
        assert codec.encode(codec.group_add(group), xid) == expected
        assert _wire(codec.to_ofp(codec.group_add(group)), xid) == expected
    shared = [
        *(o for r in RULES for o in codec._instructions(r.actions, r.goto_table, r.write_metadata)),
        *(codec._bucket(b) for g in GROUPS for b in g.buckets),
    ]
    state = [str(o) for o in shared]
    for rule in RULES:
        _wire(codec.to_ofp(codec.flow_add(rule)), 1)
    for group in GROUPS:
        _wire(codec.to_ofp(codec.group_modify(group)), 1)
    assert [str(o) for o in shared] == state


def test_change_messages_are_built_in_order_on_each_read() -> None:
    groups, rules = tuple(GROUPS[:2]), tuple(RULES[:3])
    changes = ChangeSet(groups, groups[::-1], rules, rules[::-1], (5, 6))
    msgs = codec.change_messages(changes)
    expected = [_wire(r, 1) for r in _ref_messages(changes)]
    assert len(msgs) == len(expected) == 12
    assert [codec.encode(m, 1) for m in msgs] == expected
    assert [_wire(codec.to_ofp(m), 1) for m in msgs] == expected
    # An index can be read (and given an xid) again.
    assert [codec.encode(msgs[i], 1) for i in range(12)] == expected
    assert [codec.encode(msgs[i], 1) for i in range(-12, 0)] == expected
    for index in (12, -13):
        with pytest.raises(IndexError):
            msgs[index]


async def test_a_batch_goes_out_with_one_xid_per_message() -> None:
    switch = FakeSwitch()
    session, task = await _connect(switch)
    rules = tuple(RULES[:6])
    await session.apply(codec.change_messages(ChangeSet(flow_adds=rules)))
    xids = [codec.header(buf)[3] for buf in switch.flow_mods]
    assert len(set(xids)) == len(rules)
    for buf, rule, xid in zip(switch.flow_mods, rules, xids, strict=True):
        assert buf == _wire(_ref_flow_add(rule), xid)
    session.close()
    await task
