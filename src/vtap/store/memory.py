"""An in-memory policy repository: for unit and API tests, same contract as the SQLite one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from vtap.domain.policy import Policy, PolicySpec
from vtap.store.base import (
    BatchConflict,
    DuplicateName,
    DuplicatePolicy,
    PolicyNotFound,
    ReplacePlan,
    check_batch,
)


class MemoryPolicyRepository:
    def __init__(self) -> None:
        self._policies: dict[int, Policy] = {}
        self._tags: dict[str, int] = {}
        self._last_id = 0

    def _check_unique(self, spec: PolicySpec, exclude: int | None) -> None:
        """The same policy elsewhere is reported before a mere name clash."""
        others = [p for p in self.list() if p.id != exclude]
        identity = spec.identity()
        for policy in others:
            if policy.identity() == identity:
                raise DuplicatePolicy(policy.id)
        for policy in others:
            if policy.name == spec.name:
                raise DuplicateName(spec.name, policy.id)

    def add(self, spec: PolicySpec, now: datetime) -> Policy:
        self._check_unique(spec, None)
        return self._insert(spec, now)

    def add_many(self, specs: Sequence[PolicySpec], now: datetime) -> list[Policy]:
        check_batch(specs)
        for index, spec in enumerate(specs):
            try:
                self._check_unique(spec, None)
            except (DuplicatePolicy, DuplicateName) as exc:
                raise BatchConflict(index, str(exc)) from exc
        return [self._insert(spec, now) for spec in specs]

    def _insert(self, spec: PolicySpec, now: datetime) -> Policy:
        self._last_id += 1
        policy = Policy.stored(self._last_id, spec, now, now)
        self._policies[policy.id] = policy
        return policy

    def get(self, policy_id: int) -> Policy:
        try:
            return self._policies[policy_id]
        except KeyError:
            raise PolicyNotFound(policy_id) from None

    def count(self) -> int:
        return len(self._policies)

    def list(self) -> list[Policy]:
        return [self._policies[i] for i in sorted(self._policies)]

    def update(self, policy_id: int, spec: PolicySpec, now: datetime) -> Policy:
        old = self.get(policy_id)
        self._check_unique(spec, policy_id)
        policy = Policy.stored(policy_id, spec, old.created_at, now)
        self._policies[policy_id] = policy
        return policy

    def delete(self, policy_id: int) -> None:
        self.get(policy_id)
        del self._policies[policy_id]

    def replace(self, plan: ReplacePlan, now: datetime) -> tuple[list[Policy], list[Policy]]:
        for policy in plan.remove:
            self._policies.pop(policy.id, None)
        changed = []
        for pid, spec in plan.change:
            changed.append(Policy.stored(pid, spec, self._policies[pid].created_at, now))
            self._policies[pid] = changed[-1]
        return [self._insert(spec, now) for spec in plan.create], changed

    def delete_many(self, policy_ids: Sequence[int]) -> None:
        for policy_id in policy_ids:
            self.get(policy_id)
        for policy_id in policy_ids:
            self._policies.pop(policy_id, None)

    def get_tags(self) -> dict[str, int]:
        return dict(self._tags)

    def set_tags(self, mapping: Mapping[str, int]) -> None:
        self._tags = dict(mapping)

    def update_tags(self, changed: Mapping[str, int], removed: Iterable[str]) -> None:
        for key in removed:
            self._tags.pop(key, None)
        self._tags.update(changed)

    def close(self) -> None:
        pass
