"""A switch may lie: every malformed message decodes to CodecError naming the problem, fast.

Each case here once hung os-ken (a zero length walked forever, appending without end) or
raised something other than CodecError. An alarm turns a hang into a failure."""

from __future__ import annotations

import random
import signal
import struct
from collections.abc import Iterator

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from vtap.ofchannel import codec, wire
from vtap.ofchannel import messages as m
from vtap.openflow.rules import (
    Bucket,
    FlowRule,
    LoadReg,
    Match,
    Output,
    PushMpls,
    SetField,
    ToGroup,
)

HEADER = struct.Struct("!BBHI")


class Hang(BaseException):
    """Not an Exception: decode's own `except Exception` must not swallow it."""


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    def fail(signum: int, frame: object) -> None:
        raise Hang("decode did not finish: a length loop")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def msg(msg_type: int, body: bytes, xid: int = 7, version: int = 4) -> bytes:
    return HEADER.pack(version, msg_type, 8 + len(body), xid) + body


def multipart(kind: int, body: bytes, flags: int = 0) -> bytes:
    return msg(ofp.OFPT_MULTIPART_REPLY, struct.pack("!HH4x", kind, flags) + body)


def flow_entry(rule: FlowRule, packets: int = 3) -> bytes:
    match = wire.match_bytes(rule.match)
    inst = wire.instructions_bytes(rule.actions, rule.goto_table, rule.write_metadata)
    length = 48 + len(match) + len(inst)
    head = struct.pack(
        "!HBxIIHHHH4xQQQ", length, rule.table_id, 1, 0, rule.priority, 0, 0, 0,
        rule.cookie, packets, 64 * packets,
    )  # fmt: skip
    return head + match + inst


def group_entry(group_id: int, type_: int, buckets: tuple[Bucket, ...]) -> bytes:
    body = b"".join(wire.bucket_bytes(b) for b in buckets)
    return struct.pack("!HBxI", 8 + len(body), type_, group_id) + body


def port_desc(port_no: int, name: str) -> bytes:
    return struct.pack(
        "!I4x6s2x16sIIIIIIII", port_no, bytes(6), name.encode(), 0, 0, 0, 0, 0, 0, 0, 0
    )


RULE = FlowRule(
    3, 100, Match(in_port=1, eth_type=0x0800, ipv4_src="10.0.0.1", tcp_dst=80, ip_proto=6),
    (LoadReg(0, 1, 1), ToGroup(5)), goto_table=4, cookie=0x7674000000000001,
)  # fmt: skip
BUCKETS = (Bucket((Output(2),)), Bucket((PushMpls(0x8847), SetField("mpls_label", 17), Output(3))))


def valid_messages() -> list[bytes]:
    """One well-formed message of every kind vtap reads: the seeds of the mutations."""
    packet = bytes(range(60))
    pin_match = wire.match_bytes(Match(in_port=2))
    packet_in_head = struct.pack("!IHBBQ", 0xFFFFFFFF, 60, 0, 0, 9)
    return [
        multipart(ofp.OFPMP_FLOW, flow_entry(RULE) + flow_entry(RULE, 9)),
        multipart(ofp.OFPMP_GROUP_DESC, group_entry(5, 0, BUCKETS)),
        multipart(
            ofp.OFPMP_GROUP,
            struct.pack("!H2xII4xQQII", 56, 5, 1, 10, 640, 1, 0) + struct.pack("!QQ", 10, 640),
        ),
        multipart(ofp.OFPMP_PORT_DESC, port_desc(1, "leaf1-eth1") + port_desc(2, "leaf1-eth2")),
        multipart(ofp.OFPMP_PORT_STATS, struct.pack("!I4x" + "Q" * 12 + "II", 1, *range(12), 1, 0)),
        msg(ofp.OFPT_PACKET_IN, packet_in_head + pin_match + b"\0\0" + packet),
        msg(ofp.OFPT_PORT_STATUS, struct.pack("!B7x", 2) + port_desc(3, "leaf1-eth3")),
        msg(ofp.OFPT_ERROR, struct.pack("!HH", 5, 0) + bytes(16)),
        msg(ofp.OFPT_EXPERIMENTER, struct.pack("!IIIHH", 0x4F4E4600, 2300, 9, 5, 3)),
        msg(ofp.OFPT_FEATURES_REPLY, struct.pack("!QIBB2xII", 0x101, 0, 254, 0, 0, 0)),
        msg(ofp.OFPT_HELLO, struct.pack("!HHI", 1, 8, 1 << 4)),
        msg(ofp.OFPT_ECHO_REQUEST, b"ping"),
    ]


def test_the_seeds_decode() -> None:
    decoded = [codec.decode(b)[1] for b in valid_messages()]
    flows = decoded[0]
    assert isinstance(flows, m.MultipartReply) and len(flows.body) == 2
    assert flows.body[0].rule == RULE  # type: ignore[union-attr]
    groups = decoded[1]
    assert isinstance(groups, m.MultipartReply) and groups.body[0].buckets == BUCKETS  # type: ignore[union-attr]
    assert isinstance(decoded[6], m.PortStatus) and decoded[6].port.name == "leaf1-eth3"
    assert isinstance(decoded[8], m.BundleReply)


