"""A suppressor that does not fit the budget must never cost a wrong copy (overlap.py, Limits).

Members here carry monitors, as compile_tap's do: a suppressor cancels the copies of the real
members with its monitor. Each packet of a small universe is checked against the combinations:
the rule it hits must copy it to exactly the monitors of the kept real members it matches,
minus those of every suppressor it matches (taken or not).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from vtap.compiler.overlap import Cube, Member, Outcome, combine, contains, meet

MONITORS = ("m1", "m2", "m3")
DOMAIN: dict[str, tuple[int | str, ...]] = {
    "eth_src": (*MONITORS, "h"),
    "ipv4_src": ("a", "b", "c"),
    "ip_proto": (1, 2, 3),
    "tcp_dst": (1, 2, 3),
}
POINTS: list[Cube] = [
    dict(zip(DOMAIN, vs, strict=True)) for vs in itertools.product(*DOMAIN.values())
]


def _wrong_copies(members: Sequence[Member], out: Outcome) -> list[str]:
    """Every packet of the universe whose rule is ambiguous or copies to the wrong monitors."""
    kept = [m for m in members if not m.suppress and m.policy_id not in out.refused]
    problems: list[str] = []
    for x in POINTS:
        reals = {m.policy_id: m.monitor for m in kept if contains(m.cube, x)}
        cancel = {m.monitor for m in members if m.suppress and contains(m.cube, x)}
        hit = [c for c in out.combinations if contains(c.cube, x)]
        if not hit:
            if reals:
                problems.append(f"{x}: no rule, matches {reals}")
            continue
        top = max(len(c.members) for c in hit)
        best = [c for c in hit if len(c.members) == top]
        if len(best) > 1:
            problems.append(f"{x}: {len(best)} rules at one priority")
            continue
        got_reals = {m.policy_id: m.monitor for m in best[0].members if not m.suppress}
        got = set(got_reals.values()) - {m.monitor for m in best[0].members if m.suppress}
        if got_reals != reals or got != set(reals.values()) - cancel:
            problems.append(f"{x}: copies to {got}, want {set(reals.values()) - cancel}")
    return problems


def _assert_exactly_the_kept_members_rules(members: Sequence[Member], out: Outcome) -> None:
    """The combinations are every intersection of the real members kept and the suppressors
    taken (each with a real one), with exactly the members that contain it: nothing left
    over from a refused member."""
    reals = [m for m in members if not m.suppress and m.policy_id not in out.refused]
    used = {m.policy_id for c in out.combinations for m in c.members if m.suppress}
    taken = [m for m in members if m.suppress and m.policy_id in used]
    cubes: dict[tuple, Cube] = {}
    for m in [*reals, *taken]:  # every real member before any suppressor
        found = [meet(c, m.cube) for c in cubes.values()]
        found += [] if m.suppress else [dict(m.cube)]
        for x in found:
            if x is not None:
                cubes.setdefault(tuple(sorted(x.items())), x)
    got = {tuple(sorted(c.cube.items())): c for c in out.combinations}
    assert got.keys() == cubes.keys()
    for key, combo in got.items():
        inside = {m.policy_id for m in [*reals, *taken] if contains(m.cube, combo.cube)}
        assert {m.policy_id for m in combo.members} == inside, key


def _overlap(a: Member, b: Member) -> bool:
    return meet(a.cube, b.cube) is not None


def _random_cube(rng: random.Random) -> dict[str, int | str]:
    fields = rng.sample(sorted(DOMAIN), rng.randint(1, 3))
    return {f: rng.choice(DOMAIN[f][:2] if f != "eth_src" else MONITORS) for f in fields}


def _random_members(rng: random.Random) -> list[Member]:
    """Real members, then suppressors like compile_tap's: source policies (random cubes) and
    one virtual `eth_src=<monitor>` per real member without a source."""
    reals = [
        Member(i, _random_cube(rng), monitor=rng.choice(MONITORS))
        for i in range(1, rng.randint(2, 9))
    ]
    sources = [
        Member(100 + i, _random_cube(rng), True, rng.choice(MONITORS))
        for i in range(rng.randint(0, 4))
    ]
    virtual = [
        Member(-m.policy_id, {"eth_src": m.monitor}, True, m.monitor)
        for m in reals
        if "eth_src" not in m.cube
    ]
    return reals + sources + virtual


def _without_monitors(members: Sequence[Member]) -> list[Member]:
    """The same members as before suppressors knew their monitors: skipped, never refusing."""
    return [Member(m.policy_id, m.cube, m.suppress) for m in members]


def _as_data(outcome: Outcome) -> tuple[list, list[int]]:
    combos = [
        (sorted(c.cube.items(), key=str), [m.policy_id for m in c.members])
        for c in outcome.combinations
    ]
    return combos, outcome.refused


@pytest.mark.parametrize("seed", range(12))
def test_no_wrong_copy_whatever_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        members = _random_members(rng)
        budget = rng.choice([2, 4, 8, 16, 1024])
        max_members = rng.choice([2, 4, 100])
        out = combine(members, budget, max_members)
        assert _wrong_copies(members, out) == [], (members, budget, max_members)
        _assert_exactly_the_kept_members_rules(members, out)
        alone = [m for m in members if not any(_overlap(m, o) for o in members if o is not m)]
        assert len(out.combinations) <= budget + len(alone)  # one rule each, off budget
        assert all(len(c.members) <= max_members for c in out.combinations)
        assert out.unsuppressed <= set(out.refused)
        for pid in out.unsuppressed:  # refused only for a suppressor that cancels its copies
            real = next(m for m in members if m.policy_id == pid and not m.suppress)
            assert any(
                s.suppress and s.monitor == real.monitor and _overlap(s, real) for s in members
            )
        old = combine(_without_monitors(members), budget, max_members)
        if _as_data(old) == _as_data(combine(_without_monitors(members), 10**9, 10**9)):
            assert _as_data(out) == _as_data(old)  # the budget sufficed: nothing changes


def test_the_universe_catches_a_skipped_suppressor() -> None:
    """Guard the guard: the random cases do need refusals, and skipping the suppressors
    instead (the old behaviour) gives wrong copies in many of them."""
    rng = random.Random(0)
    refusing = wrong_before = 0
    for _ in range(200):
        members = _random_members(rng)
        out = combine(members, 4, 100)
        refusing += bool(out.unsuppressed)
        old = combine(_without_monitors(members), 4, 100)
        wrong_before += bool(_wrong_copies(members, old))
    assert refusing > 20 and wrong_before > 20


def test_refused_members_free_budget_for_the_suppressors_after() -> None:
    """r2's suppressor does not fit: r2 is refused and its cubes dropped, which makes room for
    r3's, so r3 is kept (refusing without dropping would have cost r3 too)."""
    reals = [Member(i, {"ipv4_dst": "d", "tcp_dst": i}, monitor=f"m{i}") for i in (1, 2, 3)]
    virtual = [Member(-m.policy_id, {"eth_src": m.monitor}, True, m.monitor) for m in reals]
    out = combine(reals + virtual, budget=7, max_members=100)
    assert out.refused == [2] and out.unsuppressed == {2}
    assert sorted(c.policy_ids for c in out.combinations) == [
        (-3, 1),
        (-3, 3),
        (-1, 1),
        (-1, 3),
        (1,),
        (3,),
    ]
    assert _wrong_copies(reals + virtual, out) == []


