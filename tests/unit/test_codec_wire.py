"""The fast encoder (vtap.ofchannel.wire) against os-ken, on a generated corpus.

Every generated rule uses some of every kind of field, mask and action vtap has; its bytes
must be identical to os-ken's serialize() of the same message built the plain kwargs way, and
os-ken's parser reading those bytes must give back, through the codec, the rule we started
from. Bundle-adds are checked the same way around flow and group mods, with edge xids and
bundle ids.
"""

from __future__ import annotations

import random
import struct

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.unit.test_codec_encoding import (
    DP,
    P,
    _parse,
    _parse_flow,
    _parse_group,
    _ref_flow_add,
    _ref_flow_delete_strict,
    _ref_group,
    _wire,
)
from vtap.ofchannel import codec, wire
from vtap.ofchannel import messages as m
from vtap.openflow.rules import (
    METADATA_FULL,
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

# ---------------------------------------------------------------- a generated corpus


def _mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def _ip(rng: random.Random) -> str:
    return ".".join(str(rng.randrange(256)) for _ in range(4))


def _cidr(rng: random.Random) -> str:
    prefix = rng.randrange(1, 33)
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    addr = rng.getrandbits(32) & mask
    return f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}/{prefix}"


def _mask(rng: random.Random, bits: int) -> int:
    return rng.choice([(1 << bits) - 1, rng.getrandbits(bits) or 1, 1 << rng.randrange(bits)])


def _match(rng: random.Random) -> Match:
    f: dict[str, object] = {}
    if rng.random() < 0.5:
        f["in_port"] = rng.choice([1, 2, 48, 0xFFFFFF00, ReservedPort.LOCAL])
    if rng.random() < 0.3:
        f["eth_dst"] = _mac(rng)
    if rng.random() < 0.3:
        f["eth_src"] = _mac(rng)
    if rng.random() < 0.3:
        f["vlan_vid"] = rng.choice([0, 0x1000 | rng.randrange(4096)])
    kind = rng.choice(["ip", "mpls", "other", None])
    if kind == "ip":
        f["eth_type"] = 0x0800
        if rng.random() < 0.7:
            f["ipv4_src"] = rng.choice([_ip(rng), _cidr(rng)])
        if rng.random() < 0.7:
            f["ipv4_dst"] = rng.choice([_ip(rng), _cidr(rng)])
        proto = rng.choice([1, 6, 17, None])
        if proto is not None:
            f["ip_proto"] = proto
        if proto in (6, 17):
            name = "tcp" if proto == 6 else "udp"
            for end in ("src", "dst"):
                if rng.random() < 0.6:
                    f[f"{name}_{end}"] = rng.randrange(65536)
    elif kind == "mpls":
        f["eth_type"] = rng.choice([0x8847, 0x8848])
        if rng.random() < 0.8:
            f["mpls_label"] = rng.randrange(1 << 20)
        if rng.random() < 0.5:
            f["mpls_tc"] = rng.randrange(8)
    elif kind == "other":
        f["eth_type"] = rng.choice([0x88CC, 0x0806, 0x86DD])
    if rng.random() < 0.4:
        mask = rng.choice([METADATA_FULL, 1, 3, _mask(rng, 64)])
        f["metadata"] = (rng.getrandbits(64) & mask, mask)
    regs = {}
    for reg in rng.sample(range(16), rng.choice([0, 0, 1, 2, 4])):
        mask = rng.choice([REG_FULL, _mask(rng, 32)])
        regs[reg] = (rng.getrandbits(32), mask)
    return Match(regs=with_regs(regs), **f)  # type: ignore[arg-type]


