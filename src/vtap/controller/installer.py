"""The install round, one object: what changed → compile → save allocations → sync → status.

Rounds are requested (a policy change, a topology change, a host event, a switch that settled),
coalesced and run one at a time; callers can wait for the round that includes their change. A
round starts `debounce` after the first request, so a burst of events makes one round; a
request someone waits for (an operator's change through the API) is `urgent` and starts the
round at once, taking along every request made so far.

Compiling is incremental (compiler/tap.py): a policy change or a host event touches only what
depends on it, in the event loop, yielding every few hundred policies. A new topology (a link
or switch came or went, the controller started) or a very large batch of policy changes is a
full build instead: it runs in a worker thread on snapshots (policies, hosts, the topology
view, the allocations) while the event loop goes on serving switches and the API, and is then
swapped in. Its changes are what differs from the rules before, switch by switch.

A switch that rejects a bundle leaves nothing half done (bundles are atomic): the policies
whose entries it rejected go `error` with the switch's text and are left out of the intent
until they change (or the topology does), so the rest of the switch's changes get through in
the next round. A rejection for lack of space (a full flow table, no group left) is not the
policy's fault: such policies are tried again, a few per audit pass (`retry_space`), and become
active once the switch has room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping

from vtap import runtime
from vtap.compiler.alloc import Allocations, TapConfig
from vtap.compiler.forwarding import base_rules
from vtap.compiler.plan import Delta
from vtap.compiler.resolve import StaticHosts
from vtap.compiler.tap import TapCompiler
from vtap.compiler.topoview import TopologyView
from vtap.controller.reconciler import Desired, Reconciler, SyncResult
from vtap.controller.state import ControllerState
from vtap.controller.status import StatusBook
from vtap.domain.network import Host, dpid_str
from vtap.domain.policy import Policy
from vtap.openflow.rules import EntryKey, FlowRule, GroupRule
from vtap.store.base import PolicyNotFound, PolicyRepository
from vtap.store.hosts import HostRepository

log = logging.getLogger(__name__)

CHUNK = 256  # policies compiled between two yields to the event loop
STATUS_CHUNK = 2000  # policies whose status is worked out between two yields
REBUILD_BATCH = 2000  # more changes than this (and than half the policies): a full build
RETRY_UNCONFIRMED = 1.0  # seconds until a round a live switch did not confirm is tried again
RETRY_SPACE = 16  # policies refused for lack of space tried again per retry (one bundle each)
# (type, code) of the errors a switch sends when it has no room: FLOW_MOD_FAILED/TABLE_FULL,
# GROUP_MOD_FAILED/OUT_OF_GROUPS and OUT_OF_BUCKETS
NO_SPACE = {(5, 1), (6, 1), (6, 2)}


class Installer:
    def __init__(
        self,
        state: ControllerState,
        store: PolicyRepository,
        hosts_store: HostRepository,
        config: TapConfig,
        reconciler: Reconciler,
        probe: Callable[[str], None] = lambda _ip: None,
    ) -> None:
        self._state = state
        self._store = store
        self._hosts_store = hosts_store
        self._config = config
        self._reconciler = reconciler
        self._probe = probe
        self.compiler: TapCompiler | None = None
        self.status = StatusBook(
            lambda d: d in state.sessions, reconciler.settle_remaining, self.switch_name
        )
        self._base = {r.key: r for r in base_rules()}
        self._hosts_seen: dict[str, Host] = {}
        self._changed: set[int] = set()
        self._quarantine: set[int] = set()
        self._no_space: set[int] = set()  # quarantined because a switch had no room
        self._retrying: set[int] = set()  # released from that quarantine by this round
        self.probing: set[int] = set()  # policies whose hosts were just probed for
        self._requested = 0
        self._completed = 0
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._done = asyncio.Condition()
        self.rounds = 0
        self.full_builds = 0
        self.last_build_s = 0.0
        self._pending_view: TopologyView | None = None
        # told after every round: (seconds it took, changes the switches committed)
        self.round_observers: list[Callable[[float, int], None]] = []

    # ------------------------------------------------------------ requests

    def policy_changed(self, policy_ids: Iterable[int]) -> None:
        """These policies were created, changed or deleted in the store. A changed policy
        leaves quarantine: the operator may have fixed what the switch rejected."""
        for pid in policy_ids:
            self._changed.add(pid)
            self._quarantine.discard(pid)
            self._no_space.discard(pid)
            self.status.errors.pop(pid, None)

    def retry_space(self) -> int:
        """Try again a few policies a switch refused for lack of space (it may have room now:
        entries were deleted, or its limit raised). Their error stays until they are
        committed. Returns how many were released."""
        released = sorted(self._no_space)[:RETRY_SPACE]
        for pid in released:
            self._no_space.discard(pid)
            self._quarantine.discard(pid)
            self._changed.add(pid)
        self._retrying.update(released)
        if released:
            self.request()
        return len(released)

    def request(self, urgent: bool = False) -> int:
        """Ask for a round; returns a ticket that `wait()` accepts. An urgent request (someone
        waits for it) cuts the debounce short."""
        self._requested += 1
        self._wake.set()
        if urgent:
            self._urgent.set()
        return self._requested

    async def wait(self, ticket: int, timeout: float) -> bool:
        """Wait until the round covering `ticket` finished; False on timeout."""
        try:
            async with asyncio.timeout(timeout), self._done:
                await self._done.wait_for(lambda: self._completed >= ticket)
        except TimeoutError:
            return False
        return True

    async def run(self, debounce: float = 0.01) -> None:
        while True:
            await self._wake.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(debounce):
                    await self._urgent.wait()
            await asyncio.sleep(0)  # requests made in the same turn of the loop join this round
            self._wake.clear()
            self._urgent.clear()
            ticket = self._requested
            try:
                await self.round()
            except Exception:
                log.exception("install round failed")
            async with self._done:
                self._completed = ticket
                self._done.notify_all()

    # ------------------------------------------------------------ one round

    async def round(self) -> dict[int, SyncResult]:
        started = asyncio.get_running_loop().time()
        results = await self._round()
        took = asyncio.get_running_loop().time() - started
        applied = sum(r.applied for r in results.values())
        for observe in self.round_observers:
            observe(took, applied)
        return results

    async def _round(self) -> dict[int, SyncResult]:
        self.rounds += 1
        self._hosts_store.sync(self._state.hosts.all())
        delta = await self._compile()
        compiler = self.compiler
        assert compiler is not None
        saved, gone = compiler.alloc.changes()
        if saved or gone:
            self._store.update_tags(saved, gone)
        await self._in_chunks(sorted(delta.policies), lambda c: self.status.compiled(compiler, c))
        changed: dict[int, set[EntryKey] | None] = {}
        cleanup = self._reconciler.cleanup_due()
        lingered = cleanup[1] if cleanup is not None and cleanup[0] <= self._state.now() else {}
        for dpid in self._reconciler.switches():
            keys = delta.flows.get(dpid)
            if self._reconciler.needs_full(dpid):
                changed[dpid] = None
            elif keys or dpid in delta.groups or dpid in lingered:
                changed[dpid] = set(keys or ()) | lingered.get(dpid, set())
        versions = dict(compiler.versions)
        results = await self._reconciler.sync(self.desired, changed) if changed else {}
        rejected = self._after(results, versions)
        if any(r.error for d, r in results.items() if d in self._state.sessions):
            # a live switch did not answer in time, or was held back: try again shortly
            asyncio.get_running_loop().call_later(RETRY_UNCONFIRMED, self.request)
        stale = sorted(self.status.stale(delta.policies | rejected))
        await self._in_chunks(stale, lambda c: self.status.refresh(compiler, c))
        cleanup = self._reconciler.cleanup_due()
        if cleanup is not None:  # lingering label entries: a round when they may go
            wait = max(0.0, cleanup[0] - self._state.now()) + 0.05
            asyncio.get_running_loop().call_later(wait, self.request)
        return results

    def has_policies(self) -> bool:
        if self.compiler is not None:
            return bool(self.compiler.policies)
        return self._store.count() > 0

    def desired(self, dpid: int, with_tap: bool) -> Desired:
        if not with_tap or self.compiler is None:
            return Desired(self._base, {})
        flows, group = self.compiler.desired(dpid)
        groups: Mapping[int, GroupRule] = {group.group_id: group} if group is not None else {}
        merged: Mapping[EntryKey, FlowRule] = ChainMap(self._base, flows)  # type: ignore[arg-type]
        return Desired(merged, groups)

    async def _compile(self) -> Delta:
        view = self.topology_view()
        changed = self._changed
        total = len(self.compiler.policies) if self.compiler is not None else 0
        if (
            self.compiler is None
            or self.compiler.view is not view
            or len(changed) > max(REBUILD_BATCH, total // 2)
        ):
            return await self._rebuild(view)
        self._changed = set()
        compiler = self.compiler
        for n, pid in enumerate(sorted(changed)):
            if n and n % CHUNK == 0:
                await asyncio.sleep(0)
            policy = self._policy(pid)
            if policy is None or pid in self._quarantine:
                compiler.remove_policy(pid)
            else:
                compiler.set_policy(policy)
        hosts, moved = self._host_changes()
        if moved:
            compiler.set_hosts(hosts, moved)
        steps = compiler.flush_steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                delta: Delta = done.value
                break
            await asyncio.sleep(0)
        self._probe_pending(delta.policies)
        return delta

    async def _rebuild(self, view: TopologyView) -> Delta:
        """A full build in a worker thread, on snapshots; then its difference to the rules
        before, switch by switch."""
        self._changed = set()
        policies = [p for p in self._store.list() if p.id not in self._quarantine]
        hosts, _moved = self._host_changes()
        old = self.compiler
        saved = old.alloc.snapshot() if old is not None else self._store.get_tags()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with runtime.quiet_gc():  # see vtap/runtime.py
            new, delta = await asyncio.to_thread(
                _build, policies, view, hosts, self._config, saved, old
            )
        self.last_build_s = loop.time() - started
        self.full_builds += 1
        log.info(
            "full build: %d policies, %d switches changed, %.2f s",
            len(policies),
            len(delta.dpids),
            self.last_build_s,
        )
        self.compiler = new
        self._probe_pending(delta.policies)
        return delta

    @staticmethod
    async def _in_chunks(items: list[int], work: Callable[[list[int]], None]) -> None:
        """`work` over `items` a few thousand at a time, yielding to the event loop between
        (tens of thousands of policies change status after a full build)."""
        for first in range(0, len(items), STATUS_CHUNK):
            if first:
                await asyncio.sleep(0)
            work(items[first : first + STATUS_CHUNK])

    def _policy(self, pid: int) -> Policy | None:
        try:
            return self._store.get(pid)
        except PolicyNotFound:
            return None

    def _host_changes(self) -> tuple[StaticHosts, list[Host]]:
        """A snapshot of the host table, and the hosts that changed since the last one (both
        their old and their new version)."""
        now = {h.mac: h for h in self._state.hosts.all()}
        moved: list[Host] = []
        for mac, host in now.items():
            old = self._hosts_seen.get(mac)
            if old is None or old.ip != host.ip or old.location != host.location:
                moved.append(host)
                if old is not None:
                    moved.append(old)
        moved += [h for mac, h in self._hosts_seen.items() if mac not in now]
        self._hosts_seen = now
        return StaticHosts(now.values()), moved

    def _probe_pending(self, policy_ids: Iterable[int]) -> None:
        """Ask the edge for hosts a pending policy waits for (by IP: ARP can find them)."""
        compiler = self.compiler
        if compiler is None:
            return
        self.probing.clear()
        pending = compiler.pending
        for pid in policy_ids:
            policy = compiler.policies.get(pid)
            if pid not in pending or policy is None:
                continue
            wanted = [
                ip
                for ip in (policy.src_ip, policy.dst_ip, policy.monitor_ip)
                if ip and self._state.hosts.by_ip(ip) is None
            ]
            for ip in wanted:
                self._probe(ip)
            if wanted and self._state.sessions:
                self.probing.add(pid)

    def _after(self, results: dict[int, SyncResult], versions: dict[int, int]) -> set[int]:
        """What each switch committed or rejected: status, and quarantine for rejections.
        Returns the policies whose status this changed (rejected, or retried and in)."""
        compiler = self.compiler
        assert compiler is not None
        rejected: set[int] = set()
        for dpid, result in results.items():
            if result.ok and result.tap_synced:
                self.status.committed(dpid, versions.get(dpid, 0))
            for obj, error in result.rejected:
                key = (
                    obj.key
                    if isinstance(obj, FlowRule)
                    else (obj.group_id if isinstance(obj, GroupRule) else obj)
                )
                for pid in compiler.owners(dpid, key):
                    if pid not in self.status.errors or pid in self._retrying:
                        self.status.errors[pid] = f"switch {dpid_str(dpid)}: {error.text()}"
                    rejected.add(pid)
                    self._retrying.discard(pid)
                    if (error.type, error.code) in NO_SPACE:
                        self._no_space.add(pid)
        retried: set[int] = set()
        if self._retrying and not any(r.rejected for r in results.values()):
            # every switch took its share: what was retried is in (or left the intent)
            retried = self._retrying - rejected
            for pid in retried:
                self.status.errors.pop(pid, None)
            self._retrying.clear()
        if rejected:
            log.warning("policies %s rejected by a switch: left out until they change", rejected)
            self._quarantine |= rejected
            for pid in rejected:
                compiler.remove_policy(pid)
            self.request()
        return rejected | retried

    def forget_switch(self, dpid: int) -> None:
        self.status.forget_switch(dpid)

    def switch_joined(self, dpid: int) -> None:
        self.status.switch_changed(dpid)

    # ------------------------------------------------------------ views

    def topology_view(self) -> TopologyView:
        """The view of the topology's current state: kept while its generation stays the same,
        so copy trees and port lists are derived once per topology state."""
        topology = self._state.topology
        compiler = self.compiler
        if compiler is not None and compiler.view.matches(topology):
            return compiler.view
        if self._pending_view is not None and self._pending_view.matches(topology):
            return self._pending_view
        self._pending_view = TopologyView(topology)
        return self._pending_view

    def switch_name(self, dpid: int) -> str:
        switch = self._state.topology.switch(dpid)
        return switch.name if switch is not None and switch.name else dpid_str(dpid)


def _build(
    policies: list[Policy],
    view: TopologyView,
    hosts: StaticHosts,
    config: TapConfig,
    saved: Mapping[str, int],
    old: TapCompiler | None,
) -> tuple[TapCompiler, Delta]:
    """A fresh compiler holding every policy (worker thread: touches nothing shared but the
    old compiler, which nobody changes meanwhile), and its difference to the old one."""
    allocations = Allocations(config, saved)
    new = TapCompiler(view, hosts, allocations)
    for policy in sorted(policies, key=lambda p: p.id):
        new.set_policy(policy)
    new.flush()
    delta = Delta()
    if old is not None:
        new.versions.update(old.versions)
        # allocations the old compiler had not saved yet are carried in `saved`; what the new
        # one changed beyond them it reports itself
    for dpid in set(new.switches) | (set(old.switches) if old is not None else set()):
        before = old.switches.get(dpid) if old is not None else None
        after = new.switches.get(dpid)
        old_flows = before.flows if before is not None else {}
        new_flows = after.flows if after is not None else {}
        keys = {
            k for k in old_flows.keys() | new_flows.keys() if old_flows.get(k) != new_flows.get(k)
        }
        if keys:
            delta.flows[dpid] = keys
        if (before.group if before else None) != (after.group if after else None):
            delta.groups.add(dpid)
        if keys or dpid in delta.groups:
            new.versions[dpid] += 1
    for pid in new.policies.keys() | (old.policies.keys() if old is not None else set()):
        mine = new.plan(pid)
        theirs = old.plan(pid) if old is not None else None
        if mine != theirs or any(d in delta.dpids for d in (mine.dpids if mine else ())):
            delta.policies.add(pid)
    return new, delta
