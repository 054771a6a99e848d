"""TAP policies → OpenFlow rules: classify in table 0, copy with an ALL group, carry copies by tag.

A pure function of (enabled policies, topology, hosts, tag allocations, config); the controller
calls it after every change and hands the result, merged with the forwarding rules, to the
reconciler. Decisions, in the order a packet meets them:

**Classification** happens once per packet, at one switch, so no monitor ever gets two copies
from one policy. A policy with a source (`src_mac`/`src_ip`) is classified at the source host's
edge switch on the source's port. A policy with only a destination is classified at the
destination's edge switch, on every port but the destination's own and its monitor's (a monitor
never becomes a source of copies): the packet enters that switch exactly once, by whichever
port. The rule matches every given field (`eth_type` 0x0800 when an IP field is given; ports as
tcp_/udp_ by `ip_proto`; `vlan_id` as the packet's own tag) and applies an ALL group.

**The group**: bucket 1 is production — `Resubmit(TABLE_FORWARD)`, so forwarding proceeds as if
there were no TAP (wildcard destinations included); then one copy bucket per monitor.

**Copies travel tagged** in both delivery modes: an outer 802.1ad tag (TPID 0x88a8) from a
reserved VLAN range is pushed outside any tag the packet has. `tagged` delivery uses one tag per
monitor (`monitor:<mac>`); `rewrite` delivery (the seed's method, kept for compatibility) also
rewrites eth_dst/ipv4_dst to the monitor's and needs a tag per policy (`policy:<id>`) so that the
monitor's edge knows which destination to restore. Copies follow the monitor's copy tree
(compiler/copytree.py): each switch on the way holds a transit rule `in_port=<from child>,
vlan_vid=<tag> → output:<toward monitor>`; the monitor's edge holds the delivery rule
`vlan_vid=<tag> → pop the tag (rewrite: restore dst_mac/dst_ip), output:<monitor port>`. These
rules sit above every classification rule, so a copy is never classified — never copied again.
Transit rules also match the port a copy comes from, so that rules of two different trees (for a
moment, during a topology change) cannot form a loop for copies. When the monitor hangs off the
classifying switch the copy bucket is a plain output (IN_PORT when it is the ingress port, since
OpenFlow drops output to the ingress port), with no tag and no rewrite.

**Guards**: a genuine frame must never look like a copy. Every edge (non-fabric) port of every
switch drops frames that arrive carrying a copy tag in use, above everything but LLDP. So
genuine traffic from a source to the monitor host is never altered, and no host can inject
"copies".

**Several policies on one packet**: policies classified at the same switch port are combined
(compiler/overlap.py): one rule per distinct intersection at `PRIO_TAP_BASE + |policies|`, whose
group has ONE copy bucket per distinct monitor — each monitor gets exactly one copy. For a
monitor fed by several of the combined policies the bucket is the first tagged one's (no address
rewrite), else the lowest-id rewrite policy's (any of them restores the same addresses, since
each pins the packet's dst_mac and dst_ip). A destination-only policy sees, on fabric ports,
packets that a source policy may already have copied at another switch: such source policies
take part as *suppressors*, so a monitor they already fed gets no second copy; likewise a
virtual suppressor `eth_src=<monitor>` keeps a monitor's own traffic from being copied to it
(on the destination's switch the monitor's port is simply not classified).

**Ownership**: a rule or group that exists for one policy carries `cookie(POLICY, id)`; rules
shared by several (combinations, transit and delivery of a shared tag, guards) carry
`cookie(TAP_SHARED)`. Groups have no cookie in OpenFlow 1.3; vtap owns the id range in
pipeline.py. A one-policy group's id is `GROUP_ID_FIRST + policy id`; others (combinations, a
second variant of one policy's group, e.g. with an IN_PORT bucket) hash their (policy ids,
buckets) into the upper half of the range, collisions resolved by probing in sorted order.

**Tags are allocated by the caller** (tags.allocate, persisted in the store): compile, allocate
`plan.missing_tags(tags)`, compile again. A policy whose tag is missing is pending.

**Limits**: one copy tag per monitor (tagged) or per rewrite policy, out of the reserved range
(default 101); overlap combinations bounded per switch port (TapConfig.max_combinations): a
policy that does not fit is pending, and so is one whose monitor could not be kept from a
second copy or from copies of its own traffic there (its suppressor did not fit, overlap.py);
a `vlan_id` filter inside the reserved range can never match (guards drop it) and is pending.
OVS must parse two VLAN headers (`other_config:vlan-limit=2` or 0) for VLAN-filtered copies.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from vtap.compiler.copytree import Step
from vtap.compiler.overlap import Combination, CubeIndex, Member, Outcome, Value, combine
from vtap.compiler.pipeline import (
    GROUP_ID_FIRST,
    PRIO_COPY_TRANSIT,
    PRIO_GUARD,
    PRIO_TAP_BASE,
    PRIO_TAP_MAX,
    TABLE_FORWARD,
    TABLE_TAP,
    Owner,
    cookie,
)
from vtap.compiler.rules import (
    OFPVID_PRESENT,
    Action,
    Bucket,
    FlowRule,
    GroupRule,
    GroupType,
    Match,
    Output,
    PopVlan,
    PushVlan,
    ReservedPort,
    Resubmit,
    SetField,
    ToGroup,
)
from vtap.compiler.tags import TapConfig, monitor_tag_key, policy_tag_key
from vtap.compiler.topoview import TopologyView
from vtap.domain.network import Host, PortRef
from vtap.domain.policy import IP_PROTO_TCP, IP_PROTO_UDP, Policy
from vtap.packets import ETH_TYPE_IPV4
from vtap.topology.graph import Topology

__all__ = [
    "REFUSED_OVERLAP",
    "HostLookup",
    "PlanState",
    "PolicyPlan",
    "StaticHosts",
    "TapConfig",
    "TapPlan",
    "compile_tap",
]

# How a refusal at the combination bound starts (PlanState.PENDING reason): a refused policy
# stays pending until the policies change, which tools waiting for `active` need to tell apart.
REFUSED_OVERLAP = "too many overlapping policies"
_HASHED_GROUPS = 0x800000  # upper half of the group range: combinations and hairpin variants
FlowId = tuple[int, int, Match]
_GroupKey = tuple[tuple[int, ...], int]  # (owners, bucket list id)
_MemberKey = tuple[tuple[int, bool], ...]  # a port's members: (policy id, suppress) each


class HostLookup(Protocol):
    """Where hosts are: HostTracker, or StaticHosts in tests."""

    def by_mac(self, mac: str) -> Host | None: ...

    def by_ip(self, ip: str) -> Host | None: ...


class StaticHosts:
    """A fixed host table with the HostTracker lookup interface."""

    def __init__(self, hosts: Iterable[Host]) -> None:
        self._by_mac = {h.mac.lower(): h for h in hosts}
        self._by_ip = {h.ip: h for h in self._by_mac.values() if h.ip is not None}

    def by_mac(self, mac: str) -> Host | None:
        return self._by_mac.get(mac.lower())

    def by_ip(self, ip: str) -> Host | None:
        return self._by_ip.get(ip)


class PlanState(StrEnum):
    READY = "ready"  # rules compiled; active once the switches in `dpids` confirmed them
    PENDING = "pending"  # waiting for something (see `reason`); becomes ready by itself


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    policy_id: int
    state: PlanState
    reason: str = ""
    dpids: frozenset[int] = frozenset()


@dataclass(slots=True)
class TapPlan:
    """Everything the TAP policies need, per switch, and what became of each policy."""

    flows: dict[int, list[FlowRule]]
    groups: dict[int, list[GroupRule]]
    policies: dict[int, PolicyPlan]
    tags_needed: frozenset[str]
    flow_owners: dict[int, dict[FlowId, frozenset[int]]] = field(default_factory=dict)
    group_owners: dict[int, dict[int, frozenset[int]]] = field(default_factory=dict)

    def missing_tags(self, tags: Mapping[str, int]) -> frozenset[str]:
        """Needed tag keys without an allocation: allocate them and compile again."""
        return frozenset(k for k in self.tags_needed if k not in tags)

    def rules_for(self, policy_id: int) -> dict[int, tuple[list[FlowRule], list[GroupRule]]]:
        """The rules that exist because of this policy (shared ones included), per switch."""
        out: dict[int, tuple[list[FlowRule], list[GroupRule]]] = {}
        for dpid in sorted(self.flows.keys() | self.groups.keys()):
            owners = self.flow_owners.get(dpid, {})
            flows = [r for r in self.flows.get(dpid, []) if policy_id in owners.get(r.key, ())]
            gowners = self.group_owners.get(dpid, {})
            groups = [
                g for g in self.groups.get(dpid, []) if policy_id in gowners.get(g.group_id, ())
            ]
            if flows or groups:
                out[dpid] = (flows, groups)
        return out


@dataclass(slots=True)
class _Ready:
    """A policy whose hosts, path and tag are all known: it can be compiled."""

    policy: Policy
    monitor: Host
    origin: int
    in_ports: list[int]
    cube: dict[str, Value]
    steps: list[Step]
    tag: int | None  # None when the monitor hangs off the classifying switch

    @property
    def pid(self) -> int:
        return self.policy.id


class _Pending(Exception):
    """Why a policy cannot be compiled now."""


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


def _resolve(hosts: HostLookup, mac: str | None, ip: str | None, role: str) -> Host:
    by_mac = hosts.by_mac(mac) if mac is not None else None
    by_ip = hosts.by_ip(ip) if ip is not None else None
    if mac is not None and by_mac is None:
        raise _Pending(f"{role} host {mac} not discovered yet")
    if ip is not None and by_ip is None:
        raise _Pending(f"{role} host {ip} not discovered yet")
    if by_mac is not None and by_ip is not None and by_mac.mac != by_ip.mac:
        raise _Pending(f"{role} {mac} and {ip} are two different hosts")
    host = by_mac or by_ip
    assert host is not None
    return host


class _Compiler:
    def __init__(
        self,
        view: TopologyView,
        hosts: HostLookup,
        tags: Mapping[str, int],
        config: TapConfig,
    ) -> None:
        self.view = view
        self.hosts = hosts
        self.config = config
        self.needed: set[str] = set()
        # A tag value held by two keys (a corrupt allocation) is valid for neither.
        holders: dict[int, list[str]] = defaultdict(list)
        for key, value in tags.items():
            holders[value].append(key)
        self.tags = {k: v for k, v in tags.items() if config.in_range(v) and len(holders[v]) == 1}
        self.exhausted = len(self.tags) >= config.size
        # Memos for building the rules (per compile_tap call, like the compiler itself).
        self._combo_plans: dict[int, tuple[Combination, tuple[tuple[int, ...], ...]]] = {}
        self._bucket_ids: dict[tuple[tuple[int, ...], int], int] = {}
        self._plain_buckets: dict[tuple[int, ...], tuple[frozenset[int], int]] = {}
        self._monitor_macs: dict[int, str] = {}  # policy id → its monitor's MAC, by prepare
        # combine() per member list (a member's cube and monitor follow from its id and role),
        # and per port its last one: kept across classify passes, so that a pass after
        # refusals combines again only the ports where they changed more than a rule each.
        self._outcomes: dict[_MemberKey, Outcome] = {}
        self._last: dict[tuple[int, int], tuple[_MemberKey, Outcome]] = {}

    # --- per policy ------------------------------------------------------------------------

    def prepare(self, policy: Policy) -> _Ready:
        cfg = self.config
        if policy.vlan_id is not None and cfg.in_range(policy.vlan_id):
            raise _Pending(
                f"vlan_id {policy.vlan_id} lies in the reserved copy-tag range "
                f"{cfg.describe_range()} and can never match"
            )
        monitor = _resolve(self.hosts, policy.monitor_mac, policy.monitor_ip, "monitor")
        mon_edge = monitor.location.dpid
        if policy.has_source:
            source = _resolve(self.hosts, policy.src_mac, policy.src_ip, "source")
            if source.mac == monitor.mac:
                raise _Pending(f"monitor host {monitor.mac} is the source host")
            if policy.has_destination:
                for dst in (
                    self.hosts.by_mac(policy.dst_mac) if policy.dst_mac else None,
                    self.hosts.by_ip(policy.dst_ip) if policy.dst_ip else None,
                ):
                    if dst is not None and dst.mac == monitor.mac:
                        raise _Pending(f"monitor host {monitor.mac} is the destination host")
            origin = source.location.dpid
            in_ports = [source.location.port_no]
        else:
            dest = _resolve(self.hosts, policy.dst_mac, policy.dst_ip, "destination")
            if dest.mac == monitor.mac:
                raise _Pending(f"monitor host {monitor.mac} is the destination host")
            origin = dest.location.dpid
            skip = {dest.location.port_no}
            if mon_edge == origin:
                skip.add(monitor.location.port_no)
            in_ports = [p for p in self.view.physical_ports(origin) if p not in skip]
        for dpid in (origin, mon_edge):
            if dpid not in self.view.nodes:
                raise _Pending(f"switch {self.view.label(dpid)} is not connected")
        if policy.delivery == "rewrite" and monitor.ip is None and origin != mon_edge:
            raise _Pending(f"monitor host {monitor.mac} has no known IP address yet")
        tree = self.view.copy_tree(mon_edge, monitor.mac)
        if not tree.reaches(origin):
            raise _Pending(f"no path from {self.view.label(origin)} to {self.view.label(mon_edge)}")
        tag: int | None = None
        if origin != mon_edge:
            key = (
                monitor_tag_key(monitor.mac)
                if policy.delivery == "tagged"
                else policy_tag_key(policy.id)
            )
            self.needed.add(key)
            tag = self.tags.get(key)
            if tag is None:
                if self.exhausted:
                    raise _Pending(f"copy-tag range {cfg.describe_range()} exhausted")
                raise _Pending("copy tag not allocated yet")
        self._monitor_macs[policy.id] = monitor.mac
        return _Ready(
            policy, monitor, origin, in_ports, policy_cube(policy), tree.path(origin), tag
        )

    # --- combinations ----------------------------------------------------------------------

    def classify(
        self, ready: dict[int, _Ready]
    ) -> tuple[dict[tuple[int, int], list[Combination]], dict[int, str]]:
        """Combinations per (switch, in_port), and the policies refused for lack of budget."""
        members: dict[tuple[int, int], list[Member]] = defaultdict(list)
        for r in ready.values():
            for port in r.in_ports:
                members[(r.origin, port)].append(Member(r.pid, r.cube, monitor=r.monitor.mac))
        sources = [r for r in ready.values() if r.policy.has_source]
        index = CubeIndex()
        for i, r in enumerate(sources):
            index.add(i, r.cube)
        out: dict[tuple[int, int], list[Combination]] = {}
        refused: dict[int, str] = {}
        limit = PRIO_TAP_MAX - PRIO_TAP_BASE
        # The fabric ports of one switch classify the same policies: each distinct member list
        # (a member's cube and monitor follow from its id and role) is extended and combined once.
        extended: dict[tuple[int, tuple[int, ...]], list[Member]] = {}
        for (dpid, port), here in sorted(members.items()):
            if PortRef(dpid, port) in self.view.fabric_ports:
                ext_key = (dpid, tuple(m.policy_id for m in here))
                if ext_key not in extended:
                    extended[ext_key] = self._on_fabric(dpid, here, ready, sources, index)
                here = extended[ext_key]
            outcome = self._combined((dpid, port), here, limit)
            out[(dpid, port)] = outcome.combinations
            for pid in outcome.refused:
                refused.setdefault(pid, self._refusal(dpid, port, pid in outcome.unsuppressed))
        return out, refused

    def _combined(self, where: tuple[int, int], here: list[Member], limit: int) -> Outcome:
        """combine() at one port, once per member list (memoised across classify passes)."""
        key = tuple((m.policy_id, m.suppress) for m in here)
        outcome = self._outcomes.get(key) or self._shrunk(where, key)
        if outcome is None:
            outcome = combine(here, self.config.max_combinations, limit)
        self._outcomes[key] = outcome
        self._last[where] = (key, outcome)
        return outcome

    def _shrunk(self, where: tuple[int, int], key: _MemberKey) -> Outcome | None:
        """After refusals: the port's last outcome, if the port only lost real members that
        were alone there (Outcome.without), as most ports do; else None."""
        last = self._last.get(where)
        if last is None:
            return None
        gone = set(last[0]).difference(key)
        if len(last[0]) - len(gone) != len(key) or any(suppress for _, suppress in gone):
            return None
        return last[1].without(frozenset(pid for pid, _ in gone))

    def _refusal(self, dpid: int, port: int, unsuppressed: bool) -> str:
        """Why a policy was refused at this port: it did not fit, or the rule that keeps its
        monitor from a second copy (or from copies of its own traffic) did not."""
        why = (
            f"{REFUSED_OVERLAP} on {self.view.label(dpid)} port {port} "
            f"(limit {self.config.max_combinations} combinations)"
        )
        if unsuppressed:
            why += ": no room to keep its monitor from duplicate copies or its own traffic"
        return why

    def _on_fabric(
        self,
        dpid: int,
        here: list[Member],
        ready: dict[int, _Ready],
        sources: list[_Ready],
        index: CubeIndex,
    ) -> list[Member]:
        """The members at a fabric port: the policies classified there, then suppressors."""
        here = here + self._suppressors(dpid, here, sources, index)
        # A monitor's own traffic is never copied to it (on its own switch its port is
        # simply not classified): a virtual suppressor, id -policy id, per policy.
        here += [
            Member(-m.policy_id, {"eth_src": ready[m.policy_id].monitor.mac}, True, m.monitor)
            for m in here
            if not m.suppress and not ready[m.policy_id].policy.has_source
        ]
        return here

    @staticmethod
    def _suppressors(
        dpid: int, here: list[Member], sources: list[_Ready], index: CubeIndex
    ) -> list[Member]:
        """Source policies classified elsewhere that may already have copied these packets."""
        found: set[int] = set()
        for m in here:
            found.update(j for j in index.overlapping(m.cube) if sources[j].origin != dpid)
        return [
            Member(sources[j].pid, sources[j].cube, True, sources[j].monitor.mac)
            for j in sorted(found)
        ]

    # --- copy buckets ----------------------------------------------------------------------

    def combo_plan(
        self, combo: Combination, ready: dict[int, _Ready]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A combination's owners and, per monitor not fed upstream (by MAC), the id of the
        policy whose copy bucket it gets. The same on every port the combination is used on:
        memoised (the fabric ports of a switch share their combinations)."""
        memo = self._combo_plans.get(id(combo))
        if memo is not None:
            return memo[1]
        if len(combo.members) == 1 and not combo.members[0].suppress:  # most combinations
            pid = combo.members[0].policy_id
            plan: tuple[tuple[int, ...], tuple[int, ...]] = ((pid,), (pid,))
            self._combo_plans[id(combo)] = (combo, plan)
            return plan
        monitor = self._monitor_macs
        members = combo.members
        suppressed = {monitor[abs(m.policy_id)] for m in members if m.suppress}
        owners = tuple(sorted(m.policy_id for m in members if m.policy_id > 0))
        by_monitor: dict[str, list[int]] = defaultdict(list)
        for m in members:
            if not m.suppress and monitor[m.policy_id] not in suppressed:
                by_monitor[monitor[m.policy_id]].append(m.policy_id)
        chosen: list[int] = []
        for mac in sorted(by_monitor):
            users = sorted(by_monitor[mac])
            tagged = (pid for pid in users if ready[pid].policy.delivery == "tagged")
            chosen.append(users[0] if len(users) == 1 else next(tagged, users[0]))
        plan = (owners, tuple(chosen))
        self._combo_plans[id(combo)] = (combo, plan)  # holding combo keeps its id unique
        return plan

    def bucket_id(
        self, b: _Builder, ready: dict[int, _Ready], chosen: tuple[int, ...], in_port: int
    ) -> int:
        """The builder's id of the group buckets: production, then one copy per chosen policy.

        Interned by the copies' keys (tuples of ints and strings, cheap to hash), so that the
        buckets themselves are built once per distinct list, not once per rule. The ports a
        combination's copies leave by are the only ones where in_port matters (IN_PORT):
        every other port shares one list."""
        plain = self._plain_buckets.get(chosen)
        if plain is None:
            copies = tuple(_copy_key(ready[pid], None) for pid in chosen)
            ports = frozenset(k[0] for k in copies)
            bid = b.bucket_id(copies, self.config.outer_tpid)
            plain = self._plain_buckets[chosen] = (ports, bid)
        if in_port not in plain[0]:
            return plain[1]
        key = (chosen, in_port)
        bid = self._bucket_ids.get(key)
        if bid is None:
            copies = tuple(_copy_key(ready[pid], in_port) for pid in chosen)
            bid = self._bucket_ids[key] = b.bucket_id(copies, self.config.outer_tpid)
        return bid