def _action(rng: random.Random) -> Action:
    kind = rng.randrange(11)
    if kind == 0:
        port = rng.choice([1, 7, 0xFFFFFF00, ReservedPort.IN_PORT, ReservedPort.LOCAL])
        return Output(port)
    if kind == 1:
        return Output(ReservedPort.CONTROLLER, rng.choice([0, 128, 0xFFE5, 0xFFFF]))
    if kind == 2:
        name, value = rng.choice(
            [
                ("vlan_vid", 0x1000 | rng.randrange(4096)),
                ("eth_dst", _mac(rng)),
                ("eth_src", _mac(rng)),
                ("ipv4_dst", _ip(rng)),
                ("ipv4_src", _ip(rng)),
                ("mpls_label", rng.randrange(1 << 20)),
                ("mpls_tc", rng.randrange(8)),
                ("tcp_dst", rng.randrange(65536)),
            ]
        )
        return SetField(name, value)
    if kind == 3:
        return PushVlan(rng.choice([0x8100, 0x88A8]))
    if kind == 4:
        return PopVlan()
    if kind == 5:
        return PushMpls(rng.choice([0x8847, 0x8848]))
    if kind == 6:
        return PopMpls(rng.choice([0x0800, 0x0806, 0x86DD, 0x8847]))
    if kind == 7:
        mask = rng.choice([REG_FULL, _mask(rng, 32)])
        return LoadReg(rng.randrange(16), rng.getrandbits(32) & mask, mask)
    if kind == 8:
        src, dst = rng.choice([("reg10", "mpls_tc"), ("reg9", "reg3"), ("reg0", "mpls_label")])
        n_bits = rng.randrange(1, 4)
        return MoveBits(src, dst, n_bits, rng.randrange(29), rng.randrange(1))
    if kind == 9:
        return ToGroup(rng.getrandbits(32) & 0xFFFFFF00)
    return Resubmit(rng.randrange(255))


def _actions(rng: random.Random) -> tuple[Action, ...]:
    return tuple(_action(rng) for _ in range(rng.choice([0, 1, 2, 3, 5, 8])))


def _rule(rng: random.Random) -> FlowRule:
    return FlowRule(
        table_id=rng.randrange(255),
        priority=rng.randrange(65536),
        match=_match(rng),
        actions=_actions(rng),
        goto_table=rng.choice([None, None, rng.randrange(1, 255)]),
        cookie=rng.choice([0, rng.getrandbits(64), (1 << 64) - 1]),
        idle_timeout=rng.choice([0, 0, rng.randrange(65536)]),
        hard_timeout=rng.choice([0, 0, rng.randrange(65536)]),
        send_flow_rem=rng.random() < 0.3,
        write_metadata=rng.choice([None, None, (1, 1), (rng.getrandbits(64), METADATA_FULL)]),
    )


def _group(rng: random.Random) -> GroupRule:
    buckets = tuple(
        Bucket(
            _actions(rng),
            weight=rng.choice([0, rng.randrange(65536)]),
            watch_port=rng.choice([ReservedPort.ANY, rng.randrange(1, 64)]),
            watch_group=rng.choice([ReservedPort.ANY, rng.getrandbits(32)]),
        )
        for _ in range(rng.choice([0, 1, 2, 3, 6]))
    )
    return GroupRule(rng.getrandbits(32) & 0xFFFFFF00, GroupType(rng.randrange(4)), buckets)


RNG = random.Random(20240613)
RULES = [_rule(RNG) for _ in range(400)]
GROUPS = [_group(RNG) for _ in range(120)]
XIDS = [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, *(RNG.getrandbits(32) for _ in range(6))]
BUNDLE_IDS = [0, 1, 0xFFFFFFFF, 42]


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    wire.clear_caches()
    codec._MATCH_WIRE.clear()


