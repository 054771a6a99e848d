"""The tree copies travel on toward one monitor: every switch's next hop to the monitor's edge.

One tree per monitor, rooted at the monitor's edge switch and made of shortest paths, so that
transit rules can forward by the copy label alone: whatever switch a copy starts from, each switch
on the way has exactly one next hop for that label, and a tree has no loops. Among equal next hops
(several spines, parallel cables) the choice is a rendezvous hash of (monitor, switch, cable),
stable across runs and processes: after a restart the same rules are computed, and a failed
link only moves the switches whose choice it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import networkx as nx

from vtap.domain.network import PortRef


class Links(Protocol):
    """What a tree reads: a Topology, or a TopologyView of one state of it."""

    @property
    def graph(self) -> nx.Graph: ...

    def link_ports(self, a: int, b: int) -> list[tuple[PortRef, PortRef]]: ...


@dataclass(frozen=True, slots=True)
class Step:
    """Leave `dpid` by `out_port`; the copy arrives at `next_dpid` on `next_in_port`."""

    dpid: int
    out_port: int
    next_dpid: int
    next_in_port: int


def _score(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("ascii"), digest_size=8).digest(), "big")


class CopyTree:
    """Next hops toward `root` (the monitor's edge switch) for every switch that can reach it."""

    def __init__(self, topology: Links, root: int, monitor_mac: str) -> None:
        self.root = root
        self._next: dict[int, Step] = {}
        g = topology.graph
        if root not in g:
            return
        dist = nx.single_source_shortest_path_length(g, root)
        for here in sorted(dist):
            if here == root:
                continue
            cables: list[tuple[PortRef, PortRef]] = []
            for there in sorted(g.neighbors(here)):
                if dist.get(there) == dist[here] - 1:
                    cables += topology.link_ports(here, there)

            def score(cable: tuple[PortRef, PortRef], here: int = here) -> tuple[int, str]:
                mine, theirs = cable
                name = f"{mine.dpid:x}:{mine.port_no}-{theirs.dpid:x}:{theirs.port_no}"
                return _score(f"{monitor_mac}|{here:x}|{name}"), name

            mine, theirs = max(cables, key=score)
            self._next[here] = Step(here, mine.port_no, theirs.dpid, theirs.port_no)

    def reaches(self, dpid: int) -> bool:
        return dpid == self.root or dpid in self._next

    def path(self, dpid: int) -> list[Step]:
        """The steps from `dpid` to the root ([] at the root). KeyError if unreachable."""
        steps: list[Step] = []
        while dpid != self.root:
            step = self._next[dpid]
            steps.append(step)
            dpid = step.next_dpid
        return steps
