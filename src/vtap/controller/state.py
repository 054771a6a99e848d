"""What the controller knows, shared by its parts (discovery, forwarding, API views).

One object built by the controller, never a module global. The clock is injected so that the
pure topology code gets time as an argument and tests can drive it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vtap.controller.alerts import AlertLog
from vtap.controller.installed import InstalledFlows
from vtap.domain.network import PortRef
from vtap.ofchannel.session import SwitchSession
from vtap.settings import Settings
from vtap.topology.graph import Topology
from vtap.topology.hosts import HostTracker


@dataclass
class ControllerState:
    settings: Settings
    clock: Callable[[], float] = time.monotonic
    topology: Topology = field(default_factory=Topology)
    hosts: HostTracker = field(default_factory=HostTracker)
    flows: InstalledFlows = field(default_factory=InstalledFlows)
    sessions: dict[int, SwitchSession] = field(default_factory=dict)
    alerts: AlertLog = field(default_factory=AlertLog)
    started_at: float = field(default_factory=time.time)
    on_change: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self.hosts.live = self.port_live

    def port_live(self, ref: PortRef) -> bool:
        """The port is up on a connected switch (a host bound there holds its binding)."""
        port = self.topology.port(ref) if ref.dpid in self.sessions else None
        return port is not None and port.up

    def changed(self) -> None:
        """Topology or hosts changed: the TAP intent must be compiled again."""
        self.on_change()

    def now(self) -> float:
        return self.clock()

    def is_edge(self, dpid: int, port_no: int) -> bool:
        return self.topology.is_edge_port(
            PortRef(dpid, port_no), self.now(), self.settings.edge_grace
        )