_CopyKey = tuple[int, int | None, str | None, str | None]  # port, tag, rewritten mac and ip


def _copy_key(r: _Ready, in_port: int | None) -> _CopyKey:
    """Everything policy r's copy bucket depends on, for packets from in_port (_copy_bucket):
    the output port (IN_PORT when it is in_port), the tag and the addresses to rewrite."""
    port = r.monitor.location.port_no if r.tag is None else r.steps[0].out_port
    if port == in_port:
        port = int(ReservedPort.IN_PORT)
    if r.tag is not None and r.policy.delivery == "rewrite":
        assert r.monitor.ip is not None
        return (port, r.tag, r.monitor.mac, r.monitor.ip)
    return (port, r.tag, None, None)


def _copy_bucket(key: _CopyKey, outer_tpid: int) -> Bucket:
    """The copy bucket a _copy_key describes: rewrite the destination (rewrite delivery), push
    the copy tag (unless the monitor hangs off this switch), output."""
    port, tag, mac, ip = key
    if tag is None:
        return Bucket((Output(port),))
    actions: list[Action] = []
    if mac is not None and ip is not None:
        actions += [SetField("eth_dst", mac), SetField("ipv4_dst", ip)]
    actions += [PushVlan(outer_tpid), SetField("vlan_vid", OFPVID_PRESENT | tag), Output(port)]
    return Bucket(tuple(actions))


