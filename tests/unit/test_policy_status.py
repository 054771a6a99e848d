"""Policy status follows what the switches confirmed: active after every barrier, error with
the switch's own error text when one rejects a rule, active again once it accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import observe_fabric
from tests.unit.leafspine import Fabric
from vtap.controller.core import Controller
from vtap.domain.policy import PolicyPatch, PolicySpec, PolicyStatus
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import BatchError
from vtap.settings import Settings
from vtap.store.memory import MemoryPolicyRepository

GROUP_EXISTS = m.Error(6, 0, "GROUP_MOD_FAILED", "GROUP_EXISTS")


class FakeSwitch:
    """Holds nothing, confirms every batch, or rejects the first message when told to."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.closed = asyncio.Event()
        self.reject = False
        self.batches: list[int] = []

    async def multipart(self, _msg: object) -> list[object]:
        return []

    async def apply(self, msgs: list[object]) -> None:
        if self.reject:
            raise BatchError(self.dpid, {0: GROUP_EXISTS})
        self.batches.append(len(msgs))


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[tuple[Controller, dict[int, FakeSwitch]]]:
    ctl = Controller(Settings(state_dir=tmp_path, tap_settle=0.0), MemoryPolicyRepository())
    fab = Fabric(spines=2, leaves=2, hosts_per_leaf=2)
    observe_fabric(ctl, fab)
    switches = {d: FakeSwitch(d) for d in fab.spine_ids() + fab.leaf_ids()}
    for dpid, fake in switches.items():
        ctl.state.sessions[dpid] = fake  # type: ignore[assignment]
        await ctl.reconciler.join(fake)  # type: ignore[arg-type]
    task = asyncio.create_task(ctl.reconciler.run())
    yield ctl, switches
    task.cancel()


async def test_rejection_turns_the_policy_to_error_with_the_switch_text(
    controller: tuple[Controller, dict[int, FakeSwitch]],
) -> None:
    ctl, switches = controller
    spec = PolicySpec(name="p", src_ip="10.0.0.1", monitor_ip="10.0.0.4", ip_proto=17)
    policy = await ctl.policies.create(spec)
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason

    source_leaf = ctl.state.hosts.by_ip("10.0.0.1").location.dpid  # type: ignore[union-attr]
    switches[source_leaf].reject = True
    policy = await ctl.policies.update(policy.id, PolicyPatch(dst_port=53))
    assert policy.status is PolicyStatus.ERROR
    assert f"{source_leaf:016x}" in policy.status_reason
    assert "GROUP_MOD_FAILED/GROUP_EXISTS" in policy.status_reason

    switches[source_leaf].reject = False
    policy = await ctl.policies.update(policy.id, PolicyPatch(dst_port=54))
    assert policy.status is PolicyStatus.ACTIVE, policy.status_reason
