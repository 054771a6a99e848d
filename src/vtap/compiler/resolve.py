"""Where a policy is classified and where its copies go, or why that is not known yet.

A policy with a source (`src_mac`/`src_ip`) is classified at the source host's edge switch, on
the source's port: every packet from the source enters the network there, exactly once. A
policy with only a destination is classified at the destination's edge switch, on every port
but the destination's own (a packet to the destination enters that switch exactly once, from a
host port or from the fabric) and the monitor's, when the monitor hangs off that switch (a
monitor never becomes a source of copies). Packets that arrive from the fabric may have been
copied already at the source's switch, or may be the monitor's own: suppressors handle those
(compiler/tap.py).

A copy to a monitor on another switch crosses the fabric on the monitor's copy tree
(compiler/copytree.py) marked with its copy key's MPLS label; a copy to a monitor on the
classifying switch is a plain output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from vtap.compiler.alloc import monitor_key, policy_key
from vtap.compiler.copytree import Step
from vtap.compiler.cubes import Value, policy_cube
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import Host
from vtap.domain.policy import Policy


class HostLookup(Protocol):
    """Where hosts are: HostTracker, or StaticHosts in tests."""

    def by_mac(self, mac: str) -> Host | None: ...

    def by_ip(self, ip: str) -> Host | None: ...


class StaticHosts:
    """A fixed host table with the HostTracker lookup interface (also a snapshot of one)."""

    def __init__(self, hosts: Iterable[Host]) -> None:
        self._by_mac = {h.mac.lower(): h for h in hosts}
        self._by_ip = {h.ip: h for h in self._by_mac.values() if h.ip is not None}

    def by_mac(self, mac: str) -> Host | None:
        return self._by_mac.get(mac.lower())

    def by_ip(self, ip: str) -> Host | None:
        return self._by_ip.get(ip)

    def all(self) -> list[Host]:
        return list(self._by_mac.values())


class Pending(Exception):
    """Why a policy cannot be placed now; the message is the reason an operator sees."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A policy that can be compiled: where it is classified and where its copies go."""

    policy: Policy
    cube: dict[str, Value]
    monitor: Host
    origin: int  # the classifying switch
    source_port: int | None  # source policies: the one port they are classified on
    dest_port: int | None  # destination policies: the destination's port (not classified)
    steps: tuple[Step, ...]  # the copy's way from origin to the monitor's edge; () if local

    @property
    def pid(self) -> int:
        return self.policy.id

    @property
    def remote(self) -> bool:
        return self.monitor.location.dpid != self.origin

    @property
    def copy_key(self) -> str:
        """What a copy is for: its monitor, or the policy itself for a rewrite copy that
        crosses the fabric (its destination is restored at the monitor's edge)."""
        if self.remote and self.policy.delivery == "rewrite":
            return policy_key(self.policy.id)
        return monitor_key(self.monitor.mac)

    @property
    def monitor_port(self) -> int | None:
        """The monitor's port when it hangs off the classifying switch."""
        return None if self.remote else self.monitor.location.port_no

    @property
    def rewrite(self) -> tuple[str, str] | None:
        """(monitor MAC, monitor IP) written into a remote rewrite copy's destination."""
        if self.remote and self.policy.delivery == "rewrite":
            assert self.monitor.ip is not None
            return (self.monitor.mac, self.monitor.ip)
        return None


def _host(hosts: HostLookup, mac: str | None, ip: str | None, role: str) -> Host:
    by_mac = hosts.by_mac(mac) if mac is not None else None
    by_ip = hosts.by_ip(ip) if ip is not None else None
    if mac is not None and by_mac is None:
        raise Pending(f"{role} host {mac} not discovered yet")
    if ip is not None and by_ip is None:
        raise Pending(f"{role} host {ip} not discovered yet")
    if by_mac is not None and by_ip is not None and by_mac.mac != by_ip.mac:
        raise Pending(f"{role} {mac} and {ip} are two different hosts")
    host = by_mac or by_ip
    assert host is not None
    return host


def place(policy: Policy, hosts: HostLookup, view: TopologyView) -> Placement:
    """Where `policy` is classified and how its copies travel; Pending says why not."""
    monitor = _host(hosts, policy.monitor_mac, policy.monitor_ip, "monitor")
    mon_edge = monitor.location.dpid
    source_port: int | None = None
    dest_port: int | None = None
    if policy.has_source:
        source = _host(hosts, policy.src_mac, policy.src_ip, "source")
        if source.mac == monitor.mac:
            raise Pending(f"monitor host {monitor.mac} is the source host")
        if policy.has_destination:
            for dst in (
                hosts.by_mac(policy.dst_mac) if policy.dst_mac else None,
                hosts.by_ip(policy.dst_ip) if policy.dst_ip else None,
            ):
                if dst is not None and dst.mac == monitor.mac:
                    raise Pending(f"monitor host {monitor.mac} is the destination host")
        origin = source.location.dpid
        source_port = source.location.port_no
    else:
        dest = _host(hosts, policy.dst_mac, policy.dst_ip, "destination")
        if dest.mac == monitor.mac:
            raise Pending(f"monitor host {monitor.mac} is the destination host")
        origin = dest.location.dpid
        dest_port = dest.location.port_no
    for dpid in (origin, mon_edge):
        if dpid not in view.nodes:
            raise Pending(f"switch {view.label(dpid)} is not connected")
    steps: tuple[Step, ...] = ()
    if origin != mon_edge:
        if policy.delivery == "rewrite" and monitor.ip is None:
            raise Pending(f"monitor host {monitor.mac} has no known IP address yet")
        tree = view.copy_tree(mon_edge, monitor.mac)
        if not tree.reaches(origin):
            raise Pending(f"no path from {view.label(origin)} to {view.label(mon_edge)}")
        steps = tuple(tree.path(origin))
    return Placement(policy, policy_cube(policy), monitor, origin, source_port, dest_port, steps)
