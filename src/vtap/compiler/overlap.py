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
fields. Only policies whose cubes overlap are intersected (CubeIndex finds them without pairwise
tests; disjoint policies cost one rule each), and each (switch, in_port) gets a
budget of `max_combinations` cubes taken by overlapping policies, spent in policy-id order. A
policy that would exceed it is refused (its plan says so) rather than silently mis-copied; a
suppressor that would exceed it is skipped, which can cost its monitor a duplicate copy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb
from operator import itemgetter

Value = int | str
Cube = Mapping[str, Value]
CubeKey = tuple[tuple[str, Value], ...]
_Key = Callable[[Cube], Hashable]  # a cube's values of some fields (see _key_of)
_Table = dict[Hashable, list[int]]


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
    """Exactly the cubes added so far that overlap a given cube, without testing each one.

    Two cubes overlap iff they agree on every field both pin. Cubes are grouped by *shape* (the
    set of fields they pin; real workloads have a handful), and per shape and query shape the
    cubes are hashed on the fields the two shapes share: one dict lookup per shape finds every
    overlapping cube, and nothing else. (Indexing one field at a time cannot do that: a UDP
    query on `udp_dst` would get every TCP cube, which leaves `udp_dst` open.) Per query shape
    the (key function, table) of every shape is kept as a plan, rebuilt when a shape is added:
    a query is then a few C-level lookups (most cubes overlap nothing).
    """

    def __init__(self) -> None:
        self._shapes: dict[frozenset[str], list[tuple[int, Cube]]] = {}
        # shape → fields shared with a query shape → (their values' key function, values → ids)
        self._tables: dict[frozenset[str], dict[tuple[str, ...], tuple[_Key, _Table]]] = {}
        self._plans: dict[frozenset[str], list[tuple[_Key, _Table]]] = {}

    def add(self, i: int, cube: Cube) -> None:
        shape = frozenset(cube)
        entries = self._shapes.get(shape)
        if entries is None:
            entries = self._shapes[shape] = []
            self._plans.clear()  # every plan must look at the new shape too
        entries.append((i, cube))
        for key, table in self._tables.get(shape, {}).values():
            table.setdefault(key(cube), []).append(i)

    def overlapping(self, cube: Cube) -> list[int]:
        """Ids of the added cubes that overlap `cube`, by shape, each shape in order added."""
        query = frozenset(cube)
        plan = self._plans.get(query)
        if plan is None:
            plan = self._plans[query] = [self._table(shape, query) for shape in self._shapes]
        out: list[int] = []
        for key, table in plan:
            hits = table.get(key(cube))
            if hits:
                out += hits
        return out

    def _table(self, shape: frozenset[str], query: frozenset[str]) -> tuple[_Key, _Table]:
        """The cubes of `shape` hashed on the fields it shares with `query`."""
        fields = tuple(sorted(shape & query))
        tables = self._tables.setdefault(shape, {})
        have = tables.get(fields)
        if have is None:
            key = _key_of(fields)
            table: _Table = {}
            for i, c in self._shapes[shape]:
                table.setdefault(key(c), []).append(i)
            have = tables[fields] = (key, table)
        return have


def _key_of(fields: tuple[str, ...]) -> _Key:
    """A cube's values of `fields` as one hashable (a bare value for one field: itemgetter)."""
    if not fields:
        return lambda cube: ()
    return itemgetter(*fields)


def _components(members: Sequence[Member]) -> list[list[int]]:
    """Groups of members connected by overlap (members of different groups never overlap)."""
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = CubeIndex()
    first: dict[CubeKey, int] = {}  # identical cubes overlap the same ones: index one of them
    for i, m in enumerate(members):
        key = cube_key(m.cube)
        twin = first.setdefault(key, i)
        if twin != i:
            parent[root(twin)] = root(i)
            continue
        for j in index.overlapping(m.cube):
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
        ordered = reals + [members[i] for i in group if members[i].suppress]
        cubes, accepted = _intersections(ordered, budget - spent, max_members, refused)
        spent += len(cubes)
        for cube, inside in zip(cubes, _containing(cubes, accepted), strict=True):
            combos.append(Combination(cube, inside))
    return Outcome(combos, refused)


def _intersections(
    ordered: Sequence[Member], budget: int, max_members: int, refused: list[int]
) -> tuple[list[Cube], list[Member]]:
    """The distinct intersections of one component, in order found, and the members taken.

    Each member in turn adds its own cube (if real) and its meets with the cubes so far, unless
    that exceeds `budget` new cubes or `max_members`: then a real member is refused and a
    suppressor skipped. Only the cubes the member overlaps are met (CubeIndex), in the order
    they were found, so the result is the same as meeting every cube.

    Suppressors come after all real members, and many are identical (one virtual suppressor per
    policy, with its monitor's address). Two shortcuts rely on that: once a suppressor's cube
    was taken, every cube found since meets it in a cube already there (c∩q is kept, and
    (c∩q)∩s was added with c∩s), so an identical suppressor adds nothing; and one skipped
    while the cubes have not grown since would be skipped again for the same reason.
    """
    cubes: list[Cube] = []
    known: set[CubeKey] = set()
    index = CubeIndex()
    accepted: list[Member] = []
    taken: set[CubeKey] = set()  # cubes of suppressors taken
    skipped: dict[CubeKey, int] = {}  # a skipped suppressor's cube → len(cubes) then
    for m in ordered:
        key = cube_key(m.cube)
        added: dict[CubeKey, Cube] = {}
        if m.suppress and skipped.get(key) == len(cubes):
            continue
        if not (m.suppress and key in taken):
            if not m.suppress and key not in known:
                added[key] = m.cube
            for pos in sorted(index.overlapping(m.cube)):
                x = meet(cubes[pos], m.cube)
                assert x is not None
                k = cube_key(x)
                if k not in known and k not in added:
                    added[k] = x
        if len(added) > budget or len(accepted) + 1 > max_members:
            if m.suppress:
                skipped[key] = len(cubes)
            else:
                refused.append(m.policy_id)
            continue
        budget -= len(added)
        for k, x in added.items():
            index.add(len(cubes), x)
            cubes.append(x)
            known.add(k)
        accepted.append(m)
        if m.suppress:
            taken.add(key)
    return cubes, accepted


def _containing(cubes: Sequence[Cube], accepted: Sequence[Member]) -> list[tuple[Member, ...]]:
    """For each cube, the accepted members whose cube contains it, in accepted order.

    A member contains a cube when its (field, value) pairs are a subset of the cube's; cubes
    pin few fields, so looking up the cube's subsets (of the sizes members have) is cheaper
    than testing every member, whenever there are fewer such subsets than members.
    """
    by_key: dict[CubeKey, list[int]] = defaultdict(list)
    for i, m in enumerate(accepted):
        by_key[cube_key(m.cube)].append(i)
    sizes = sorted({len(k) for k in by_key})
    out: list[tuple[Member, ...]] = []
    for cube in cubes:
        key = cube_key(cube)
        lookups = sum(comb(len(key), r) for r in sizes if r <= len(key))
        if lookups >= len(accepted):
            out.append(tuple(m for m in accepted if contains(m.cube, cube)))
            continue
        hits: list[int] = []
        for r in sizes:
            for sub in combinations(key, r):
                hits += by_key.get(sub, ())
        hits.sort()
        out.append(tuple(accepted[i] for i in hits))
    return out
