"""A 4-spine × 8-leaf fabric with 16 hosts, TAP policies compiled onto it, packets walked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.unit.leafspine import Fabric
from vtap.compiler.alloc import Allocations, TapConfig
from vtap.compiler.forwarding import base_rules, path_rules
from vtap.compiler.plan import TapPlan, build, snapshot
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import FlowKey, PortRef
from vtap.domain.policy import Policy, PolicySpec
from vtap.topology import HostTracker, host_path
from vtap.trace.walker import Network, Packet, WalkResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def mac(i: int) -> str:
    return f"00:00:00:00:00:{i:02x}"


def ip(i: int) -> str:
    return f"10.0.0.{i}"


class Lab:
    def __init__(self, fabric: Fabric | None = None, config: TapConfig | None = None) -> None:
        self.fab = fabric or Fabric()
        self.topo = self.fab.build()
        self.hosts = HostTracker()
        self.n_hosts = self.fab.leaves * self.fab.hosts_per_leaf
        for i in range(1, self.n_hosts + 1):
            self.hosts.observe(mac(i), ip(i), self.fab.host_port(i), 0.0)
        self.config = config or TapConfig()
        self.tags: dict[str, int] = {}  # every allocation (labels, slots, tables) by record
        self._next_id = 0

    def port(self, host: int) -> PortRef:
        """Where host h<n> is now (hosts may have moved since the lab was built)."""
        found = self.hosts.by_mac(mac(host)) if host < 256 else None
        return found.location if found is not None else self.fab.host_port(host)

    def policy(self, **fields: Any) -> Policy:
        self._next_id += 1
        fields.setdefault("name", f"p{self._next_id}")
        return Policy.stored(self._next_id, PolicySpec.model_validate(fields), T0, T0)

    def compile(self, *policies: Policy) -> TapPlan:
        """A full build with the allocations kept from earlier compiles (as after a restart)."""
        allocations = Allocations(self.config, self.tags)
        compiler = build(policies, TopologyView(self.topo), self.hosts, allocations)
        self.tags = allocations.snapshot()
        return snapshot(compiler)

    @property
    def labels(self) -> dict[str, int]:
        """Copy-label allocations only (copy key → MPLS label)."""
        return {k: v for k, v in self.tags.items() if k.startswith(("monitor:", "policy:"))}

    def packet(
        self,
        src: int,
        dst: int,
        *,
        proto: int = 6,
        sport: int = 1000,
        dport: int = 80,
        vlans: tuple[tuple[int, int], ...] = (),
    ) -> Packet:
        ports = proto in (6, 17)
        return Packet(
            eth_src=mac(src),
            eth_dst=mac(dst),
            vlans=vlans,
            ipv4_src=ip(src),
            ipv4_dst=ip(dst),
            ip_proto=proto,
            src_port=sport if ports else 0,
            dst_port=dport if ports else 0,
        )

    def send(self, plan: TapPlan, src: int, pkt: Packet, dst: int | None = None) -> WalkResult:
        """Walk `pkt` from host `src`, with forwarding rules installed for its 5-tuple to `dst`."""
        flows = {d: list(base_rules()) + plan.flows.get(d, []) for d in self.topo.graph.nodes}
        if dst is not None:
            assert pkt.ipv4_src and pkt.ipv4_dst and pkt.ip_proto is not None
            key = FlowKey(pkt.ipv4_src, pkt.ipv4_dst, pkt.ip_proto, pkt.src_port, pkt.dst_port)
            hops = host_path(self.topo, self.port(src), self.port(dst), key)
            assert hops is not None
            for dpid, rule in path_rules(key, hops, 30).items():
                flows[dpid].append(rule)
        rules = {d: (f, plan.groups.get(d, [])) for d, f in flows.items()}
        return Network(self.topo, rules).send(pkt, self.port(src))

    def assert_delivered(
        self, result: WalkResult, pkt: Packet, dst: int, monitors: set[int] = frozenset()
    ) -> None:
        """dst gets pkt once, unchanged; each monitor exactly one identical copy; nobody else."""
        assert result.at(self.port(dst)) == [pkt], result
        for m in monitors:
            assert m != dst
            assert result.at(self.port(m)) == [pkt], (m, result)
        assert len(result.deliveries) == 1 + len(monitors), result.deliveries
        assert not result.to_controller

    def assert_copies(self, result: WalkResult, pkt: Packet, dst: int, monitors: set[int]) -> None:
        """As assert_delivered, but the destination may be one of the monitors: then it gets
        the packet and one identical copy."""
        if dst not in monitors:
            self.assert_delivered(result, pkt, dst, monitors)
            return
        assert result.at(self.port(dst)) == [pkt, pkt], result
        for m in monitors - {dst}:
            assert result.at(self.port(m)) == [pkt], (m, result)
        assert len(result.deliveries) == 1 + len(monitors), result.deliveries
        assert not result.to_controller