def test_a_suppressor_that_cancels_nothing_yields_to_one_that_does() -> None:
    """In the first pass s_other (monitor m2, no real member has it) takes the budget that
    s_own (r's monitor) then lacks; the strict pass leaves s_other out and keeps r."""
    r = Member(1, {"ipv4_src": "a"}, monitor="m1")
    s_other = Member(101, {"tcp_dst": 1}, True, "m2")
    s_own = Member(102, {"ip_proto": 1}, True, "m1")
    out = combine([r, s_other, s_own], budget=3, max_members=100)
    assert out.refused == [] and out.unsuppressed == frozenset()
    assert [c.policy_ids for c in out.combinations] == [(1,), (1, 102)]
    assert _wrong_copies([r, s_other, s_own], out) == []
    # with room for both, s_other is taken as before
    roomy = combine([r, s_other, s_own], budget=4, max_members=100)
    assert len(roomy.combinations) == 4 and not roomy.refused


def test_members_without_monitors_behave_as_before() -> None:
    """A suppressor without a monitor cancels nothing here: skipped when it does not fit."""
    reals = [Member(i, {f"f{i}": i}) for i in (1, 2)]
    supp = Member(9, {"g": 1}, suppress=True)
    out = combine([*reals, supp], budget=3, max_members=100)
    assert out.refused == [] and out.unsuppressed == frozenset()
    assert sorted(c.policy_ids for c in out.combinations) == [(1,), (1, 2), (2,)]


@pytest.mark.parametrize("seed", range(6))
def test_without_members_alone_is_combining_again(seed: int) -> None:
    """Outcome.without (compile_tap's shortcut after refusals) gives exactly what combining
    the remaining members gives, and declines when a member it should drop was not alone."""
    rng = random.Random(seed)
    for _ in range(30):
        members = _random_members(rng)
        members += [  # disjoint from every random cube: values they never pin
            Member(50 + i, {"eth_src": "h", "ipv4_src": f"c{i}", "ip_proto": 3, "tcp_dst": 3})
            for i in (1, 2)
        ]
        budget = rng.choice([4, 16, 1024])
        out = combine(members, budget, 100)
        assert {50 + i for i in (1, 2)} <= out.alone
        gone = frozenset(rng.sample(sorted(out.alone), rng.randint(1, len(out.alone))))
        rest = [m for m in members if m.policy_id not in gone]
        shrunk = out.without(gone)
        assert shrunk is not None
        assert _as_data(shrunk) == _as_data(combine(rest, budget, 100))
        assert shrunk.alone == combine(rest, budget, 100).alone
        others = {m.policy_id for m in members if not m.suppress} - out.alone
        if others:
            assert out.without(gone | {min(others)}) is None
