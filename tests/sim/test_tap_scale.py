"""10,000 policies on the 4 × 8 fabric compile quickly (the benchmark proper lives elsewhere)."""

from __future__ import annotations

import time

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.tap import PlanState


def test_ten_thousand_policies_compile_fast() -> None:
    lab = Lab()
    policies = []
    monitors = [13, 14, 15, 16]
    port = 0
    while len(policies) < 10_000:
        port += 1
        for src in range(1, 13):
            for dst in range(1, 13):
                if src == dst or len(policies) == 10_000:
                    continue
                monitor = monitors[(src + dst + port) % 4]
                policies.append(
                    lab.policy(
                        src_ip=ip(src),
                        dst_ip=ip(dst),
                        ip_proto=6,
                        dst_port=port,
                        monitor_mac=mac(monitor),
                    )
                )
    start = time.perf_counter()
    plan = lab.compile(*policies)
    elapsed = time.perf_counter() - start
    flows = sum(len(f) for f in plan.flows.values())
    groups = sum(len(g) for g in plan.groups.values())
    print(f"\n10,000 policies: {elapsed:.2f} s (two passes), {flows} flows, {groups} groups")
    assert all(p.state == PlanState.READY for p in plan.policies.values())
    assert len(lab.tags) == 4
    assert elapsed < 20.0
