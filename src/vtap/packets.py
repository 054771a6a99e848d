"""Parse and build the few Ethernet frames the controller itself handles.

Packet-ins bring ARP, IPv4 and LLDP; the controller answers ARP, probes for unknown hosts and
sends LLDP to discover links. That is a small, fixed set of formats, so it is done with `struct`
and `ipaddress` rather than a packet library: no os-ken outside the codec, and a parser that
returns None (never raises) on whatever junk a switch or a host hands us.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from vtap.domain.network import FlowKey

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_LLDP = 0x88CC
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad, pre-standard QinQ

IP_PROTO_ICMP = 1
IP_PROTO_TCP = 6
IP_PROTO_UDP = 17

ARP_REQUEST = 1
ARP_REPLY = 2

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
LLDP_MULTICAST_MAC = "01:80:c2:00:00:0e"
LLDP_TTL = 120
MIN_FRAME_LEN = 60  # Ethernet minimum without the FCS

_ETH_HEADER = struct.Struct("!6s6sH")
_ARP_BODY = struct.Struct("!HHBBH6s4s6s4s")
_LLDP_CHASSIS_PREFIX = b"dpid:"
_LLDP_CHASSIS_SUBTYPE_LOCAL = 7
_LLDP_PORT_SUBTYPE_COMPONENT = 2
_MAX_PHYSICAL_PORT = 0xFFFFFF00  # OFPP_MAX: above it are reserved ports, never on the wire


# --- addresses ---------------------------------------------------------------------------


def mac_to_bytes(mac: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or with '-') → 6 bytes. ValueError on anything else."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"not a MAC address: {mac!r}") from None


def mac_from_bytes(raw: bytes) -> str:
    """6 bytes → the lowercase colon form used everywhere in vtap."""
    return ":".join(f"{b:02x}" for b in raw)


def is_unicast_mac(mac: str) -> bool:
    """True for an address a host can own: not multicast/broadcast (I/G bit) and not all-zero.

    Host learning must ignore the others: they are never a station's source address.
    """
    try:
        raw = mac_to_bytes(mac)
    except ValueError:
        return False
    return not (raw[0] & 0x01) and raw != b"\x00" * 6


def _ip_to_bytes(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def _ip_from_bytes(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


# --- parsed frames -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arp:
    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


@dataclass(frozen=True, slots=True)
class Ipv4:
    """The part of an IPv4 packet a flow key needs. Ports are 0 unless TCP/UDP first fragment."""

    src: str
    dst: str
    proto: int
    src_port: int = 0
    dst_port: int = 0


@dataclass(frozen=True, slots=True)
class Lldp:
    """Where a vtap LLDP frame was sent from: switch and port, with the probe's signature
    (controller/lldpauth.py checks it) when it carried one."""

    dpid: int
    port_no: int
    stamp: int = 0  # ms since the epoch, when the probe was signed
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed Ethernet frame. `eth_type` is the type after any VLAN tags.

    At most one of `arp`, `ipv4`, `lldp` is set; each is None when the frame is of another type
    or its payload is truncated or malformed (the Ethernet part is still useful then).
    """

    eth_dst: str
    eth_src: str
    eth_type: int
    vlan_vids: tuple[int, ...] = ()
    arp: Arp | None = None
    ipv4: Ipv4 | None = None
    lldp: Lldp | None = None

    def flow_key(self) -> FlowKey | None:
        """The 5-tuple the forwarding app installs rules for, or None if this is not IPv4."""
        if self.ipv4 is None:
            return None
        ip = self.ipv4
        return FlowKey(ip.src, ip.dst, ip.proto, ip.src_port, ip.dst_port)


