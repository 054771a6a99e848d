"""What the compiler tells about policies and changes: each policy's plan, the keys a flush
changed, and snapshots of a whole compile (for tests, benches and the rules view)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from vtap.openflow.rules import EntryKey, FlowRule, GroupRule

if TYPE_CHECKING:
    from vtap.compiler.alloc import Allocations, TapConfig
    from vtap.compiler.resolve import HostLookup
    from vtap.compiler.tap import TapCompiler
    from vtap.compiler.topoview import TopologyView
    from vtap.domain.policy import Policy


class PlanState(StrEnum):
    READY = "ready"  # rules compiled; active once the switches in `dpids` confirmed them
    PENDING = "pending"  # waiting for something (see `reason`); becomes ready by itself


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    policy_id: int
    state: PlanState
    reason: str = ""
    dpids: frozenset[int] = frozenset()


@dataclass(slots=True)
class Delta:
    """What one flush changed: entry keys and copy groups per switch, and which policies'
    own rules changed (their status waits for those switches again)."""

    flows: dict[int, set[EntryKey]] = field(default_factory=dict)
    groups: set[int] = field(default_factory=set)
    policies: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.flows or self.groups or self.policies)

    def merge(self, other: Delta) -> None:
        for dpid, keys in other.flows.items():
            self.flows.setdefault(dpid, set()).update(keys)
        self.groups |= other.groups
        self.policies |= other.policies

    @property
    def dpids(self) -> set[int]:
        return set(self.flows) | self.groups


@dataclass(slots=True)
class TapPlan:
    """A snapshot of a compiler's rules and policy plans (tests, benches, the rules view)."""

    flows: dict[int, list[FlowRule]]
    groups: dict[int, list[GroupRule]]
    policies: dict[int, PolicyPlan]
    compiler: TapCompiler

    def rules_for(self, policy_id: int) -> dict[int, tuple[list[FlowRule], list[GroupRule]]]:
        return self.compiler.rules_for(policy_id)


def snapshot(compiler: TapCompiler) -> TapPlan:
    flows = {d: list(sw.flows.values()) for d, sw in compiler.switches.items() if sw.flows}
    groups = {d: [sw.group] for d, sw in compiler.switches.items() if sw.group is not None}
    plans = {pid: compiler.plan(pid) for pid in sorted(compiler.policies)}
    return TapPlan(flows, groups, {k: v for k, v in plans.items() if v is not None}, compiler)


def build(
    policies: Iterable[Policy],
    view: TopologyView,
    hosts: HostLookup,
    allocations: Allocations,
) -> TapCompiler:
    """A compiler holding every enabled policy, flushed (a full build)."""
    from vtap.compiler.tap import TapCompiler

    compiler = TapCompiler(view, hosts, allocations)
    for policy in sorted(policies, key=lambda p: p.id):
        compiler.set_policy(policy)
    compiler.flush()
    return compiler


def compile_tap(
    policies: Iterable[Policy],
    view: TopologyView,
    hosts: HostLookup,
    saved: Mapping[str, int] | None = None,
    config: TapConfig | None = None,
) -> TapPlan:
    """A full build from scratch as one snapshot (allocations start from `saved`)."""
    from vtap.compiler.alloc import Allocations, TapConfig

    allocations = Allocations(config or TapConfig(), saved)
    return snapshot(build(policies, view, hosts, allocations))
