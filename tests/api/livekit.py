"""A controller with a leaf-spine topology, hosts and in-flight flows, but no switch.

Flows are put where the switches' answers would put them: forwarding entries into the
installed-flow table, and counters into the poller's flow table, one complete answer per
switch per reading (as the poller feeds it), with made-up times.
"""

from __future__ import annotations

import time
from collections import defaultdict

from tests.unit.leafspine import Fabric
from vtap.compiler.forwarding import path_rules
from vtap.controller.core import Controller
from vtap.domain.network import FlowKey
from vtap.stats.flowtable import EntryCounters
from vtap.topology import host_path

FABRIC = Fabric()


def mac(i: int) -> str:
    return f"00:00:00:00:00:{i:02x}"


def ip(i: int) -> str:
    return f"10.0.0.{i}"


class FakeFabric:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.paths: dict[FlowKey, list[int]] = {}
        self.pps: dict[FlowKey, int] = {}
        self.packets: dict[FlowKey, float] = {}
        self.t0 = time.time() - 1.0  # when the flows started
        self.t = self.t0
        state = controller.state
        now = state.now()
        for dpid in FABRIC.spine_ids() + FABRIC.leaf_ids():
            state.topology.switch_up(FABRIC.switch(dpid), now)
        for cable in FABRIC.cables():
            state.topology.lldp_seen(cable, now)
            state.topology.lldp_seen(cable.reversed(), now)
        for i in range(1, 17):
            state.hosts.observe(mac(i), ip(i), FABRIC.host_port(i), now)

    def flow(self, src: int, dst: int, key: FlowKey, pps: int = 10) -> list[int]:
        """Install `key` from h`src` to h`dst`, sending `pps` 100-byte packets a second."""
        state = self.controller.state
        path = host_path(state.topology, FABRIC.host_port(src), FABRIC.host_port(dst), key)
        assert path is not None
        for dpid, rule in path_rules(key, path, 30).items():
            state.flows.add(key, dpid, rule)
        self.paths[key] = [hop.dpid for hop in path]
        self.pps[key] = pps
        return self.paths[key]

    def end(self, key: FlowKey) -> None:
        self.controller.state.flows.drop_key(key)
        del self.paths[key]

    def tick(self, seconds: float = 1.0) -> None:
        """Time passes; every switch answers a poll with all of its entries."""
        self.t += seconds
        answers: dict[int, list[EntryCounters]] = defaultdict(list)
        for key, path in self.paths.items():
            self.packets[key] = self.packets.get(key, 0.0) + self.pps[key] * seconds
            packets = int(self.packets[key])
            for dpid in path:
                answers[dpid].append(EntryCounters(key, packets, packets * 100, self.t - self.t0))
        table = self.controller.flowstats.flows
        for dpid in table.switches() | set(answers):
            table.observe(dpid, answers.get(dpid, []), self.t)