class _Builder:
    """Collects rules per switch with the policies each exists for; cookies and ids last.

    On each switch, in this order: rules merged by key (several policies may need one: copy
    transit and delivery, classification without copies), the guards, then the classification
    rules that apply a group. Those have unique keys (one per combination and port) and are
    created once, with their cookie, when group ids are known.

    Bucket lists are interned to small ids by their copies' keys, so that group keys hash
    tuples of ints instead of nested action dataclasses (tens of thousands of grouped rules
    share a few thousand lists); a list's text (for group ids) is made only when needed.
    """

    def __init__(self) -> None:
        self.flows: dict[int, dict[FlowId, tuple[FlowRule, set[int]]]] = defaultdict(dict)
        self.group_refs: dict[int, list[tuple[int, Match, _GroupKey]]] = defaultdict(list)
        self.guards: dict[int, list[tuple[FlowRule, frozenset[int]]]] = defaultdict(list)
        self.bucket_lists: list[tuple[Bucket, ...]] = []
        self._bucket_ids: dict[tuple[_CopyKey, ...], int] = {}
        self._texts: dict[int, str] = {}
        self._owned: dict[tuple[int, ...], tuple[frozenset[int], int]] = {}

    def bucket_id(self, copies: tuple[_CopyKey, ...], outer_tpid: int) -> int:
        """The id of the bucket list production + these copies (equal lists, equal ids)."""
        bid = self._bucket_ids.get(copies)
        if bid is None:
            bid = self._bucket_ids[copies] = len(self.bucket_lists)
            production = Bucket((Resubmit(TABLE_FORWARD),))
            self.bucket_lists.append((production, *(_copy_bucket(k, outer_tpid) for k in copies)))
        return bid

    def group_text(self, key: _GroupKey) -> str:
        """What orders and hashes a group for its id: `f"{owners}|{buckets!r}"`."""
        text = self._texts.get(key[1])
        if text is None:
            text = self._texts[key[1]] = repr(self.bucket_lists[key[1]])
        return f"{key[0]}|{text}"

    def flow(self, dpid: int, rule: FlowRule, owners: Iterable[int]) -> None:
        have, users = self.flows[dpid].setdefault(rule.key, (rule, set()))
        if have is not rule and have != rule:
            raise AssertionError(f"conflicting TAP rules on {dpid:#x}: {have} / {rule}")
        users.update(owners)

    def guard_rules(
        self, rules: Mapping[int, tuple[FlowRule, ...]], owners: frozenset[int]
    ) -> None:
        """Final rules (cookie set) of one copy tag's guards, per switch. Their keys are unique
        (one priority of their own, one rule per port and tag): they need no merging."""
        for dpid, final in rules.items():
            self.guards[dpid] += [(rule, owners) for rule in final]

    def grouped_flow(
        self, dpid: int, priority: int, match: Match, owners: tuple[int, ...], bucket_id: int
    ) -> None:
        """A table-0 rule that applies the group (owners, bucket list), once ids are known.
        Its key must be unique (see the class docstring)."""
        self.group_refs[dpid].append((priority, match, (owners, bucket_id)))

    def owned(self, owners: tuple[int, ...]) -> tuple[frozenset[int], int]:
        """A group key's owners as a set, and their cookie: one shared set per owner tuple."""
        have = self._owned.get(owners)
        if have is None:
            users = frozenset(owners)
            have = self._owned[owners] = (users, _cookie_of(users))
        return have

    def _grouped_rules(
        self,
        dpid: int,
        ids: Mapping[_GroupKey, int],
        owners: dict[FlowId, frozenset[int]],
        out: list[FlowRule],
    ) -> None:
        """The switch's rules that apply a group, final: owners, cookie and action per group."""
        made = {k: (*self.owned(k[0]), (ToGroup(gid),)) for k, gid in ids.items()}
        for priority, match, key in self.group_refs.get(dpid, ()):
            users, value, actions = made[key]
            owners[(TABLE_TAP, priority, match)] = users
            out.append(FlowRule(TABLE_TAP, priority, match, actions, None, value))

    def finish(self) -> tuple[dict, dict, dict, dict]:
        flows: dict[int, list[FlowRule]] = {}
        flow_owners: dict[int, dict[FlowId, frozenset[int]]] = {}
        groups: dict[int, list[GroupRule]] = {}
        group_owners: dict[int, dict[int, frozenset[int]]] = {}
        dpids = sorted(self.flows.keys() | self.guards.keys() | self.group_refs.keys())
        for dpid in dpids:
            refs = self.group_refs.get(dpid, ())
            ids = _assign_group_ids({ref[2] for ref in refs}, self.group_text)
            owners = flow_owners[dpid] = {}
            out = flows[dpid] = []
            for k, (rule, users) in self.flows.get(dpid, {}).items():
                owners[k] = users_set = frozenset(users)
                out.append(_with_cookie(rule, users_set))
            for rule, users_set in self.guards.get(dpid, ()):
                owners[rule.key] = users_set
                out.append(rule)
            self._grouped_rules(dpid, ids, owners, out)
            if len(owners) != len(out):  # a key given twice (not merged): should never happen
                raise AssertionError(f"TAP rules with one key twice on {dpid:#x}")
            if ids:
                groups[dpid] = sorted(
                    (GroupRule(i, GroupType.ALL, self.bucket_lists[k[1]]) for k, i in ids.items()),
                    key=lambda g: g.group_id,
                )
                group_owners[dpid] = {i: self.owned(k[0])[0] for k, i in ids.items()}
        return flows, groups, flow_owners, group_owners


