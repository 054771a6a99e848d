"""The status an operator sees for each policy, and what it waits for.

`active` means confirmed by the switch: every switch the policy's rules live on committed a
bundle holding the version of its rules that includes the policy's latest change. The
compiler numbers each switch's desired state (a version per switch, bumped whenever it
changes); a policy records the versions its last change produced, a switch the version it
last committed. `error` carries the switch's own text; `pending` a reason (the compiler's, or
the switch the policy waits for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from vtap.compiler.tap import PlanState, TapCompiler
from vtap.domain.policy import Policy, PolicyStatus

Status = tuple[PolicyStatus, str]


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
        self.errors: dict[int, str] = {}  # policy → the switch's error text

    def compiled(self, compiler: TapCompiler, policies: Iterable[int]) -> None:
        """These policies' rules changed: they wait for their switches' current versions."""
        versions = compiler.versions
        for pid in policies:
            plan = compiler.plan(pid)
            if plan is None or plan.state is not PlanState.READY:
                self._need.pop(pid, None)
            else:
                self._need[pid] = {d: versions[d] for d in plan.dpids}

    def committed(self, dpid: int, version: int) -> None:
        self._confirmed[dpid] = max(version, self._confirmed.get(dpid, -1))

    def forget_switch(self, dpid: int) -> None:
        """The switch left: what it held is read again when it comes back."""
        self._confirmed.pop(dpid, None)

    def forget(self, policy_id: int) -> None:
        self._need.pop(policy_id, None)
        self.errors.pop(policy_id, None)

    def status(self, policy: Policy, compiler: TapCompiler | None) -> Status:
        if not policy.enabled:
            return PolicyStatus.PENDING, "disabled"
        error = self.errors.get(policy.id)
        if error is not None:
            return PolicyStatus.ERROR, error
        plan = compiler.plan(policy.id) if compiler is not None else None
        if plan is None:
            return PolicyStatus.PENDING, "not compiled yet"
        if plan.state is PlanState.PENDING:
            return PolicyStatus.PENDING, plan.reason
        need = self._need.get(policy.id, {})
        for dpid in sorted(plan.dpids):
            if not self._connected(dpid):
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} is not connected"
            wait = self._settle_remaining(dpid)
            if wait > 0:
                return PolicyStatus.PENDING, f"switch {self._name(dpid)} settling ({wait:.0f}s)"
            if self._confirmed.get(dpid, -1) < need.get(dpid, 0):
                return PolicyStatus.PENDING, f"waiting for switch {self._name(dpid)}"
        return PolicyStatus.ACTIVE, ""

    def counts(self, policies: Iterable[Policy], compiler: TapCompiler | None) -> Mapping[str, int]:
        out: dict[str, int] = {s.value: 0 for s in PolicyStatus}
        for policy in policies:
            out[self.status(policy, compiler)[0].value] += 1
        return out
