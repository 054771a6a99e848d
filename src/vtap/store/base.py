"""The policy repository contract, shared by the SQLite store and the in-memory one.

Both raise the same errors, so the API maps them to HTTP answers once (404, 409) whatever store
is wired in, and the same contract tests run against both.

Timestamps come in as arguments (`now`): the store never reads the clock, which keeps it
deterministic under test and lets the caller stamp a batch of changes with one time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from vtap.domain.policy import Policy, PolicySpec
from vtap.errors import VtapError


class StoreError(VtapError):
    """The store cannot do what was asked (the message says why)."""


class PolicyNotFound(StoreError):
    def __init__(self, policy_id: int) -> None:
        super().__init__(f"no policy with id {policy_id}")
        self.policy_id = policy_id


class DuplicatePolicy(StoreError):
    """Another policy has the same match and monitor (API: 409)."""

    def __init__(self, existing_id: int) -> None:
        super().__init__(f"policy {existing_id} already has the same match and monitor")
        self.existing_id = existing_id


class DuplicateName(StoreError):
    """Another policy has this name; names are unique (API: 409)."""

    def __init__(self, name: str, existing_id: int) -> None:
        super().__init__(f"policy {existing_id} is already named {name!r}")
        self.name = name
        self.existing_id = existing_id


class VersionMismatch(StoreError):
    """The policy changed since the caller read it (If-Match did not match; API: 412)."""

    def __init__(self, policy_id: int, current: str) -> None:
        super().__init__(
            f"policy {policy_id} changed since it was read (its ETag is now {current}); "
            "read it again and reapply the change"
        )
        self.policy_id = policy_id
        self.current = current


class BatchConflict(StoreError):
    """One item of a batch clashes with a stored policy or with another item (API: 409); the
    message names the item by its index, so a file of a thousand policies points at the line."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"policies[{index}]: {reason}")
        self.index = index


def check_batch(specs: Sequence[PolicySpec]) -> None:
    """Items of one batch must differ from each other in name and in match and monitor."""
    names: dict[str, int] = {}
    identities: dict[object, int] = {}
    for index, spec in enumerate(specs):
        twin = identities.setdefault(spec.identity(), index)
        if twin != index:
            raise BatchConflict(index, f"same match and monitor as policies[{twin}]")
        twin = names.setdefault(spec.name, index)
        if twin != index:
            raise BatchConflict(index, f"name {spec.name!r} is also policies[{twin}]'s")


@dataclass(frozen=True)
class ReplacePlan:
    """What turns the stored policies into a desired set, matched by name."""

    create: tuple[PolicySpec, ...]
    change: tuple[tuple[int, PolicySpec], ...]  # (id, new spec)
    remove: tuple[Policy, ...]
    unchanged: tuple[Policy, ...]
    replaced: tuple[Policy, ...] = ()  # the stored policies `change` replaces, in its order

    @property
    def empty(self) -> bool:
        return not (self.create or self.change or self.remove)


def plan_replace(current: Sequence[Policy], desired: Sequence[PolicySpec]) -> ReplacePlan:
    """The plan for `desired` (checked with check_batch: unique names and matches). The end
    state is exactly `desired`, so it cannot clash with anything stored."""
    check_batch(desired)
    by_name = {p.name: p for p in current}
    wanted = {spec.name for spec in desired}
    create, change, unchanged, replaced = [], [], [], []
    for spec in desired:
        old = by_name.get(spec.name)
        if old is None:
            create.append(spec)
        elif old.spec() != spec:
            change.append((old.id, spec))
            replaced.append(old)
        else:
            unchanged.append(old)
    remove = [p for p in current if p.name not in wanted]
    return ReplacePlan(
        tuple(create), tuple(change), tuple(remove), tuple(unchanged), tuple(replaced)
    )


class PolicyRepository(Protocol):
    """Policies by id, plus the TAP compiler's persistent allocations.

    Ids are never reused, not even after a delete: rules on switches carry the policy id in
    their cookie, and a stale rule must never be mistaken for a new policy's.
    """

    def add(self, spec: PolicySpec, now: datetime) -> Policy:
        """Store a new policy. DuplicatePolicy / DuplicateName if it clashes with another."""
        ...

    def add_many(self, specs: Sequence[PolicySpec], now: datetime) -> list[Policy]:
        """Store all of them or none: BatchConflict names the first item that clashes."""
        ...

    def get(self, policy_id: int) -> Policy:
        """The policy, or PolicyNotFound."""
        ...

    def list(self) -> list[Policy]:
        """Every policy, by id."""
        ...

    def count(self) -> int:
        """How many policies there are."""
        ...

    def update(self, policy_id: int, spec: PolicySpec, now: datetime) -> Policy:
        """Replace a policy's spec (same duplicate checks as add, ignoring the policy itself)."""
        ...

    def delete(self, policy_id: int) -> None:
        """Remove a policy, or PolicyNotFound."""
        ...

    def delete_many(self, policy_ids: Sequence[int]) -> None:
        """Remove all of them or none: PolicyNotFound names the first unknown id."""
        ...

    def replace(self, plan: ReplacePlan, now: datetime) -> tuple[list[Policy], list[Policy]]:
        """Carry out a plan from `plan_replace` at once, all or nothing; returns the created
        and the changed policies. Two policies may swap matches."""
        ...

    def get_tags(self) -> dict[str, int]:
        """The TAP compiler's sticky allocations (copy labels, monitor slots, shape tables:
        record → number), as last saved."""
        ...

    def set_tags(self, mapping: Mapping[str, int]) -> None:
        """Replace all allocations at once."""
        ...

    def update_tags(self, changed: Mapping[str, int], removed: Iterable[str]) -> None:
        """Save the allocations that changed and forget the removed ones, at once."""
        ...

    def close(self) -> None: ...
