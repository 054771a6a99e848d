from __future__ import annotations

from fastapi import APIRouter

from vtap.api.deps import ControllerDep
from vtap.api.schemas import HostOut, LinkEnd, LinkOut, PortOut, SwitchOut, TopologyOut
from vtap.domain.network import LOCAL_PORT, PortRef, dpid_str

router = APIRouter(tags=["topology"])


@router.get("/topology", response_model=TopologyOut)
def topology(controller: ControllerDep) -> TopologyOut:
    """Switches with their ports, leaf-spine links (one entry per cable) and hosts."""
    state = controller.state
    topo = state.topology
    now = state.now()
    grace = state.settings.edge_grace
    names = {s.dpid: s.name for s in topo.switches()}
    host_names = state.settings.host_names

    def role(ref: PortRef) -> str:
        if topo.is_fabric_port(ref):
            return "fabric"
        return "edge" if topo.is_edge_port(ref, now, grace) else "pending"

    switches = [
        SwitchOut(
            dpid=dpid_str(s.dpid),
            name=s.name,
            connected=s.dpid in state.sessions,
            ports=[
                PortOut(
                    port_no=p.port_no,
                    name=p.name,
                    hw_addr=p.hw_addr,
                    up=p.up,
                    role=role(PortRef(s.dpid, p.port_no)),
                )
                for p in sorted(s.ports, key=lambda p: p.port_no)
                if p.port_no != LOCAL_PORT
            ],
        )
        for s in sorted(topo.switches(), key=lambda s: s.dpid)
    ]

    def end(ref: PortRef) -> LinkEnd:
        return LinkEnd(dpid=dpid_str(ref.dpid), switch=names.get(ref.dpid, ""), port_no=ref.port_no)

    links = [LinkOut(a=end(link.src), b=end(link.dst)) for link in topo.undirected_links()]
    hosts = [
        HostOut(
            mac=h.mac,
            ip=h.ip,
            dpid=dpid_str(h.location.dpid),
            switch=names.get(h.location.dpid, ""),
            port_no=h.location.port_no,
            name=host_names.get(h.ip or "") or host_names.get(h.mac),
        )
        for h in sorted(state.hosts.all(), key=lambda h: h.mac)
    ]
    return TopologyOut(switches=switches, links=links, hosts=hosts)
