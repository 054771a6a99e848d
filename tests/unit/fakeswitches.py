"""A controller whose switches are fakes that confirm (or reject) every batch: for tests of
what the controller decides and sends, without Open vSwitch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.api.conftest import observe_fabric
from tests.unit.leafspine import Fabric
from vtap.controller.core import Controller
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import BatchError
from vtap.settings import Settings
from vtap.store.memory import MemoryPolicyRepository

GROUP_EXISTS = m.Error(6, 0, "GROUP_MOD_FAILED", "GROUP_EXISTS")
TABLE_FULL = m.Error(5, 1, "FLOW_MOD_FAILED", "TABLE_FULL")


class FakeSwitch:
    """Holds nothing, commits every bundle (and batch), or rejects the first message of each
    when told to (a rejected bundle leaves nothing behind, as on a real switch)."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.closed = asyncio.Event()
        self.reject = False
        self.error = GROUP_EXISTS  # what it rejects with
        self.batches: list[int] = []

    async def multipart(self, _msg: object) -> list[object]:
        return []

    async def apply(self, msgs: list[object]) -> None:
        if self.reject:
            raise BatchError(self.dpid, {0: self.error})
        self.batches.append(len(msgs))

    async def apply_bundle(self, msgs: list[object]) -> None:
        await self.apply(msgs)


@asynccontextmanager
async def controller_with_fakes(
    tmp_path: Path, fab: Fabric
) -> AsyncIterator[tuple[Controller, dict[int, FakeSwitch]]]:
    """A controller that knows `fab` (switches, links, hosts), every switch a joined fake,
    its install rounds running."""
    ctl = Controller(Settings(state_dir=tmp_path, tap_settle=0.0), MemoryPolicyRepository())
    observe_fabric(ctl, fab)
    switches = {d: FakeSwitch(d) for d in fab.spine_ids() + fab.leaf_ids()}
    for dpid, fake in switches.items():
        ctl.state.sessions[dpid] = fake  # type: ignore[assignment]
        await ctl.reconciler.join(fake)  # type: ignore[arg-type]
    task = asyncio.create_task(ctl.installer.run())
    try:
        yield ctl, switches
    finally:
        task.cancel()
