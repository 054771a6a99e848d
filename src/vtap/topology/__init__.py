"""Topology and hosts as pure state: what the fabric looks like, where hosts are, which path a
flow takes. Driven by events with the time passed in; no I/O, no clock, no asyncio."""

from vtap.topology.graph import Topology
from vtap.topology.hosts import HostEvent, HostEventKind, HostTracker
from vtap.topology.paths import Hop, Path, choose_path, flow_hash, host_path, shortest_paths

__all__ = [
    "Hop",
    "HostEvent",
    "HostEventKind",
    "HostTracker",
    "Path",
    "Topology",
    "choose_path",
    "flow_hash",
    "host_path",
    "shortest_paths",
]
