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
pipeline already forwards the packet unchanged. A suppressor matters only to the real members
with its monitor (`Member.monitor`): the rule of a cube it is a member of sends no copy there.

**Limits.** The number of intersections can grow exponentially with policies that pin different
fields. Only policies whose cubes overlap are intersected (CubeIndex finds them without pairwise
tests; disjoint policies cost one rule each), and each (switch, in_port) gets a budget of
`max_combinations` cubes taken by overlapping policies (and at most `max_members` policies per
cube). It is spent group of overlapping members by group, in each group real members first, in
policy-id order, then suppressors (source policies by id, then each policy's virtual one). A
real member that would exceed it is refused (its plan says so) rather than silently mis-copied.

A suppressor that would exceed it is skipped if no real member taken has its monitor and
overlaps it: leaving it out changes nobody's copies. Otherwise leaving it out would give that
monitor a second copy, or a copy of its own traffic, so instead the real members it would have
cancelled are refused (`Outcome.unsuppressed`) and their cubes dropped; the budget they free
goes to the suppressors after it. From then on, in that group, a suppressor that cancels no
real member's copy is not taken at all, since it would only spend budget (the group is combined
again from the start when one such was taken before). So the rules are exactly those of the
members kept, and no suppressor left out shares a monitor with a real member it overlaps: the
argument above still holds. Refusals are final: compile_tap drops a refused policy everywhere
and combines again until nobody is refused. When no suppressor has to refuse anybody, the rules
are the same as if suppressors could never refuse.
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
    """One policy's cube at one switch port. `suppress`: it copied the packet upstream.
    `monitor`: where its copies go; a suppressor cancels the copies of the real members with
    its monitor (None: it cancels none that this module must keep, it only splits cubes)."""

    policy_id: int
    cube: Cube
    suppress: bool = False
    monitor: Hashable | None = None


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
    # those of `refused` whose copies a suppressor that did not fit would have had to cancel
    unsuppressed: frozenset[int] = frozenset()
    alone: frozenset[int] = frozenset()  # real members that overlap no other member

    def without(self, gone: frozenset[int]) -> Outcome | None:
        """What combining the members but `gone` gives, if each of them was `alone`: one rule
        each, no budget, no meet with anybody, so dropping their rules is all that changes.
        None when that does not hold."""
        if not gone <= self.alone:
            return None
        kept = [c for c in self.combinations if c.members[0].policy_id not in gone]
        return Outcome(kept, self.refused, self.unsuppressed, self.alone - gone)


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
    that order decides who is refused when the budget runs out (see Limits).
    """
    combos: list[Combination] = []
    refused: list[int] = []
    unsuppressed: set[int] = set()
    alone: list[int] = []
    spent = 0
    for group in _components(members):
        reals = [members[i] for i in group if not members[i].suppress]
        if not reals:
            continue
        if len(group) == 1:
            combos.append(Combination(reals[0].cube, (reals[0],)))
            alone.append(reals[0].policy_id)
            continue
        ordered = reals + [members[i] for i in group if members[i].suppress]
        left = budget - spent
        done = _intersections(ordered, left, max_members, strict=False)
        if done is None:
            done = _intersections(ordered, left, max_members, strict=True)
            assert done is not None
        cubes, accepted = done.closure.result()
        spent += len(cubes)
        refused += done.refused
        unsuppressed.update(done.unsuppressed)
        for cube, inside in zip(cubes, _containing(cubes, accepted), strict=True):
            combos.append(Combination(cube, inside))
    return Outcome(combos, refused, frozenset(unsuppressed), frozenset(alone))


class _Closure:
    """The distinct intersections of a component's taken members, each with a real member in
    it (the cubes to emit), in the order found. Members may be dropped again (`drop`).

    Every real member must be taken before any suppressor: a suppressor is met only with the
    cubes found so far, so a real member taken after it would miss their meets.
    """

    __slots__ = (
        "_by_key",
        "_reals",
        "cubes",
        "dropped",
        "index",
        "known",
        "members",
        "size",
        "taken",
        "version",
    )

    def __init__(self) -> None:
        self.cubes: list[Cube | None] = []  # None: dropped
        self.known: set[CubeKey] = set()  # the cubes not dropped
        self.index = CubeIndex()  # positions in `cubes`, dropped ones included
        self.members: list[Member | None] = []  # taken, in order; None: dropped
        self.dropped = 0
        self.size = 0  # cubes not dropped
        self.version = 0  # changes whenever the cubes do
        self.taken: set[CubeKey] = set()  # cubes of suppressors taken
        self._by_key: dict[CubeKey, list[int]] | None = None  # members, once `drop` needs it
        self._reals: CubeIndex | None = None  # likewise

    @property
    def kept(self) -> int:
        return len(self.members) - self.dropped

    def policy_id(self, pos: int) -> int:
        m = self.members[pos]
        assert m is not None
        return m.policy_id

    def meets(self, m: Member, key: CubeKey) -> dict[CubeKey, Cube]:
        """The cubes that taking `m` (its cube's key: `key`) adds: its own (if real) and its
        meets with those so far.

        Once a suppressor's cube was taken, every cube found since meets it in a cube already
        there (c∩q is kept, and (c∩q)∩s was added with c∩s): an identical one adds nothing.
        """
        added: dict[CubeKey, Cube] = {}
        if m.suppress and key in self.taken:
            return added
        cubes, known = self.cubes, self.known
        if not m.suppress and key not in known:
            added[key] = m.cube
        for pos in sorted(self.index.overlapping(m.cube)):
            cube = cubes[pos]
            if cube is None:
                continue
            x = meet(cube, m.cube)
            assert x is not None
            k = cube_key(x)
            if k not in known and k not in added:
                added[k] = x
        return added

    def take(self, m: Member, key: CubeKey, added: Mapping[CubeKey, Cube]) -> None:
        for k, x in added.items():
            self.index.add(len(self.cubes), x)
            self.cubes.append(x)
            self.known.add(k)
        if added:
            self.size += len(added)
            self.version += 1
        if self._by_key is not None:
            self._by_key.setdefault(key, []).append(len(self.members))
        self.members.append(m)
        if m.suppress:
            self.taken.add(key)

    def drop(self, gone: Sequence[int]) -> None:
        """Drop the real members at these positions, and the cubes that only they made.

        Every cube c is ∩members(c), the taken members containing it; after the drop it is
        still a cube to emit iff the members kept that contain it still meet in exactly c and
        include a real one. Only cubes inside a dropped member can fail that: others keep
        their members. What is left is then the cubes of the members kept, as if only they
        had been taken (a suppressor's `taken` shortcut stays true, too). A cube inside a
        dropped member that no kept real member overlaps has no real member left: no lookup.
        """
        reals = self._real_index()
        dropped = [self.members[p] for p in gone]
        for p in gone:
            self.members[p] = None
            self.dropped += 1
        # cube position → may a kept real member contain it (any such overlaps every dropped
        # member that contains the cube: one without such rivals settles it)
        suspects: dict[int, bool] = {}
        for m in dropped:
            assert m is not None and not m.suppress
            rivals = any(self.members[q] is not None for q in reals.overlapping(m.cube))
            for pos in self.index.overlapping(m.cube):
                cube = self.cubes[pos]
                if cube is not None and contains(m.cube, cube):
                    suspects[pos] = suspects.get(pos, True) and rivals
        for pos, rivals in sorted(suspects.items()):
            cube = self.cubes[pos]
            assert cube is not None
            if not rivals or not self._made_by_kept(cube):
                self.cubes[pos] = None
                self.known.discard(cube_key(cube))
                self.size -= 1
        self.version += 1

    def _made_by_kept(self, cube: Cube) -> bool:
        """True when the kept members containing `cube` include a real one and meet in it."""
        by_key = self._members_by_key()
        sizes = sorted({len(k) for k in by_key})
        inside = [self.members[i] for i in _subset_hits(cube_key(cube), by_key, sizes)]
        kept = [m for m in inside if m is not None]
        pinned = {f for m in kept for f in m.cube}
        return not all(m.suppress for m in kept) and len(pinned) == len(cube)

    def _real_index(self) -> CubeIndex:
        """The real members' positions (all taken by the time one is dropped)."""
        if self._reals is None:
            self._reals = CubeIndex()
            for i, m in enumerate(self.members):
                if m is not None and not m.suppress:
                    self._reals.add(i, m.cube)
        return self._reals

    def _members_by_key(self) -> dict[CubeKey, list[int]]:
        if self._by_key is None:
            self._by_key = defaultdict(list)
            for i, m in enumerate(self.members):
                if m is not None:
                    self._by_key[cube_key(m.cube)].append(i)
        return self._by_key

    def result(self) -> tuple[list[Cube], list[Member]]:
        """The cubes and the members taken, without those dropped, in order."""
        return (
            [c for c in self.cubes if c is not None],
            [m for m in self.members if m is not None],
        )


class _Feeds:
    """The real members a suppressor cancels copies of: those kept, with its monitor, whose
    cubes overlap its cube. Indexed per monitor when first asked, which must be after every
    real member was taken (they come first)."""

    def __init__(self, closure: _Closure) -> None:
        self._closure = closure
        self._by_monitor: dict[Hashable, CubeIndex] | None = None

    def of(self, suppressor: Member) -> list[int]:
        """Positions (in the closure's members) of the kept real members it cancels."""
        members = self._closure.members
        if self._by_monitor is None:
            self._by_monitor = {}
            for pos, m in enumerate(members):
                if m is not None and not m.suppress and m.monitor is not None:
                    self._by_monitor.setdefault(m.monitor, CubeIndex()).add(pos, m.cube)
        index = self._by_monitor.get(suppressor.monitor)
        if suppressor.monitor is None or index is None:
            return []
        return sorted(p for p in index.overlapping(suppressor.cube) if members[p] is not None)


@dataclass(slots=True)
class _Taken:
    """One component's result: its cubes and members taken, and the real members refused."""

    closure: _Closure
    refused: list[int]
    unsuppressed: list[int]  # refused because a suppressor that cancels them did not fit


def _intersections(
    ordered: Sequence[Member], budget: int, max_members: int, strict: bool
) -> _Taken | None:
    """The cubes of one component and the members taken: each member in turn, real ones
    first, adds its own cube (if real) and its meets with the cubes so far, if that stays
    within `budget` cubes and `max_members` members. Only the cubes the member overlaps are
    met (CubeIndex), in the order they were found: the same result as meeting every cube.

    A real member that does not fit is refused. A suppressor that does not fit is skipped if
    it cancels no copy of a real member kept (_Feeds). If it does, the pass turns `strict`:
    from then on a suppressor that cancels nothing is skipped, and when one that does cannot
    be taken, the real members it cancels are refused (`unsuppressed`) and dropped, which
    frees their cubes for the suppressors after it. A strict pass from the start would have
    skipped the suppressors taken so far that cancel nothing: if there are any, this pass
    gives up (None) and the caller runs that one.

    Many suppressors are identical (one virtual suppressor per policy, with its monitor's
    address): one skipped while the cubes have not changed since would be skipped again for
    the same reason, and one that cancels nothing (strict) never will again: real members
    only ever leave.
    """
    closure = _Closure()
    out = _Taken(closure, [], [])
    feeds = _Feeds(closure)
    skipped: dict[tuple[CubeKey, Hashable], int] = {}  # (cube, monitor) → version then
    idle: set[tuple[CubeKey, Hashable]] = set()  # strict: cancels nothing
    for m in ordered:
        ck = cube_key(m.cube)
        key = (ck, m.monitor)
        if m.suppress:
            if skipped.get(key) == closure.version or key in idle:
                continue
            if strict and not feeds.of(m):
                idle.add(key)
                continue
        added = closure.meets(m, ck)
        if len(added) <= budget - closure.size and closure.kept < max_members:
            closure.take(m, ck, added)
            continue
        if not m.suppress:
            out.refused.append(m.policy_id)
            continue
        cancelled = feeds.of(m)
        if not cancelled:
            skipped[key] = closure.version
            continue
        if not strict and any(not feeds.of(t) for t in _suppressors(closure)):
            return None  # it took a suppressor that the strict pass would not have
        strict = True
        ids = sorted(closure.policy_id(pos) for pos in cancelled)
        out.refused += ids
        out.unsuppressed += ids
        closure.drop(cancelled)
        idle.add(key)
    return out


def _suppressors(closure: _Closure) -> list[Member]:
    return [m for m in closure.members if m is not None and m.suppress]


def _subset_hits(
    key: CubeKey, by_key: Mapping[CubeKey, list[int]], sizes: Sequence[int]
) -> list[int]:
    """The ids filed under a subset of `key` (of one of the `sizes`), in order."""
    hits: list[int] = []
    for r in sizes:
        if r <= len(key):
            for sub in combinations(key, r):
                hits += by_key.get(sub, ())
    hits.sort()
    return hits


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
        out.append(tuple(accepted[i] for i in _subset_hits(key, by_key, sizes)))
    return out
