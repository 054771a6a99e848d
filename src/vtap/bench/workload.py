"""Reproducible mixes of TAP policies over a leaf-spine address plan.

`policy_specs`, the *plain* mix (every policy has a distinct L4 port, so no two share a
match):
- 60 % source policies: `src_ip` + UDP or TCP `dst_port`;
- 20 % source + destination: `src_ip`, `dst_ip`, TCP `dst_port`;
- 20 % destination-only: `dst_ip` + UDP or TCP `dst_port` (classified at the destination's edge).
Monitors are spread over the hosts (never the policy's own source or destination).

`overlap_specs`, the *overlapping* mix of the compiler-v2 issue: policies that pin different
fields, so a packet can match several (from source port 443 to destination port 80 it matches
both "h1 src_port 443" and "h1→h2 dst_port 80"):
- 20 % destination-only with a UDP destination port;
- 20 % source-only with a TCP source port;
- 60 % source + destination with a TCP destination port;
random monitors among the hosts (seeded), all ports distinct while there are ports enough.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from vtap.domain.policy import Policy, PolicySpec
from vtap.lab.topo import LeafSpinePlan

FIRST_PORT = 1024
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def policy_specs(plan: LeafSpinePlan, count: int, prefix: str = "bench") -> list[dict[str, Any]]:
    hosts = plan.hosts
    n = len(hosts)
    if n < 3:
        raise ValueError("the workload needs at least 3 hosts")
    if FIRST_PORT + count > 65535:
        raise ValueError(f"at most {65535 - FIRST_PORT} policies (one L4 port each)")
    specs: list[dict[str, Any]] = []
    for i in range(count):
        src = hosts[i % n]
        dst = hosts[(i * 5 + 1 + i // n) % n]
        if dst.name == src.name:
            dst = hosts[(i + 1) % n]
        monitor = hosts[(i * 7 + 3 + i // n) % n]
        while monitor.name in (src.name, dst.name):
            monitor = hosts[(hosts.index(monitor) + 1) % n]
        proto = 17 if i % 2 == 0 else 6
        spec: dict[str, Any] = {
            "name": f"{prefix}-{i}",
            "monitor_mac": monitor.mac,
            "ip_proto": proto,
            "dst_port": FIRST_PORT + i,
        }
        kind = i % 10
        if kind < 6:
            spec["src_ip"] = src.ip
        elif kind < 8:
            spec |= {"src_ip": src.ip, "dst_ip": dst.ip, "ip_proto": 6}
        else:
            spec["dst_ip"] = dst.ip
        specs.append(spec)
    return specs


def overlap_specs(
    plan: LeafSpinePlan,
    count: int,
    prefix: str = "ov",
    seed: int = 10,
    first_port: int = FIRST_PORT,
) -> list[dict[str, Any]]:
    """The overlapping mix (module doc). Beyond the distinct ports (from `first_port`), ports
    repeat with other hosts: (match, monitor) stays unique."""
    hosts = plan.hosts
    n = len(hosts)
    if n < 3:
        raise ValueError("the workload needs at least 3 hosts")
    rng = random.Random(seed)
    ports = 65535 - first_port + 1
    specs: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    i = 0
    while len(specs) < count:
        port = first_port + i % ports
        src, dst = rng.sample(hosts, 2)
        monitor = rng.choice([h for h in hosts if h.name not in (src.name, dst.name)])
        kind = i % 5
        spec: dict[str, Any] = {"name": f"{prefix}-{len(specs)}", "monitor_mac": monitor.mac}
        if kind == 0:
            spec |= {"dst_ip": dst.ip, "ip_proto": 17, "dst_port": port}
        elif kind == 1:
            spec |= {"src_ip": src.ip, "ip_proto": 6, "src_port": port}
        else:
            spec |= {"src_ip": src.ip, "dst_ip": dst.ip, "ip_proto": 6, "dst_port": port}
        i += 1
        identity = tuple(sorted((k, v) for k, v in spec.items() if k != "name"))
        if identity in seen:
            continue
        seen.add(identity)
        specs.append(spec)
    return specs


def stored(specs: list[dict[str, Any]]) -> list[Policy]:
    """Specs as stored Policy objects (ids 1..), for the compiler."""
    return [
        Policy.stored(i + 1, PolicySpec.model_validate(spec), T0, T0)
        for i, spec in enumerate(specs)
    ]


def policies(plan: LeafSpinePlan, count: int) -> list[Policy]:
    """The plain mix as stored Policy objects (ids 1..count), for the compiler."""
    return stored(policy_specs(plan, count))


def mix(specs: list[dict[str, Any]]) -> dict[str, int]:
    out = {"src_only": 0, "src_dst": 0, "dst_only": 0, "udp": 0, "tcp": 0}
    for s in specs:
        if "src_ip" in s and "dst_ip" in s:
            out["src_dst"] += 1
        elif "src_ip" in s:
            out["src_only"] += 1
        else:
            out["dst_only"] += 1
        out["udp" if s["ip_proto"] == 17 else "tcp"] += 1
    return out
