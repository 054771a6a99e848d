"""Incremental compile = full build: after any sequence of creates, patches, deletes, enables,
disables and host moves, the rules the compiler holds are exactly those a fresh build of the
same policies gives (with the same sticky allocations), and every packet is still copied
exactly once. A change only reports the switches it touched."""

from __future__ import annotations

import random

import pytest

from tests.sim.lab import Lab, ip, mac
from vtap.compiler.alloc import Allocations
from vtap.compiler.plan import PlanState, build, snapshot
from vtap.compiler.resolve import StaticHosts
from vtap.compiler.tap import TapCompiler
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import Host
from vtap.domain.policy import Policy, PolicyPatch
from vtap.openflow.pipeline import TABLE_CLASSIFY, TABLE_SHAPE_FIRST
from vtap.topology import HostTracker


def _state(c: TapCompiler) -> tuple[dict, dict]:
    flows = {d: dict(sw.flows) for d, sw in c.switches.items() if sw.flows}
    groups = {d: sw.group for d, sw in c.switches.items() if sw.group is not None}
    return flows, groups


def _fresh(c: TapCompiler, hosts: object) -> TapCompiler:
    allocations = Allocations(c.alloc.config, c.alloc.snapshot())
    return build(c.policies.values(), c.view, hosts, allocations)  # type: ignore[arg-type]


def _random_fields(rng: random.Random) -> dict[str, object]:
    kind = rng.choice(["src", "srcdst", "dst", "dst", "mac"])
    s, d, m = rng.sample(range(1, 17), 3)
    fields: dict[str, object] = {}
    if rng.random() < 0.8:
        fields["monitor_mac"] = mac(m)
    else:
        fields["monitor_ip"] = ip(m)
    if kind in ("src", "srcdst"):
        fields["src_ip"] = ip(s)
    if kind in ("dst", "srcdst"):
        fields["dst_ip"] = ip(d)
    if kind == "mac":
        fields["src_mac"] = mac(s)
    roll = rng.random()
    if roll < 0.3:
        fields |= {"ip_proto": 17, "dst_port": rng.choice([53, 99])}
    elif roll < 0.5:
        fields["ip_proto"] = 6
    if kind == "srcdst" and rng.random() < 0.3:
        fields |= {"dst_mac": mac(d), "delivery": "rewrite"}
    return fields


def _expected(policies: list[Policy], hosts: HostTracker, pkt, sender: int) -> set[int]:  # type: ignore[no-untyped-def]
    out = set()
    for p in policies:
        values = {
            "src_mac": pkt.eth_src,
            "src_ip": pkt.ipv4_src,
            "dst_mac": pkt.eth_dst,
            "dst_ip": pkt.ipv4_dst,
            "ip_proto": pkt.ip_proto,
            "dst_port": pkt.dst_port,
        }
        if all(getattr(p, f) in (None, v) for f, v in values.items()):
            m = hosts.by_mac(p.monitor_mac) if p.monitor_mac else hosts.by_ip(p.monitor_ip)
            assert m is not None
            number = int(m.mac.rsplit(":", 1)[1], 16)
            if number != sender:
                out.add(number)
    return out


