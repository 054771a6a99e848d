"""Keeps what every switch holds equal to the intent: desired vs. actual, committed in bundles.

The reconciler keeps a mirror of the entries it owns on each switch (read back from the switch
when it joins, updated after every committed bundle), so a round needs no dump: it diffs the
desired rules against the mirror — only the keys the compiler says changed, or everything when
the switch is new, has just settled, or was out of step — and sends only the difference.

Each switch's change is sent as OpenFlow bundles (ATOMIC|ORDERED): packets see the old rule
set or the new one, never half of each, and a rejected message discards the whole bundle, so
the mirror stays exact without re-reading the switch. A round runs in three steps across all
switches, each a bundle per switch, all switches in parallel:

1. *prepare*: new or changed transit/delivery entries (they only act on copies that carry their
   label, so nothing sees them before a classifying switch starts using the label); a switch
   that has no TAP pipeline yet takes all of it here but its classification (the shape tables):
   without a classification entry nothing sets a copy bit, so the pipeline alone changes
   nothing for production traffic, and it makes the switch's label entries reachable;
2. *switch*: everything else — classification, copy entries, the copy group, the pipeline;
3. *clean up*: transit/delivery entries no longer wanted (and a switch's whole TAP pipeline
   when it has none left), `linger` seconds after they stopped being wanted (a later round
   takes them).

A step starts only once every switch confirmed its share of the step before; otherwise the
round ends there and the next round diffs those switches in full.

So a copy in flight always finds its way: a policy whose monitor moves starts sending copies
with the new label only once every switch on the new path can carry them, and the old path
goes only after no switch sends on it any more. The linger covers what a classifying switch's
datapath still holds: Open vSwitch revalidates its cached flows a moment after a commit, and
until then a cached copy action still pushes the old label. The prepare step needs no such
wait: a cached flow of a transit or delivery switch holds the one label it was made for (its
label entries make the lookup examine every label bit), and no copy carried the new label
before, so the first one is looked up in the committed tables.

A switch that joined only a moment ago, or a controller that just started, has not yet seen the
fabric's links: compiling against that partial view would delete TAP entries that are right.
So TAP entries on a switch are synced only once the switch has been connected for `settle`
seconds (the pipeline's own rules are synced at once). A switch that comes back empty (it
restarted and lost its tables) has nothing that a partial view could wrongly delete: it settles
as soon as every fabric link it had before is back (the controller's `links_back`), so its
copies resume about as soon as its paths can be computed. Until a switch that came back empty
has its TAP entries, it is not `copy_ready`, and the forwarding app holds new flows back: no
packet is forwarded without its copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import BatchError, SessionClosed, SwitchSession
from vtap.openflow.diff import ChangeSet, diff
from vtap.openflow.pipeline import (
    COOKIE_MAGIC,
    COOKIE_OURS_MASK,
    TABLE_SHAPE_FIRST,
    TABLE_TRANSIT,
    Owner,
    owner_of,
    owns_group,
)
from vtap.openflow.rules import EntryKey, FlowRule, FlowStat, GroupRule

log = logging.getLogger(__name__)

_TAP_OWNERS = (Owner.POLICY, Owner.TAP_SHARED)
_T = TypeVar("_T")
BIG_DIFF = 2000  # changed keys beyond which a switch's diff runs in a worker thread

Rejected = list[tuple[FlowRule | GroupRule | int, m.Error]]


def is_reconciled(cookie: int) -> bool:
    """Entries the reconciler owns: ours, except reactive paths (the forwarding app's)."""
    owner = owner_of(cookie)
    return owner is not None and owner[0] is not Owner.FORWARDING


def is_tap(cookie: int) -> bool:
    owner = owner_of(cookie)
    return owner is not None and owner[0] in _TAP_OWNERS


def is_label_entry(rule: FlowRule) -> bool:
    """A transit or delivery entry: it acts only on copies that carry its label."""
    return rule.table_id == TABLE_TRANSIT and rule.match.mpls_label is not None


def is_pipeline_entry(rule: FlowRule) -> bool:
    """A TAP entry outside the classification (shape tables): alone, it copies nothing."""
    return rule.table_id < TABLE_SHAPE_FIRST and is_tap(rule.cookie)


def _is_label_key(key: EntryKey) -> bool:
    return key[0] == TABLE_TRANSIT and key[2].mpls_label is not None


def _skeleton_going(
    deletes: Sequence[FlowRule], lingering: Iterable[EntryKey], diffed: set[EntryKey] | None
) -> bool:
    """The switch's TAP pipeline goes: this change deletes the TRANSIT entries that reach its
    label entries, or they are lingering already and this diff did not find them wanted."""
    if any(
        r.table_id == TABLE_TRANSIT and not is_label_entry(r) and is_tap(r.cookie) for r in deletes
    ):
        return True
    return any(
        k[0] == TABLE_TRANSIT and not _is_label_key(k) and diffed is not None and k not in diffed
        for k in lingering
    )


@dataclass
class Desired:
    """What one switch should hold (entries vtap reconciles, and its groups)."""

    flows: Mapping[EntryKey, FlowRule]
    groups: Mapping[int, GroupRule]


@dataclass
class SyncResult:
    """What one switch's sync did: how many changes, and which entries it rejected."""

    dpid: int
    applied: int = 0
    rejected: Rejected = field(default_factory=list)
    error: str = ""  # the switch could not be synced at all (disconnected, timeout)
    tap_synced: bool = False

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.error


@dataclass
class _Mirror:
    flows: dict[EntryKey, FlowRule] = field(default_factory=dict)
    groups: dict[int, GroupRule] = field(default_factory=dict)
    joined_at: float = 0.0
    full: bool = True  # the next sync must diff everything (joined, settled, out of step)
    tap_synced: bool = False  # TAP entries have been synced since the switch settled
    joined_empty: bool = False  # it held no TAP entry when it joined (new, or restarted)
    copy_ready: bool = False  # its TAP entries were committed since it joined (or it kept them)
    came_back: bool = False  # it had fabric links before: a restart, not a new switch
    epoch: int = 0  # bumped by every change to the mirror (an audit's read must not race one)
    busy: int = 0  # bundles in flight
    uncertain: bool = False  # a bundle's outcome is unknown (no answer in time): read first


@dataclass
class Drift:
    """How a switch's tables differ from what vtap committed there (an audit's finding)."""

    missing: int = 0  # entries vtap committed that are gone
    changed: int = 0  # entries whose instructions, timeouts or cookie were changed
    extra: int = 0  # entries in vtap's cookie range that vtap did not put there
    groups: int = 0  # groups missing, changed or added
    forwarding: list[FlowRule] = field(default_factory=list)  # reactive entries found

    @property
    def found(self) -> bool:
        return bool(self.missing or self.changed or self.extra or self.groups)

    def text(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.missing, "entries missing"),
                (self.changed, "entries changed"),
                (self.extra, "foreign entries in vtap's cookie range"),
                (self.groups, "groups differ"),
            )
            if n
        ]
        return ", ".join(parts)