def test_the_corpus_has_every_kind_of_field_and_action() -> None:
    """Guards the guard: a generator that stopped producing something tests nothing of it."""
    fields = {name for r in RULES for name, _ in r.match.items()}
    assert {f for f in Match.__dataclass_fields__ if f not in ("regs", "_hash")} <= fields
    assert any(r.match.regs for r in RULES)
    assert any(mask != REG_FULL for r in RULES for _, _, mask in r.match.regs)
    assert any(r.match.metadata and r.match.metadata[1] != METADATA_FULL for r in RULES)
    assert any(r.match.ipv4_src and "/" in r.match.ipv4_src for r in RULES)
    kinds = {type(a) for r in RULES for a in r.actions} | {
        type(a) for g in GROUPS for b in g.buckets for a in b.actions
    }
    assert kinds == {
        Output,
        SetField,
        PushVlan,
        PopVlan,
        PushMpls,
        PopMpls,
        LoadReg,
        MoveBits,
        ToGroup,
        Resubmit,
    }
    assert any(isinstance(a, LoadReg) and a.mask != REG_FULL for r in RULES for a in r.actions)
    assert any(r.write_metadata for r in RULES) and any(r.goto_table for r in RULES)
    assert {g.group_type for g in GROUPS} == set(GroupType)
    assert any(len(g.buckets) > 2 for g in GROUPS) and any(not g.buckets for g in GROUPS)


def test_flow_mods_are_os_kens_bytes_and_read_back_equal() -> None:
    for i, rule in enumerate(RULES):
        xid = XIDS[i % len(XIDS)]
        add = wire.flow_add(rule, xid)
        assert add == _wire(_ref_flow_add(rule), xid), rule
        assert _parse_flow(add) == rule
        delete = wire.flow_delete_strict(rule, xid)
        assert delete == _wire(_ref_flow_delete_strict(rule), xid), rule
        assert codec.from_ofp_match(_parse(delete).match) == rule.match  # type: ignore[attr-defined]


def test_group_mods_are_os_kens_bytes_and_read_back_equal() -> None:
    for i, group in enumerate(GROUPS):
        xid = XIDS[i % len(XIDS)]
        add = wire.group_mod(wire.OFPGC_ADD, group, xid)
        assert add == _wire(_ref_group(ofp.OFPGC_ADD, group), xid), group
        assert _parse_group(add) == group
        mod = wire.group_mod(wire.OFPGC_MODIFY, group, xid)
        assert mod == _wire(_ref_group(ofp.OFPGC_MODIFY, group), xid)
        delete = wire.group_delete(group.group_id, xid)
        assert delete == _wire(P.OFPGroupMod(DP, ofp.OFPGC_DELETE, 0, group.group_id, []), xid)


def test_kept_bytes_do_not_leak_between_rules() -> None:
    """Matches, treatments and buckets are kept: encode everything twice, interleaved the
    other way round, and compare with fresh references each time."""
    for _ in range(2):
        for i, rule in enumerate(reversed(RULES)):
            assert wire.flow_add(rule, i) == _wire(_ref_flow_add(rule), i)
        for i, group in enumerate(reversed(GROUPS)):
            expected = _wire(_ref_group(ofp.OFPGC_ADD, group), i)
            assert wire.group_mod(wire.OFPGC_ADD, group, i) == expected
    assert wire.match_bytes.cache_info().hits > 0


def _unwrap(buf: bytes) -> tuple[int, int, bytes]:
    """(bundle id, flags, inner message) of a bundle-add, checked against the outer header
    as os-ken parses it (os-ken registers no parser for the add itself)."""
    outer = _parse(buf)
    assert (outer.experimenter, outer.exp_type) == (  # type: ignore[attr-defined]
        0x4F4E4600,
        ofp.ONF_ET_BUNDLE_ADD_MESSAGE,
    )
    bundle_id, flags = struct.unpack_from("!I2xH", buf, 16)
    return bundle_id, flags, buf[24:]


def _outbound() -> list[tuple[object, object]]:
    """(neutral message, a fresh os-ken equivalent built the kwargs way) pairs."""
    out: list[tuple[object, object]] = []
    for rule in RULES[:60]:
        out.append((m.FlowAdd(rule), _ref_flow_add(rule)))
        out.append((m.FlowDeleteStrict(rule), _ref_flow_delete_strict(rule)))
    for group in GROUPS[:30]:
        out.append((m.GroupAdd(group), _ref_group(ofp.OFPGC_ADD, group)))
        out.append((m.GroupModify(group), _ref_group(ofp.OFPGC_MODIFY, group)))
        ref = P.OFPGroupMod(DP, ofp.OFPGC_DELETE, 0, group.group_id, [])
        out.append((m.GroupDelete(group.group_id), ref))
    return out