@pytest.mark.parametrize("seed", range(25))
def test_incremental_equals_full_build(seed: int) -> None:
    rng = random.Random(seed)
    lab = Lab()
    view = TopologyView(lab.topo)
    compiler = TapCompiler(view, lab.hosts, Allocations(lab.config))
    live: dict[int, Policy] = {}
    for step in range(60):
        roll = rng.random()
        if roll < 0.45 or not live:
            try:
                p = lab.policy(**_random_fields(rng))
            except ValueError:
                continue
            if any(q.identity() == p.identity() for q in live.values()):
                continue
            live[p.id] = p
            compiler.set_policy(p)
        elif roll < 0.6:
            pid = rng.choice(sorted(live))
            compiler.remove_policy(pid)
            del live[pid]
        elif roll < 0.75:
            pid = rng.choice(sorted(live))
            old = live[pid]
            patch = PolicyPatch(monitor_mac=mac(rng.randint(1, 16)), monitor_ip=None)
            try:
                spec = patch.apply(old)
            except ValueError:
                continue
            new = Policy.stored(pid, spec, old.created_at, old.updated_at)
            live[pid] = new
            compiler.set_policy(new)
        elif roll < 0.85:
            pid = rng.choice(sorted(live))
            old = live[pid]
            toggled = old.model_copy(update={"enabled": not old.enabled})
            live[pid] = toggled
            compiler.set_policy(toggled)
        else:  # a host moves to a free port of another leaf (or back)
            h = rng.randint(1, 16)
            before = lab.hosts.by_mac(mac(h))
            assert before is not None
            target = lab.fab.host_port(rng.randint(1, 16))
            spot = type(target)(target.dpid, 20 + h)  # a port of its own (never shared)
            lab.hosts.observe(mac(h), ip(h), spot, float(step))
            after = lab.hosts.by_mac(mac(h))
            assert after is not None
            compiler.set_hosts(lab.hosts, [before, after])
        delta = compiler.flush()
        for pid in delta.policies:
            assert pid in live or pid not in compiler.policies
        fresh = _fresh(compiler, lab.hosts)
        assert _state(compiler) == _state(fresh), f"step {step}"
        for pid, p in live.items():
            mine, theirs = compiler.plan(pid), fresh.plan(pid)
            assert mine == theirs, (step, p)
    enabled = [p for p in live.values() if p.enabled]
    plan = snapshot(compiler)
    for p in enabled:  # ready, unless a patch or a move made the monitor an endpoint
        state = plan.policies[p.id]
        assert state.state is PlanState.READY or "is the" in state.reason, state
    enabled = [p for p in enabled if plan.policies[p.id].state is PlanState.READY]
    # and the rules still copy as the policies say
    for src in (1, 3, 6, 9, 14):
        for dst in (2, 5, 12):
            for proto, dport in ((6, 80), (17, 53)):
                pkt = lab.packet(src, dst, proto=proto, dport=dport)
                want = _expected(enabled, lab.hosts, pkt, src)
                lab.assert_copies(lab.send(plan, src, pkt, dst), pkt, dst, want)


def test_one_change_touches_only_what_depends_on_it() -> None:
    lab = Lab()
    compiler = TapCompiler(TopologyView(lab.topo), lab.hosts, Allocations(lab.config))
    for i in range(200):
        src, dst = 1 + i % 12, 1 + (i * 7 + 3) % 12
        if src == dst:
            continue
        compiler.set_policy(
            lab.policy(
                src_ip=ip(src), dst_ip=ip(dst), ip_proto=6, dst_port=1000 + i, monitor_mac=mac(16)
            )
        )
    compiler.flush()
    leaf1 = lab.port(1).dpid
    p = lab.policy(src_ip=ip(1), dst_ip=ip(7), ip_proto=6, dst_port=53, monitor_mac=mac(16))
    compiler.set_policy(p)
    delta = compiler.flush()
    assert delta.policies == {p.id}
    # leaf 1 gets the classification entry; the monitor's label already crosses the fabric
    assert set(delta.flows) == {leaf1} and len(delta.flows[leaf1]) == 1
    assert not delta.groups
    compiler.remove_policy(p.id)
    delta = compiler.flush()
    assert set(delta.flows) == {leaf1} and len(delta.flows[leaf1]) == 1
    # a shape new on leaf 1: its entry, and the walk through leaf 1's shape tables
    q = lab.policy(src_ip=ip(1), ip_proto=17, dst_port=53, monitor_mac=mac(16))
    compiler.set_policy(q)
    delta = compiler.flush()
    assert set(delta.flows) == {leaf1}
    tables = sorted(key[0] for key in delta.flows[leaf1])
    assert len(tables) == 2 and tables[0] == TABLE_CLASSIFY and tables[1] >= TABLE_SHAPE_FIRST


def test_a_monitor_appearing_places_its_waiting_policies() -> None:
    lab = Lab()
    hosts = StaticHosts([h for h in lab.hosts.all() if h.mac != mac(9)])
    compiler = TapCompiler(TopologyView(lab.topo), hosts, Allocations(lab.config))
    p = lab.policy(src_ip=ip(1), monitor_ip=ip(9))
    compiler.set_policy(p)
    compiler.flush()
    plan = compiler.plan(p.id)
    assert plan is not None and plan.state is PlanState.PENDING
    assert "monitor host 10.0.0.9 not discovered yet" in plan.reason
    nine = lab.hosts.by_mac(mac(9))
    assert isinstance(nine, Host)
    compiler.set_hosts(lab.hosts, [nine])
    delta = compiler.flush()
    assert delta.policies == {p.id}
    plan = compiler.plan(p.id)
    assert plan is not None and plan.state is PlanState.READY