def parse_frame(data: bytes) -> Frame | None:
    """Parse an Ethernet frame; None if it is too short to have a header. Never raises."""
    if len(data) < _ETH_HEADER.size:
        return None
    dst, src, eth_type = _ETH_HEADER.unpack_from(data, 0)
    offset = _ETH_HEADER.size
    vids: list[int] = []
    while eth_type in VLAN_TPIDS:
        if len(data) < offset + 4:
            return None
        tci, eth_type = struct.unpack_from("!HH", data, offset)
        vids.append(tci & 0x0FFF)
        offset += 4
    payload = data[offset:]
    arp = _parse_arp(payload) if eth_type == ETH_TYPE_ARP else None
    ipv4 = _parse_ipv4(payload) if eth_type == ETH_TYPE_IPV4 else None
    lldp = parse_lldp(payload) if eth_type == ETH_TYPE_LLDP else None
    return Frame(
        eth_dst=mac_from_bytes(dst),
        eth_src=mac_from_bytes(src),
        eth_type=eth_type,
        vlan_vids=tuple(vids),
        arp=arp,
        ipv4=ipv4,
        lldp=lldp,
    )


def _parse_arp(payload: bytes) -> Arp | None:
    """Only Ethernet/IPv4 ARP: the only kind a host on our fabric can be found by."""
    if len(payload) < _ARP_BODY.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP_BODY.unpack_from(payload, 0)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IPV4, 6, 4):
        return None
    return Arp(
        op, mac_from_bytes(sha), _ip_from_bytes(spa), mac_from_bytes(tha), _ip_from_bytes(tpa)
    )


def _parse_ipv4(payload: bytes) -> Ipv4 | None:
    if len(payload) < 20:
        return None
    version_ihl = payload[0]
    if version_ihl >> 4 != 4:
        return None
    header_len = (version_ihl & 0x0F) * 4
    if header_len < 20 or len(payload) < header_len:
        return None
    frag = struct.unpack_from("!H", payload, 6)[0]
    proto = payload[9]
    src = _ip_from_bytes(payload[12:16])
    dst = _ip_from_bytes(payload[16:20])
    if proto not in (IP_PROTO_TCP, IP_PROTO_UDP) or frag & 0x1FFF:
        # Non-first fragments carry no L4 header; OpenFlow matches them with ports absent too.
        return Ipv4(src, dst, proto)
    if len(payload) < header_len + 4:
        return None  # a TCP/UDP packet without its ports would yield a wrong flow key
    sport, dport = struct.unpack_from("!HH", payload, header_len)
    return Ipv4(src, dst, proto, sport, dport)


# --- building ----------------------------------------------------------------------------


def _ethernet(dst: str, src: str, eth_type: int, payload: bytes) -> bytes:
    frame = _ETH_HEADER.pack(mac_to_bytes(dst), mac_to_bytes(src), eth_type) + payload
    return frame.ljust(MIN_FRAME_LEN, b"\x00")


