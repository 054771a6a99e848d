"""Drift repair: every switch's tables are compared with what vtap committed, periodically.

Someone may run `ovs-ofctl del-flows`, modify a TAP rule, or add an entry under vtap's cookie:
vtap's mirror of the switch would then lie, every round would diff against a fiction, and
policies would show `active` over a switch that no longer copies (or forwards) anything. An
audit reads the switch, and on any difference hands the reconciler what is really there; the
round it requests repairs the whole pipeline (base entries, TAP entries, groups), and the
policies on that switch are `pending` until the repair is committed. Reactive path entries
that vanished are forgotten, so the next packet installs them again.

Reading and decoding a large table costs CPU (os-ken decodes ~60 µs per entry), so one pass
reads switches in full up to a budget of entries, round robin, and checks the others with one
aggregate request (does the switch hold as many entries in vtap's cookie range as vtap put
there?): a deletion or an addition is found on every pass, an in-place modification on a
switch beyond the budget within a few passes.
"""

from __future__ import annotations

import asyncio
import logging

from vtap.controller.alerts import AlertKind
from vtap.controller.forwarding import Forwarding
from vtap.controller.installer import Installer
from vtap.controller.reconciler import Drift, Reconciler
from vtap.controller.state import ControllerState
from vtap.domain.network import FlowKey, dpid_str

log = logging.getLogger(__name__)

BUDGET = 4_000  # entries read in full per pass (beyond the first switch): ~0.25 s of CPU


class Audit:
    def __init__(
        self,
        state: ControllerState,
        reconciler: Reconciler,
        installer: Installer,
        forwarding: Forwarding,
        budget: int = BUDGET,
    ) -> None:
        self._state = state
        self._reconciler = reconciler
        self._installer = installer
        self._forwarding = forwarding
        self._budget = budget
        self._next = 0  # round robin: where the next pass starts reading in full
        self.passes = 0
        self.repairs = 0  # switches found drifted (and handed to a repair round)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._state.settings.audit_interval)
            try:
                await self.check()
            except Exception:
                log.exception("audit failed")

    async def check(self) -> dict[int, Drift]:
        """One pass over every connected switch; returns what drifted."""
        self.passes += 1
        switches = self._reconciler.switches()
        if not switches:
            return {}
        start = self._next % len(switches)
        order = switches[start:] + switches[:start]
        spent, read = 0, 0
        found: dict[int, Drift] = {}
        for n, dpid in enumerate(order):
            if not self._reconciler.settled(dpid):
                continue  # its first full sync is still to come
            paths = self._paths_on(dpid)
            size = len(self._reconciler.holds(dpid)) + len(paths)
            drift: Drift | None = None
            if n == 0 or spent + size <= self._budget:
                spent += size
                read = n + 1
                drift = await self._reconciler.audit(dpid)
            elif await self._reconciler.count_matches(dpid, len(paths)) is False:
                drift = await self._reconciler.audit(dpid)
            if drift is None:
                continue
            await self._forget_lost_paths(dpid, paths, drift)
            if drift.found:
                found[dpid] = drift
        self._next = start + max(read, 1)
        self._installer.retry_space()  # policies a switch had no room for: it may have now
        for dpid, drift in found.items():
            self._drifted(dpid, drift)
        if found:
            self.repairs += len(found)
            self._installer.request(urgent=True)
        return found

    def _drifted(self, dpid: int, drift: Drift) -> None:
        name = self._installer.switch_name(dpid)
        self._state.alerts.raise_(
            AlertKind.TABLE_DRIFT,
            f"switch {name} ({dpid_str(dpid)}) was changed behind vtap: {drift.text()}; repairing",
            dpid=dpid_str(dpid),
        )
        status = self._installer.status
        policies = status.drifted(dpid, drift.text())
        status.refresh(self._installer.compiler, policies)  # not `active` from now on

    def _paths_on(self, dpid: int) -> dict[FlowKey, object]:
        flows = self._state.flows
        return {key: hops[dpid] for key in flows if dpid in (hops := flows.hops(key))}

    async def _forget_lost_paths(self, dpid: int, paths: dict, drift: Drift) -> None:
        present = {rule.key for rule in drift.forwarding}
        lost = {key for key, rule in paths.items() if rule.key not in present}
        if lost:
            log.warning("switch %s: %d path entries vanished; they are installed again on "
                        "their next packet", dpid_str(dpid), len(lost))  # fmt: skip
            await self._forwarding.remove_flows(lost)
