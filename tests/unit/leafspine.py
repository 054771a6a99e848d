"""A leaf-spine fabric built through Topology events, as the controller would see it."""

from __future__ import annotations

from dataclasses import dataclass

from vtap.domain.network import LOCAL_PORT, Link, Port, PortRef, Switch
from vtap.topology import Topology


def spine_dpid(i: int) -> int:
    return 0x100 + i


def leaf_dpid(j: int) -> int:
    return 0x200 + j


@dataclass(frozen=True)
class Fabric:
    """Spine i port j ↔ leaf j port i; leaf j host ports are spines+1 … spines+hosts_per_leaf."""

    spines: int = 4
    leaves: int = 8
    hosts_per_leaf: int = 2

    def spine_ids(self) -> list[int]:
        return [spine_dpid(i) for i in range(1, self.spines + 1)]

    def leaf_ids(self) -> list[int]:
        return [leaf_dpid(j) for j in range(1, self.leaves + 1)]

    def switch(self, dpid: int) -> Switch:
        n = self.leaves if dpid in self.spine_ids() else self.spines + self.hosts_per_leaf
        ports = [
            Port(p, f"{dpid:x}-eth{p}", f"0a:00:00:00:{dpid & 0xFF:02x}:{p:02x}")
            for p in range(1, n + 1)
        ]
        ports.append(Port(LOCAL_PORT, f"s{dpid:x}", f"0a:00:00:00:{dpid & 0xFF:02x}:00"))
        return Switch(dpid, f"s{dpid:x}", tuple(ports))

    def cables(self) -> list[Link]:
        return [
            Link(PortRef(spine_dpid(i), j), PortRef(leaf_dpid(j), i))
            for i in range(1, self.spines + 1)
            for j in range(1, self.leaves + 1)
        ]

    def host_port(self, host: int) -> PortRef:
        """Host h1.. (1-based) as in the lab: h1, h2 on leaf 1, h3, h4 on leaf 2, …"""
        leaf = (host - 1) // self.hosts_per_leaf + 1
        return PortRef(leaf_dpid(leaf), self.spines + 1 + (host - 1) % self.hosts_per_leaf)

    def build(self, now: float = 0.0, both_directions: bool = True) -> Topology:
        topo = Topology()
        for dpid in self.spine_ids() + self.leaf_ids():
            topo.switch_up(self.switch(dpid), now)
        for cable in self.cables():
            topo.lldp_seen(cable, now)
            if both_directions:
                topo.lldp_seen(cable.reversed(), now)
        return topo