def _arp(op: int, eth_dst: str, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    body = _ARP_BODY.pack(
        1,
        ETH_TYPE_IPV4,
        6,
        4,
        op,
        mac_to_bytes(sha),
        _ip_to_bytes(spa),
        mac_to_bytes(tha),
        _ip_to_bytes(tpa),
    )
    return _ethernet(eth_dst, sha, ETH_TYPE_ARP, body)


def build_arp_reply(
    requester_mac: str, requester_ip: str, target_mac: str, target_ip: str
) -> bytes:
    """The reply a proxy-ARP sends on behalf of the target: "target_ip is at target_mac".

    Sent by the controller to the requester's port so that ARP requests never cross the fabric.
    """
    return _arp(ARP_REPLY, requester_mac, target_mac, target_ip, requester_mac, requester_ip)


def build_arp_request(sender_mac: str, sender_ip: str, target_ip: str) -> bytes:
    """A broadcast "who has target_ip" (sent to edge ports only, to find an unknown host)."""
    return _arp(ARP_REQUEST, BROADCAST_MAC, sender_mac, sender_ip, ZERO_MAC, target_ip)


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!H", (tlv_type << 9) | len(value)) + value


_LLDP_VTAP_OUI = b"\x02\x76\x74"  # locally administered: vtap's organizationally specific TLV
_LLDP_VTAP_SIGNED = 1
_LLDP_SIGNED = struct.Struct("!Q16s")  # stamp (ms), truncated HMAC-SHA256


def build_lldp(
    dpid: int, port_no: int, src_mac: str, stamp: int = 0, signature: bytes = b""
) -> bytes:
    """The LLDP frame vtap sends out of (dpid, port_no) to discover what is on the other end;
    with a signature (16 bytes), an organizationally specific TLV carries it and its stamp."""
    if not 0 <= dpid < 1 << 64:
        raise ValueError(f"dpid out of range: {dpid}")
    if not 0 < port_no <= _MAX_PHYSICAL_PORT:
        raise ValueError(f"not a physical port number: {port_no}")
    chassis = bytes([_LLDP_CHASSIS_SUBTYPE_LOCAL]) + _LLDP_CHASSIS_PREFIX + f"{dpid:016x}".encode()
    port = bytes([_LLDP_PORT_SUBTYPE_COMPONENT]) + str(port_no).encode()
    pdu = _tlv(1, chassis) + _tlv(2, port) + _tlv(3, struct.pack("!H", LLDP_TTL))
    if signature:
        signed = _LLDP_SIGNED.pack(stamp, signature)
        pdu += _tlv(127, _LLDP_VTAP_OUI + bytes([_LLDP_VTAP_SIGNED]) + signed)
    pdu += _tlv(0, b"")
    return _ethernet(LLDP_MULTICAST_MAC, src_mac, ETH_TYPE_LLDP, pdu)


def _tlvs(pdu: bytes) -> list[tuple[int, bytes]] | None:
    """Split an LLDPDU into (type, value) up to the End TLV; None if a TLV overruns."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset + 2 <= len(pdu):
        header = struct.unpack_from("!H", pdu, offset)[0]
        tlv_type, length = header >> 9, header & 0x1FF
        offset += 2
        if offset + length > len(pdu):
            return None
        if tlv_type == 0:
            return out
        out.append((tlv_type, pdu[offset : offset + length]))
        offset += length
    return out


def parse_lldp(payload: bytes) -> Lldp | None:
    """(dpid, port) from an LLDPDU (the bytes after the ethertype) that vtap built.

    Anybody else's LLDP (a host's lldpd, another controller) returns None: it says nothing
    about links between our switches, and a host must not be able to fake a fabric link by
    sending something that merely looks like LLDP. Never raises.
    """
    tlvs = _tlvs(payload)
    if tlvs is None or len(tlvs) < 3:
        return None
    (t1, chassis), (t2, port), (t3, ttl) = tlvs[:3]
    if (t1, t2, t3) != (1, 2, 3) or len(ttl) != 2:
        return None
    prefix = bytes([_LLDP_CHASSIS_SUBTYPE_LOCAL]) + _LLDP_CHASSIS_PREFIX
    if not chassis.startswith(prefix) or not port or port[0] != _LLDP_PORT_SUBTYPE_COMPONENT:
        return None
    dpid_text, port_text = chassis[len(prefix) :], port[1:]
    if len(dpid_text) != 16 or not _only(dpid_text, b"0123456789abcdef"):
        return None
    if not 0 < len(port_text) <= 10 or not _only(port_text, b"0123456789"):
        return None
    port_no = int(port_text)
    if not 0 < port_no <= _MAX_PHYSICAL_PORT:
        return None
    stamp, signature = 0, b""
    for tlv_type, value in tlvs[3:]:
        head = _LLDP_VTAP_OUI + bytes([_LLDP_VTAP_SIGNED])
        if tlv_type == 127 and value.startswith(head) and len(value) == 4 + _LLDP_SIGNED.size:
            stamp, signature = _LLDP_SIGNED.unpack_from(value, 4)
    return Lldp(int(dpid_text, 16), port_no, stamp, signature)


def _only(raw: bytes, allowed: bytes) -> bool:
    """True if every byte is in `allowed` (int() alone would accept '+', '_' and spaces)."""
    return all(c in allowed for c in raw)
