"""Round trips through the real OpenFlow 1.3 wire format."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_parser, ofproto_v1_4
from os_ken.ofproto import ofproto_v1_3 as ofp

from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.openflow.pipeline import Owner, cookie
from vtap.openflow.rules import (
    METADATA_FULL,
    REG_FULL,
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

RULES = [
    FlowRule(0, 65000, Match(eth_type=0x88CC), (Output(ReservedPort.CONTROLLER),), cookie=1),
    FlowRule(0, 0, Match(), goto_table=1, cookie=cookie(Owner.PIPELINE)),
    FlowRule(
        1,
        1000,
        Match(
            eth_type=0x0800,
            ipv4_src="10.0.0.1",
            ipv4_dst="10.0.0.2",
            ip_proto=6,
            tcp_src=1234,
            tcp_dst=80,
        ),
        (Output(3, 0xFFFF),),
        cookie=cookie(Owner.FORWARDING),
        idle_timeout=30,
        send_flow_rem=True,
    ),
    FlowRule(
        0,
        2000,
        Match(
            in_port=1,
            eth_type=0x0800,
            vlan_vid=0x1000 | 100,
            ip_proto=17,
            ipv4_src="10.0.0.0/24",
            udp_dst=53,
        ),
        (PushVlan(0x88A8), SetField("vlan_vid", 0x1000 | 3900), ToGroup(7)),
        goto_table=1,
        cookie=cookie(Owner.POLICY, 42),
    ),
    FlowRule(
        1,
        5,
        Match(eth_dst="00:00:00:00:00:02"),
        (PopVlan(), Output(ReservedPort.IN_PORT)),
        hard_timeout=9,
    ),
]


def _reparse(msg: object) -> object:
    buf = codec.encode(msg, 77)
    version, _, length, xid = codec.header(buf)
    assert (version, length, xid) == (ofp.OFP_VERSION, len(buf), 77)
    return _parse(buf)


def _parse(buf: bytes) -> object:
    version, msg_type, length, xid = codec.header(buf)
    return ofproto_parser.msg(codec._DP, version, msg_type, length, xid, buf)


@pytest.mark.parametrize("rule", RULES)
def test_flow_add_round_trip(rule: FlowRule) -> None:
    parsed = _reparse(codec.flow_add(rule))
    assert parsed.command == ofp.OFPFC_ADD
    assert codec._flow_rule(parsed) == rule


def test_group_round_trip() -> None:
    group = GroupRule(
        9,
        GroupType.ALL,
        (
            Bucket((Output(2),)),
            Bucket((PushVlan(0x88A8), SetField("vlan_vid", 0x1000 | 4000), Output(5))),
        ),
    )
    buf = codec.encode(codec.group_add(group), 3)
    command, group_type, group_id = struct.unpack_from("!HBxI", buf, 8)
    assert (command, group_type, group_id) == (ofp.OFPGC_ADD, ofp.OFPGT_ALL, 9)
    parser = codec.codec_parser()
    buckets, offset = [], 16
    while offset < len(buf):
        bucket = parser.OFPBucket.parser(buf, offset)
        buckets.append(bucket)
        offset += bucket.len
    desc = SimpleNamespace(group_id=group_id, type=group_type, buckets=buckets)
    assert codec._group_rule(desc) == group


def test_group_with_resubmit_round_trip() -> None:
    """A TAP group: production resubmits to forwarding, the copy is tagged and sent on."""
    group = GroupRule(
        0x56000001,
        GroupType.ALL,
        (
            Bucket((Resubmit(1),)),
            Bucket((PushVlan(0x88A8), SetField("vlan_vid", 0x1000 | 3900), Output(2))),
        ),
    )
    buf = codec.encode(codec.group_add(group), 4)
    parser = codec.codec_parser()
    buckets, offset = [], 16
    while offset < len(buf):
        bucket = parser.OFPBucket.parser(buf, offset)
        buckets.append(bucket)
        offset += bucket.len
    resubmit = buckets[0].actions[0]
    assert isinstance(resubmit, parser.NXActionResubmitTable)
    assert (resubmit.in_port, resubmit.table_id) == (0xFFF8, 1)
    desc = SimpleNamespace(group_id=0x56000001, type=ofp.OFPGT_ALL, buckets=buckets)
    assert codec._group_rule(desc) == group


def test_flow_with_resubmit_round_trip() -> None:
    rule = FlowRule(0, 1001, Match(in_port=3), (Resubmit(1), Output(4)), cookie=5)
    assert codec._flow_rule(_reparse(codec.flow_add(rule))) == rule


def test_resubmit_to_another_port_is_not_ours() -> None:
    parser = codec.codec_parser()
    with pytest.raises(codec.CodecError):
        codec.from_ofp_actions([parser.NXActionResubmitTable(in_port=7, table_id=1)])


def test_delete_strict_carries_cookie_and_full_mask() -> None:
    rule = RULES[2]
    parsed = _reparse(codec.flow_delete_strict(rule))
    assert parsed.command == ofp.OFPFC_DELETE_STRICT
    assert parsed.cookie == rule.cookie
    assert parsed.cookie_mask == 0xFFFFFFFFFFFFFFFF
    assert codec.from_ofp_match(parsed.match) == rule.match


def test_hello_offers_only_1_3_and_decodes_bitmap() -> None:
    buf = codec.encode(codec.hello(), 1)
    xid, msg = codec.decode(buf)
    assert xid == 1
    assert isinstance(msg, m.Hello)
    assert msg.versions == frozenset({4})


def test_error_names_are_readable() -> None:
    assert codec.error_names(ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_GROUP_EXISTS) == (
        "GROUP_MOD_FAILED",
        "GROUP_EXISTS",
    )
    assert codec.error_names(99, 1) == ("TYPE_99", "CODE_1")


def test_decode_error_message() -> None:
    err = codec.codec_parser().OFPErrorMsg(
        codec._DP, type_=ofp.OFPET_BAD_MATCH, code=ofp.OFPBMC_BAD_PREREQ, data=b"xyz"
    )
    xid, msg = codec.decode(codec.encode(err, 5))
    assert xid == 5
    assert isinstance(msg, m.Error)
    assert msg.text() == "BAD_MATCH/BAD_PREREQ"


def test_unsupported_match_field_is_refused() -> None:
    parser = codec.codec_parser()
    with pytest.raises(codec.CodecError, match="arp_op"):
        codec.from_ofp_match(parser.OFPMatch(eth_type=0x0806, arp_op=1))


def test_short_header_is_an_error() -> None:
    with pytest.raises(codec.CodecError):
        codec.header(b"\x04\x00")


# ---------------------------------------------------------------- what Open vSwitch sends back

P = codec.codec_parser()
ONF = 0x4F4E4600


def _ovs_flow(match: object, actions: list[object], *extra: object, **kw: int) -> bytes:
    """A flow-mod built as Open vSwitch reports a flow (os-ken objects, not our encoder)."""
    inst: list[object] = [P.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
    msg = P.OFPFlowMod(codec._DP, match=match, instructions=inst + list(extra), **kw)
    return codec.encode(msg, 1)


def _stats_reply(*flow_mods: bytes) -> bytes:
    """A FLOW multipart reply holding these flows (match and instructions as sent)."""
    body = b""
    for i, fm in enumerate(flow_mods):
        cookie, _, table_id, _, idle, hard, prio, _, _, _, flags = struct.unpack_from(
            "!QQBBHHHIIIH", fm, 8
        )
        rest = fm[48:]
        head = struct.pack(
            "!HBxIIHHHH4xQQQ", 48 + len(rest), table_id, 5, 0, prio, idle, hard, flags, cookie, i, 0
        )
        body += head + rest
    head = struct.pack("!BBHIHH4x", 4, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), 9, 1, 0)
    return head + body


def test_registers_metadata_and_mpls_read_back_as_sent() -> None:
    """As Open vSwitch 3.1 reports them: an exact register or metadata match as a plain
    value, a full-mask register load as an unmasked reg_load2 or a set_field."""
    match = P.OFPMatch(
        in_port=4, metadata=(1, 1), reg0=(4, 4), reg8=3, eth_type=0x8847, mpls_label=77, mpls_tc=2
    )
    actions = [
        P.NXActionRegLoad2(dst="reg0", value=5, mask=5),
        P.NXActionRegLoad2(dst="reg1", value=7),
        P.OFPActionSetField(reg8=3),
        P.NXActionRegLoad(ofs_nbits=(4 << 6) | 3, dst="reg2", value=0xA),  # reg2[4..7] = 0xa
        P.OFPActionPopMpls(0x0806),
        P.OFPActionPushMpls(0x8847),
        P.OFPActionSetField(mpls_label=78),
        P.NXActionRegMove(src_field="reg10", dst_field="mpls_tc", n_bits=3),
        P.OFPActionOutput(2, 65509),
    ]
    write = P.OFPInstructionWriteMetadata(2, 3)
    buf = _ovs_flow(match, actions, write, P.OFPInstructionGotoTable(5), table_id=3, priority=9)
    assert codec._flow_rule(_parse(buf)) == FlowRule(
        3,
        9,
        Match(
            in_port=4,
            eth_type=0x8847,
            mpls_label=77,
            mpls_tc=2,
            metadata=(1, 1),
            regs=with_regs({0: (4, 4), 8: (3, REG_FULL)}),
        ),
        (
            LoadReg(0, 5, 5),
            LoadReg(1, 7),
            LoadReg(8, 3),
            LoadReg(2, 0xA0, 0xF0),
            PopMpls(0x0806),
            PushMpls(0x8847),
            SetField("mpls_label", 78),
            MoveBits("reg10", "mpls_tc", 3),
            Output(2),
        ),
        goto_table=5,
        write_metadata=(2, 3),
    )
    exact = codec.from_ofp_match(P.OFPMatch(metadata=7, reg15=0xFFFFFFFF))
    assert exact == Match(metadata=(7, METADATA_FULL), regs=((15, 0xFFFFFFFF, REG_FULL),))


def test_a_rule_with_the_new_fields_survives_encode_and_decode() -> None:
    rule = FlowRule(
        5,
        10,
        Match(regs=with_regs({8: (3, REG_FULL), 0: (4, 4), 2: (0, 0x10)}), metadata=(1, 1)),
        (PushMpls(0x8847), SetField("mpls_label", 77), MoveBits("reg10", "mpls_tc", 3)),
        write_metadata=(1, 1),
        goto_table=6,
        cookie=3,
    )
    assert codec._flow_rule(_reparse(codec.flow_add(rule))) == rule


def test_foreign_entries_are_skipped_not_fatal() -> None:
    """Entries vtap cannot express are someone else's: left out of the reply, never a crash."""
    ours = _ovs_flow(P.OFPMatch(reg1=(1, 1)), [P.NXActionRegLoad2(dst="reg0", value=1, mask=1)])
    foreign = [
        _ovs_flow(P.OFPMatch(eth_type=0x0806, arp_op=1), [P.OFPActionOutput(1)]),
        _ovs_flow(P.OFPMatch(eth_dst=("00:00:00:00:00:01", "ff:ff:ff:00:00:00")), []),
        _ovs_flow(P.OFPMatch(eth_type=0x0800, ipv4_src=("10.0.0.1", "255.0.255.0")), []),
        _ovs_flow(P.OFPMatch(), [P.NXActionRegLoad2(dst="eth_dst", value="00:00:00:00:00:01")]),
        _ovs_flow(
            P.OFPMatch(), [P.NXActionRegMove(src_field="reg0", dst_field="tunnel_id", n_bits=2)]
        ),
        _ovs_flow(P.OFPMatch(), [P.NXActionNote(note=[1, 2, 3])]),
        _ovs_flow(P.OFPMatch(), [P.OFPActionDecNwTtl()]),
        _ovs_flow(P.OFPMatch(), [], P.OFPInstructionMeter(1)),
    ]
    xid, msg = codec.decode(_stats_reply(foreign[0], ours, *foreign[1:]))
    assert xid == 9
    assert isinstance(msg, m.MultipartReply) and msg.kind == m.MultipartKind.FLOW
    assert len(msg.body) == 1
    stat = msg.body[0]
    assert isinstance(stat, FlowStat)
    assert stat.rule.match == Match(regs=((1, 1, 1),))
    assert stat.rule.actions == (LoadReg(0, 1, 1),)