@pytest.mark.parametrize("kind", [ofp.OFPMP_GROUP_DESC, ofp.OFPMP_FLOW, ofp.OFPMP_GROUP])
def test_a_zero_length_entry_is_refused_not_walked_forever(kind: int) -> None:
    reply = multipart(kind, bytes(8))  # 24 bytes, one entry of length 0
    assert len(reply) == 24
    with pytest.raises(codec.CodecError, match="length 0"):
        codec.decode(reply)


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("instruction", "instruction at byte"),
        ("action", "action at byte"),
        ("bucket", "bucket at byte"),
    ],
)
def test_zero_lengths_inside_an_entry_are_refused(where: str, needle: str) -> None:
    if where == "bucket":
        entry = bytearray(group_entry(5, 0, BUCKETS))
        struct.pack_into("!H", entry, 8, 0)
        reply = multipart(ofp.OFPMP_GROUP_DESC, bytes(entry))
    else:
        entry = bytearray(flow_entry(RULE))
        at = 48 + len(wire.match_bytes(RULE.match))  # first instruction (apply-actions)
        struct.pack_into("!H", entry, at + 2 if where == "instruction" else at + 8 + 2, 0)
        reply = multipart(ofp.OFPMP_FLOW, bytes(entry))
    with pytest.raises(codec.CodecError, match=needle):
        codec.decode(reply)


def test_a_zero_length_bundle_property_is_refused() -> None:
    reply = msg(ofp.OFPT_EXPERIMENTER, struct.pack("!IIIHHHH", 0x4F4E4600, 2300, 9, 5, 3, 1, 0))
    with pytest.raises(codec.CodecError, match="bundle property"):
        codec.decode(reply)


@pytest.mark.parametrize(
    "elements",
    [
        struct.pack("!HH", 1, 0),  # element of length 0
        struct.pack("!HHI", 1, 400, 1 << 4),  # longer than the message
        struct.pack("!HH", 1, 4),  # bitmap without a word
        struct.pack("!HH", 1, 6) + b"\x00\x10",  # half a word
        bytes(3),  # trailing garbage
    ],
)
def test_a_bad_hello_bitmap_is_a_codec_error_or_ignored(elements: bytes) -> None:
    try:
        _, hello = codec.decode(msg(ofp.OFPT_HELLO, elements))
    except codec.CodecError:
        return
    assert isinstance(hello, m.Hello) and 4 in hello.versions


def test_port_status_reason_9_names_the_reason() -> None:
    bad = msg(ofp.OFPT_PORT_STATUS, struct.pack("!B7x", 9) + port_desc(3, "x"))
    with pytest.raises(codec.CodecError, match="reason 9"):
        codec.decode(bad)


def test_foreign_entries_are_skipped_not_fatal() -> None:
    """Group type 9 or a non-contiguous mask in a table dump: not vtap's, skipped."""
    groups = multipart(
        ofp.OFPMP_GROUP_DESC, group_entry(6, 9, BUCKETS) + group_entry(5, 0, BUCKETS)
    )
    _, reply = codec.decode(groups)
    assert [g.group_id for g in reply.body] == [5]  # type: ignore[union-attr]
    entry = bytearray(flow_entry(FlowRule(0, 5, Match(ipv4_src="10.0.0.0"), (Output(1),))))
    oxm = wire.match_bytes(Match(ipv4_src="10.0.0.0"))
    masked = struct.pack("!HHHBB", 1, 16, 0x8000, (12 << 1) | 1, 8) + bytes(4) + b"\xff\x00\xff\x00"
    assert len(masked) == len(oxm)
    entry[48 : 48 + len(oxm)] = masked
    _, reply = codec.decode(multipart(ofp.OFPMP_FLOW, bytes(entry) + flow_entry(RULE)))
    assert [s.rule for s in reply.body] == [RULE]  # type: ignore[union-attr]


def test_length_disagreeing_with_the_buffer_is_refused() -> None:
    good = valid_messages()[0]
    with pytest.raises(codec.CodecError, match="message length"):
        codec.decode(good[:-8])


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    buf = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        how = rng.random()
        if how < 0.45 and len(buf) > 9:  # a length-sized field somewhere after the header
            at = rng.randrange(8, len(buf) - 1)
            value = rng.choice([0, 1, 4, 7, 8, 16, 0xFFFF, rng.getrandbits(16)])
            struct.pack_into("!H", buf, at, value)
        elif how < 0.75 and len(buf) > 8:
            buf[rng.randrange(8, len(buf))] = rng.getrandbits(8)
        elif how < 0.9:
            del buf[rng.randrange(8, len(buf) + 1) :]
        else:
            buf += rng.randbytes(rng.randint(1, 24))
    if rng.random() < 0.9:
        struct.pack_into("!H", buf, 2, len(buf))  # mostly a consistent header
    return bytes(buf)


def test_ten_thousand_mutated_and_random_messages_never_escape_codec_error() -> None:
    rng = random.Random(20261129)
    seeds = valid_messages()
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(12_000):
        if i % 6 == 0:  # fully random, any type
            body = rng.randbytes(rng.randint(0, 96))
            buf = msg(rng.randrange(0, 40), body, version=rng.choice([4, 4, 4, 1, 5]))
        else:
            buf = _mutate(rng, rng.choice(seeds))
        try:
            codec.decode(buf)
            outcomes["decoded"] += 1
        except codec.CodecError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] > 1000 and outcomes["refused"] > 1000, outcomes
