"""Frames the controller parses and builds, checked byte by byte where it matters."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from vtap.domain.network import FlowKey
from vtap.packets import (
    ARP_REPLY,
    ARP_REQUEST,
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_LLDP,
    Arp,
    Ipv4,
    Lldp,
    build_arp_reply,
    build_arp_request,
    build_lldp,
    is_unicast_mac,
    mac_from_bytes,
    mac_to_bytes,
    parse_frame,
    parse_lldp,
)

H1_MAC, H1_IP = "00:00:00:00:00:01", "10.0.0.1"
H2_MAC, H2_IP = "00:00:00:00:00:02", "10.0.0.2"


def test_mac_conversions() -> None:
    assert mac_to_bytes("AA:bb:cc:dd:ee:0F") == bytes.fromhex("aabbccddee0f")
    assert mac_to_bytes("aa-bb-cc-dd-ee-0f") == bytes.fromhex("aabbccddee0f")
    assert mac_from_bytes(bytes.fromhex("aabbccddee0f")) == "aa:bb:cc:dd:ee:0f"
    for bad in ("", "aa:bb", "aa:bb:cc:dd:ee:gg", "aabbccddeeff", "a:b:c:d:e:f"):
        with pytest.raises(ValueError):
            mac_to_bytes(bad)


def test_unicast_mac() -> None:
    assert is_unicast_mac(H1_MAC)
    assert not is_unicast_mac("ff:ff:ff:ff:ff:ff")
    assert not is_unicast_mac("01:00:5e:00:00:01")
    assert not is_unicast_mac("33:33:00:00:00:01")
    assert not is_unicast_mac("00:00:00:00:00:00")
    assert not is_unicast_mac("junk")


def test_arp_reply_bytes_match_scapy_and_hand_layout() -> None:
    data = build_arp_reply(H1_MAC, H1_IP, H2_MAC, H2_IP)
    expected = bytes(
        Ether(dst=H1_MAC, src=H2_MAC)
        / ARP(op=2, hwsrc=H2_MAC, psrc=H2_IP, hwdst=H1_MAC, pdst=H1_IP)
    ).ljust(60, b"\x00")
    assert data == expected
    by_hand = (
        bytes.fromhex("0000000000010000000000020806")
        + bytes.fromhex("0001080006040002")
        + bytes.fromhex("000000000002")
        + bytes([10, 0, 0, 2])
        + bytes.fromhex("000000000001")
        + bytes([10, 0, 0, 1])
    ).ljust(60, b"\x00")
    assert data == by_hand
    frame = parse_frame(data)
    assert frame is not None
    assert frame.eth_type == ETH_TYPE_ARP
    assert frame.arp == Arp(ARP_REPLY, H2_MAC, H2_IP, H1_MAC, H1_IP)


def test_arp_request_is_broadcast_and_parses() -> None:
    data = build_arp_request(H1_MAC, H1_IP, H2_IP)
    assert len(data) == 60
    expected = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=H1_MAC)
        / ARP(op=1, hwsrc=H1_MAC, psrc=H1_IP, hwdst="00:00:00:00:00:00", pdst=H2_IP)
    ).ljust(60, b"\x00")
    assert data == expected
    frame = parse_frame(data)
    assert frame is not None
    assert frame.eth_dst == "ff:ff:ff:ff:ff:ff"
    assert frame.eth_src == H1_MAC
    assert frame.arp == Arp(ARP_REQUEST, H1_MAC, H1_IP, "00:00:00:00:00:00", H2_IP)
    assert frame.flow_key() is None


def test_scapy_arp_request_parses() -> None:
    raw = bytes(Ether(src="AA:BB:CC:00:00:01") / ARP(psrc="10.0.0.7", pdst="10.0.0.9"))
    frame = parse_frame(raw)
    assert frame is not None and frame.arp is not None
    assert frame.eth_src == "aa:bb:cc:00:00:01"
    assert frame.arp.op == ARP_REQUEST
    assert (frame.arp.sender_ip, frame.arp.target_ip) == ("10.0.0.7", "10.0.0.9")


def test_non_ethernet_ipv4_arp_is_not_parsed() -> None:
    raw = bytes(Ether() / ARP(hwtype=6, psrc="10.0.0.7", pdst="10.0.0.9"))
    frame = parse_frame(raw)
    assert frame is not None and frame.eth_type == ETH_TYPE_ARP and frame.arp is None


@pytest.mark.parametrize(
    ("l4", "proto", "ports"),
    [
        (TCP(sport=40000, dport=80), 6, (40000, 80)),
        (UDP(sport=5353, dport=53), 17, (5353, 53)),
        (ICMP(type=8), 1, (0, 0)),
    ],
)
def test_ipv4_flow_keys(l4: object, proto: int, ports: tuple[int, int]) -> None:
    raw = bytes(Ether(src=H1_MAC, dst=H2_MAC) / IP(src=H1_IP, dst=H2_IP) / l4 / b"payload")
    frame = parse_frame(raw)
    assert frame is not None
    assert frame.eth_type == ETH_TYPE_IPV4
    assert frame.ipv4 == Ipv4(H1_IP, H2_IP, proto, *ports)
    assert frame.flow_key() == FlowKey(H1_IP, H2_IP, proto, *ports)


def test_ip_options_are_skipped_by_ihl() -> None:
    ip = IP(src=H1_IP, dst=H2_IP, options=[b"\x94\x04\x00\x00"])  # router alert
    raw = bytes(Ether() / ip / UDP(sport=1111, dport=2222))
    assert raw[14] & 0x0F == 6
    frame = parse_frame(raw)
    assert frame is not None and frame.ipv4 == Ipv4(H1_IP, H2_IP, 17, 1111, 2222)


def test_fragments() -> None:
    first = bytes(Ether() / IP(src=H1_IP, dst=H2_IP, flags="MF") / TCP(sport=1, dport=2))
    later = bytes(Ether() / IP(src=H1_IP, dst=H2_IP, frag=100, proto=6) / (b"\x00" * 16))
    f1, f2 = parse_frame(first), parse_frame(later)
    assert f1 is not None and f1.ipv4 == Ipv4(H1_IP, H2_IP, 6, 1, 2)
    assert f2 is not None and f2.ipv4 == Ipv4(H1_IP, H2_IP, 6, 0, 0)


def test_vlan_tagged_frame() -> None:
    raw = bytes(Ether(src=H1_MAC, dst=H2_MAC) / Dot1Q(vlan=100) / IP(src=H1_IP, dst=H2_IP) / TCP())
    frame = parse_frame(raw)
    assert frame is not None
    assert frame.vlan_vids == (100,)
    assert frame.eth_type == ETH_TYPE_IPV4
    assert frame.flow_key() == FlowKey(H1_IP, H2_IP, 6, 20, 80)


def test_double_tagged_frame_outer_first() -> None:
    raw = bytes(
        Ether(src=H1_MAC, dst=H2_MAC)
        / Dot1AD(vlan=300)
        / Dot1Q(vlan=100, prio=5)
        / ARP(psrc=H1_IP, pdst=H2_IP, hwsrc=H1_MAC)
    )
    frame = parse_frame(raw)
    assert frame is not None
    assert frame.vlan_vids == (300, 100)
    assert frame.eth_type == ETH_TYPE_ARP
    assert frame.arp is not None and frame.arp.target_ip == H2_IP


def test_truncated_and_junk_never_raise() -> None:
    good = bytes(Ether(src=H1_MAC, dst=H2_MAC) / Dot1Q(vlan=5) / IP(src=H1_IP, dst=H2_IP) / TCP())
    for n in range(len(good)):
        frame = parse_frame(good[:n])
        if n < 18:  # no Ethernet header, or a cut VLAN tag
            assert frame is None
        else:
            assert frame is not None and frame.vlan_vids == (5,)
            # The 5-tuple is only reported when the ports are present.
            assert frame.ipv4 is None or n >= 18 + 20 + 4
    assert parse_frame(b"") is None
    for blob in (b"\xff" * 100, bytes(range(256)), b"\x00" * 14, b"\x81\x00" * 40):
        parse_frame(blob)  # must not raise


def test_truncated_ipv4_header_keeps_ethernet_part() -> None:
    raw = bytes(Ether(src=H1_MAC, dst=H2_MAC) / IP(src=H1_IP, dst=H2_IP) / UDP())[: 14 + 19]
    frame = parse_frame(raw)
    assert frame is not None and frame.eth_src == H1_MAC and frame.ipv4 is None


def test_bad_ip_version_or_ihl() -> None:
    raw = bytearray(bytes(Ether() / IP(src=H1_IP, dst=H2_IP) / UDP()))
    raw[14] = 0x65  # version 6
    assert parse_frame(bytes(raw)).ipv4 is None  # type: ignore[union-attr]
    raw[14] = 0x44  # IHL 4 (< 20 bytes)
    assert parse_frame(bytes(raw)).ipv4 is None  # type: ignore[union-attr]
    raw[14] = 0x4F  # IHL 15 (60 bytes, more than we have)
    assert parse_frame(bytes(raw)).ipv4 is None  # type: ignore[union-attr]


# --- LLDP ---------------------------------------------------------------------------------


def test_lldp_round_trip() -> None:
    data = build_lldp(0x0000_0000_0000_0201, 3, "0a:00:00:00:02:03")
    assert len(data) == 60
    assert data[:6] == bytes.fromhex("0180c200000e")
    assert struct.unpack("!H", data[12:14])[0] == ETH_TYPE_LLDP
    frame = parse_frame(data)
    assert frame is not None
    assert frame.eth_type == ETH_TYPE_LLDP
    assert frame.eth_src == "0a:00:00:00:02:03"
    assert frame.lldp == Lldp(0x201, 3)


def test_lldp_layout() -> None:
    data = build_lldp(0xABCDEF, 0xFFFFFF00, "02:00:00:00:00:01")
    pdu = data[14:]
    chassis_value = b"\x07dpid:0000000000abcdef"
    port_value = b"\x02" + b"4294967040"
    expected = (
        struct.pack("!H", (1 << 9) | len(chassis_value))
        + chassis_value
        + struct.pack("!H", (2 << 9) | len(port_value))
        + port_value
        + struct.pack("!HH", (3 << 9) | 2, 120)
        + b"\x00\x00"
    )
    assert pdu.startswith(expected)
    assert parse_lldp(pdu) == Lldp(0xABCDEF, 0xFFFFFF00)


def test_lldp_extreme_values() -> None:
    data = build_lldp((1 << 64) - 1, 1, "02:00:00:00:00:01")
    assert parse_lldp(data[14:]) == Lldp((1 << 64) - 1, 1)
    for dpid, port in ((-1, 1), (1 << 64, 1), (1, 0), (1, 0xFFFFFFFE)):
        with pytest.raises(ValueError):
            build_lldp(dpid, port, "02:00:00:00:00:01")


def _pdu(*tlvs: tuple[int, bytes], end: bool = True) -> bytes:
    out = b"".join(struct.pack("!H", (t << 9) | len(v)) + v for t, v in tlvs)
    return out + (b"\x00\x00" if end else b"")


TTL = (3, b"\x00\x78")


@pytest.mark.parametrize(
    "pdu",
    [
        # lldpd on a Linux host: MAC chassis, interface-name port
        _pdu((1, b"\x04" + bytes(6)), (2, b"\x05eth0"), TTL),
        # locally assigned chassis, but not ours
        _pdu((1, b"\x07switch-7"), (2, b"\x023"), TTL),
        # our prefix with a short or non-hex dpid
        _pdu((1, b"\x07dpid:abc"), (2, b"\x023"), TTL),
        _pdu((1, b"\x07dpid:000000000000000g"), (2, b"\x023"), TTL),
        _pdu((1, b"\x07dpid:+00000000000000a"), (2, b"\x023"), TTL),
        # port id of another subtype, empty, non-decimal, zero, reserved
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x053"), TTL),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x02"), TTL),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x02 3"), TTL),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x020"), TTL),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x024294967294"), TTL),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x0299999999999"), TTL),
        # TLVs out of order, missing TTL, bad TTL length
        _pdu((2, b"\x023"), (1, b"\x07dpid:0000000000000001"), TTL),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x023")),
        _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x023"), (3, b"\x78")),
        # a TLV that overruns the frame
        struct.pack("!H", (1 << 9) | 100) + b"\x07dpid:",
        b"",
        b"\x00",
    ],
)
def test_foreign_or_garbled_lldp_is_ignored(pdu: bytes) -> None:
    assert parse_lldp(pdu) is None
    frame = parse_frame(bytes.fromhex("0180c200000e02000000000188cc") + pdu)
    assert frame is not None and frame.eth_type == ETH_TYPE_LLDP and frame.lldp is None


def test_lldp_without_end_tlv_is_accepted() -> None:
    pdu = _pdu((1, b"\x07dpid:0000000000000001"), (2, b"\x0212"), TTL, end=False)
    assert parse_lldp(pdu) == Lldp(1, 12)
