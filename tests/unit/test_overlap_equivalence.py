"""The indexed overlap code must give exactly what the plain pairwise algorithm gives.

compile_tap's output is diffed against the switches' tables, so any change in the
combinations (their order, members, or who is refused) would churn rules. These tests run
the optimised `combine` and `CubeIndex` against straightforward reference versions on many
random small inputs chosen to overlap a lot: few fields, few values, duplicate cubes,
identical suppressors (like the virtual `eth_src=<monitor>` ones) and tight budgets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from vtap.compiler.overlap import (
    Combination,
    CubeIndex,
    Member,
    Outcome,
    combine,
    contains,
    cube_key,
    meet,
)

FIELDS = ("eth_src", "ipv4_src", "ipv4_dst", "ip_proto", "tcp_dst", "udp_dst")


def _reference_components(members: Sequence[Member]) -> list[list[int]]:
    groups: list[set[int]] = []
    for i, m in enumerate(members):
        joined = {i}
        rest = []
        for g in groups:
            if any(meet(members[j].cube, m.cube) is not None for j in g):
                joined |= g
            else:
                rest.append(g)
        groups = [*rest, joined]
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


def _reference_combine(members: Sequence[Member], budget: int, max_members: int) -> Outcome:
    """The algorithm as first written: meet every member with every cube found so far."""
    combos: list[Combination] = []
    refused: list[int] = []
    spent = 0
    for group in _reference_components(members):
        reals = [members[i] for i in group if not members[i].suppress]
        if not reals:
            continue
        if len(group) == 1:
            combos.append(Combination(reals[0].cube, (reals[0],)))
            continue
        cubes: dict = {}
        accepted: list[Member] = []
        for m in reals + [members[i] for i in group if members[i].suppress]:
            new: dict = {}
            if not m.suppress:
                new[cube_key(m.cube)] = m.cube
            for c in cubes.values():
                x = meet(c, m.cube)
                if x is not None:
                    new.setdefault(cube_key(x), x)
            added = {k: v for k, v in new.items() if k not in cubes}
            if spent + len(added) > budget or len(accepted) + 1 > max_members:
                if not m.suppress:
                    refused.append(m.policy_id)
                continue
            spent += len(added)
            cubes.update(added)
            accepted.append(m)
        for cube in cubes.values():
            inside = tuple(m for m in accepted if contains(m.cube, cube))
            combos.append(Combination(cube, inside))
    return Outcome(combos, refused)


def _random_cube(rng: random.Random) -> dict[str, int | str]:
    fields = rng.sample(FIELDS, rng.randint(1, 4))
    return {
        f: rng.choice(["a", "b"]) if f.startswith(("eth", "ipv4")) else rng.randint(1, 2)
        for f in fields
    }


def _random_members(rng: random.Random) -> list[Member]:
    reals = [Member(i, _random_cube(rng)) for i in range(1, rng.randint(2, 12))]
    monitors = [{"eth_src": m} for m in ("m1", "m2", "m3")]
    suppressors = [
        Member(100 + i, rng.choice(monitors) if rng.random() < 0.6 else _random_cube(rng), True)
        for i in range(rng.randint(0, 14))
    ]
    return reals + suppressors


def _as_data(outcome: Outcome) -> tuple[list, list[int]]:
    combos = [
        (list(c.cube.items()), [(m.policy_id, m.suppress) for m in c.members])
        for c in outcome.combinations
    ]
    return combos, outcome.refused


@pytest.mark.parametrize("seed", range(40))
def test_combine_matches_the_pairwise_algorithm(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        members = _random_members(rng)
        budget = rng.choice([3, 8, 20, 1024])
        max_members = rng.choice([2, 5, 100])
        got = combine(members, budget, max_members)
        want = _reference_combine(members, budget, max_members)
        assert _as_data(got) == _as_data(want), (members, budget, max_members)


def test_the_random_inputs_exercise_refusals_and_skips() -> None:
    """Guard the guard: the random cases above do hit the budget paths."""
    rng = random.Random(0)
    refused = skipped = 0
    for _ in range(200):
        members = _random_members(rng)
        out = _reference_combine(members, 8, 100)
        refused += bool(out.refused)
        used = {m.policy_id for c in out.combinations for m in c.members}
        skipped += any(m.suppress and m.policy_id not in used for m in members)
    assert refused > 10 and skipped > 10


@pytest.mark.parametrize("seed", range(20))
def test_cube_index_finds_exactly_the_overlapping_cubes(seed: int) -> None:
    rng = random.Random(seed)
    index = CubeIndex()
    cubes: list[dict[str, int | str]] = []
    for i in range(60):
        query = _random_cube(rng)
        want = sorted(j for j, c in enumerate(cubes) if meet(c, query) is not None)
        assert sorted(index.overlapping(query)) == want
        cube = _random_cube(rng)
        index.add(i, cube)
        cubes.append(cube)
