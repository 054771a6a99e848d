"""POST /api/v1/trace: where a packet from a host would go, from the controller's own model of
the rules it compiled (vtap/trace), switch by switch, with the policies that copy it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from vtap.api.deps import ControllerDep
from vtap.api.invalid import invalid
from vtap.api.ofctl import to_ofctl
from vtap.controller.core import Controller
from vtap.domain.network import Host, dpid_str
from vtap.trace import packetspec
from vtap.trace.model import covers, trace
from vtap.trace.walker import Packet

router = APIRouter(tags=["trace"])


class TraceIn(BaseModel):
    from_: str = Field(
        alias="from", description="The sending host: name, IP or MAC.", examples=["h1"]
    )
    packet: str = Field(
        description="ovs-ofctl style: a protocol and fields; the rest comes from the hosts.",
        examples=["tcp,ipv4_dst=10.0.0.5,tcp_dst=80"],
    )


class TraceHopOut(BaseModel):
    switch: str
    dpid: str
    in_port: int
    table: int
    priority: int
    cookie: str
    owner: str  # pipeline, forwarding, policy, tap-shared (or foreign)
    policies: list[str]  # names of the policies the entry exists for
    copy_in_flight: bool  # the packet here is a copy being carried to a monitor
    rule: str  # ovs-ofctl spelling


class TraceDeliveryOut(BaseModel):
    switch: str
    port_no: int
    host: str | None  # name (or IP, or MAC) of the host there
    role: str  # destination or copy
    unchanged: bool  # delivered with the original headers


class TraceEntry(BaseModel):
    """Where the packet (or a copy) entered a switch, and as what: what --verify replays."""

    switch: str
    in_port: int
    flow: str  # ofproto/trace spelling of the packet's headers there
    out_ports: list[int]  # the ports the model sends it out of on that switch


class TraceOut(BaseModel):
    packet: str  # the packet, every field filled in
    path: str  # installed, computed (the first packet installs it) or none
    policies: list[str]  # the enabled policies whose match covers the packet
    hops: list[TraceHopOut]
    delivered: list[TraceDeliveryOut]
    to_controller: list[str]
    drops: list[str]
    entered: list[TraceEntry]


def _host(controller: Controller, text: str) -> Host:
    hosts = controller.state.hosts
    names = controller.state.settings.host_names
    keys = [k for k, name in names.items() if name == text] + [text, text.lower()]
    for key in keys:
        host = hosts.by_mac(key) if ":" in key else hosts.by_ip(key)
        if host is not None:
            return host
    raise invalid("body", "from", f"no host {text!r} is known (name, IP or MAC)")


def _name(controller: Controller, host: Host | None) -> str | None:
    if host is None:
        return None
    names = controller.state.settings.host_names
    return names.get(host.ip or "") or names.get(host.mac) or host.ip or host.mac


def flow_text(packet: Packet) -> str:
    """The packet's headers as `ovs-appctl ofproto/trace` reads them."""
    parts = [f"dl_src={packet.eth_src}", f"dl_dst={packet.eth_dst}"]
    if packet.vlans:
        parts.append(f"dl_vlan={packet.vlans[0][1]}")
    if packet.eth_type == 0x8847 and packet.mpls:
        label, tc, _ = packet.mpls[0]
        return ",".join(["mpls", *parts, f"mpls_label={label}", f"mpls_tc={tc}"])
    proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(packet.ip_proto or -1)
    head = proto or "ip"
    parts += [f"nw_src={packet.ipv4_src}", f"nw_dst={packet.ipv4_dst}"]
    if packet.ip_proto is not None and proto is None:
        parts.append(f"nw_proto={packet.ip_proto}")
    if proto in ("tcp", "udp"):  # (ofproto/trace refuses tp_src after a VLAN field)
        parts += [f"{proto}_src={packet.src_port}", f"{proto}_dst={packet.dst_port}"]
    return ",".join([head, *parts])


@router.post("/trace", response_model=TraceOut)
def trace_packet(body: TraceIn, controller: ControllerDep) -> TraceOut:
    """Where the packet goes: the entries it hits on every switch (with their cookies and the
    policies they exist for), where it is delivered, and where each copy goes."""
    try:
        spec = packetspec.parse(body.packet)
    except packetspec.PacketSpecError as exc:
        raise invalid("body", "packet", str(exc)) from None
    state = controller.state
    source = _host(controller, body.from_)
    dst_ip = spec.ipv4_dst
    destination = state.hosts.by_ip(dst_ip) if dst_ip else None
    eth_dst = spec.eth_dst or (destination.mac if destination is not None else None)
    if eth_dst is None:
        raise invalid("body", "packet", "give ipv4_dst of a known host, or eth_dst")
    packet = Packet(
        eth_src=spec.eth_src or source.mac,
        eth_dst=eth_dst,
        vlans=((0x8100, spec.vlan),) if spec.vlan is not None else (),
        ipv4_src=spec.ipv4_src or source.ip,
        ipv4_dst=dst_ip,
        ip_proto=spec.ip_proto,
        src_port=spec.src_port,
        dst_port=spec.dst_port,
    )
    installer = controller.installer
    rules = {}
    for dpid in controller.reconciler.switches():
        want = installer.desired(dpid, True)
        flows = list(want.flows.values())
        flows += [hops[dpid] for key in state.flows if dpid in (hops := state.flows.hops(key))]
        rules[dpid] = (flows, list(want.groups.values()))
    compiler = installer.compiler
    result = trace(
        state.topology,
        rules,
        (lambda d, k: compiler.owners(d, k)) if compiler is not None else (lambda d, k: set()),
        state.hosts.all(),
        source,
        packet,
        state.settings.flow_idle_timeout,
    )
    stored = controller.policies.list()
    names = {p.id: p.name for p in stored}
    sw = installer.switch_name
    return TraceOut(
        packet=flow_text(packet),
        path=result.path,
        policies=[p.name for p in stored if p.enabled and covers(p, packet)],
        hops=[
            TraceHopOut(
                switch=sw(h.dpid),
                dpid=dpid_str(h.dpid),
                in_port=h.in_port,
                table=h.rule.table_id,
                priority=h.rule.priority,
                cookie=f"0x{h.rule.cookie:x}",
                owner=h.owner,
                policies=[names.get(p, str(p)) for p in h.policies],
                copy_in_flight=h.copy,
                rule=to_ofctl(h.rule),
            )
            for h in result.hops
        ],
        delivered=[
            TraceDeliveryOut(
                switch=sw(d.port.dpid),
                port_no=d.port.port_no,
                host=_name(controller, d.host),
                role=d.role,
                unchanged=d.unchanged,
            )
            for d in result.deliveries
        ],
        to_controller=[sw(d) for d in result.to_controller],
        drops=result.drops,
        entered=[
            TraceEntry(
                switch=sw(where.dpid), in_port=where.port_no, flow=flow_text(p), out_ports=out
            )
            for where, p, out in result.entered
        ],
    )
