"""A policy that is pending for a moment keeps its copy tag: a controller restart (switches
rejoining one by one, hosts not yet heard from) must not reshuffle tags and rewrite every
switch's transit, delivery and guard rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from tests.unit.leafspine import Fabric
from vtap.compiler.tags import still_referenced
from vtap.controller.core import Controller
from vtap.domain.policy import PolicySpec
from vtap.settings import Settings
from vtap.store.sqlite import SqlitePolicyRepository

FAB = Fabric(spines=2, leaves=3, hosts_per_leaf=2)
HOSTS = range(1, FAB.leaves * FAB.hosts_per_leaf + 1)


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


def _rules(ctl: Controller) -> dict[int, list[str]]:
    plan = ctl.policies.plan
    return {d: sorted(map(repr, plan.flows[d])) for d in plan.flows}


async def test_restart_with_switches_and_hosts_arriving_late_keeps_every_tag(
    tmp_path: Path,
) -> None:
    db = tmp_path / "policies.db"
    store = SqlitePolicyRepository(db)
    now = datetime.now(UTC)
    first = Controller(Settings(state_dir=tmp_path), store)
    _observe(first, FAB.spine_ids() + FAB.leaf_ids(), hosts=True)
    # Added one by one, so tags are handed out in an order that sorted keys would not give.
    for src, mon in ((1, 6), (3, 5), (2, 4), (5, 1)):
        spec = PolicySpec(name=f"p{src}", src_ip=f"10.0.0.{src}", monitor_ip=f"10.0.0.{mon}")
        store.add(spec, now)
        first.policies.recompile()
    before_tags, before_rules = store.get_tags(), _rules(first)
    assert len(set(before_tags.values())) == 4
    store.close()

    again = Controller(Settings(state_dir=tmp_path), SqlitePolicyRepository(db))
    _observe(again, FAB.spine_ids(), hosts=False)  # the leaves have not rejoined yet
    again.policies.recompile()
    _observe(again, FAB.spine_ids() + FAB.leaf_ids()[:1], hosts=True)
    again.policies.recompile()
    _observe(again, FAB.spine_ids() + FAB.leaf_ids(), hosts=True)
    again.policies.recompile()
    await asyncio.sleep(0)
    assert again.policies._store.get_tags() == before_tags
    assert _rules(again) == before_rules


class _P:
    def __init__(self, pid: int, mac: str | None = None, ip: str | None = None,
                 delivery: str = "tagged", enabled: bool = True) -> None:  # fmt: skip
        self.id, self.monitor_mac, self.monitor_ip = pid, mac, ip
        self.delivery, self.enabled = delivery, enabled


def test_tags_of_deleted_or_disabled_policies_are_released() -> None:
    existing = {"monitor:00:00:00:00:00:01": 3900, "monitor:00:00:00:00:00:02": 3901,
                "policy:7": 3902, "policy:8": 3903}  # fmt: skip
    users = [
        _P(1, mac=_mac(1)),
        _P(2, mac=_mac(2), enabled=False),
        _P(7, delivery="rewrite", mac=_mac(1)),
        _P(9, delivery="rewrite", mac=_mac(1)),
    ]
    kept = still_referenced(existing, users, lambda ip: None)
    assert kept == {"monitor:00:00:00:00:00:01", "policy:7"}
    # A monitor known by IP only, not found yet: no monitor tag may be released.
    kept = still_referenced(existing, [_P(3, ip="10.0.0.9")], lambda ip: None)
    assert kept == {"monitor:00:00:00:00:00:01", "monitor:00:00:00:00:00:02"}
