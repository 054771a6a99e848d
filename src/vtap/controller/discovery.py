"""LLDP link discovery: probe every port, learn adjacencies, expire the silent ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from vtap.controller.alerts import AlertKind
from vtap.controller.lldpauth import LldpSigner
from vtap.controller.state import ControllerState
from vtap.domain.network import LOCAL_PORT, Link, PortRef
from vtap.ofchannel import codec
from vtap.ofchannel.session import SwitchSession
from vtap.openflow.rules import Output
from vtap.packets import Lldp, build_lldp

log = logging.getLogger(__name__)

LinksGone = Callable[[list[Link]], Awaitable[None]]


class Discovery:
    def __init__(self, state: ControllerState, links_gone: LinksGone) -> None:
        self._state = state
        self._links_gone = links_gone
        self._hold_until = float("-inf")
        settings = state.settings
        # A probe may wait in a busy controller's queue for a while (see tick): it stays good
        # for as long as a link may stay silent, plus one probe interval.
        self.signer = LldpSigner(settings.link_timeout + settings.lldp_interval)

    async def run(self) -> None:
        """Re-probe all switches and expire links every `lldp_interval` seconds."""
        interval = self._state.settings.lldp_interval
        last = self._state.now()
        while True:
            await asyncio.sleep(interval)
            now = self._state.now()
            await self.tick(now, busy=now - last - interval)
            last = self._state.now()

    async def tick(self, now: float, busy: float = 0.0) -> None:
        """Expire silent links, then probe. `busy`: how much later than planned this tick runs.

        A tick that comes late means the controller itself was too busy to read LLDP (a large
        install round holds the event loop): the replies are still queued, so silence proves
        nothing. Expiring then would drop every fabric link and recompile everything against an
        empty fabric. Links get one fresh probe round first."""
        interval = self._state.settings.lldp_interval
        if busy > interval:
            log.warning(
                "controller was busy %.1f s: links get a fresh probe before any expires", busy
            )
            self._hold_until = now + interval / 2
        if now >= self._hold_until:
            expired = self._state.topology.expire(now, self._state.settings.link_timeout)
            if expired:
                log.info("links expired: %s", expired)
                await self._links_gone(expired)
                self._state.changed()
        for session in list(self._state.sessions.values()):
            with contextlib.suppress(ConnectionError, OSError):
                await self.probe(session)

    async def probe(self, session: SwitchSession, port_no: int | None = None) -> None:
        """Send our LLDP frame out of one port, or out of every up port of the switch."""
        switch = self._state.topology.switch(session.dpid or 0)
        if switch is None:
            return
        for port in switch.ports:
            if port.port_no == LOCAL_PORT or not port.up:
                continue
            if port_no is not None and port.port_no != port_no:
                continue
            stamp, signature = self.signer.sign(switch.dpid, port.port_no)
            frame = build_lldp(switch.dpid, port.port_no, port.hw_addr, stamp, signature)
            await session.send(codec.packet_out(frame, [Output(port.port_no)]))

    def on_lldp(self, dpid: int, in_port: int, lldp: Lldp) -> None:
        if lldp.dpid not in self._state.sessions:
            return
        link = Link(PortRef(lldp.dpid, lldp.port_no), PortRef(dpid, in_port))
        refused = self.signer.check(lldp)
        if refused is None and link.src == link.dst:
            refused = "sent back into the port it went out of"
        if refused is None:
            bound = [h for h in self._state.hosts.at(link.dst) if self._state.port_live(link.dst)]
            if bound:
                refused = f"arrived on the port of host {bound[0].mac}"
        if refused is not None:
            self._state.alerts.raise_(
                AlertKind.FORGED_LLDP,
                f"LLDP claiming a link from {lldp.dpid:016x} port {lldp.port_no} arrived at "
                f"{dpid:016x} port {in_port}: {refused}; ignored",
                dpid=f"{dpid:016x}",
                port=in_port,
            )
            return
        if self._state.topology.lldp_seen(link, self._state.now()):
            log.info("link up: %016x/%d -> %016x/%d", lldp.dpid, lldp.port_no, dpid, in_port)
            self._state.changed()
            # A port that carries LLDP is fabric: anything learnt there as a host was wrong.
            for end in (link.src, link.dst):
                for host in self._state.hosts.forget_port(end):
                    log.info("host %s was learnt on fabric port %s; forgotten", host.mac, end)
