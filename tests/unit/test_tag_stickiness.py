"""Copy labels, monitor slots and shape tables are sticky: a controller restart (switches
rejoining one by one, hosts not yet heard from) reshuffles none of them, so every switch ends
up with exactly the rules it held; numbers of deleted or disabled policies are released."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.unit.leafspine import Fabric
from vtap.compiler.alloc import Allocations, TapConfig
from vtap.compiler.resolve import StaticHosts
from vtap.compiler.tap import TapCompiler
from vtap.compiler.topoview import TopologyView
from vtap.controller.core import Controller
from vtap.domain.network import Host
from vtap.domain.policy import Policy, PolicySpec
from vtap.settings import Settings
from vtap.store.sqlite import SqlitePolicyRepository

FAB = Fabric(spines=2, leaves=3, hosts_per_leaf=2)
HOSTS = range(1, FAB.leaves * FAB.hosts_per_leaf + 1)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _mac(i: int) -> str:
    return f"00:00:00:00:00:{i:02x}"


def _observe(ctl: Controller, switches: list[int], hosts: bool) -> None:
    st = ctl.state
    for dpid in switches:
        st.topology.switch_up(FAB.switch(dpid), st.now())
    for cable in FAB.cables():
        if cable.src.dpid in switches and cable.dst.dpid in switches:
            st.topology.lldp_seen(cable, st.now())
            st.topology.lldp_seen(cable.reversed(), st.now())
    if hosts:
        for i in HOSTS:
            st.hosts.observe(_mac(i), f"10.0.0.{i}", FAB.host_port(i), st.now())


def _rules(ctl: Controller) -> dict[int, set[object]]:
    compiler = ctl.installer.compiler
    assert compiler is not None
    return {d: set(sw.flows.values()) for d, sw in compiler.switches.items() if sw.flows}


async def test_restart_with_switches_and_hosts_arriving_late_keeps_every_number(
    tmp_path: Path,
) -> None:
    db = tmp_path / "policies.db"
    store = SqlitePolicyRepository(db)
    first = Controller(Settings(state_dir=tmp_path), store)
    _observe(first, FAB.spine_ids() + FAB.leaf_ids(), hosts=True)
    # Added one by one, so numbers are handed out in an order that sorted keys would not give.
    for src, mon in ((1, 6), (3, 5), (2, 4), (5, 1)):
        spec = PolicySpec(name=f"p{src}", src_ip=f"10.0.0.{src}", monitor_ip=f"10.0.0.{mon}")
        first.installer.policy_changed([store.add(spec, T0).id])
        await first.installer.round()
    before_numbers, before_rules = store.get_tags(), _rules(first)
    labels = {k: v for k, v in before_numbers.items() if k.startswith("monitor:")}
    assert len(set(labels.values())) == 4
    store.close()

    again = Controller(Settings(state_dir=tmp_path), SqlitePolicyRepository(db))
    _observe(again, FAB.spine_ids(), hosts=False)  # the leaves have not rejoined yet
    await again.installer.round()
    _observe(again, FAB.spine_ids() + FAB.leaf_ids()[:1], hosts=True)
    await again.installer.round()
    _observe(again, FAB.spine_ids() + FAB.leaf_ids(), hosts=True)
    await again.installer.round()
    assert again.store.get_tags() == before_numbers
    assert _rules(again) == before_rules


def _policy(pid: int, **fields: object) -> Policy:
    return Policy.stored(pid, PolicySpec.model_validate({"name": f"p{pid}", **fields}), T0, T0)


def test_numbers_of_deleted_or_disabled_policies_are_released() -> None:
    hosts = StaticHosts(Host(_mac(i), f"10.0.0.{i}", FAB.host_port(i)) for i in HOSTS)
    compiler = TapCompiler(TopologyView(FAB.build()), hosts, Allocations(TapConfig()))
    a = _policy(1, src_ip="10.0.0.1", monitor_mac=_mac(6))
    b = _policy(2, src_ip="10.0.0.3", monitor_mac=_mac(6))
    r = _policy(3, src_ip="10.0.0.1", dst_mac=_mac(4), dst_ip="10.0.0.4", monitor_mac=_mac(5),
                delivery="rewrite")  # fmt: skip
    for p in (a, b, r):
        compiler.set_policy(p)
    compiler.flush()
    assert set(compiler.alloc.label_keys()) == {f"monitor:{_mac(6)}", "policy:3"}
    compiler.remove_policy(a.id)
    compiler.flush()
    assert f"monitor:{_mac(6)}" in compiler.alloc.label_keys()  # b still copies to h6
    compiler.set_policy(b.model_copy(update={"enabled": False}))
    compiler.remove_policy(r.id)
    assert len(compiler.alloc.label_keys()) == 2  # released at the flush, not before
    compiler.flush()
    assert compiler.alloc.label_keys() == []
    _saved, gone = compiler.alloc.changes()
    assert f"monitor:{_mac(6)}" in gone and "policy:3" in gone


def test_no_monitor_label_is_released_while_a_monitor_is_known_by_an_unanswered_ip() -> None:
    known = [Host(_mac(i), f"10.0.0.{i}", FAB.host_port(i)) for i in HOSTS]
    compiler = TapCompiler(TopologyView(FAB.build()), StaticHosts(known), Allocations(TapConfig()))
    a = _policy(1, src_ip="10.0.0.1", monitor_mac=_mac(6))
    waiting = _policy(2, src_ip="10.0.0.2", monitor_ip="10.0.0.99")
    compiler.set_policy(a)
    compiler.set_policy(waiting)
    compiler.flush()
    compiler.remove_policy(a.id)
    compiler.flush()
    assert compiler.alloc.label_keys() == [f"monitor:{_mac(6)}"]  # 10.0.0.99 may be h6
    compiler.remove_policy(waiting.id)
    compiler.flush()
    assert compiler.alloc.label_keys() == []
