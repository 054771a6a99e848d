"""The forwarding app: host-to-host connectivity on a looped fabric without flooding it.

ARP is answered from the host table (proxy ARP) or sent only to edge ports, never into the
fabric, so the leaf-spine's loops cannot carry a broadcast storm. IPv4 is routed reactively: the
first packet of a 5-tuple comes to the controller, which installs one entry per switch along a
computed path (idle timeout, per-5-tuple counters for the flow-statistics view) and then
sends the packet on along the new path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

from vtap.compiler.forwarding import flow_key_of, path_rules
from vtap.controller.alerts import AlertKind
from vtap.controller.state import ControllerState
from vtap.domain.network import FlowKey, Host, Link, PortRef, dpid_str
from vtap.ofchannel import codec
from vtap.ofchannel.session import BatchError, SessionClosed, SwitchSession
from vtap.openflow.pipeline import Owner, owner_of
from vtap.openflow.rules import FlowRule, Output
from vtap.packets import Frame, build_arp_reply, build_arp_request
from vtap.topology.hosts import HostEvent, HostEventKind
from vtap.topology.paths import host_path

log = logging.getLogger(__name__)

Handler = Callable[["SwitchSession", int, Frame, bytes], Coroutine[object, object, None]]

ARP_REQUEST = 1
PROBE_INTERVAL = 1.0
PROBE_MAC = "02:76:74:61:70:00"  # locally administered: the controller's own ARP probes


class Forwarding:
    def __init__(self, state: ControllerState) -> None:
        self._state = state
        self._installing: dict[FlowKey, asyncio.Future[bool]] = {}
        self._probed: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._deferred: dict[PortRef, tuple[Frame, bytes]] = {}
        # False while a switch that lost its tables waits for its TAP entries (reconciler.py)
        self.copies_ready: Callable[[], bool] = lambda: True
        self.held = 0  # packets held back for that reason (dropped; the sender retries)

    # ------------------------------------------------------------ host learning

    async def learn(self, mac: str, ip: str | None, where: PortRef) -> bool:
        """Record a host seen on an edge port; a move invalidates its installed paths.
        False when the frame claims another live host's binding: it must be dropped."""
        event = self._state.hosts.observe(mac, ip, where, self._state.now())
        if event is None:
            return True
        if event.kind is HostEventKind.REFUSED:
            self._refused(event)
            return False
        self._state.changed()
        await self._host_changed(event)
        return True

    def _where(self, ref: PortRef) -> str:
        switch = self._state.topology.switch(ref.dpid)
        return f"{switch.name if switch and switch.name else dpid_str(ref.dpid)} port {ref.port_no}"

    def _refused(self, event: HostEvent) -> None:
        claim, holder = event.host, event.old
        assert holder is not None
        what = f"MAC {holder.mac}" if claim.mac == holder.mac else f"IP {holder.ip}"
        self._state.alerts.raise_(
            AlertKind.HOST_CLAIM_REFUSED,
            f"{claim.mac} ({claim.ip or 'no IP'}) at {self._where(claim.location)} claimed {what}, "
            f"bound to {self._where(holder.location)} which is up; ignored and dropped",
            claimant_mac=claim.mac,
            port=self._where(claim.location),
            holder_mac=holder.mac,
        )

    async def _host_changed(self, event: HostEvent) -> None:
        if event.kind is HostEventKind.NEW:
            log.info("host %s %s at %s", event.host.mac, event.host.ip, event.host.location)
            return
        log.info("host %s %s: %s -> %s", event.host.mac, event.kind, event.old, event.host)
        stale: set[FlowKey] = set()
        for host in (event.old, event.host):
            if host is not None and host.ip:
                stale.update(self._state.flows.involving(host.ip))
        await self.remove_flows(stale)

    def _defer(
        self, session: SwitchSession, in_port: int, frame: Frame, data: bytes, handler: Handler
    ) -> None:
        """Handle a packet from a port in its edge grace again when the grace is over."""
        assert session.dpid is not None
        ref = PortRef(session.dpid, in_port)
        if self._state.topology.is_fabric_port(ref):
            return
        first = ref not in self._deferred
        self._deferred[ref] = (frame, data)  # only the latest: hosts retry anyway
        if not first:
            return

        def again() -> None:
            pending = self._deferred.pop(ref, None)
            if pending is None or session.closed.is_set():
                return
            if not self._state.is_edge(ref.dpid, ref.port_no):
                return
            self._spawn(handler(session, in_port, *pending))

        asyncio.get_running_loop().call_later(self._state.settings.edge_grace, again)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ ARP

    async def on_arp(self, session: SwitchSession, in_port: int, frame: Frame, data: bytes) -> None:
        arp = frame.arp
        assert arp is not None and session.dpid is not None
        where = PortRef(session.dpid, in_port)
        if frame.eth_dst == PROBE_MAC:
            # A host answering our probe: learn it, and the answer ends here.
            if self._state.is_edge(session.dpid, in_port):
                await self.learn(arp.sender_mac, arp.sender_ip, where)
            return
        if not self._state.is_edge(session.dpid, in_port):
            # Never learn or forward ARP that entered from the fabric; on a port that is not
            # classified yet, answer once it is (the host would otherwise wait for a retry).
            self._defer(session, in_port, frame, data, self.on_arp)
            return
        if not await self.learn(arp.sender_mac, arp.sender_ip, where):
            return  # a forged claim: neither answered nor flooded
        if arp.op == ARP_REQUEST:
            target = self._state.hosts.by_ip(arp.target_ip)
            if target is not None and target.mac != arp.sender_mac:
                reply = build_arp_reply(arp.sender_mac, arp.sender_ip, target.mac, target.ip or "")
                await session.send(codec.packet_out(reply, [Output(in_port)]))
            elif target is None:
                await self.flood_edge(data, exclude=where)
            return
        target = self._state.hosts.by_mac(frame.eth_dst)
        if target is not None:
            await self._deliver(target, data)
        else:
            await self.flood_edge(data, exclude=where)

    async def flood_edge(self, data: bytes, exclude: PortRef | None = None) -> None:
        """Send a frame to every host-facing port of every switch (never into the fabric)."""
        by_switch: dict[int, list[int]] = {}
        for ref in self._state.topology.edge_ports(
            self._state.now(), self._state.settings.edge_grace
        ):
            if ref != exclude:
                by_switch.setdefault(ref.dpid, []).append(ref.port_no)
        for dpid, ports in by_switch.items():
            session = self._state.sessions.get(dpid)
            if session is None:
                continue
            try:
                await session.send(codec.packet_out(data, [Output(p) for p in sorted(ports)]))
            except (ConnectionError, OSError):
                continue

    async def _deliver(self, host: Host, data: bytes) -> None:
        session = self._state.sessions.get(host.location.dpid)
        if session is not None:
            await session.send(codec.packet_out(data, [Output(host.location.port_no)]))

    # ------------------------------------------------------------ IPv4

    async def on_ipv4(
        self, session: SwitchSession, in_port: int, frame: Frame, data: bytes
    ) -> None:
        ip = frame.ipv4
        key = frame.flow_key()
        assert ip is not None and key is not None and session.dpid is not None
        where = PortRef(session.dpid, in_port)
        if self._state.is_edge(session.dpid, in_port):
            if not await self.learn(frame.eth_src, ip.src, where):
                return  # sent under another live host's address: no path for it
        elif not self._state.topology.is_fabric_port(where):
            # A port still in its edge grace: routing this packet now would install a path
            # that carries the rest of the flow past the controller, and a host that only
            # ever sends one flow (a traffic generator) would never be learnt.
            self._defer(session, in_port, frame, data, self.on_ipv4)
            return
        dst = self._state.hosts.by_ip(ip.dst)
        if dst is None:
            await self._probe(frame, ip.dst)
            return
        if not self.copies_ready():
            self.held += 1  # forwarded now, it would not be copied: no path until it would
            return
        ok = await self._ensure_path(key, where, dst)
        rule = self._state.flows.hops(key).get(session.dpid)
        if ok and rule is not None:
            # Send it on with this switch's path actions, not back through table 0: TAP
            # classification already saw this packet before it was punted from table 1.
            await session.send(codec.packet_out(data, rule.actions, in_port))

    async def _ensure_path(self, key: FlowKey, where: PortRef, dst: Host) -> bool:
        pending = self._installing.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._installing[key] = future
        try:
            ok = await self._install_path(key, where, dst)
        except Exception:
            ok = False
            log.exception("installing path for %s failed", key)
        finally:
            self._installing.pop(key, None)
        future.set_result(ok)
        return ok

    async def _install_path(self, key: FlowKey, where: PortRef, dst: Host) -> bool:
        path = host_path(self._state.topology, where, dst.location, key)
        if path is None:
            log.info("no path for %s from %s to %s", key, where, dst.location)
            return False
        rules = path_rules(key, path, self._state.settings.flow_idle_timeout)
        results = await asyncio.gather(
            *(self._install(dpid, rule) for dpid, rule in rules.items()), return_exceptions=True
        )
        ok = True
        for (dpid, rule), result in zip(rules.items(), results, strict=True):
            if result is True:
                self._state.flows.add(key, dpid, rule)
            else:
                ok = False
                log.warning("switch %016x: path entry for %s not installed: %s", dpid, key, result)
        return ok

    async def _install(self, dpid: int, rule: FlowRule) -> bool:
        session = self._state.sessions.get(dpid)
        if session is None:
            raise SessionClosed(f"switch {dpid:016x} is not connected")
        await session.apply([codec.flow_add(rule)])
        return True

    def _may_probe(self, ip: str) -> bool:
        now = self._state.now()
        if now - self._probed.get(ip, -PROBE_INTERVAL) < PROBE_INTERVAL:
            return False
        self._probed[ip] = now
        return True

    async def _probe(self, frame: Frame, ip: str) -> None:
        """Ask the edge who has `ip`, on behalf of the sender; rate-limited per address."""
        assert frame.ipv4 is not None
        if self._may_probe(ip):
            await self.flood_edge(build_arp_request(frame.eth_src, frame.ipv4.src, ip))

    def probe_ip(self, ip: str) -> None:
        """Find a host nobody has heard from (e.g. a policy's monitor): an ARP probe
        (sender 0.0.0.0, RFC 5227) from the controller's own MAC to every edge port."""
        if self._may_probe(ip):
            self._spawn(self.flood_edge(build_arp_request(PROBE_MAC, "0.0.0.0", ip)))

    # ------------------------------------------------------------ invalidation

    async def links_gone(self, links: list[Link]) -> None:
        """Flows across dead links are removed everywhere; their next packet finds a new path."""
        if links:
            await self.remove_flows(set(self._state.flows.crossing(links)))

    async def remove_flows(self, keys: set[FlowKey]) -> None:
        jobs = []
        for key in keys:
            for dpid, rule in self._state.flows.drop_key(key).items():
                session = self._state.sessions.get(dpid)
                if session is not None:
                    jobs.append(session.apply([codec.flow_delete_strict(rule)]))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BatchError | ConnectionError):
                log.warning("removing a stale path entry failed: %s", result)

    def flow_removed(self, dpid: int, rule: FlowRule) -> None:
        owner = owner_of(rule.cookie)
        if owner is None or owner[0] is not Owner.FORWARDING:
            return
        key = flow_key_of(rule.match)
        if key is not None:
            self._state.flows.remove(key, dpid)

    def adopt(self, dpid: int, rules: list[FlowRule]) -> None:
        """Entries a previous controller run installed keep working; track them again."""
        for rule in rules:
            key = flow_key_of(rule.match)
            if key is not None:
                self._state.flows.add(key, dpid, rule)