def _cookie_of(owners: Iterable[int]) -> int:
    owners = tuple(owners)
    return cookie(Owner.POLICY, owners[0]) if len(owners) == 1 else cookie(Owner.TAP_SHARED)


def _with_cookie(rule: FlowRule, owners: frozenset[int]) -> FlowRule:
    value = _cookie_of(owners)
    return FlowRule(rule.table_id, rule.priority, rule.match, rule.actions, rule.goto_table, value)


def _guards(tag: int, value: int) -> Callable[[TopologyView], dict[int, tuple[FlowRule, ...]]]:
    """A copy tag's guard rules with this cookie, per connected switch with edge ports."""

    def build(view: TopologyView) -> dict[int, tuple[FlowRule, ...]]:
        out: dict[int, tuple[FlowRule, ...]] = {}
        for dpid in view.connected():
            rules = tuple(
                FlowRule(
                    TABLE_TAP,
                    PRIO_GUARD,
                    Match(in_port=port, vlan_vid=OFPVID_PRESENT | tag),
                    cookie=value,
                )
                for port in view.edge_ports(dpid)
            )
            if rules:
                out[dpid] = rules
        return out

    return build


def _assign_group_ids(
    keys: Iterable[_GroupKey], text: Callable[[_GroupKey], str]
) -> dict[_GroupKey, int]:
    """Stable group ids for one switch: a policy's own id where possible, else a hash.

    A group is identified by the policies it serves and its buckets (one policy can need two
    groups on a switch, e.g. with and without an IN_PORT bucket). Groups are ranked by their
    `text(key)`, `f"{owners}|{buckets!r}"`, so the same groups always get the same ids: of one
    policy's groups the first gets its own id; the rest and the combinations probe for a slot
    from the hash of their text, in text order. Texts are made only for those groups (most
    groups are a policy's only one).
    """
    ids: dict[_GroupKey, int] = {}
    own: dict[int, list[_GroupKey]] = defaultdict(list)
    hashed: list[_GroupKey] = []
    for key in keys:
        owners = key[0]
        if len(owners) == 1 and owners[0] < _HASHED_GROUPS:
            own[owners[0]].append(key)
        else:
            hashed.append(key)
    for pid, candidates in own.items():
        if len(candidates) > 1:
            candidates.sort(key=text)
            hashed += candidates[1:]
        ids[candidates[0]] = GROUP_ID_FIRST + pid
    used: set[int] = set()
    for key, key_text in sorted(((k, text(k)) for k in hashed), key=lambda kt: kt[1]):
        slot = int.from_bytes(hashlib.blake2b(key_text.encode(), digest_size=4).digest(), "big")
        slot %= _HASHED_GROUPS
        while slot in used:
            slot = (slot + 1) % _HASHED_GROUPS
        used.add(slot)
        ids[key] = GROUP_ID_FIRST + _HASHED_GROUPS + slot
    return ids


