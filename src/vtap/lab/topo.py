"""The emulated data center's address plan: names, ports, MACs, IPs, dpids, interface names.

Pure data, no Mininet: the lab builds from it, `lab down` and `lab link` find interfaces with
it, and the controller's tests compute the topology they expect from it without any network.

Numbering (stable, so tests and operators can rely on it):
- hosts h1..hN, host i has MAC 00:00:00:00:00:<i in hex> and IP 10.0.0.i/24; hosts are filled
  leaf by leaf: h1..h{H} on leaf1, the next H on leaf2, ...
- leaf i has dpid 0x100+i, spine j has dpid 0x200+j;
- leaf ports 1..H face its hosts (in host order), port H+j faces spine j;
  spine port i faces leaf i; every host has one interface, port 0 (hN-eth0);
- an interface is named <node>-eth<port>, as Mininet would name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from vtap.errors import LabError

MAX_HOSTS = 254  # 10.0.0.1 .. 10.0.0.254 in one /24
MAX_SPINES = 32  # keeps spine dpids below 0x300 and interface names within 15 bytes
SUBNET_PREFIX = "10.0.0."
PREFIX_LEN = 24
LEAF_DPID_BASE = 0x100
SPINE_DPID_BASE = 0x200


@dataclass(frozen=True)
class HostSpec:
    name: str
    index: int
    mac: str
    ip: str
    leaf: str
    leaf_port: int

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{PREFIX_LEN}"

    @property
    def intf(self) -> str:
        return f"{self.name}-eth0"


@dataclass(frozen=True)
class SwitchSpec:
    name: str
    role: Literal["leaf", "spine"]
    index: int
    dpid: int

    @property
    def dpid_hex(self) -> str:
        """The 16-digit form Mininet's `dpid=` parameter and OVS's datapath-id expect."""
        return f"{self.dpid:016x}"


@dataclass(frozen=True)
class Endpoint:
    node: str
    port: int

    @property
    def intf(self) -> str:
        return f"{self.node}-eth{self.port}"


@dataclass(frozen=True)
class LinkSpec:
    """One veth pair. `edge` links join a host (a) to its leaf (b); `fabric` links a leaf (a)
    to a spine (b)."""

    a: Endpoint
    b: Endpoint
    kind: Literal["edge", "fabric"]

    def joins(self, node1: str, node2: str) -> bool:
        return {self.a.node, self.b.node} == {node1, node2}

    def end(self, node: str) -> Endpoint:
        return self.a if self.a.node == node else self.b


@dataclass(frozen=True)
class LeafSpinePlan:
    """A leaf-spine fabric in which every leaf connects to every spine."""

    spines: int = 4
    leaves: int = 8
    hosts_per_leaf: int = 2

    def __post_init__(self) -> None:
        for field_name, value in (
            ("spines", self.spines),
            ("leaves", self.leaves),
            ("hosts per leaf", self.hosts_per_leaf),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabError(f"number of {field_name} must be a positive integer, not {value!r}")
        if self.spines > MAX_SPINES:
            raise LabError(f"at most {MAX_SPINES} spines are supported, not {self.spines}")
        total = self.leaves * self.hosts_per_leaf
        if total > MAX_HOSTS:
            raise LabError(
                f"{self.leaves} leaves x {self.hosts_per_leaf} hosts per leaf = {total} hosts; "
                f"the 10.0.0.0/24 address plan holds at most {MAX_HOSTS}"
            )

    # -- nodes ------------------------------------------------------------------------------

    @property
    def host_count(self) -> int:
        return self.leaves * self.hosts_per_leaf

    @cached_property
    def hosts(self) -> tuple[HostSpec, ...]:
        hosts = []
        for i in range(1, self.host_count + 1):
            leaf = (i - 1) // self.hosts_per_leaf + 1
            hosts.append(
                HostSpec(
                    name=f"h{i}",
                    index=i,
                    mac=":".join(f"{b:02x}" for b in i.to_bytes(6, "big")),
                    ip=f"{SUBNET_PREFIX}{i}",
                    leaf=f"leaf{leaf}",
                    leaf_port=(i - 1) % self.hosts_per_leaf + 1,
                )
            )
        return tuple(hosts)

    @cached_property
    def spine_switches(self) -> tuple[SwitchSpec, ...]:
        return tuple(
            SwitchSpec(f"spine{j}", "spine", j, SPINE_DPID_BASE + j)
            for j in range(1, self.spines + 1)
        )

    @cached_property
    def leaf_switches(self) -> tuple[SwitchSpec, ...]:
        return tuple(
            SwitchSpec(f"leaf{i}", "leaf", i, LEAF_DPID_BASE + i) for i in range(1, self.leaves + 1)
        )

    @property
    def switches(self) -> tuple[SwitchSpec, ...]:
        return self.spine_switches + self.leaf_switches

    @property
    def bridges(self) -> tuple[str, ...]:
        """OVS bridge names, one per switch."""
        return tuple(s.name for s in self.switches)

    def host(self, name: str) -> HostSpec:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"unknown host {name!r}: the lab has {self.host_range}")

    def switch(self, name: str) -> SwitchSpec:
        for switch in self.switches:
            if switch.name == name:
                return switch
        raise LabError(
            f"unknown switch {name!r}: the lab has spine1..spine{self.spines} "
            f"and leaf1..leaf{self.leaves}"
        )

    def node_names(self) -> tuple[str, ...]:
        return self.bridges + tuple(h.name for h in self.hosts)

    @property
    def host_range(self) -> str:
        return f"h1..h{self.host_count}" if self.host_count > 1 else "h1"

    # -- ports and links --------------------------------------------------------------------

    def fabric_port(self, leaf: int, spine: int) -> tuple[int, int]:
        """(leaf port, spine port) of the link between leaf `leaf` and spine `spine`."""
        return self.hosts_per_leaf + spine, leaf

    @cached_property
    def edge_links(self) -> tuple[LinkSpec, ...]:
        return tuple(
            LinkSpec(Endpoint(h.name, 0), Endpoint(h.leaf, h.leaf_port), "edge") for h in self.hosts
        )

    @cached_property
    def fabric_links(self) -> tuple[LinkSpec, ...]:
        links = []
        for leaf in self.leaf_switches:
            for spine in self.spine_switches:
                leaf_port, spine_port = self.fabric_port(leaf.index, spine.index)
                links.append(
                    LinkSpec(
                        Endpoint(leaf.name, leaf_port), Endpoint(spine.name, spine_port), "fabric"
                    )
                )
        return tuple(links)

    @property
    def links(self) -> tuple[LinkSpec, ...]:
        return self.edge_links + self.fabric_links

    def link(self, node1: str, node2: str) -> LinkSpec:
        for link in self.links:
            if link.joins(node1, node2):
                return link
        known = set(self.node_names())
        for node in (node1, node2):
            if node not in known:
                raise LabError(f"unknown node {node!r}: the lab has {self._node_summary()}")
        raise LabError(f"there is no link between {node1} and {node2}")

    def _node_summary(self) -> str:
        return f"spine1..spine{self.spines}, leaf1..leaf{self.leaves} and {self.host_range}"

    def interfaces(self) -> tuple[str, ...]:
        """Every veth end the lab creates (host ends live inside host namespaces)."""
        return tuple(end.intf for link in self.links for end in (link.a, link.b))

    def switch_interfaces(self) -> tuple[str, ...]:
        """The veth ends in the root namespace: everything attached to a bridge."""
        hosts = {h.name for h in self.hosts}
        return tuple(
            end.intf for link in self.links for end in (link.a, link.b) if end.node not in hosts
        )

    def ports_of(self, switch: str) -> dict[int, str]:
        """Port number -> peer node name for one switch."""
        ports = {}
        for link in self.links:
            for mine, other in ((link.a, link.b), (link.b, link.a)):
                if mine.node == switch:
                    ports[mine.port] = other.node
        return dict(sorted(ports.items()))
