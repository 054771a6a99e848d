"""Desired vs. actual: the smallest ordered change that makes a switch hold the intent.

Preferred over wiping a switch on reconnect: production traffic keeps flowing through entries
that are already right, and a group that exists is modified, never re-added (no GROUP_EXISTS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vtap.openflow.rules import FlowRule, GroupRule


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


def diff(
    desired_flows: Iterable[FlowRule],
    actual_flows: Iterable[FlowRule],
    *,
    owns_cookie: Callable[[int], bool],
    desired_groups: Iterable[GroupRule] = (),
    actual_groups: Iterable[GroupRule] = (),
    owns_group: Callable[[int], bool] = lambda _gid: False,
) -> ChangeSet:
    """Compare one switch's desired rules with what it holds.

    Only entries we own (by cookie, by group id) are ever deleted; an entry we do not own is
    left alone unless a desired rule has the same identity, which then replaces it.
    """
    actual_by_key = {rule.key: rule for rule in actual_flows}
    desired_by_key = {rule.key: rule for rule in desired_flows}
    adds = tuple(
        rule
        for key, rule in desired_by_key.items()
        if key not in actual_by_key or not rule.same_treatment(actual_by_key[key])
    )
    deletes = tuple(
        rule
        for key, rule in actual_by_key.items()
        if key not in desired_by_key and owns_cookie(rule.cookie)
    )

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
    return ChangeSet(group_adds, group_mods, adds, deletes, group_deletes)