def test_bundle_errors_are_named_as_open_vswitch_names_them() -> None:
    for name in dir(ofproto_v1_4):
        if name.startswith("OFPBFC_"):
            exp_type = 2300 + getattr(ofproto_v1_4, name)
            expected = ("EXPERIMENTER", "ONF" + name[3:])
            assert codec.error_names(ofp.OFPET_EXPERIMENTER, exp_type, ONF) == expected
    assert codec.error_names(0xFFFF, 2313, ONF) == ("EXPERIMENTER", "ONFBFC_MSG_FAILED")
    assert codec.error_names(0xFFFF, 2320, ONF)[1] == "ONFERR_ET_CANT_SYNC"
    assert codec.error_names(0xFFFF, 5, 0x2320) == ("EXPERIMENTER", "EXP_0x2320_5")


def test_decode_experimenter_error() -> None:
    err = P.OFPErrorMsg(
        codec._DP, type_=ofp.OFPET_EXPERIMENTER, exp_type=2313, experimenter=ONF, data=b"commit"
    )
    xid, msg = codec.decode(codec.encode(err, 12))
    assert xid == 12
    assert msg == m.Error(0xFFFF, 2313, "EXPERIMENTER", "ONFBFC_MSG_FAILED", b"commit", ONF)
    assert msg.text() == "EXPERIMENTER/ONFBFC_MSG_FAILED"


@pytest.mark.parametrize("kind", list(m.BundleReplyKind))
def test_decode_bundle_replies(kind: m.BundleReplyKind) -> None:
    reply = P.ONFBundleCtrlMsg(codec._DP, 0xFFFFFFFF, kind.value, codec.BUNDLE_FLAGS, [])
    assert codec.decode(codec.encode(reply, 3)) == (3, m.BundleReply(0xFFFFFFFF, kind))


def test_a_bundle_request_from_a_switch_is_unhandled() -> None:
    _, msg = codec.decode(codec.encode(codec.bundle_open(1), 3))
    assert msg == m.Unhandled(ofp.OFPT_EXPERIMENTER)