def compile_tap(
    policies: Iterable[Policy],
    topology: Topology | TopologyView,
    hosts: HostLookup,
    tags: Mapping[str, int],
    config: TapConfig | None = None,
) -> TapPlan:
    """The TAP rules for the enabled policies on this topology (see the module docstring).

    `topology` may be a TopologyView of the topology's current state: a caller that compiles
    often keeps one per topology generation, so topology-only work is done once per state.
    """
    view = topology if isinstance(topology, TopologyView) else TopologyView(topology)
    c = _Compiler(view, hosts, tags, config or TapConfig())
    plans: dict[int, PolicyPlan] = {}
    ready: dict[int, _Ready] = {}
    for policy in sorted((p for p in policies if p.enabled), key=lambda p: p.id):
        try:
            ready[policy.id] = c.prepare(policy)
        except _Pending as why:
            plans[policy.id] = PolicyPlan(policy.id, PlanState.PENDING, str(why))

    # Refusing a policy changes the combinations it took part in; repeat until none is refused.
    while True:
        combos, refused = c.classify(ready)
        if not refused:
            break
        for pid, reason in refused.items():
            plans[pid] = PolicyPlan(pid, PlanState.PENDING, reason)
            del ready[pid]

    b = _Builder()
    for (dpid, in_port), combinations in combos.items():
        _classification(c, b, ready, dpid, in_port, combinations)
    tag_users: dict[int, set[int]] = defaultdict(set)
    copies: dict[tuple[int, int], list[int]] = defaultdict(list)  # (tag, origin) → policies
    for r in ready.values():
        if r.tag is not None:
            tag_users[r.tag].add(r.pid)
            copies[(r.tag, r.origin)].append(r.pid)
    for pids in copies.values():
        _transit_and_delivery(b, ready[pids[0]], pids)
    for tag, users in sorted(tag_users.items()):
        value = _cookie_of(users)
        b.guard_rules(view.memo(("guards", tag, value), _guards(tag, value)), frozenset(users))

    flows, groups, flow_owners, group_owners = b.finish()
    touched: dict[int, set[int]] = defaultdict(set)
    for owners_by_switch in (flow_owners, group_owners):
        for dpid, owners in owners_by_switch.items():
            # Many rules share one owner set (a tag's guards, a combination's rules): once each.
            distinct = {id(pids): pids for pids in owners.values()}
            for pid in frozenset().union(*distinct.values()):
                touched[pid].add(dpid)
    for pid in ready:
        plans[pid] = PolicyPlan(pid, PlanState.READY, "", frozenset(touched[pid]))
    return TapPlan(
        flows,
        groups,
        dict(sorted(plans.items())),
        frozenset(c.needed),
        flow_owners,
        group_owners,
    )


