"""The controller core: one task per switch turns its events into state changes and rules.

A switch that joins is reconciled (its table is diffed against the intent, never wiped), then
probed for links; its events are handled in order in its own task so that one slow or broken
switch never holds up another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vtap.compiler.alloc import TapConfig
from vtap.controller.alerts import AlertKind
from vtap.controller.audit import Audit
from vtap.controller.discovery import Discovery
from vtap.controller.flowstats import FlowStats
from vtap.controller.forwarding import Forwarding
from vtap.controller.installer import Installer
from vtap.controller.looplag import LoopLag
from vtap.controller.policies import PolicyService
from vtap.controller.reconciler import Reconciler
from vtap.controller.state import ControllerState
from vtap.domain.network import LOCAL_PORT, Port, PortRef, Switch
from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import MALFORMED, BatchError, SessionClosed, SwitchSession
from vtap.packets import parse_frame
from vtap.settings import Settings
from vtap.store.auditlog import AuditLog, MemoryAuditLog
from vtap.store.base import PolicyRepository
from vtap.store.hosts import HostRepository, MemoryHostRepository
from vtap.store.tokens import MemoryTokenRepository, TokenRepository

log = logging.getLogger(__name__)


class Controller:
    def __init__(
        self,
        settings: Settings,
        store: PolicyRepository,
        state: ControllerState | None = None,
        hosts_store: HostRepository | None = None,
        tokens: TokenRepository | None = None,
        audit_log: AuditLog | None = None,
    ) -> None:
        self.state = state or ControllerState(settings)
        self.store = store
        self.tokens = tokens or MemoryTokenRepository()
        self.audit_log = audit_log or MemoryAuditLog()
        self.forwarding = Forwarding(self.state)
        self.discovery = Discovery(self.state, self.forwarding.links_gone)
        self.reconciler = Reconciler(
            self.state.sessions,
            self.state.clock,
            settings.tap_settle,
            links_back=self.state.topology.links_back,
            had_links=self.state.topology.had_links,
        )
        self.hosts_store = hosts_store or MemoryHostRepository()
        now = self.state.now()
        for host in self.hosts_store.load(now):
            self.state.hosts.observe(host.mac, host.ip, host.location, now)
        self.installer = Installer(
            self.state,
            store,
            self.hosts_store,
            TapConfig(label_first=settings.label_first, label_last=settings.label_last),
            self.reconciler,
            probe=self.forwarding.probe_ip,
        )
        self.forwarding.copies_ready = lambda: (
            self.reconciler.copies_ready() or not self.installer.has_policies()
        )
        self.policies = PolicyService(self.state, store, self.installer)
        self.state.on_change = self.installer.request
        self.flowstats = FlowStats(self.state, self.installer)
        self.audit = Audit(self.state, self.reconciler, self.installer, self.forwarding)
        self.loop_lag = LoopLag()

    async def run(self) -> None:
        """Background work that is not tied to one switch."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.discovery.run(), name="discovery")
            tasks.create_task(self.installer.run(), name="installer")
            tasks.create_task(self.loop_lag.run(), name="loop-lag")
            tasks.create_task(self.flowstats.run(), name="flowstats")
            tasks.create_task(self.audit.run(), name="audit")

    # ------------------------------------------------------------ switch lifecycle

    async def handle_session(self, session: SwitchSession) -> None:
        """Serve one switch from handshake to disconnect (the OpenFlow server's handler)."""
        assert session.dpid is not None
        dpid = session.dpid
        if not await self._admit(session):
            return
        self.state.sessions[dpid] = session
        reader = asyncio.create_task(session.run(), name=f"of-read-{dpid:016x}")
        log.info("switch %016x connected from %s", dpid, session.peer)
        try:
            await self._join(session)
            await self._serve_events(session)
        except (SessionClosed, ConnectionError, OSError, BatchError) as exc:
            log.warning("switch %016x: %s", dpid, exc)
        finally:
            session.close()
            with contextlib.suppress(BaseException):
                await reader
            if session.close_reason.startswith(MALFORMED):
                self.state.alerts.raise_(
                    AlertKind.PROTOCOL_VIOLATION,
                    f"switch {dpid:016x} ({session.peer}): {session.close_reason}; session closed",
                    dpid=f"{dpid:016x}",
                    peer=str(session.peer),
                )
            await self._leave(session)

    async def _admit(self, session: SwitchSession) -> bool:
        """Whether this handshaken connection may serve its datapath id. Outside the
        allow-list: refused. A datapath id whose current session still answers an echo:
        refused (an impostor must not evict the real switch); one that stays silent (a switch
        that reconnects after its old connection died unseen) is replaced."""
        dpid = session.dpid
        assert dpid is not None
        alerts = self.state.alerts
        allowed = self.state.settings.datapath_allow
        if allowed and dpid not in allowed:
            alerts.raise_(
                AlertKind.DATAPATH_NOT_ALLOWED,
                f"switch {dpid:016x} from {session.peer} is not in the datapath allow-list; "
                "connection refused",
                dpid=f"{dpid:016x}",
                peer=str(session.peer),
            )
            session.close("datapath id not in the allow-list")
            return False
        previous = self.state.sessions.get(dpid)
        if previous is None or previous.closed.is_set():
            return True
        if await self._answers(previous):
            alerts.raise_(
                AlertKind.DUPLICATE_DATAPATH,
                f"a second connection from {session.peer} claimed datapath id {dpid:016x}, "
                f"which is connected from {previous.peer} and alive; refused",
                dpid=f"{dpid:016x}",
                peer=str(session.peer),
                holder=str(previous.peer),
            )
            session.close("duplicate datapath id")
            return False
        log.warning("switch %016x: old connection silent; the new one replaces it", dpid)
        previous.close("silent; replaced by a new connection with the same datapath id")
        return True

    async def _answers(self, session: SwitchSession) -> bool:
        try:
            async with asyncio.timeout(self.state.settings.duplicate_probe):
                await session.request(codec.echo_request(b"vtap-dup"))
        except (TimeoutError, SessionClosed, ConnectionError, OSError):
            return False
        return True

    async def _join(self, session: SwitchSession) -> None:
        dpid = session.dpid
        assert dpid is not None
        replies = await session.multipart(codec.port_desc_request())
        ports = [p for p in replies if isinstance(p, Port)]
        name = next((p.name for p in ports if p.port_no == LOCAL_PORT), "")
        self.state.topology.switch_up(Switch(dpid, name, tuple(ports)), self.state.now())
        adopted = await self.reconciler.join(session)
        self.installer.switch_joined(dpid)
        self.forwarding.adopt(dpid, adopted)
        # The base pipeline at once (LLDP must be trapped before links can be seen); TAP
        # entries once the switch settled (see reconciler.py).
        result = (await self.reconciler.sync(self.installer.desired, {dpid: None}))[dpid]
        if not result.ok:
            log.warning("switch %016x: base pipeline not installed: %s", dpid, result)
        log.info(
            "switch %016x (%s) joined: %d change(s), %d path entries adopted",
            dpid,
            name,
            result.applied,
            len(adopted),
        )
        await self.discovery.probe(session)
        self.state.changed()
        # TAP entries on this switch are synced once it settled (see reconciler.py).
        asyncio.get_running_loop().call_later(
            self.state.settings.tap_settle + 0.1, self.state.changed
        )

    async def _leave(self, session: SwitchSession) -> None:
        dpid = session.dpid
        assert dpid is not None
        if self.state.sessions.get(dpid) is not session:
            return  # replaced by a newer connection; that one owns the switch now
        del self.state.sessions[dpid]
        self.reconciler.leave(dpid)
        self.installer.forget_switch(dpid)
        log.info("switch %016x disconnected: %s", dpid, session.close_reason)
        name = self.installer.switch_name(dpid)
        self.state.alerts.raise_(
            AlertKind.SWITCH_LOST,
            f"switch {name} ({dpid:016x}) disconnected: {session.close_reason}",
            dpid=f"{dpid:016x}",
        )
        gone = self.state.topology.switch_down(dpid, self.state.now())
        self.state.flows.drop_switch(dpid)
        await self.forwarding.links_gone(gone)
        self.state.changed()

    # ------------------------------------------------------------ events

    async def _serve_events(self, session: SwitchSession) -> None:
        while (event := await session.events.get()) is not None:
            try:
                await self._handle(session, event)
            except (SessionClosed, ConnectionError, OSError):
                raise
            except Exception:
                log.exception("switch %s: handling %s failed", session.name, type(event).__name__)

    async def _handle(self, session: SwitchSession, event: m.Inbound) -> None:
        dpid = session.dpid
        assert dpid is not None
        match event:
            case m.PacketIn(in_port=in_port, data=data):
                frame = parse_frame(data)
                if frame is None:
                    return
                if frame.lldp is not None:
                    self.discovery.on_lldp(dpid, in_port, frame.lldp)
                elif frame.arp is not None:
                    await self.forwarding.on_arp(session, in_port, frame, data)
                elif frame.ipv4 is not None:
                    await self.forwarding.on_ipv4(session, in_port, frame, data)
            case m.PortStatus(reason=reason, port=port):
                await self._port_status(session, reason, port)
            case m.FlowRemoved(rule=rule):
                self.forwarding.flow_removed(dpid, rule)
            case m.Error():
                log.warning("switch %s: unsolicited error %s", session.name, event.text())

    async def _port_status(self, session: SwitchSession, reason: m.PortReason, port: Port) -> None:
        dpid = session.dpid
        assert dpid is not None
        now = self.state.now()
        if reason is m.PortReason.DELETE:
            gone = self.state.topology.port_deleted(dpid, port.port_no, now)
            self.state.hosts.forget_port(PortRef(dpid, port.port_no))
        else:
            gone = self.state.topology.port_update(dpid, port, now)
            if not port.up:
                # Forget hosts behind a dead port; an ARP probe finds them wherever they are.
                self.state.hosts.forget_port(PortRef(dpid, port.port_no))
        if gone:
            log.info(
                "port %016x/%d %s: %d link(s) down",
                dpid,
                port.port_no,
                "up" if port.up else "down",
                len(gone),
            )
        await self.forwarding.links_gone(gone)
        self.state.changed()
        if port.up and reason is not m.PortReason.DELETE:
            await self.discovery.probe(session, port.port_no)
