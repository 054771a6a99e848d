"""Desired vs. actual: the smallest ordered change that makes a switch hold the intent.

Preferred over wiping a switch on reconnect: production traffic keeps flowing through entries
that are already right, and a group that exists is modified, never re-added (no GROUP_EXISTS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from vtap.openflow.rules import EntryKey, FlowRule, GroupRule


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """Changes for one switch, in the order they must be applied.

    Groups are added before the flows that point at them and deleted after the flows that
    pointed at them are gone; otherwise the switch rejects the flow (or the group delete
    silently removes flows we meant to keep).
    """

    group_adds: tuple[GroupRule, ...] = ()
    group_mods: tuple[GroupRule, ...] = ()
    flow_adds: tuple[FlowRule, ...] = ()
    flow_deletes: tuple[FlowRule, ...] = ()
    group_deletes: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.group_adds
            or self.group_mods
            or self.flow_adds
            or self.flow_deletes
            or self.group_deletes
        )

    def __len__(self) -> int:
        return (
            len(self.group_adds)
            + len(self.group_mods)
            + len(self.flow_adds)
            + len(self.flow_deletes)
            + len(self.group_deletes)
        )


def _by_key(rules: Mapping[EntryKey, FlowRule] | Iterable[FlowRule]) -> Mapping[EntryKey, FlowRule]:
    if isinstance(rules, Mapping):
        return rules
    return {rule.key: rule for rule in rules}


def diff(
    desired_flows: Mapping[EntryKey, FlowRule] | Iterable[FlowRule],
    actual_flows: Mapping[EntryKey, FlowRule] | Iterable[FlowRule],
    *,
    owns_cookie: Callable[[int], bool],
    keys: Iterable[EntryKey] | None = None,
    desired_groups: Iterable[GroupRule] = (),
    actual_groups: Iterable[GroupRule] = (),
    owns_group: Callable[[int], bool] = lambda _gid: False,
) -> ChangeSet:
    """Compare one switch's desired rules with what it holds: every entry, or only `keys`
    (the ones known to have changed since the two last agreed).

    Only entries we own (by cookie, by group id) are ever deleted; an entry we do not own is
    left alone unless a desired rule has the same identity, which then replaces it. Adds come
    sorted by table and priority, so a change set reads in pipeline order.
    """
    want = _by_key(desired_flows)
    have = _by_key(actual_flows)
    if keys is None:
        keys = set(want) | {k for k, r in have.items() if owns_cookie(r.cookie)}
    adds: list[FlowRule] = []
    deletes: list[FlowRule] = []
    for key in keys:
        rule = want.get(key)
        old = have.get(key)
        if rule is not None:
            if old is None or not rule.same_treatment(old):
                adds.append(rule)
        elif old is not None and owns_cookie(old.cookie):
            deletes.append(old)
    adds.sort(key=_order)
    deletes.sort(key=_order)

    actual_groups_by_id = {g.group_id: g for g in actual_groups}
    desired_groups_by_id = {g.group_id: g for g in desired_groups}
    group_adds = tuple(
        g for gid, g in desired_groups_by_id.items() if gid not in actual_groups_by_id
    )
    group_mods = tuple(
        g
        for gid, g in desired_groups_by_id.items()
        if gid in actual_groups_by_id and actual_groups_by_id[gid] != g
    )
    group_deletes = tuple(
        gid for gid in actual_groups_by_id if gid not in desired_groups_by_id and owns_group(gid)
    )
    return ChangeSet(group_adds, group_mods, tuple(adds), tuple(deletes), group_deletes)


def _order(rule: FlowRule) -> tuple[int, int]:
    return (rule.table_id, -rule.priority)
