"""The status an operator sees for each policy, and what it waits for.

`active` means confirmed by the switch: every switch the policy's rules live on committed a
bundle holding the version of its rules that includes the policy's latest change. The
compiler numbers each switch's desired state (a version per switch, bumped whenever it
changes); a policy records the versions its last change produced, a switch the version it
last committed. `error` carries the switch's own text; `pending` a reason (the compiler's, or
the switch the policy waits for).

Statuses are kept, not computed on every read: with 50,000 policies a listing (or a bench
polling for "all active") must not walk every policy's switches each time. After each install
round the installer refreshes exactly the policies whose status may have changed: those the
compiler changed, and those on switches that committed, joined, left or settled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from vtap.compiler.tap import PlanState, TapCompiler
from vtap.domain.policy import Policy, PolicyStatus

Status = tuple[PolicyStatus, str]
_NOT_COMPILED: Status = (PolicyStatus.PENDING, "not compiled yet")
_DISABLED: Status = (PolicyStatus.PENDING, "disabled")


class StatusBook:
    def __init__(
        self,
        connected: Callable[[int], bool],
        settle_remaining: Callable[[int], float],
        name_of: Callable[[int], str],
    ) -> None:
        self._connected = connected
        self._settle_remaining = settle_remaining
        self._name = name_of
        self._need: dict[int, dict[int, int]] = {}  # policy → switch → version it needs
        self._confirmed: dict[int, int] = {}  # switch → version it committed
        self._on_switch: dict[int, set[int]] = {}  # switch → ready policies with rules there
        self._status: dict[int, Status] = {}  # enabled policies the compiler knows
        self.counts: Counter[PolicyStatus] = Counter()
        self.errors: dict[int, str] = {}  # policy → the switch's error text
        self._touched: set[int] = set()  # switches whose policies must be looked at again
        self._waiting: dict[int, dict[int, int]] = {}  # switch → policy → version it waits for
        self._ready: set[int] = set()  # policies whose wait on some switch just ended
        self._drift: dict[int, str] = {}  # switch → what an audit found changed behind vtap

    # --- what happened ---------------------------------------------------------------------

    def compiled(self, compiler: TapCompiler, policies: Iterable[int]) -> None:
        """These policies' rules changed: they wait for their switches' current versions."""
        versions = compiler.versions
        for pid in policies:
            for dpid in self._need.pop(pid, {}):
                self._on_switch.get(dpid, set()).discard(pid)
                self._waiting.get(dpid, {}).pop(pid, None)
            plan = compiler.plan(pid)
            if plan is not None and plan.state is PlanState.READY:
                need = self._need[pid] = {d: versions[d] for d in plan.dpids}
                for dpid, version in need.items():
                    self._on_switch.setdefault(dpid, set()).add(pid)
                    self._waiting.setdefault(dpid, {})[pid] = version

    def drifted(self, dpid: int, what: str) -> set[int]:
        """An audit found the switch's tables changed behind vtap: its policies are not
        active until the switch committed the repair. Returns those policies."""
        self._drift[dpid] = what
        self.switch_changed(dpid)
        return set(self._on_switch.get(dpid, ()))

    def committed(self, dpid: int, version: int) -> None:
        """The switch committed this version: the policies that waited for it may be active
        now (the others on the switch were, and are)."""
        if self._drift.pop(dpid, None) is not None:
            self._touched.add(dpid)
        if version > self._confirmed.get(dpid, -1):
            self._confirmed[dpid] = version
        waiting = self._waiting.get(dpid)
        if waiting:
            done = [pid for pid, need in waiting.items() if need <= version]
            for pid in done:
                del waiting[pid]
            self._ready.update(done)

    def switch_changed(self, dpid: int) -> None:
        """The switch joined or left: its policies' status changes now, and again once it
        committed their rules."""
        self._touched.add(dpid)
        self._waiting[dpid] = {pid: self._need[pid][dpid] for pid in self._on_switch.get(dpid, ())}

    def forget_switch(self, dpid: int) -> None:
        """The switch left: what it held is read again when it comes back."""
        self._confirmed.pop(dpid, None)
        self._drift.pop(dpid, None)
        self.switch_changed(dpid)

    def forget(self, policy_id: int) -> None:
        for dpid in self._need.pop(policy_id, {}):
            self._on_switch.get(dpid, set()).discard(policy_id)
            self._waiting.get(dpid, {}).pop(policy_id, None)
        self.errors.pop(policy_id, None)
        self._set(policy_id, None)

    # --- refreshing ------------------------------------------------------------------------

    def stale(self, changed: Iterable[int]) -> set[int]:
        """The policies to refresh: `changed` and those on switches touched since last time."""
        out = set(changed) | self._ready
        for dpid in self._touched:
            out |= self._on_switch.get(dpid, set())
        self._touched.clear()
        self._ready = set()
        return out

    def refresh(self, compiler: TapCompiler | None, policy_ids: Iterable[int]) -> None:
        for pid in policy_ids:
            self._set(pid, self._compute(pid, compiler))

    def _set(self, pid: int, status: Status | None) -> None:
        old = self._status.pop(pid, None)
        if old is not None:
            self.counts[old[0]] -= 1
        if status is not None:
            self._status[pid] = status
            self.counts[status[0]] += 1

    def _compute(self, pid: int, compiler: TapCompiler | None) -> Status | None:
        error = self.errors.get(pid)
        if error is not None:
            return PolicyStatus.ERROR, error
        plan = compiler.plan(pid) if compiler is not None else None
        if plan is None:
            return None  # disabled or deleted (or not compiled yet)
        if plan.state is PlanState.PENDING:
            return PolicyStatus.PENDING, plan.reason
        need = self._need.get(pid, {})
        for dpid in sorted(plan.dpids):
            if not self._connected(dpid):
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} is not connected"
            wait = self._settle_remaining(dpid)
            if wait > 0:
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} settling ({wait:.0f}s)"
            drift = self._drift.get(dpid)
            if drift is not None:
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} changed: {drift}"
            if self._confirmed.get(dpid, -1) < need.get(dpid, 0):
                return PolicyStatus.PENDING, f"waiting for switch {self._name(dpid)}"
        return PolicyStatus.ACTIVE, ""

    # --- reading ---------------------------------------------------------------------------

    def status(self, policy: Policy) -> Status:
        if not policy.enabled:
            return _DISABLED
        error = self.errors.get(policy.id)
        if error is not None:
            return PolicyStatus.ERROR, error
        return self._status.get(policy.id, _NOT_COMPILED)
