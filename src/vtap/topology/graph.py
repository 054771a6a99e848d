"""The fabric as discovered: switches, their ports, LLDP adjacencies and the usable-link graph.

Pure state driven by events (switch up/down, port status, LLDP seen, timer ticks) with the time
passed in, so every rule below is unit-testable without a switch or a clock.

Rules, in one place:

* **Adjacency**: a directed LLDP observation "a frame sent out of `src` arrived at `dst`", kept
  with the time it was last seen. It is dropped when either port goes down or is deleted, when
  either switch leaves, or when it has not been seen for `link_timeout` seconds (`expire`).
  LLDP that arrives on, or claims to come from, a port we know to be down is ignored: it was
  in flight when the port went down.
* **Usable link** (an edge of the networkx graph): an unordered pair of ports with at least one
  adjacency between them, in either direction, where both switches are connected and both ports
  are known and up. One direction suffices: both ends must be up for LLDP to cross at all, and
  waiting for the second direction would only delay convergence by one LLDP round. Links from a
  switch to itself (a looped cable) are never usable.
* **Fabric port**: a port that is an end of any current adjacency (usable or not). LLDP on a port
  makes it fabric at once; it stops being fabric when its last adjacency goes.
* **Edge port**: a port that is up, physical (not LOCAL or another reserved number), not fabric,
  and has been up and non-fabric for at least `grace` seconds. The grace period exists because a
  port looks exactly like a host port until the first LLDP round crossed it: without it, a
  packet-in from a neighbouring switch during start-up could be learnt as a host. The clock of a
  port restarts whenever it appears, comes up, or stops being fabric.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from vtap.domain.network import Link, Port, PortRef, Switch

_MAX_PHYSICAL_PORT = 0xFFFFFF00  # OFPP_MAX; LOCAL and the other reserved ports are above it


class Topology:
    """Switches, ports, LLDP adjacencies and the graph of usable links between switches."""

    def __init__(self) -> None:
        self._switches: dict[int, Switch] = {}  # ports kept current inside the Switch
        self._adjacencies: dict[Link, float] = {}  # directed link → last seen
        self._clock: dict[PortRef, float] = {}  # up, non-fabric ports → since when
        self._graph: nx.Graph | None = None  # rebuilt lazily after a change
        self._fabric: frozenset[PortRef] | None = None  # likewise; read on every packet-in
        self._generation = 0
        self._had_links: dict[int, frozenset[int]] = {}  # fabric ports seen lose their links

    # --- queries -------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Increases whenever the usable-link graph may have changed (cheap change detection)."""
        return self._generation

    def switches(self) -> list[Switch]:
        return [self._switches[d] for d in sorted(self._switches)]

    def switch(self, dpid: int) -> Switch | None:
        return self._switches.get(dpid)

    def port(self, ref: PortRef) -> Port | None:
        sw = self._switches.get(ref.dpid)
        return None if sw is None else sw.port(ref.port_no)

    def links(self) -> list[Link]:
        """Every directed adjacency currently known, sorted."""
        return sorted(self._adjacencies)

    def last_seen(self, link: Link) -> float | None:
        return self._adjacencies.get(link)

    def undirected_links(self) -> list[Link]:
        """Usable links, one per cable, each with `src <= dst`, sorted."""
        out = {Link(*link.undirected()) for link in self._adjacencies if self._usable(link)}
        return sorted(out)

    def had_links(self, dpid: int) -> bool:
        """This controller saw fabric links of the switch go (it is coming back, not new)."""
        return bool(self._had_links.get(dpid))

    def links_back(self, dpid: int) -> bool:
        """The switch came back and every fabric port it had when it left (and that is up) has
        a link again. False for a switch this controller never saw leave."""
        had = self._had_links.get(dpid)
        sw = self._switches.get(dpid)
        if not had or sw is None or not sw.connected:
            return False
        fabric = self._fabric_ports()
        for port_no in had:
            port = sw.port(port_no)
            if port is not None and port.up and PortRef(dpid, port_no) not in fabric:
                return False
        return True

    def is_fabric_port(self, ref: PortRef) -> bool:
        return ref in self._fabric_ports()

    def is_edge_port(self, ref: PortRef, now: float, grace: float) -> bool:
        since = self._clock.get(ref)
        if since is None or now - since < grace:
            return False
        return not self.is_fabric_port(ref)

    def edge_ports(self, now: float, grace: float) -> list[PortRef]:
        fabric = self._fabric_ports()
        return sorted(
            ref for ref, since in self._clock.items() if now - since >= grace and ref not in fabric
        )

    def link_ports(self, a: int, b: int) -> list[tuple[PortRef, PortRef]]:
        """Usable links between switches a and b as (port on a, port on b), sorted.

        More than one entry means parallel cables; path choice picks one per flow.
        """
        g = self.graph
        if not g.has_edge(a, b):
            return []
        pairs: list[tuple[PortRef, PortRef]] = g.edges[a, b]["ports"]
        return sorted((p, q) if p.dpid == a else (q, p) for p, q in pairs)

    def peer(self, ref: PortRef) -> PortRef | None:
        """The port at the other end of a usable link from `ref`, if any."""
        for link in self._adjacencies:
            if self._usable(link) and ref in (link.src, link.dst):
                return link.dst if link.src == ref else link.src
        return None

    @property
    def graph(self) -> nx.Graph:
        """Switches as nodes, usable links as edges (attribute `ports`: the port pairs).

        Shared, not copied: callers must not modify it.
        """
        if self._graph is None:
            g = nx.Graph()
            g.add_nodes_from(d for d, sw in self._switches.items() if sw.connected)
            for link in self.undirected_links():
                a, b = link.src.dpid, link.dst.dpid
                if g.has_edge(a, b):
                    g.edges[a, b]["ports"].append((link.src, link.dst))
                else:
                    g.add_edge(a, b, ports=[(link.src, link.dst)])
            self._graph = g
        return self._graph

    # --- events --------------------------------------------------------------------------

    def switch_up(self, switch: Switch, now: float) -> list[Link]:
        """A switch connected (or reconnected) with this port list. Returns adjacencies lost.

        A reconnect replaces the port list: ports that vanished or are down lose their links.
        Ports that were already up keep their edge clock, so a brief reconnect does not make
        every host port wait for the grace period again.
        """
        old = self._switches.get(switch.dpid)
        ports_in_order = tuple(sorted(switch.ports, key=lambda p: p.port_no))
        self._switches[switch.dpid] = replace(switch, ports=ports_in_order, connected=True)
        removed: list[Link] = []
        old_ports = {} if old is None else {p.port_no: p for p in old.ports}
        new_ports = {p.port_no: p for p in switch.ports}
        for port_no in sorted(old_ports.keys() - new_ports.keys()):
            removed += self._port_gone(PortRef(switch.dpid, port_no), now)
        for port_no, port in sorted(new_ports.items()):
            ref = PortRef(switch.dpid, port_no)
            before = old_ports.get(port_no)
            if not port.up:
                removed += self._port_gone(ref, now)
            elif before is None or not before.up:
                self._start_clock(ref, now)
        self._changed()
        return removed

    def switch_down(self, dpid: int, now: float) -> list[Link]:
        """The switch left: forget it, its ports and every adjacency touching it."""
        if self._switches.pop(dpid, None) is None:
            return []
        for ref in [r for r in self._clock if r.dpid == dpid]:
            del self._clock[ref]
        removed = [k for k in self._adjacencies if dpid in (k.src.dpid, k.dst.dpid)]
        # Both ends remember: when a whole fabric restarts, a switch's links are gone with its
        # neighbours before it leaves itself.
        for ref in {r for k in removed for r in (k.src, k.dst)}:
            self._had_links[ref.dpid] = self._had_links.get(ref.dpid, frozenset()) | {ref.port_no}
        self._drop(removed, now)
        self._changed()
        return sorted(removed)

    def port_update(self, dpid: int, port: Port, now: float) -> list[Link]:
        """A port was added or modified. Down removes its adjacencies; up starts its clock."""
        sw = self._switches.get(dpid)
        if sw is None:
            return []
        ref = PortRef(dpid, port.port_no)
        old = sw.port(port.port_no)
        ports = [p for p in sw.ports if p.port_no != port.port_no] + [port]
        self._switches[dpid] = replace(sw, ports=tuple(sorted(ports, key=lambda p: p.port_no)))
        removed: list[Link] = []
        if not port.up:
            removed = self._port_gone(ref, now)
        elif old is None or not old.up:
            self._start_clock(ref, now)
        self._changed()
        return removed

    def port_deleted(self, dpid: int, port_no: int, now: float) -> list[Link]:
        sw = self._switches.get(dpid)
        if sw is None or sw.port(port_no) is None:
            return []
        ports = tuple(p for p in sw.ports if p.port_no != port_no)
        self._switches[dpid] = replace(sw, ports=ports)
        removed = self._port_gone(PortRef(dpid, port_no), now)
        self._changed()
        return removed

    def lldp_seen(self, link: Link, now: float) -> bool:
        """Record that vtap's LLDP from `link.src` arrived at `link.dst`. True if it is new.

        Ignored (False) when either port is known to be down: the frame was in flight.
        """
        for ref in (link.src, link.dst):
            port = self.port(ref)
            if port is not None and not port.up:
                return False
        is_new = link not in self._adjacencies
        self._adjacencies[link] = now
        if is_new:
            self._fabric = None
            self._clock.pop(link.src, None)
            self._clock.pop(link.dst, None)
            self._changed()
        return is_new

    def expire(self, now: float, link_timeout: float) -> list[Link]:
        """Drop adjacencies not seen for more than `link_timeout` seconds; return them."""
        stale = [k for k, seen in self._adjacencies.items() if now - seen > link_timeout]
        if stale:
            self._drop(stale, now)
            self._changed()
        return sorted(stale)

    # --- internals -----------------------------------------------------------------------

    def _usable(self, link: Link) -> bool:
        if link.src.dpid == link.dst.dpid:
            return False
        for ref in (link.src, link.dst):
            sw = self._switches.get(ref.dpid)
            port = None if sw is None else sw.port(ref.port_no)
            if sw is None or not sw.connected or port is None or not port.up:
                return False
        return True

    def _fabric_ports(self) -> frozenset[PortRef]:
        if self._fabric is None:
            self._fabric = frozenset(r for link in self._adjacencies for r in (link.src, link.dst))
        return self._fabric

    def _start_clock(self, ref: PortRef, now: float) -> None:
        if ref.port_no <= _MAX_PHYSICAL_PORT and not self.is_fabric_port(ref):
            self._clock[ref] = now

    def _port_gone(self, ref: PortRef, now: float) -> list[Link]:
        """The port is down or deleted (already so in `_switches`): no clock, no adjacencies."""
        self._clock.pop(ref, None)
        removed = [k for k in self._adjacencies if ref in (k.src, k.dst)]
        self._drop(removed, now)
        return sorted(removed)

    def _drop(self, links: list[Link], now: float) -> None:
        """Forget adjacencies; a port whose last one went restarts its edge clock.

        Otherwise a fabric port whose neighbour merely fell silent would turn into a host port
        at once, and the next stray packet-in from it would be learnt as a host.
        """
        for link in links:
            del self._adjacencies[link]
        self._fabric = None
        fabric = self._fabric_ports()
        for ref in {r for link in links for r in (link.src, link.dst)} - fabric:
            port = self.port(ref)
            if port is not None and port.up:
                self._start_clock(ref, now)

    def _changed(self) -> None:
        self._graph = None
        self._fabric = None
        self._generation += 1