def test_bundle_adds_are_os_kens_bytes() -> None:
    for i, (msg, ref) in enumerate(_outbound()):
        xid, bundle_id = XIDS[i % len(XIDS)], BUNDLE_IDS[i % len(BUNDLE_IDS)]
        fast = codec.encode(codec.bundle_add(bundle_id, msg), xid)
        expected = _wire(P.ONFBundleAddMsg(DP, bundle_id, codec.BUNDLE_FLAGS, ref, []), xid)
        assert fast == expected
        assert _wire(codec.to_ofp(codec.bundle_add(bundle_id, msg)), xid) == expected
        assert _unwrap(fast) == (bundle_id, codec.BUNDLE_FLAGS, codec.encode(msg, xid))
        assert codec.header(fast[24:])[3] == xid  # the inner message carries the add's xid


def test_a_bundle_add_may_wrap_an_os_ken_message() -> None:
    ref = P.OFPBarrierRequest(DP)
    fast = codec.encode(codec.bundle_add(9, codec.barrier_request()), 77)
    assert fast == _wire(P.ONFBundleAddMsg(DP, 9, codec.BUNDLE_FLAGS, ref, []), 77)


@pytest.mark.parametrize(
    ("build", "type_"),
    [
        (codec.bundle_open, ofp.ONF_BCT_OPEN_REQUEST),
        (codec.bundle_commit, ofp.ONF_BCT_COMMIT_REQUEST),
        (codec.bundle_discard, ofp.ONF_BCT_DISCARD_REQUEST),
    ],
)
def test_bundle_control_requests(build: object, type_: int) -> None:
    parsed = _parse(codec.encode(build(0xFFFFFFFF), 5))  # type: ignore[operator]
    assert isinstance(parsed, P.ONFBundleCtrlMsg)
    assert (parsed.bundle_id, parsed.type, parsed.flags) == (
        0xFFFFFFFF,
        type_,
        ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED,
    )


def test_what_cannot_be_encoded_is_refused() -> None:
    with pytest.raises(wire.WireError, match="LoadReg"):
        wire.flow_add(FlowRule(0, 1, Match(), (SetField("reg3", 1),)), 1)
    with pytest.raises(codec.CodecError, match="LoadReg"):
        codec.to_ofp_actions([SetField("reg3", 1)])
    with pytest.raises(wire.WireError, match="arp_op"):
        wire.flow_add(FlowRule(0, 1, Match(), (SetField("arp_op", 1),)), 1)
    with pytest.raises(wire.WireError, match="MAC"):
        wire.flow_add(FlowRule(0, 1, Match(eth_dst="00:00:00:00:00")), 1)
    with pytest.raises(wire.WireError, match="IPv4"):
        wire.flow_add(FlowRule(0, 1, Match(ipv4_dst="10.1")), 1)
    too_big = (Match(in_port=1 << 32), Match(metadata=(1, 1 << 64)), Match(regs=((1, 0, 1 << 33),)))
    for bad in too_big:
        with pytest.raises(codec.CodecError):
            codec.encode(codec.flow_add(FlowRule(0, 1, bad)), 1)
    huge = GroupRule(1, GroupType.ALL, tuple(Bucket((Output(p),)) for p in range(2100)))
    with pytest.raises(codec.CodecError, match="65535"):
        codec.encode(codec.group_add(huge), 1)
    with pytest.raises(codec.CodecError, match="BundleAdd"):
        codec.encode(codec.bundle_add(1 << 32, codec.group_delete(1)), 1)
    with pytest.raises(codec.CodecError, match="FlowAdd"):
        codec.encode(codec.flow_add(FlowRule(0, 1 << 16, Match())), 1)


def test_only_outbound_messages_are_packed_directly() -> None:
    assert wire.encode(codec.barrier_request(), 1) is None
    assert wire.encode(m.BundleAdd(1, m.GroupDelete(1)), 1) is None  # wrapped by the codec
