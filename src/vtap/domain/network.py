"""The network as vtap sees it: switches, ports, links, hosts and flows.

Plain frozen dataclasses rather than pydantic models: these are built on every packet-in and
topology event, and the API layer has its own pydantic schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOCAL_PORT = 0xFFFFFFFE


def dpid_str(dpid: int) -> str:
    """The 16-hex-digit form OVS and operators use for a datapath id."""
    return f"{dpid:016x}"


@dataclass(frozen=True, slots=True)
class Port:
    port_no: int
    name: str
    hw_addr: str
    up: bool = True


@dataclass(frozen=True, slots=True)
class Switch:
    dpid: int
    name: str = ""
    ports: tuple[Port, ...] = ()
    connected: bool = True

    def port(self, port_no: int) -> Port | None:
        return next((p for p in self.ports if p.port_no == port_no), None)


@dataclass(frozen=True, slots=True, order=True)
class PortRef:
    """One end of a link, or a host's attachment point: (switch, port)."""

    dpid: int
    port_no: int


@dataclass(frozen=True, slots=True, order=True)
class Link:
    """A directed adjacency seen by LLDP: a frame sent out of `src` arrived at `dst`."""

    src: PortRef
    dst: PortRef

    def reversed(self) -> Link:
        return Link(self.dst, self.src)

    def undirected(self) -> tuple[PortRef, PortRef]:
        return (self.src, self.dst) if self.src <= self.dst else (self.dst, self.src)


@dataclass(frozen=True, slots=True)
class Host:
    mac: str
    ip: str | None
    location: PortRef
    last_seen: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True, order=True)
class FlowKey:
    """An IPv4 5-tuple. ICMP and other port-less protocols carry ports of 0."""

    ipv4_src: str
    ipv4_dst: str
    ip_proto: int
    src_port: int = 0
    dst_port: int = 0

    def reversed(self) -> FlowKey:
        return FlowKey(self.ipv4_dst, self.ipv4_src, self.ip_proto, self.dst_port, self.src_port)
