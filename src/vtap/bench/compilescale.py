"""Compiler scaling without switches: a leaf-spine Topology and host table built from the lab's
address plan, and the overlapping policy mix (bench/workload.py).

* A *full build* (what a restart or a topology change costs): every policy placed, every switch's
  rules derived, timed from nothing (the topology view included); peak memory in a second,
  traced run (tracemalloc slows Python). The build runs off the event loop in the controller.
* One *incremental change* against the built set (what an API call costs): a create, a patch
  (new monitor) and a delete, each followed by the flush that yields the changed keys; CPU time
  per change (process_time), median and 95th percentile over many changes of each kind.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from vtap import runtime
from vtap.bench.workload import overlap_specs, stored
from vtap.compiler.alloc import Allocations, TapConfig
from vtap.compiler.plan import PlanState, build
from vtap.compiler.tap import TapCompiler
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import LOCAL_PORT, Link, Port, PortRef, Switch
from vtap.domain.policy import Policy, PolicyPatch
from vtap.lab.topo import LeafSpinePlan
from vtap.topology import HostTracker, Topology

FABRICS: tuple[tuple[int, int], ...] = ((4, 8), (16, 64))
COUNTS: tuple[int, ...] = (10_000, 100_000)
CHANGES = 200  # incremental changes of each kind timed per case


def fabric(plan: LeafSpinePlan) -> tuple[Topology, HostTracker]:
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


def full_build(policies: list[Policy], topo: Topology, hosts: HostTracker) -> TapCompiler:
    with runtime.quiet_gc():
        return build(policies, TopologyView(topo), hosts, Allocations(TapConfig()))


def _cpu(action: Callable[[], object]) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def incremental(compiler: TapCompiler, plan: LeafSpinePlan, seed: int = 3) -> dict[str, Any]:
    """CPU seconds per create, patch and delete (each with its flush), against `compiler`."""
    rng = random.Random(seed)
    next_id = max(compiler.policies, default=0) + 1
    extra = stored(overlap_specs(plan, len(compiler.policies) + CHANGES, seed=99))[-CHANGES:]
    created: list[Policy] = []
    times: dict[str, list[float]] = {"create": [], "patch": [], "delete": []}
    for spec in extra:
        policy = Policy.stored(next_id, spec, spec.created_at, spec.updated_at)
        next_id += 1

        def create(p: Policy = policy) -> None:
            compiler.set_policy(p)
            compiler.flush()

        times["create"].append(_cpu(create))
        created.append(policy)
    monitors = [h.mac for h in plan.hosts]
    for policy in created:
        endpoints = {policy.src_ip, policy.dst_ip}
        mac = rng.choice(
            [m for m, h in zip(monitors, plan.hosts, strict=True) if h.ip not in endpoints]
        )
        try:
            patched = Policy.stored(
                policy.id,
                PolicyPatch(monitor_mac=mac).apply(policy),
                policy.created_at,
                policy.updated_at,
            )
        except ValueError:
            continue

        def patch(p: Policy = patched) -> None:
            compiler.set_policy(p)
            compiler.flush()

        times["patch"].append(_cpu(patch))
    for policy in created:

        def delete(pid: int = policy.id) -> None:
            compiler.remove_policy(pid)
            compiler.flush()

        times["delete"].append(_cpu(delete))
    out: dict[str, Any] = {}
    for kind, samples in times.items():
        samples.sort()
        out[kind] = {
            "n": len(samples),
            "p50_ms": round(statistics.median(samples) * 1000, 3),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 3),
            "max_ms": round(samples[-1] * 1000, 3),
        }
    return out


def measure(spines: int, leaves: int, count: int, detail: bool = True) -> dict[str, Any]:
    """One fabric × policy count: full build (time, peak memory), rules, incremental cost.
    With the controller's garbage-collector policy (vtap/runtime.py): builds without cyclic
    collection, the result frozen."""
    runtime.tune()
    plan = LeafSpinePlan(spines, leaves, 2)
    topo, hosts = fabric(plan)
    policies = stored(overlap_specs(plan, count))
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    compiler = full_build(policies, topo, hosts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak: int | None = None
    if detail:
        gc.collect()
        tracemalloc.start()
        full_build(policies, topo, hosts)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    plans = [compiler.plan(p.id) for p in policies]
    flows = {d: len(sw.flows) for d, sw in compiler.switches.items()}
    result: dict[str, Any] = {
        "spines": spines,
        "leaves": leaves,
        "hosts": plan.host_count,
        "policies": count,
        "ready": sum(p is not None and p.state is PlanState.READY for p in plans),
        "pending": sum(p is not None and p.state is PlanState.PENDING for p in plans),
        "flows": sum(flows.values()),
        "flows_max_switch": max(flows.values(), default=0),
        "groups": sum(sw.group is not None for sw in compiler.switches.values()),
        "labels": len(compiler.alloc.label_keys()),
        "build_s": round(wall, 3),
        "build_cpu_s": round(cpu, 3),
        "peak_mib": None if peak is None else round(peak / 2**20, 1),
    }
    if detail:
        result["change"] = incremental(compiler, plan)
    return result
