"""Round trips through the real OpenFlow 1.3 wire format."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp

from vtap.openflow.pipeline import Owner, cookie
from vtap.openflow.rules import (
    Bucket,
    FlowRule,
    GroupRule,
    GroupType,
    Match,
    Output,
    PopVlan,
    PushVlan,
    ReservedPort,
    Resubmit,
    SetField,
    ToGroup,
)
from vtap.ofchannel import codec
from vtap.ofchannel import messages as m

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
    version, msg_type, length, xid = codec.header(buf)
    assert (version, length, xid) == (ofp.OFP_VERSION, len(buf), 77)
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
