"""What the TAP compiler needs from the topology, derived once per topology state.

`compile_tap` runs after every change (a policy, a host, a link), but most of what it reads
from the topology — each switch's edge ports, the fabric ports, the copy tree toward each
monitor — depends on the topology alone. A `TopologyView` captures one state of a `Topology`
(its generation) and derives those lazily, each once: the controller keeps one view while the
topology's generation stays the same and passes it to every compile of that state.

The view holds only values taken at construction (the networkx graph it captures is never
modified: a topology change builds a new one) plus memos of pure functions of them, so a view
answers the same way however the topology changes later; `matches` tells whether it still
describes a given topology. No module-level state: a view's memos live and die with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import networkx as nx

from vtap.compiler.copytree import CopyTree
from vtap.domain.network import PortRef, Switch, dpid_str
from vtap.topology.graph import Topology

_MAX_PHYSICAL_PORT = 0xFFFFFF00
_T = TypeVar("_T")


class TopologyView:
    """One state of a Topology, with the compiler's topology-only derivations memoised."""

    def __init__(self, topology: Topology) -> None:
        self._source = topology
        self.generation = topology.generation
        self.graph: nx.Graph = topology.graph  # shared, never modified (see module docstring)
        self.nodes = frozenset(self.graph.nodes)
        switches = topology.switches()
        self._switches: dict[int, Switch] = {sw.dpid: sw for sw in switches}
        self._connected = tuple(sw.dpid for sw in switches if sw.connected)
        self.fabric_ports = frozenset(
            PortRef(sw.dpid, p.port_no)
            for sw in switches
            for p in sw.ports
            if topology.is_fabric_port(PortRef(sw.dpid, p.port_no))
        )
        self._edge_ports: dict[int, tuple[int, ...]] = {}
        self._fabric_of: dict[int, tuple[int, ...]] = {}
        self._physical_ports: dict[int, tuple[int, ...]] = {}
        self._link_ports: dict[tuple[int, int], list[tuple[PortRef, PortRef]]] = {}
        self._trees: dict[tuple[int, str], CopyTree] = {}
        self._memo: dict[Any, Any] = {}

    def matches(self, topology: Topology) -> bool:
        """True while this view still describes `topology` (same object, same generation)."""
        return topology is self._source and topology.generation == self.generation

    def switch(self, dpid: int) -> Switch | None:
        return self._switches.get(dpid)

    def connected(self) -> tuple[int, ...]:
        """Connected switches' dpids, sorted."""
        return self._connected

    def label(self, dpid: int) -> str:
        sw = self._switches.get(dpid)
        return sw.name if sw is not None and sw.name else dpid_str(dpid)

    def is_fabric_port(self, ref: PortRef) -> bool:
        return ref in self.fabric_ports

    def fabric_ports_of(self, dpid: int) -> tuple[int, ...]:
        """The switch's fabric ports, sorted."""
        ports = self._fabric_of.get(dpid)
        if ports is None:
            ports = self._fabric_of[dpid] = tuple(
                sorted(ref.port_no for ref in self.fabric_ports if ref.dpid == dpid)
            )
        return ports

    def physical_ports(self, dpid: int) -> tuple[int, ...]:
        ports = self._physical_ports.get(dpid)
        if ports is None:
            sw = self._switches.get(dpid)
            ports = self._physical_ports[dpid] = (
                ()
                if sw is None
                else tuple(p.port_no for p in sw.ports if p.port_no <= _MAX_PHYSICAL_PORT)
            )
        return ports

    def edge_ports(self, dpid: int) -> tuple[int, ...]:
        """Ports a host may send from: up and not fabric (a down port needs no guard)."""
        ports = self._edge_ports.get(dpid)
        if ports is None:
            sw = self._switches.get(dpid)
            ports = self._edge_ports[dpid] = (
                ()
                if sw is None
                else tuple(
                    p.port_no
                    for p in sw.ports
                    if p.up
                    and p.port_no <= _MAX_PHYSICAL_PORT
                    and PortRef(dpid, p.port_no) not in self.fabric_ports
                )
            )
        return ports

    def link_ports(self, a: int, b: int) -> list[tuple[PortRef, PortRef]]:
        """As Topology.link_ports, for this state (callers must not modify the list)."""
        pairs = self._link_ports.get((a, b))
        if pairs is None:
            g = self.graph
            pairs = self._link_ports[(a, b)] = (
                sorted((p, q) if p.dpid == a else (q, p) for p, q in g.edges[a, b]["ports"])
                if g.has_edge(a, b)
                else []
            )
        return pairs

    def copy_tree(self, root: int, monitor_mac: str) -> CopyTree:
        """The copy tree toward `monitor_mac` at `root`, built once per view."""
        key = (root, monitor_mac)
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = CopyTree(self, root, monitor_mac)
        return tree

    def memo(self, key: object, build: Callable[[TopologyView], _T]) -> _T:
        """`build(self)`, computed once per view and key: for values that depend only on this
        topology state and `key`. `key` must name everything
        `build` depends on besides the view."""
        if key in self._memo:
            return self._memo[key]  # type: ignore[no-any-return]
        value = self._memo[key] = build(self)
        return value
