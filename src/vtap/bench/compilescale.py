"""Compiler scaling without switches: a leaf-spine Topology and host table built from the lab's
address plan, the policy mix compiled as the controller does (compile, allocate tags, compile
again, both passes on one TopologyView: the controller keeps one while the topology is
unchanged, see PolicyService.topology_view). The timed run includes building that view.
Time without tracing; peak memory in a second, traced run (tracemalloc slows Python)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from vtap.bench.workload import policies as make_policies
from vtap.compiler import tags as tagalloc
from vtap.compiler.tags import TapConfig
from vtap.compiler.tap import PlanState, TapPlan, compile_tap
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import LOCAL_PORT, Link, Port, PortRef, Switch
from vtap.domain.policy import Policy
from vtap.lab.topo import LeafSpinePlan
from vtap.topology import HostTracker, Topology

FABRICS: tuple[tuple[int, int], ...] = ((4, 8), (8, 32), (16, 64))
COUNTS: tuple[int, ...] = (1_000, 10_000)


def build(plan: LeafSpinePlan) -> tuple[Topology, HostTracker]:
    """The topology and hosts the controller would have learnt from this lab."""
    topo = Topology()
    for sw in plan.switches:
        base = f"0a:00:00:{sw.dpid >> 8:02x}:{sw.dpid & 0xFF:02x}"
        ports = [Port(p, f"{sw.name}-eth{p}", f"{base}:{p:02x}") for p in plan.ports_of(sw.name)]
        ports.append(Port(LOCAL_PORT, sw.name, f"{base}:00"))
        topo.switch_up(Switch(sw.dpid, sw.name, tuple(ports)), 0.0)
    dpid = {s.name: s.dpid for s in plan.switches}
    for link in plan.fabric_links:
        a = PortRef(dpid[link.a.node], link.a.port)
        b = PortRef(dpid[link.b.node], link.b.port)
        topo.lldp_seen(Link(a, b), 0.0)
        topo.lldp_seen(Link(b, a), 0.0)
    hosts = HostTracker()
    for h in plan.hosts:
        hosts.observe(h.mac, h.ip, PortRef(dpid[h.leaf], h.leaf_port), 0.0)
    return topo, hosts


def compile_like_controller(
    policies: list[Policy], topo: Topology, hosts: HostTracker, config: TapConfig
) -> tuple[TapPlan, int]:
    """Both passes on one view of the topology, as PolicyService does."""
    view = TopologyView(topo)
    tags: dict[str, int] = {}
    plan = compile_tap(policies, view, hosts, tags, config)
    passes = 1
    if plan.missing_tags(tags):
        tags = tagalloc.allocate(tags, plan.tags_needed, config)
        plan = compile_tap(policies, view, hosts, tags, config)
        passes = 2
    return plan, passes


def measure(
    spines: int, leaves: int, count: int, hosts_per_leaf: int = 2, detail: bool = True
) -> dict[str, Any]:
    """One fabric × policy count. `detail`: also the steady-state pass and peak memory (each
    costs another compile, the traced one several times as long)."""
    plan = LeafSpinePlan(spines, leaves, hosts_per_leaf)
    topo, hosts = build(plan)
    policies = make_policies(plan, count)
    config = TapConfig()
    gc.collect()
    start = time.perf_counter()
    tap, passes = compile_like_controller(policies, topo, hosts, config)
    elapsed = time.perf_counter() - start
    one_pass: float | None = None
    peak: int | None = None
    if detail:
        # The steady state: tags already allocated, one pass (what every later round costs).
        tags = tagalloc.allocate({}, tap.tags_needed, config)
        start = time.perf_counter()
        compile_tap(policies, topo, hosts, tags, config)
        one_pass = time.perf_counter() - start
        gc.collect()
        tracemalloc.start()
        compile_like_controller(policies, topo, hosts, config)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    states = [p.state for p in tap.policies.values()]
    return {
        "spines": spines,
        "leaves": leaves,
        "hosts": plan.host_count,
        "policies": count,
        "ready": sum(s is PlanState.READY for s in states),
        "pending": sum(s is PlanState.PENDING for s in states),
        "flows": sum(len(f) for f in tap.flows.values()),
        "groups": sum(len(g) for g in tap.groups.values()),
        "tags": len(tap.tags_needed),
        "passes": passes,
        "compile_s": round(elapsed, 4),
        "one_pass_s": None if one_pass is None else round(one_pass, 4),
        "peak_mib": None if peak is None else round(peak / 2**20, 2),
    }