DesiredFn = Callable[[int, bool], Desired]


class Reconciler:
    def __init__(
        self,
        sessions: dict[int, SwitchSession],
        clock: Callable[[], float],
        settle: float,
        linger: float = 2.0,
        links_back: Callable[[int], bool] = lambda _dpid: False,
        had_links: Callable[[int], bool] = lambda _dpid: False,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._settle = settle
        self._links_back = links_back
        self._had_links = had_links
        self.unanswered = 0  # bundles a live switch did not answer in time
        self._linger = linger
        self._mirrors: dict[int, _Mirror] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # label (and pipeline) entries no longer wanted, and since when: deleted once they
        # lingered
        self._unwanted: dict[int, dict[EntryKey, float]] = {}

    def cleanup_due(self) -> tuple[float, dict[int, set[EntryKey]]] | None:
        """When the next lingering label entries may go, and which they are (per switch)."""
        if not any(self._unwanted.values()):
            return None
        due = min(t for keys in self._unwanted.values() for t in keys.values()) + self._linger
        keys = {d: set(k) for d, k in self._unwanted.items() if k}
        return due, keys

    # ------------------------------------------------------------ switches

    def switches(self) -> list[int]:
        return sorted(self._mirrors)

    def settled(self, dpid: int) -> bool:
        return self.settle_remaining(dpid) == 0.0

    def settle_remaining(self, dpid: int) -> float:
        mirror = self._mirrors.get(dpid)
        if mirror is None:
            return self._settle
        if mirror.joined_empty and self._links_back(dpid):
            return 0.0
        return max(0.0, self._settle - (self._clock() - mirror.joined_at))

    def copies_ready(self) -> bool:
        """No switch that came back empty is still waiting for the TAP entries it lost
        (module doc). A switch new to the fabric holds nothing back: no copy path crosses it
        until its links are known."""
        return all(m.copy_ready or not m.came_back for m in self._mirrors.values())

    def needs_full(self, dpid: int) -> bool:
        """The switch must be diffed in full: it joined, or settled since its last sync."""
        mirror = self._mirrors.get(dpid)
        if mirror is None:
            return False
        return mirror.full or (self.settled(dpid) and not mirror.tap_synced)

    def groups_held(self, dpid: int) -> int:
        mirror = self._mirrors.get(dpid)
        return len(mirror.groups) if mirror is not None else 0

    def holds(self, dpid: int) -> Mapping[EntryKey, FlowRule]:
        """The entries vtap owns on the switch, as last confirmed."""
        mirror = self._mirrors.get(dpid)
        return mirror.flows if mirror is not None else {}

    async def join(self, session: SwitchSession) -> list[FlowRule]:
        """Read what a joining switch holds; returns the forwarding entries found (for the
        forwarding app to adopt). The switch is synced by the next round (in full)."""
        dpid = session.dpid
        assert dpid is not None
        flows, groups = await self._read(session)
        mirror = _Mirror(joined_at=self._clock())
        adopted = []
        for rule in flows:
            if is_reconciled(rule.cookie):
                mirror.flows[rule.key] = rule
            else:
                adopted.append(rule)
        mirror.groups = {g.group_id: g for g in groups if owns_group(g.group_id)}
        # A switch that still holds TAP entries goes on copying by them until it settled.
        mirror.joined_empty = not (mirror.groups or any(is_tap(c) for c in _cookies(mirror)))
        mirror.copy_ready = not mirror.joined_empty
        mirror.came_back = self._had_links(dpid)
        self._mirrors[dpid] = mirror
        return adopted

    def leave(self, dpid: int) -> None:
        self._mirrors.pop(dpid, None)
        self._locks.pop(dpid, None)
        self._unwanted.pop(dpid, None)

    # ------------------------------------------------------------ rounds

    async def sync(
        self, desired: DesiredFn, changed: Mapping[int, Iterable[EntryKey] | None]
    ) -> dict[int, SyncResult]:
        """Bring these switches to their desired state: `changed[dpid]` lists the keys that
        may differ (None: diff everything). Three steps across all switches (module doc)."""
        plans: dict[int, list[ChangeSet]] = {}
        results: dict[int, SyncResult] = {}
        for n, (dpid, keys) in enumerate(changed.items()):
            if n:
                await asyncio.sleep(0)  # a full diff of a large switch takes milliseconds
            result = results[dpid] = SyncResult(dpid)
            mirror = self._mirrors.get(dpid)
            if mirror is not None and mirror.uncertain:
                await self.reread(dpid)
                if mirror.uncertain:
                    result.error = "not answering"
                    continue
            if mirror is None or dpid not in self._sessions:
                result.error = "not connected"
                continue
            tap = self.settled(dpid)
            result.tap_synced = tap
            full = keys is None or self.needs_full(dpid)
            want = desired(dpid, tap)
            diffed = None if full else set(keys or ())
            if diffed is None or len(diffed) > BIG_DIFF:
                # tens of thousands of entries: diffed in a worker thread (nothing changes the
                # desired rules or the mirror meanwhile: rounds run one at a time)
                found = await asyncio.to_thread(_diff, want, mirror, diffed, tap)
            else:
                found = _diff(want, mirror, diffed, tap)
            # which deletes linger: label entries, and the whole pipeline when it goes
            unwanted = self._unwanted.setdefault(dpid, {})
            going = _skeleton_going(found.flow_deletes, unwanted, diffed)
            lingers = is_pipeline_entry if going else is_label_entry
            changes = self._held(dpid, found, diffed, lingers)
            plans[dpid] = _phases(changes, _has_tap_pipeline(mirror), lingers)
            if full:
                mirror.full = False
                mirror.tap_synced = tap
        for step in range(3):
            if step and any(not results[d].ok for d in plans):
                # a switch did not take its share of the step before (its new label entries,
                # say): the next steps would send copies it cannot carry. They wait for the
                # next round, which diffs these switches in full.
                for dpid in plans:
                    mirror = self._mirrors.get(dpid)
                    if mirror is not None and any(not p.empty for p in plans[dpid][step:]):
                        mirror.full = True
                        if results[dpid].ok:
                            results[dpid].error = "held back: another switch did not confirm"
                break
            jobs = {
                dpid: phases[step]
                for dpid, phases in plans.items()
                if not phases[step].empty and results[dpid].ok
            }
            done = await asyncio.gather(*(self._apply(d, c) for d, c in jobs.items()))
            for (dpid, _), outcome in zip(jobs.items(), done, strict=True):
                result = results[dpid]
                result.applied += outcome.applied
                result.rejected += outcome.rejected
                result.error = result.error or outcome.error
                if not outcome.ok:
                    mirror = self._mirrors.get(dpid)
                    if mirror is not None:
                        mirror.full = True  # diff everything next time
        for dpid, result in results.items():
            mirror = self._mirrors.get(dpid)
            if mirror is not None and result.tap_synced and result.ok and not mirror.full:
                mirror.copy_ready = True
        return results

    def _held(
        self,
        dpid: int,
        changes: ChangeSet,
        diffed: set[EntryKey] | None,
        lingers: Callable[[FlowRule], bool],
    ) -> ChangeSet:
        """Hold back deletes that must linger (module doc) until they lingered; forget any
        that this diff found wanted again (or gone). While pipeline entries are held, so is
        the copy group (held entries may point at it)."""
        now = self._clock()
        unwanted = self._unwanted.setdefault(dpid, {})
        going = {r.key for r in changes.flow_deletes if lingers(r)}
        for key in [k for k in unwanted if (diffed is None or k in diffed) and k not in going]:
            del unwanted[key]
        keep = []
        for rule in changes.flow_deletes:
            if lingers(rule):
                since = unwanted.setdefault(rule.key, now)
                if now - since < self._linger:
                    continue
                del unwanted[rule.key]
            keep.append(rule)
        pipeline_held = any(not _is_label_key(k) for k in unwanted)
        if len(keep) == len(changes.flow_deletes) and not (pipeline_held and changes.group_deletes):
            return changes
        return ChangeSet(
            changes.group_adds,
            changes.group_mods,
            changes.flow_adds,
            tuple(keep),
            () if pipeline_held else changes.group_deletes,
        )

    async def _apply(self, dpid: int, changes: ChangeSet) -> SyncResult:
        result = SyncResult(dpid)
        lock = self._locks.setdefault(dpid, asyncio.Lock())
        async with lock:
            session = self._sessions.get(dpid)
            mirror = self._mirrors.get(dpid)
            if session is None or mirror is None:
                result.error = "not connected"
                return result
            mirror.busy += 1
            try:
                await session.apply_bundle(codec.change_messages(changes))
            except BatchError as exc:
                result.rejected = _rejected(changes, exc.failures)
                log.warning("switch %016x: bundle of %d rejected: %s", dpid, len(changes), exc)
                return result
            except (SessionClosed, ConnectionError, OSError) as exc:
                result.error = str(exc)
                if not session.closed.is_set():
                    # It did not answer in time but lives: whether its bundle committed is
                    # unknown, so the next sync reads it before diffing.
                    mirror.uncertain = True
                    self.unanswered += 1
                    log.warning("switch %016x: %s; its tables are read again", dpid, exc)
                return result
            finally:
                mirror.busy -= 1
                mirror.epoch += 1
            _apply_to_mirror(mirror, changes)
            result.applied = len(changes)
            log.info("switch %016x: %d change(s) committed", dpid, len(changes))
            return result

    @staticmethod
    async def _read(session: SwitchSession) -> tuple[list[FlowRule], list[GroupRule]]:
        stats = await session.multipart(
            codec.flow_stats_request(COOKIE_MAGIC << 48, COOKIE_OURS_MASK)
        )
        groups = await session.multipart(codec.group_desc_request())
        return (
            [s.rule for s in stats if isinstance(s, FlowStat)],
            [g for g in groups if isinstance(g, GroupRule)],
        )

    async def _quiet_read(
        self, dpid: int, read: Callable[[SwitchSession], Awaitable[_T]]
    ) -> tuple[_Mirror, _T] | None:
        """`read(session)` with no bundle in flight before, during or after it (the switch's
        answer and the mirror then describe the same moment); None otherwise, or when the
        switch is gone."""
        session = self._sessions.get(dpid)
        mirror = self._mirrors.get(dpid)
        if session is None or mirror is None or mirror.busy:
            return None
        epoch = mirror.epoch
        try:
            answer = await read(session)
        except (SessionClosed, ConnectionError, OSError):
            return None
        if self._mirrors.get(dpid) is not mirror or mirror.epoch != epoch or mirror.busy:
            return None
        return mirror, answer

    async def count_matches(self, dpid: int, forwarding: int) -> bool | None:
        """A cheap check (one aggregate request): does the switch hold as many entries in
        vtap's cookie range as vtap committed there (plus `forwarding` reactive ones)? None
        when it cannot tell (disconnected, or a change committed meanwhile)."""
        request = codec.aggregate_request(COOKIE_MAGIC << 48, COOKIE_OURS_MASK)
        found = await self._quiet_read(dpid, lambda session: session.multipart(request))
        if found is None:
            return None
        mirror, reply = found
        counts = [c for c in reply if isinstance(c, m.AggregateCounts)]
        return counts[0].flows == len(mirror.flows) + forwarding if counts else None

    async def audit(self, dpid: int) -> Drift | None:
        """Read the switch and compare with what vtap committed there. On drift, the mirror
        takes what the switch really holds and the next round diffs everything: it repairs
        whatever was removed, changed or added out of band. None when it could not compare
        (disconnected, or a bundle committed while the tables were read)."""
        found = await self._quiet_read(dpid, self._read)
        if found is None:
            return None
        mirror, (flows, groups) = found
        actual = {r.key: r for r in flows if is_reconciled(r.cookie)}
        actual_groups = {g.group_id: g for g in groups if owns_group(g.group_id)}
        drift = Drift(forwarding=[r for r in flows if not is_reconciled(r.cookie)])
        for key, rule in mirror.flows.items():
            found_rule = actual.get(key)
            if found_rule is None:
                drift.missing += 1
            elif found_rule != rule:
                drift.changed += 1
        drift.extra = sum(1 for key in actual if key not in mirror.flows)
        drift.groups = sum(
            1
            for gid in mirror.groups.keys() | actual_groups.keys()
            if mirror.groups.get(gid) != actual_groups.get(gid)
        )
        if drift.found:
            mirror.flows, mirror.groups = actual, actual_groups
            mirror.full = True
            mirror.epoch += 1
        return drift

    async def reread(self, dpid: int) -> None:
        """Read the switch again (its table may have changed behind vtap's back)."""
        session = self._sessions.get(dpid)
        mirror = self._mirrors.get(dpid)
        if session is None or mirror is None:
            return
        with contextlib.suppress(SessionClosed, ConnectionError, OSError):
            flows, groups = await self._read(session)
            mirror.flows = {r.key: r for r in flows if is_reconciled(r.cookie)}
            mirror.groups = {g.group_id: g for g in groups if owns_group(g.group_id)}
            mirror.uncertain = False
        mirror.full = True


def _cookies(mirror: _Mirror) -> Iterable[int]:
    return (rule.cookie for rule in mirror.flows.values())


def _has_tap_pipeline(mirror: _Mirror) -> bool:
    """The switch already sends fabric packets through TRANSIT (a label entry added there
    acts at once)."""
    return any(k[0] == TABLE_TRANSIT and not is_label_entry(r) for k, r in mirror.flows.items())


def _diff(want: Desired, mirror: _Mirror, keys: Iterable[EntryKey] | None, tap: bool) -> ChangeSet:
    """The changes that make the mirror hold `want` (for these keys, or everything). TAP
    entries and groups only once the switch settled."""

    def owned(value: int) -> bool:
        return is_reconciled(value) and (tap or not is_tap(value))

    flows: Mapping[EntryKey, FlowRule] = want.flows
    if not tap:
        flows = {k: r for k, r in want.flows.items() if not is_tap(r.cookie)}
    return diff(
        flows,
        mirror.flows,
        owns_cookie=owned,
        keys=keys,
        desired_groups=want.groups.values() if tap else (),
        actual_groups=mirror.groups.values() if tap else (),
        owns_group=owns_group,
    )


def _phases(
    changes: ChangeSet, has_skeleton: bool, lingers: Callable[[FlowRule], bool]
) -> list[ChangeSet]:
    """prepare / switch / clean-up (module doc)."""
    if has_skeleton:
        early = [r for r in changes.flow_adds if is_label_entry(r)]
        early_groups: tuple[GroupRule, ...] = ()
    else:  # the pipeline with its label entries, without the classification
        early = [r for r in changes.flow_adds if r.table_id < TABLE_SHAPE_FIRST]
        early_groups = changes.group_adds
    late = [r for r in changes.flow_deletes if lingers(r)]
    # a group goes after the entries that point at it: with the pipeline, when that lingered
    late_groups = changes.group_deletes if any(not is_label_entry(r) for r in late) else ()
    early_keys = {r.key for r in early}
    late_keys = {r.key for r in late}
    main = ChangeSet(
        () if early_groups else changes.group_adds,
        changes.group_mods,
        tuple(r for r in changes.flow_adds if r.key not in early_keys),
        tuple(r for r in changes.flow_deletes if r.key not in late_keys),
        () if late_groups else changes.group_deletes,
    )
    return [
        ChangeSet(group_adds=early_groups, flow_adds=tuple(early)),
        main,
        ChangeSet(flow_deletes=tuple(late), group_deletes=late_groups),
    ]


def _ordered(changes: ChangeSet) -> Sequence[FlowRule | GroupRule | int]:
    """The objects behind `codec.change_messages(changes)`, index for index."""
    return [
        *changes.group_adds,
        *changes.group_mods,
        *changes.flow_adds,
        *changes.flow_deletes,
        *changes.group_deletes,
    ]


def _rejected(changes: ChangeSet, failures: dict[int, m.Error]) -> Rejected:
    """The rejected objects; an error the switch tied to no message blames the whole bundle."""
    ordered = _ordered(changes)
    out: Rejected = []
    for i, err in sorted(failures.items()):
        if 0 <= i < len(ordered):
            out.append((ordered[i], err))
        else:
            out += [(obj, err) for obj in ordered]
    return out


def _apply_to_mirror(mirror: _Mirror, changes: ChangeSet) -> None:
    mirror.epoch += 1
    for g in (*changes.group_adds, *changes.group_mods):
        mirror.groups[g.group_id] = g
    for r in changes.flow_adds:
        mirror.flows[r.key] = r
    for r in changes.flow_deletes:
        mirror.flows.pop(r.key, None)
    for gid in changes.group_deletes:
        mirror.groups.pop(gid, None)