def _classification(
    c: _Compiler,
    b: _Builder,
    ready: dict[int, _Ready],
    dpid: int,
    in_port: int,
    combinations: list[Combination],
) -> None:
    """The classification rules of one switch port, one per combination."""
    for combo in combinations:
        owners, chosen = c.combo_plan(combo, ready)
        match = Match(in_port=in_port, **combo.cube)  # type: ignore[arg-type]
        priority = PRIO_TAP_BASE + len(combo.members)
        if chosen:
            bid = c.bucket_id(b, ready, chosen, in_port)
            b.grouped_flow(dpid, priority, match, owners, bid)
        else:  # every monitor was fed upstream: just forward
            rule = FlowRule(TABLE_TAP, priority, match, goto_table=TABLE_FORWARD)
            b.flow(dpid, rule, owners)


def _transit_and_delivery(b: _Builder, r: _Ready, owners: list[int]) -> None:
    """The rules that carry r's copies to its monitor, for `owners`: the policies with r's tag
    and classifying switch. A tag names one monitor (and, for rewrite delivery, one policy), so
    they all share r's path and delivery; the rules are made once for them all, in the order
    (and with the owners) one pass per policy would give."""
    assert r.tag is not None
    vid = OFPVID_PRESENT | r.tag
    for before, step in zip(r.steps, r.steps[1:], strict=False):
        match = Match(in_port=before.next_in_port, vlan_vid=vid)
        rule = FlowRule(TABLE_TAP, PRIO_COPY_TRANSIT, match, (Output(step.out_port),))
        b.flow(step.dpid, rule, owners)
    mon = r.monitor.location
    actions: list[Action] = [PopVlan()]
    if r.policy.delivery == "rewrite":
        assert r.policy.dst_mac is not None and r.policy.dst_ip is not None
        actions += [SetField("eth_dst", r.policy.dst_mac), SetField("ipv4_dst", r.policy.dst_ip)]
        match = Match(eth_type=ETH_TYPE_IPV4, vlan_vid=vid)
    else:
        match = Match(vlan_vid=vid)
    actions.append(Output(mon.port_no))
    b.flow(mon.dpid, FlowRule(TABLE_TAP, PRIO_COPY_TRANSIT, match, tuple(actions)), owners)
