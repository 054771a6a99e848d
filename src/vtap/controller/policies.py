"""TAP policies at run time: store them, have them installed, tell what became of them.

The service writes the store and waits for the install round that covers the change
(controller/installer.py); it never drives rounds itself. A policy is `active` only when every
switch its rules live on committed them; `error` with the switch's own error text when a switch
rejected one of them; `pending` with a reason otherwise (a host not yet discovered, a switch not
yet connected or settling, disabled).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from vtap.controller.installer import Installer
from vtap.controller.state import ControllerState
from vtap.domain.network import dpid_str
from vtap.domain.policy import Policy, PolicyPatch, PolicySpec, PolicyStatus
from vtap.domain.reports import CopyCounter, PolicyStats
from vtap.ofchannel import codec
from vtap.openflow.pipeline import GROUP_COPY, TABLE_COPY
from vtap.openflow.rules import FlowRule, FlowStat, GroupRule
from vtap.store.base import PolicyRepository, ReplacePlan, VersionMismatch, plan_replace

log = logging.getLogger(__name__)

APPLY_WAIT = 5.0  # how long a REST change waits for its first install round

SwitchRuleSet = tuple[str, list[FlowRule], list[GroupRule]]


def _now() -> datetime:
    return datetime.now(UTC)


class PolicyService:
    def __init__(
        self, state: ControllerState, store: PolicyRepository, installer: Installer
    ) -> None:
        self._state = state
        self._store = store
        self._installer = installer

    # ------------------------------------------------------------ status

    def _with_status(self, policy: Policy) -> Policy:
        status, reason = self._installer.status.status(policy)
        return policy.with_status(status, reason)

    def list(self) -> list[Policy]:
        return [self._with_status(p) for p in self._store.list()]

    def summary(self) -> dict[str, int]:
        """How many policies are in each status (kept by the status book: no walk)."""
        total = self._store.count()
        counts = self._installer.status.counts
        active, error = counts[PolicyStatus.ACTIVE], counts[PolicyStatus.ERROR]
        return {"total": total, "active": active, "error": error, "pending": total - active - error}

    def get(self, policy_id: int) -> Policy:
        return self._with_status(self._store.get(policy_id))

    def count(self) -> int:
        return self._store.count()

    # ------------------------------------------------------------ operations

    async def _installed(self, policy_ids: list[int]) -> None:
        self._installer.policy_changed(policy_ids)
        await self._installer.wait(self._installer.request(urgent=True), APPLY_WAIT)

    async def _apply(self, policy_id: int) -> Policy:
        """Wait for the install round; if it sent ARP probes for the policy's hosts, give the
        answers about a second to arrive (the round they trigger makes the policy active)."""
        deadline = self._state.now() + APPLY_WAIT
        await self._installed([policy_id])
        policy = self.get(policy_id)
        while (
            policy.status is PolicyStatus.PENDING
            and policy_id in self._installer.probing
            and (left := deadline - self._state.now()) > 0
        ):
            await asyncio.sleep(min(0.2, left))
            await self._installer.wait(self._installer.request(urgent=True), left)
            policy = self.get(policy_id)
            if deadline - self._state.now() < APPLY_WAIT - 1.0:
                break  # give a probe about a second: the host may simply be down
        return policy

    async def create(self, spec: PolicySpec) -> Policy:
        policy = self._store.add(spec, _now())
        log.info("policy %d (%s) created", policy.id, policy.name)
        return await self._apply(policy.id)

    async def create_many(self, specs: list[PolicySpec]) -> list[Policy]:
        """All of them or none (the store checks the whole batch first); one install round for
        the lot, which is what makes loading thousands of policies fast."""
        # Off the event loop: storing 10,000 policies takes half a second of SQLite work.
        added = await asyncio.to_thread(self._store.add_many, specs, _now())
        log.info("%d policies created (ids %d-%d)", len(added), added[0].id, added[-1].id)
        await self._installed([p.id for p in added])
        return await asyncio.to_thread(lambda: [self._with_status(p) for p in added])

    async def update(
        self, policy_id: int, patch: PolicyPatch, if_match: str | None = None
    ) -> Policy:
        """Apply `patch`; with `if_match`, only if the policy is still that version (checked
        and written with no await between: no other change can slip in)."""
        current = self._store.get(policy_id)
        if if_match is not None and if_match.strip() not in ("*", current.etag):
            raise VersionMismatch(policy_id, current.etag)
        spec = patch.apply(current)
        self._store.update(policy_id, spec, _now())
        return await self._apply(policy_id)

    async def delete(self, policy_id: int) -> None:
        self._store.delete(policy_id)
        self._installer.status.forget(policy_id)
        await self._installed([policy_id])

    async def delete_many(self, policy_ids: list[int]) -> None:
        """All of them or none; one install round for the lot."""
        await asyncio.to_thread(self._store.delete_many, policy_ids)
        for n, policy_id in enumerate(policy_ids):
            if n and n % 2000 == 0:
                await asyncio.sleep(0)  # 50,000 of them take a quarter of a second
            self._installer.status.forget(policy_id)
        log.info("%d policies deleted", len(policy_ids))
        await self._installed(policy_ids)

    async def replace(
        self, desired: list[PolicySpec], *, dry_run: bool = False
    ) -> tuple[ReplacePlan, list[Policy], list[Policy]]:
        """Make the stored policies exactly `desired` (matched by name), all or nothing, in
        one install round. Returns the plan and the created and changed policies with their
        status (nothing is changed on a dry run)."""
        plan = await asyncio.to_thread(plan_replace, self._store.list(), desired)
        if dry_run or plan.empty:
            return plan, [], []
        created, changed = await asyncio.to_thread(self._store.replace, plan, _now())
        for policy in plan.remove:
            self._installer.status.forget(policy.id)
        log.info(
            "policies replaced: %d created, %d changed, %d removed, %d unchanged",
            len(created), len(changed), len(plan.remove), len(plan.unchanged),
        )  # fmt: skip
        await self._installed([p.id for p in (*created, *changed, *plan.remove)])
        return (
            plan,
            await asyncio.to_thread(lambda: [self._with_status(p) for p in created]),
            [self._with_status(p) for p in changed],
        )

    # ------------------------------------------------------------ reports

    def rules(self, policy_id: int) -> tuple[Policy, dict[int, SwitchRuleSet]]:
        """The policy (with its status) and the rules it compiles to, per switch (shared
        ones included): (switch name, flows, groups)."""
        policy = self.get(policy_id)
        compiler = self._installer.compiler
        found = compiler.rules_for(policy_id) if compiler is not None else {}
        return policy, {
            dpid: (self._installer.switch_name(dpid), flows, groups)
            for dpid, (flows, groups) in found.items()
        }

    async def stats(self, policy_id: int) -> PolicyStats:
        """Copies made for this policy, read now: the packet counters of the copy entries of
        its monitor's slot on the switch that classifies it."""
        self._store.get(policy_id)  # 404 for an unknown id
        compiler = self._installer.compiler
        copies: list[CopyCounter] = []
        placement = compiler.placement(policy_id) if compiler is not None else None
        if compiler is not None and placement is not None:
            dpid = placement.origin
            session = self._state.sessions.get(dpid)
            entries = compiler.copy_entries(dpid)
            if session is not None and entries:
                read = await session.multipart(codec.flow_stats_request(table_id=TABLE_COPY))
                packets = octets = 0
                for item in read:
                    if not isinstance(item, FlowStat):
                        continue
                    mine = entries.get(item.rule.key)
                    if mine is not None and policy_id in mine[1]:
                        packets += item.packet_count
                        octets += item.byte_count
                copies.append(
                    CopyCounter(
                        dpid=dpid_str(dpid),
                        switch=self._installer.switch_name(dpid),
                        group_id=GROUP_COPY,
                        monitor=placement.copy_key,
                        packets=packets,
                        bytes=octets,
                    )
                )
        return PolicyStats(
            policy_id=policy_id,
            packets=sum(c.packets for c in copies),
            bytes=sum(c.bytes for c in copies),
            copies=copies,
        )
