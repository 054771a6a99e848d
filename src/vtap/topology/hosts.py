"""Where each host is: MAC, IP and attachment point, learnt from packet-ins on edge ports.

The caller only feeds observations from edge ports (see `Topology.is_edge_port`): a frame that
arrives on a fabric port was merely forwarded and says nothing about where its sender lives.

Decisions:
* A MAC is one host. The same MAC on another edge port is a move (the VM migrated, the cable
  was replugged): the old location is dropped and a MOVED event returned, so the controller can
  reroute flows toward it.
* An IP belongs to the host that claimed it last: if another MAC shows up with it, the previous
  owner keeps its MAC and location but loses the IP (and `by_ip` points to the new owner).
* 0.0.0.0 (ARP probes, DHCP) and a missing IP never erase a known IP.
* A binding is not up for grabs (a TAP decides who sees whose copies): while the port a host
  was learnt on is live, a frame from another port that claims its MAC, or its IP under another
  MAC, is refused (a REFUSED event, the table unchanged). A host moves once its old port went
  down (which forgets it) or its switch is gone. On its own port, a host may change IP or MAC.
* When a port goes down, or turns out to be a fabric port, its hosts are forgotten (`forget_port`)
  rather than kept as "unreachable": flows toward them must be removed anyway, and the controller
  finds a host again by ARP-probing the edge ports when traffic for its IP shows up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from vtap.domain.network import Host, PortRef
from vtap.packets import is_unicast_mac

_UNSPECIFIED_IP = "0.0.0.0"


class HostEventKind(StrEnum):
    NEW = "new"
    MOVED = "moved"
    IP_CHANGED = "ip_changed"
    REFUSED = "refused"  # `host` is the refused claim, `old` the binding it tried to take


@dataclass(frozen=True, slots=True)
class HostEvent:
    """What changed: `host` is the new state, `old` the previous one (None for NEW).

    A host that moved and changed IP at once is reported as MOVED (compare `old.ip`).
    """

    kind: HostEventKind
    host: Host
    old: Host | None = None


class HostTracker:
    """The host table, indexed by MAC and by IP."""

    def __init__(self, live: Callable[[PortRef], bool] = lambda _: True) -> None:
        self._by_mac: dict[str, Host] = {}
        self._mac_of_ip: dict[str, str] = {}
        self.live = live  # is this port up on a connected switch? (the controller sets it)

    def observe(self, mac: str, ip: str | None, location: PortRef, now: float) -> HostEvent | None:
        """Learn from one frame sent by `mac` (from `ip`, if known) that arrived at `location`.

        Returns an event when the table changed in a way the controller must act on; a mere
        refresh (same place, same IP) returns None. Non-unicast MACs are ignored.
        """
        mac = mac.lower()
        if not is_unicast_mac(mac):
            return None
        if ip == _UNSPECIFIED_IP:
            ip = None
        old = self._by_mac.get(mac)
        new_ip = ip if ip is not None else (old.ip if old is not None else None)
        host = Host(mac=mac, ip=new_ip, location=location, last_seen=now)
        holder = self._holder(host, old)
        if holder is not None:
            return HostEvent(HostEventKind.REFUSED, host, holder)
        self._store(host, old)
        if old is None:
            return HostEvent(HostEventKind.NEW, host)
        if old.location != location:
            return HostEvent(HostEventKind.MOVED, host, old)
        if old.ip != new_ip:
            return HostEvent(HostEventKind.IP_CHANGED, host, old)
        return None

    def _holder(self, claim: Host, old: Host | None) -> Host | None:
        """The binding this claim would take from a live port elsewhere, if any."""
        if old is not None and old.location != claim.location and self.live(old.location):
            return old
        owner_mac = self._mac_of_ip.get(claim.ip) if claim.ip is not None else None
        if owner_mac is not None and owner_mac != claim.mac:
            owner = self._by_mac[owner_mac]
            if owner.location != claim.location and self.live(owner.location):
                return owner
        return None

    def by_mac(self, mac: str) -> Host | None:
        return self._by_mac.get(mac.lower())

    def by_ip(self, ip: str) -> Host | None:
        mac = self._mac_of_ip.get(ip)
        return None if mac is None else self._by_mac[mac]

    def all(self) -> list[Host]:
        """Every known host, sorted by MAC."""
        return [self._by_mac[m] for m in sorted(self._by_mac)]

    def at(self, location: PortRef) -> list[Host]:
        return [h for h in self.all() if h.location == location]

    def forget(self, mac: str) -> Host | None:
        host = self._by_mac.pop(mac.lower(), None)
        if host is not None and host.ip is not None and self._mac_of_ip.get(host.ip) == host.mac:
            del self._mac_of_ip[host.ip]
        return host

    def forget_port(self, ref: PortRef) -> list[Host]:
        """Forget the hosts attached to this port (it went down or proved to be fabric)."""
        return self._forget_where(lambda loc: loc == ref)

    def forget_switch(self, dpid: int) -> list[Host]:
        """Forget every host attached to this switch (it left)."""
        return self._forget_where(lambda loc: loc.dpid == dpid)

    def _forget_where(self, predicate: Callable[[PortRef], bool]) -> list[Host]:
        gone = [h for h in self.all() if predicate(h.location)]
        for host in gone:
            self.forget(host.mac)
        return gone

    def _store(self, host: Host, old: Host | None) -> None:
        if (
            old is not None
            and old.ip is not None
            and old.ip != host.ip
            and self._mac_of_ip.get(old.ip) == host.mac
        ):
            del self._mac_of_ip[old.ip]
        if host.ip is not None:
            previous_owner = self._mac_of_ip.get(host.ip)
            if previous_owner is not None and previous_owner != host.mac:
                stale = self._by_mac[previous_owner]
                self._by_mac[previous_owner] = replace(stale, ip=None)
            self._mac_of_ip[host.ip] = host.mac
        self._by_mac[host.mac] = host
