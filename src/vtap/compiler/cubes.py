"""A policy's match as a *cube*, its *shape*, and an index of cubes that finds overlaps.

A cube is a conjunction of exact field constraints (`{"ipv4_src": "10.0.0.1", "tcp_dst": 80}`;
an absent field is a wildcard). Its shape is the set of fields it pins. Two cubes of one shape
are either identical or disjoint (they pin the same fields; if any value differs no packet is
in both), which is what lets one OpenFlow table per shape hold at most one matching entry per
packet. Two cubes of any shapes overlap iff they agree on every field both pin.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from functools import cache
from operator import itemgetter

from vtap.domain.policy import IP_PROTO_TCP, IP_PROTO_UDP, Policy
from vtap.openflow.rules import OFPVID_PRESENT
from vtap.packets import ETH_TYPE_IPV4

Value = int | str
Cube = Mapping[str, Value]
Shape = frozenset[str]
_Key = Callable[[Cube], Hashable]


def policy_cube(policy: Policy) -> dict[str, Value]:
    """The policy's match fields as OpenFlow match names (without in_port)."""
    cube: dict[str, Value] = {}
    if policy.src_mac is not None:
        cube["eth_src"] = policy.src_mac
    if policy.dst_mac is not None:
        cube["eth_dst"] = policy.dst_mac
    if policy.vlan_id is not None:
        cube["vlan_vid"] = OFPVID_PRESENT | policy.vlan_id
    if policy.src_ip is not None or policy.dst_ip is not None or policy.ip_proto is not None:
        cube["eth_type"] = ETH_TYPE_IPV4
    if policy.src_ip is not None:
        cube["ipv4_src"] = policy.src_ip
    if policy.dst_ip is not None:
        cube["ipv4_dst"] = policy.dst_ip
    if policy.ip_proto is not None:
        cube["ip_proto"] = policy.ip_proto
    prefix = {IP_PROTO_TCP: "tcp", IP_PROTO_UDP: "udp"}.get(policy.ip_proto or -1)
    if prefix is not None:
        if policy.src_port is not None:
            cube[f"{prefix}_src"] = policy.src_port
        if policy.dst_port is not None:
            cube[f"{prefix}_dst"] = policy.dst_port
    return cube


_L4 = {"tcp_src": "l4_src", "udp_src": "l4_src", "tcp_dst": "l4_dst", "udp_dst": "l4_dst"}


@cache
def _shape(fields: tuple[str, ...]) -> Shape:
    return frozenset(_L4.get(f, f) for f in fields)


def shape_of(cube: Cube) -> Shape:
    """The fields a cube pins, with TCP and UDP ports as one field each: a TCP and a UDP cube
    are disjoint anyway (ip_proto differs), so they can share a table."""
    return _shape(tuple(cube))


@cache
def shape_name(shape: Shape) -> str:
    return "+".join(sorted(shape)) or "any"


def overlaps(a: Cube, b: Cube) -> bool:
    """True when some packet is in both cubes."""
    if len(b) < len(a):
        a, b = b, a
    return all(b.get(f, v) == v for f, v in a.items())


def cube_key(cube: Cube) -> tuple[tuple[str, Value], ...]:
    return tuple(sorted(cube.items()))


class CubeIndex:
    """Exactly the cubes added (and not removed) that overlap a given cube, without testing
    each one.

    Cubes are grouped by shape (real workloads have a handful); per stored shape and query
    shape, the cubes are hashed on the fields the two shapes share, so one dict lookup per
    stored shape finds every overlapping cube and nothing else. (Indexing one field at a time
    cannot do that: a UDP query on `udp_dst` would get every TCP cube, which leaves `udp_dst`
    open.) The hashed tables are built on first use and kept up to date on add and remove.
    """

    def __init__(self) -> None:
        self._cubes: dict[Hashable, tuple[frozenset[str], Cube]] = {}
        self._shapes: dict[frozenset[str], set[Hashable]] = {}
        # stored shape → fields shared with a query shape → (their values' key, values → ids)
        self._tables: dict[frozenset[str], dict[tuple[str, ...], tuple[_Key, dict]]] = {}
        self._plans: dict[frozenset[str], list[tuple[_Key, dict]]] = {}

    def __len__(self) -> int:
        return len(self._cubes)

    def __contains__(self, item: Hashable) -> bool:
        return item in self._cubes

    def add(self, item: Hashable, cube: Cube) -> None:
        if item in self._cubes:
            raise KeyError(f"{item!r} is already indexed")
        fields = frozenset(cube)
        self._cubes[item] = (fields, cube)
        members = self._shapes.get(fields)
        if members is None:
            members = self._shapes[fields] = set()
            self._plans.clear()  # every plan must look at the new shape too
        members.add(item)
        for key, table in self._tables.get(fields, {}).values():
            table.setdefault(key(cube), set()).add(item)

    def remove(self, item: Hashable) -> None:
        fields, cube = self._cubes.pop(item)
        members = self._shapes[fields]
        members.discard(item)
        for key, table in self._tables.get(fields, {}).values():
            k = key(cube)
            bucket = table.get(k)
            if bucket is not None:
                bucket.discard(item)
                if not bucket:
                    del table[k]
        if not members:
            del self._shapes[fields]
            self._tables.pop(fields, None)
            self._plans.clear()

    def overlapping(self, cube: Cube) -> list[Hashable]:
        """The indexed items whose cubes overlap `cube` (in no particular order)."""
        query = frozenset(cube)
        plan = self._plans.get(query)
        if plan is None:
            plan = self._plans[query] = [self._table(shape, query) for shape in self._shapes]
        out: list[Hashable] = []
        for key, table in plan:
            hits = table.get(key(cube))
            if hits:
                out += hits
        return out

    def _table(self, shape: frozenset[str], query: frozenset[str]) -> tuple[_Key, dict]:
        fields = tuple(sorted(shape & query))
        tables = self._tables.setdefault(shape, {})
        have = tables.get(fields)
        if have is None:
            key = _key_of(fields)
            table: dict[Hashable, set[Hashable]] = {}
            for item in self._shapes[shape]:
                table.setdefault(key(self._cubes[item][1]), set()).add(item)
            have = tables[fields] = (key, table)
        return have


def _key_of(fields: tuple[str, ...]) -> _Key:
    """A cube's values of `fields` as one hashable (a bare value for one field)."""
    if not fields:
        return lambda cube: ()
    return itemgetter(*fields)
