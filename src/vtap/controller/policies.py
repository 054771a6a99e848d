"""TAP policies at run time: store → compile → reconcile, and the status an operator sees.

A policy is `active` only when every switch its rules live on confirmed them with a barrier;
`error` with the switch's own error text when a switch rejected one of them; `pending` with a
reason otherwise (a host not yet discovered, a switch not yet connected or settling, disabled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from vtap.compiler.forwarding import base_rules
from vtap.compiler.ofctl import to_ofctl
from vtap.openflow.pipeline import owner_of
from vtap.openflow.rules import FlowRule, GroupRule
from vtap.compiler.tags import TapConfig, allocate, still_referenced
from vtap.compiler.tap import PlanState, TapPlan, compile_tap
from vtap.compiler.topoview import TopologyView
from vtap.controller.reconciler import Desired, Reconciler, SyncResult
from vtap.controller.state import ControllerState
from vtap.domain.network import dpid_str
from vtap.domain.policy import Policy, PolicyPatch, PolicySpec, PolicyStatus
from vtap.domain.reports import CopyCounter, PolicyRules, PolicyStats, RuleOut, SwitchRules
from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.stats.copies import bucket_feeds, monitor_keys
from vtap.store.base import PolicyRepository

log = logging.getLogger(__name__)

APPLY_WAIT = 5.0  # how long a REST change waits for its first install round


def _now() -> datetime:
    return datetime.now(UTC)


class PolicyService:
    def __init__(
        self,
        state: ControllerState,
        store: PolicyRepository,
        config: TapConfig,
        reconciler: Reconciler,
        probe: Callable[[str], None] = lambda _ip: None,
    ) -> None:
        self._state = state
        self._store = store
        self._config = config
        self._reconciler = reconciler
        self._probe = probe
        self._status: dict[int, tuple[PolicyStatus, str]] = {}
        self._errors: dict[int, str] = {}  # policy id → last switch error text
        self.plan = TapPlan({}, {}, {}, frozenset())
        self._probing: set[int] = set()  # policies whose hosts were just probed for
        self._view: TopologyView | None = None  # the topology's current state, for compiles

    # ------------------------------------------------------------ intent

    def recompile(self) -> None:
        """Compile every policy against the current topology and hosts; allocate tags."""
        policies = self._store.list()
        tags = self._store.get_tags()
        view = self.topology_view()
        plan = compile_tap(policies, view, self._state.hosts, tags, self._config)
        kept = still_referenced(tags, policies, self._monitor_mac_of_ip)
        wanted = allocate(tags, plan.tags_needed | kept, self._config)
        if wanted != tags:
            self._store.set_tags(wanted)
            if plan.missing_tags(tags):
                plan = compile_tap(policies, view, self._state.hosts, wanted, self._config)
        self.plan = plan
        self._probing.clear()
        for policy in policies:
            self._probe_missing_hosts(policy)

    def _monitor_mac_of_ip(self, ip: str) -> str | None:
        host = self._state.hosts.by_ip(ip)
        return None if host is None else host.mac

    def topology_view(self) -> TopologyView:
        """The view of the topology's current state: kept while its generation stays the same,
        so copy trees and port lists are derived once per topology state, not once per round."""
        topology = self._state.topology
        if self._view is None or not self._view.matches(topology):
            self._view = TopologyView(topology)
        return self._view

    def desired(self, dpid: int, with_tap: bool) -> Desired:
        flows = base_rules()
        if not with_tap:
            return Desired(flows, [])
        flows += self.plan.flows.get(dpid, [])
        return Desired(flows, list(self.plan.groups.get(dpid, [])))

    def _probe_missing_hosts(self, policy: Policy) -> None:
        """Ask the edge for hosts a pending policy waits for (by IP: ARP can find them)."""
        plan = self.plan.policies.get(policy.id)
        if plan is None or plan.state is not PlanState.PENDING:
            return
        wanted = [
            ip
            for ip in (policy.src_ip, policy.dst_ip, policy.monitor_ip)
            if ip and self._state.hosts.by_ip(ip) is None
        ]
        for ip in wanted:
            self._probe(ip)
        if wanted and self._state.sessions:
            self._probing.add(policy.id)

    # ------------------------------------------------------------ status

    def update_status(self, results: dict[int, SyncResult]) -> None:
        """After a round: what each policy's switches confirmed or rejected."""
        for result in results.values():
            for obj, error in result.rejected:
                for pid in self._owners(result.dpid, obj):
                    self._errors[pid] = f"switch {dpid_str(result.dpid)}: {error.text()}"
        for policy in self._store.list():
            self._status[policy.id] = self._status_of(policy, results)

    def _owners(self, dpid: int, obj: FlowRule | GroupRule | int) -> set[int]:
        if isinstance(obj, FlowRule):
            owners = set(self.plan.flow_owners.get(dpid, {}).get(obj.key, ()))
            owner = owner_of(obj.cookie)
            if owner is not None and owner[1]:
                owners.add(owner[1])
            return owners
        if isinstance(obj, GroupRule):
            return set(self.plan.group_owners.get(dpid, {}).get(obj.group_id, ()))
        return set()

    def _status_of(
        self, policy: Policy, results: dict[int, SyncResult]
    ) -> tuple[PolicyStatus, str]:
        if not policy.enabled:
            return PolicyStatus.PENDING, "disabled"
        plan = self.plan.policies.get(policy.id)
        if plan is None:
            return PolicyStatus.PENDING, "not compiled yet"
        if plan.state is PlanState.PENDING:
            return PolicyStatus.PENDING, plan.reason
        error = self._errors.get(policy.id)
        for dpid in sorted(plan.dpids):
            result = results.get(dpid)
            if result is not None and result.rejected:
                return PolicyStatus.ERROR, error or "a switch rejected a rule"
        self._errors.pop(policy.id, None)
        for dpid in sorted(plan.dpids):
            if dpid not in self._state.sessions:
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} is not connected"
            result = results.get(dpid)
            if result is None or result.error:
                return PolicyStatus.PENDING, f"waiting for switch {self._name(dpid)}"
            if not result.tap_synced:
                wait = self._reconciler.settle_remaining(dpid)
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} settling ({wait:.0f}s)"
        return PolicyStatus.ACTIVE, ""

    def _name(self, dpid: int) -> str:
        switch = self._state.topology.switch(dpid)
        return switch.name if switch is not None and switch.name else dpid_str(dpid)

    def _with_status(self, policy: Policy) -> Policy:
        status, reason = self._status.get(policy.id, (PolicyStatus.PENDING, "not compiled yet"))
        return policy.with_status(status, reason)

    # ------------------------------------------------------------ operations

    def list(self) -> list[Policy]:
        return [self._with_status(p) for p in self._store.list()]

    def get(self, policy_id: int) -> Policy:
        return self._with_status(self._store.get(policy_id))

    async def _apply(self, policy_id: int) -> Policy:
        """Wait for the install round; if it sent ARP probes for the policy's hosts, give the
        answers about a second to arrive (the round they trigger makes the policy active)."""
        deadline = self._state.now() + APPLY_WAIT
        await self._reconciler.wait(self._reconciler.request(urgent=True), APPLY_WAIT)
        policy = self.get(policy_id)
        while (
            policy.status is PolicyStatus.PENDING
            and policy_id in self._probing
            and (left := deadline - self._state.now()) > 0
        ):
            await asyncio.sleep(min(0.2, left))
            await self._reconciler.wait(self._reconciler.request(urgent=True), left)
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
        the lot, which is what makes loading a thousand policies fast."""
        added = self._store.add_many(specs, _now())
        log.info("%d policies created (ids %d-%d)", len(added), added[0].id, added[-1].id)
        await self._reconciler.wait(self._reconciler.request(urgent=True), APPLY_WAIT)
        return [self.get(p.id) for p in added]

    async def update(self, policy_id: int, patch: PolicyPatch) -> Policy:
        current = self._store.get(policy_id)
        spec = patch.apply(current)
        self._store.update(policy_id, spec, _now())
        return await self._apply(policy_id)

    async def delete(self, policy_id: int) -> None:
        self._store.delete(policy_id)
        self._status.pop(policy_id, None)
        self._errors.pop(policy_id, None)
        await self._reconciler.wait(self._reconciler.request(urgent=True), APPLY_WAIT)

    async def delete_many(self, policy_ids: list[int]) -> None:
        """All of them or none; one install round for the lot."""
        self._store.delete_many(policy_ids)
        for policy_id in policy_ids:
            self._status.pop(policy_id, None)
            self._errors.pop(policy_id, None)
        log.info("%d policies deleted", len(policy_ids))
        await self._reconciler.wait(self._reconciler.request(urgent=True), APPLY_WAIT)

    def rules(self, policy_id: int) -> PolicyRules:
        policy = self.get(policy_id)
        switches = []
        for dpid, (flows, groups) in self.plan.rules_for(policy_id).items():
            rules = [
                RuleOut(kind="group", group_id=g.group_id, ofctl=to_ofctl(g)) for g in groups
            ] + [
                RuleOut(
                    kind="flow",
                    table_id=r.table_id,
                    priority=r.priority,
                    cookie=f"0x{r.cookie:016x}",
                    ofctl=to_ofctl(r),
                )
                for r in sorted(flows, key=lambda r: (r.table_id, -r.priority))
            ]
            switches.append(SwitchRules(dpid=dpid_str(dpid), switch=self._name(dpid), rules=rules))
        return PolicyRules(
            policy_id=policy_id,
            status=policy.status.value,
            status_reason=policy.status_reason,
            switches=switches,
        )

    async def stats(self, policy_id: int) -> PolicyStats:
        """Copies made for this policy: its monitor's bucket in each of its groups."""
        policy = self._store.get(policy_id)
        keys = monitor_keys(policy, self._state.hosts)
        tag_keys = {vid: key for key, vid in self._store.get_tags().items()}
        copies: list[CopyCounter] = []
        for dpid, (_flows, groups) in self.plan.rules_for(policy_id).items():
            session = self._state.sessions.get(dpid)
            if session is None or not groups:
                continue
            counters = {
                c.group_id: c
                for c in await session.multipart(codec.group_stats_request())
                if isinstance(c, m.GroupCounters)
            }
            for group in groups:
                counter = counters.get(group.group_id)
                if counter is None:
                    continue
                for index, bucket in enumerate(group.buckets[: len(counter.bucket_packets)]):
                    fed = bucket_feeds(dpid, bucket.actions, tag_keys, self._state.hosts)
                    if fed is None or fed not in keys:
                        continue
                    copies.append(
                        CopyCounter(
                            dpid=dpid_str(dpid),
                            switch=self._name(dpid),
                            group_id=group.group_id,
                            monitor=fed,
                            packets=counter.bucket_packets[index],
                            bytes=counter.bucket_bytes[index],
                        )
                    )
        return PolicyStats(
            policy_id=policy_id,
            packets=sum(c.packets for c in copies),
            bytes=sum(c.bytes for c in copies),
            copies=copies,
        )
