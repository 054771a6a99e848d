"""A packet as operators write it for `ovs-ofctl`/`ofproto/trace`: `tcp,ipv4_dst=10.0.0.5,
tcp_dst=80`. The fields not given come from the sending host (its MAC and IP) and from the
destination host the controller knows (its MAC)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vtap.errors import VtapError

PROTOCOL_WORDS = {"ip": None, "tcp": 6, "udp": 17, "icmp": 1}
_FIELDS = {  # operator spelling → canonical
    "ipv4_src": "ipv4_src", "nw_src": "ipv4_src", "ipv4_dst": "ipv4_dst", "nw_dst": "ipv4_dst",
    "eth_src": "eth_src", "dl_src": "eth_src", "eth_dst": "eth_dst", "dl_dst": "eth_dst",
    "ip_proto": "ip_proto", "nw_proto": "ip_proto", "dl_vlan": "vlan", "vlan_vid": "vlan",
    "tcp_src": "src_port", "udp_src": "src_port", "tp_src": "src_port",
    "tcp_dst": "dst_port", "udp_dst": "dst_port", "tp_dst": "dst_port",
}  # fmt: skip


class PacketSpecError(VtapError):
    """The packet text has a token that is not understood (the message names it)."""


@dataclass(frozen=True)
class PacketSpec:
    ip_proto: int | None = None
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    eth_src: str | None = None
    eth_dst: str | None = None
    vlan: int | None = None
    src_port: int = 0
    dst_port: int = 0


def parse(text: str) -> PacketSpec:
    values: dict[str, object] = {}
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            continue
        if "=" not in token:
            if token not in PROTOCOL_WORDS:
                raise PacketSpecError(f"packet: {token!r} is not ip, tcp, udp or icmp")
            if PROTOCOL_WORDS[token] is not None:
                values["ip_proto"] = PROTOCOL_WORDS[token]
            continue
        name, _, value = (part.strip() for part in token.partition("="))
        field = _FIELDS.get(name)
        if field is None:
            raise PacketSpecError(f"packet: unknown field {name!r} (e.g. ipv4_dst, tcp_dst)")
        values[field] = _value(field, name, value)
    if (values.get("src_port") or values.get("dst_port")) and values.get("ip_proto") not in (6, 17):
        raise PacketSpecError("packet: a port needs tcp or udp")
    return PacketSpec(**values)  # type: ignore[arg-type]


def _value(field: str, name: str, value: str) -> object:
    try:
        if field in ("ipv4_src", "ipv4_dst"):
            return str(ipaddress.IPv4Address(value))
        if field in ("eth_src", "eth_dst"):
            parts = value.lower().split(":")
            if len(parts) != 6 or not all(len(p) == 2 and int(p, 16) >= 0 for p in parts):
                raise ValueError(value)
            return value.lower()
        number = int(value, 0)
    except ValueError:
        raise PacketSpecError(f"packet: {name}={value!r} is not a valid value") from None
    limit = {"ip_proto": 255, "vlan": 4095}.get(field, 65535)
    if not 0 <= number <= limit:
        raise PacketSpecError(f"packet: {name}={value} is out of range 0-{limit}")
    return number
