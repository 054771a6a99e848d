"""The reconciler's diff: only what differs changes, only what we own is deleted."""

from __future__ import annotations

from vtap.openflow.diff import diff
from vtap.openflow.pipeline import Owner, cookie, owner_of
from vtap.openflow.rules import Bucket, FlowRule, GroupRule, GroupType, Match, Output

OURS = cookie(Owner.PIPELINE)
POLICY_7 = cookie(Owner.POLICY, 7)


def owned(c: int) -> bool:
    return owner_of(c) is not None


def rule(prio: int, port: int, c: int = OURS, **match: object) -> FlowRule:
    return FlowRule(0, prio, Match(**match), (Output(port),), cookie=c)  # type: ignore[arg-type]


def test_identical_tables_need_no_change() -> None:
    rules = [rule(10, 1, eth_type=0x800), rule(20, 2, eth_type=0x806)]
    changes = diff(rules, list(reversed(rules)), owns_cookie=owned)
    assert changes.empty
    assert len(changes) == 0


def test_missing_entry_is_added_and_changed_entry_is_overwritten() -> None:
    desired = [rule(10, 1, eth_type=0x800), rule(20, 2, eth_type=0x806)]
    actual = [rule(10, 9, eth_type=0x800)]
    changes = diff(desired, actual, owns_cookie=owned)
    assert set(changes.flow_adds) == set(desired)
    assert changes.flow_deletes == ()


def test_only_owned_extraneous_entries_are_deleted() -> None:
    foreign = rule(5, 3, c=0x1234, in_port=4)
    stale = rule(6, 3, c=POLICY_7, in_port=5)
    changes = diff([], [foreign, stale], owns_cookie=owned)
    assert changes.flow_deletes == (stale,)


def test_same_match_other_priority_is_another_entry() -> None:
    changes = diff([rule(11, 1, eth_type=0x800)], [rule(10, 1, eth_type=0x800)], owns_cookie=owned)
    assert len(changes.flow_adds) == 1 and len(changes.flow_deletes) == 1


def test_groups_are_added_modified_never_re_added() -> None:
    g1 = GroupRule(1, GroupType.ALL, (Bucket((Output(1),)), Bucket((Output(2),))))
    g1_changed = GroupRule(1, GroupType.ALL, (Bucket((Output(1),)), Bucket((Output(3),))))
    g2 = GroupRule(2, GroupType.ALL, (Bucket((Output(4),)),))
    stale = GroupRule(3, GroupType.ALL, (Bucket((Output(5),)),))
    foreign = GroupRule(99, GroupType.ALL, (Bucket((Output(5),)),))
    changes = diff(
        [],
        [],
        owns_cookie=owned,
        desired_groups=[g1_changed, g2],
        actual_groups=[g1, stale, foreign],
        owns_group=lambda gid: gid < 50,
    )
    assert changes.group_adds == (g2,)
    assert changes.group_mods == (g1_changed,)
    assert changes.group_deletes == (3,)


def test_cookie_layout_round_trip() -> None:
    assert owner_of(cookie(Owner.POLICY, 123456)) == (Owner.POLICY, 123456)
    assert owner_of(0) is None
    assert owner_of(0x5654 << 48 | 0xEE << 40) is None
