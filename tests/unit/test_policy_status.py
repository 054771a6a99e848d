"""Policy status follows what the switches confirmed: active after every barrier, error with
the switch's own error text when one rejects a rule, active again once it accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.fakeswitches import FakeSwitch, controller_with_fakes
from tests.unit.leafspine import Fabric
from vtap.controller.core import Controller
from vtap.domain.policy import PolicyPatch, PolicySpec, PolicyStatus


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[tuple[Controller, dict[int, FakeSwitch]]]:
    async with controller_with_fakes(tmp_path, Fabric(spines=2, leaves=2, hosts_per_leaf=2)) as c:
        yield c


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
