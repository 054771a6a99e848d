"""Overlapping TAP matches: one rule per distinct combination, so each packet hits exactly one.

A policy's match at one switch port is a *cube*: a conjunction of exact field constraints
(`{"ipv4_src": "10.0.0.1", "tcp_dst": 80}`; an absent field is a wildcard). Two cubes
intersect unless they pin one field to different values; the intersection is again a cube.

**The rule.** For the policies classified at one (switch, in_port), emit one flow per distinct
non-empty intersection `c` of any subset of their cubes, with members(c) = every policy whose
cube contains `c`, at priority `PRIO_TAP_BASE + |members(c)|`.

**Why a packet hits exactly the rule for the set of policies it matches.** Let x match exactly
the set P. The cube I(P) = ∩P contains x, so it is emitted, and members(I(P)) = P: a policy q
outside P cannot contain I(P), since x ∈ I(P) but x ∉ q. Any other emitted cube c containing x
has members(c) ⊆ P (each member contains c, hence x). If members(c) were P, then c ⊆ I(P)
(every member contains c), and c = I(S) for the subset S it was built from, with S ⊆
members(c) = P, so c ⊇ I(P): c = I(P), a contradiction. Hence |members(c)| < |P| and the rule
for P is the unique highest-priority match. Distinct cubes are distinct matches, so no two
rules share an OpenFlow identity (table, priority, match).

**Suppressors.** A cube may also contain *suppressing* members: policies that already copied
the packet upstream (see compiler/tap.py). They take part in intersections and member sets but
never start a cube of their own — a cube made only of suppressors needs no rule, the default
pipeline already forwards the packet unchanged.

**Limits.** The number of intersections can grow exponentially with policies that pin different
fields. Only policies whose cubes can overlap are intersected (an index on the most selective
field finds candidates; disjoint policies cost one rule each), and each (switch, in_port) gets a
budget of `max_combinations` cubes taken by overlapping policies, spent in policy-id order. A
policy that would exceed it is refused (its plan says so) rather than silently mis-copied; a
suppressor that would exceed it is skipped, which can cost its monitor a duplicate copy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Value = int | str
Cube = Mapping[str, Value]
CubeKey = tuple[tuple[str, Value], ...]


def cube_key(cube: Cube) -> CubeKey:
    return tuple(sorted(cube.items()))


def meet(a: Cube, b: Cube) -> dict[str, Value] | None:
    """The intersection of two cubes, or None when they pin a field to different values."""
    out = dict(a)
    for field, value in b.items():
        have = out.get(field)
        if have is None:
            out[field] = value
        elif have != value:
            return None
    return out


def contains(outer: Cube, inner: Cube) -> bool:
    """True when every packet in `inner` is in `outer` (outer's constraints all hold)."""
    return all(inner.get(f) == v for f, v in outer.items())


@dataclass(frozen=True, slots=True)
class Member:
    """One policy's cube at one switch port. `suppress`: it copied the packet upstream."""

    policy_id: int
    cube: Cube
    suppress: bool = False


@dataclass(frozen=True, slots=True)
class Combination:
    """One rule to emit: the cube and the policies it combines (real ones and suppressors)."""

    cube: Cube
    members: tuple[Member, ...]

    @property
    def policy_ids(self) -> tuple[int, ...]:
        return tuple(sorted(m.policy_id for m in self.members))


@dataclass(frozen=True, slots=True)
class Outcome:
    combinations: list[Combination]
    refused: list[int]  # policy ids that would exceed the budget


class CubeIndex:
    """Candidates for overlap: members that pin a field to the same value or leave it open."""

    def __init__(self) -> None:
        self._by_value: dict[str, dict[Value, list[int]]] = defaultdict(lambda: defaultdict(list))
        self._open: dict[str, list[int]] = defaultdict(list)
        self._fields: set[str] = set()
        self._count = 0

    def add(self, i: int, cube: Cube) -> None:
        for field in cube.keys() - self._fields:
            # A field first seen now: everything added before leaves it open.
            self._open[field].extend(range(self._count))
            self._fields.add(field)
        for field in self._fields:
            if field in cube:
                self._by_value[field][cube[field]].append(i)
            else:
                self._open[field].append(i)
        self._count = i + 1

    def candidates(self, cube: Cube) -> Iterable[int]:
        best: tuple[list[int], list[int]] | None = None
        for field, value in cube.items():
            if field not in self._fields:
                continue
            pair = (self._by_value[field].get(value, []), self._open[field])
            if best is None or len(pair[0]) + len(pair[1]) < len(best[0]) + len(best[1]):
                best = pair
        if best is None:
            return range(self._count)
        return [*best[0], *best[1]]


def _components(members: Sequence[Member]) -> list[list[int]]:
    """Groups of members connected by overlap (members of different groups never overlap)."""
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = CubeIndex()
    for i, m in enumerate(members):
        for j in index.candidates(m.cube):
            if meet(members[j].cube, m.cube) is not None:
                parent[root(j)] = root(i)
        index.add(i, m.cube)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(members)):
        groups[root(i)].append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def combine(members: Sequence[Member], budget: int, max_members: int) -> Outcome:
    """The rules for the members classified at one switch port; see the module docstring.

    `members` must be in a deterministic order (real members by policy id, then suppressors):
    that order decides who is refused when the budget runs out.
    """
    combos: list[Combination] = []
    refused: list[int] = []
    spent = 0
    for group in _components(members):
        reals = [members[i] for i in group if not members[i].suppress]
        if not reals:
            continue
        if len(group) == 1:
            combos.append(Combination(reals[0].cube, (reals[0],)))
            continue
        cubes: dict[CubeKey, Cube] = {}
        accepted: list[Member] = []
        for m in reals + [members[i] for i in group if members[i].suppress]:
            new: dict[CubeKey, Cube] = {}
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
