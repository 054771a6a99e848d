"""Path choice over the usable-link graph: shortest paths, one per flow, spread by a hash.

The choice must be a pure function of (topology, flow key): the controller recomputes paths
after failures and after its own restart, and a flow must land on the same path every time so
that rules read back from switches still agree with what would be computed now. So the hash is
blake2b over a fixed text encoding, never Python's salted `hash()`. (Not crc32: it is linear, so
the scores of two paths for similar flows differ by a constant and most flows rank the paths
alike, which defeats the spreading below.)

Among equal-cost paths the flow takes the one with the highest hash(flow, path) score
(rendezvous hashing) rather than `hash % n`: when a path disappears, only the flows that used it
move, so a link failure does not reshuffle (and briefly reorder) every other flow, and when it
comes back only the flows that now score it highest return to it.

The score is symmetric (a flow and its reply score alike) and paths are named from the lower
dpid to the higher one, so both directions of a conversation cross the same spine: a TAP on
that spine sees the whole conversation.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import networkx as nx

from vtap.domain.network import FlowKey, PortRef
from vtap.topology.graph import Topology


@dataclass(frozen=True, slots=True)
class Hop:
    """One switch on a path: where the flow enters it and which port it leaves by.

    `in_port` is None for the first switch when the path starts at the switch itself (no host
    port given); `out_port` is None for the last switch when the path ends there.
    """

    dpid: int
    in_port: int | None
    out_port: int | None


Path = list[Hop]
T = TypeVar("T")


def _flow_text(key: FlowKey) -> str:
    """A stable text for the 5-tuple that is the same for the flow and its reply."""
    lo, hi = sorted([(key.ipv4_src, key.src_port), (key.ipv4_dst, key.dst_port)])
    return f"{lo[0]}|{lo[1]}|{hi[0]}|{hi[1]}|{key.ip_proto}"


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("ascii"), digest_size=8).digest(), "big")


def flow_hash(key: FlowKey) -> int:
    """A stable (across processes and runs), direction-independent 64-bit hash of a 5-tuple."""
    return _hash64(_flow_text(key))


def _pick(flow: str, options: list[T], name: Callable[[T], str]) -> T:
    """Rendezvous choice: the option whose (flow, option) hash is highest; ties by name."""
    return max(options, key=lambda o: (_hash64(f"{flow}#{name(o)}"), name(o)))


def shortest_paths(topology: Topology, src_dpid: int, dst_dpid: int) -> list[list[int]]:
    """All equal-cost (fewest hops) switch sequences from src to dst, sorted; [] if none."""
    g = topology.graph
    if src_dpid not in g or dst_dpid not in g:
        return []
    try:
        return sorted(nx.all_shortest_paths(g, src_dpid, dst_dpid))
    except nx.NetworkXNoPath:
        return []


def choose_path(topology: Topology, src_dpid: int, dst_dpid: int, key: FlowKey) -> Path | None:
    """The path this flow takes from switch src to switch dst, or None if unreachable.

    Every hop's `out_port` faces the next switch; the first hop has `in_port` None and the last
    hop `out_port` None (see `host_path` for a path between host ports).
    """
    lo, hi = sorted((src_dpid, dst_dpid))
    candidates = shortest_paths(topology, lo, hi)
    if not candidates:
        return None
    flow = _flow_text(key)
    nodes = _pick(flow, candidates, lambda p: ",".join(f"{d:x}" for d in p))
    if lo != src_dpid:
        nodes = nodes[::-1]
    hops: Path = []
    in_port: int | None = None
    for here, there in itertools.pairwise(nodes):
        # Parallel cables between the same two switches: pick one the same way, naming each
        # cable from its lower-dpid end so that the reply uses the same cable.
        cable = _pick(flow, topology.link_ports(here, there), _cable_name)
        hops.append(Hop(here, in_port, cable[0].port_no))
        in_port = cable[1].port_no
    hops.append(Hop(nodes[-1], in_port, None))
    return hops


def _cable_name(cable: tuple[PortRef, PortRef]) -> str:
    a, b = sorted(cable)
    return f"{a.dpid:x}:{a.port_no}-{b.dpid:x}:{b.port_no}"


def host_path(topology: Topology, src: PortRef, dst: PortRef, key: FlowKey) -> Path | None:
    """The path from the source host's port to the destination host's port, fully specified.

    Every hop has both ports set; when both hosts hang off one switch it is a single hop from
    the source port to the destination port. None when the switches are not connected.
    """
    if src.dpid == dst.dpid:
        return [Hop(src.dpid, src.port_no, dst.port_no)]
    path = choose_path(topology, src.dpid, dst.dpid, key)
    if path is None:
        return None
    first, last = path[0], path[-1]
    return [
        Hop(first.dpid, src.port_no, first.out_port),
        *path[1:-1],
        Hop(last.dpid, last.in_port, dst.port_no),
    ]
