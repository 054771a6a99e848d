"""Keeps what every switch holds equal to the intent: desired vs. actual, barrier-confirmed.

The reconciler keeps a mirror of the entries it owns on each switch (read back from the switch
when it joins, updated after every confirmed batch), so a round needs no dump: it diffs the
desired rules against the mirror and sends only the difference. A rejected batch re-reads the
switch, because after an error the mirror can no longer be trusted.

Rounds are requested (policy change, topology change, host event), coalesced, and run one at a
time; callers can wait for the round that includes their change. A round starts `debounce`
after the first request, so that a burst of events makes one round; a request someone waits
for (an operator's change through the API) is `urgent` and starts the round at once, taking
along every request made so far (later ones make the next round).

Most rounds change a few switches. A switch whose desired rules are equal to those of its last
successful sync, with the mirror untouched since, is not diffed again: the diff would be empty.
Anything that touches the mirror (a join, a rejected batch and the re-read, a lost connection)
forgets that, so such a switch is diffed in full in the next round.

A switch that joined only a moment ago, or a controller that just started, has not yet seen the
fabric's links: compiling against that partial view would delete TAP entries that are right. So
TAP entries on a switch are synced only once the switch has been connected for `settle` seconds
(the pipeline's own rules are synced at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vtap.openflow.diff import ChangeSet, diff
from vtap.openflow.pipeline import (
    COOKIE_MAGIC,
    COOKIE_OURS_MASK,
    Owner,
    owner_of,
    owns_group,
)
from vtap.openflow.rules import FlowRule, FlowStat, GroupRule
from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import BatchError, SessionClosed, SwitchSession

log = logging.getLogger(__name__)

_TAP_OWNERS = (Owner.POLICY, Owner.TAP_SHARED)


def is_reconciled(cookie: int) -> bool:
    """Entries the reconciler owns: ours, except reactive paths (the forwarding app's)."""
    owner = owner_of(cookie)
    return owner is not None and owner[0] is not Owner.FORWARDING


def is_tap(cookie: int) -> bool:
    owner = owner_of(cookie)
    return owner is not None and owner[0] in _TAP_OWNERS


@dataclass
class Desired:
    flows: list[FlowRule]
    groups: list[GroupRule]


@dataclass
class SyncResult:
    """What one switch's sync did: how many changes, and which entries it rejected."""

    dpid: int
    applied: int = 0
    rejected: list[tuple[FlowRule | GroupRule | int, m.Error]] = field(default_factory=list)
    error: str = ""  # the switch could not be synced at all (disconnected, timeout)
    tap_synced: bool = False

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.error


@dataclass
class _Mirror:
    flows: dict[tuple[int, int, object], FlowRule] = field(default_factory=dict)
    groups: dict[int, GroupRule] = field(default_factory=dict)
    joined_at: float = 0.0
    # What the last successful sync made this switch hold: (tap synced, flows, groups). None
    # when the mirror changed otherwise, or no sync has finished since it was read.
    synced: tuple[bool, list[FlowRule], list[GroupRule]] | None = None


DesiredFn = Callable[[int, bool], Desired]


class Reconciler:
    def __init__(
        self,
        sessions: dict[int, SwitchSession],
        desired: DesiredFn,
        clock: Callable[[], float],
        settle: float,
    ) -> None:
        self._sessions = sessions
        self._desired = desired
        self._clock = clock
        self._settle = settle
        self._mirrors: dict[int, _Mirror] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._requested = 0
        self._completed = 0
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._done = asyncio.Condition()
        self.before_round: Callable[[], None] = lambda: None
        self.after_round: Callable[[dict[int, SyncResult]], None] = lambda _results: None

    # ------------------------------------------------------------ rounds

    def request(self, urgent: bool = False) -> int:
        """Ask for a round; returns a ticket that `wait()` accepts. An urgent request (someone
        waits for it) cuts the debounce short."""
        self._requested += 1
        self._wake.set()
        if urgent:
            self._urgent.set()
        return self._requested

    async def wait(self, ticket: int, timeout: float) -> bool:
        """Wait until the round covering `ticket` finished; False on timeout."""
        try:
            async with asyncio.timeout(timeout), self._done:
                await self._done.wait_for(lambda: self._completed >= ticket)
        except TimeoutError:
            return False
        return True

    async def run(self, debounce: float = 0.01) -> None:
        while True:
            await self._wake.wait()
            # Coalesce a burst of requests into one round, unless someone is waiting for it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(debounce):
                    await self._urgent.wait()
            await asyncio.sleep(0)  # requests made in the same turn of the loop join this round
            self._wake.clear()
            self._urgent.clear()
            ticket = self._requested
            try:
                self.before_round()
                results = await self.sync_all()
                self.after_round(results)
            except Exception:
                log.exception("reconcile round failed")
            async with self._done:
                self._completed = ticket
                self._done.notify_all()

    def settled(self, dpid: int) -> bool:
        mirror = self._mirrors.get(dpid)
        return mirror is not None and self._clock() - mirror.joined_at >= self._settle

    def settle_remaining(self, dpid: int) -> float:
        mirror = self._mirrors.get(dpid)
        if mirror is None:
            return self._settle
        return max(0.0, self._settle - (self._clock() - mirror.joined_at))

    # ------------------------------------------------------------ switches

    async def join(self, session: SwitchSession) -> tuple[list[FlowRule], SyncResult]:
        """Read what a joining switch holds; sync it. Returns the forwarding entries found
        (for the forwarding app to adopt) and the sync result."""
        dpid = session.dpid
        assert dpid is not None
        found = await self._read(session)
        mirror = _Mirror(joined_at=self._clock())
        adopted = []
        for rule in found[0]:
            if is_reconciled(rule.cookie):
                mirror.flows[rule.key] = rule
            else:
                adopted.append(rule)
        mirror.groups = {g.group_id: g for g in found[1] if owns_group(g.group_id)}
        self._mirrors[dpid] = mirror
        result = await self.sync(dpid)
        return adopted, result

    def leave(self, dpid: int) -> None:
        self._mirrors.pop(dpid, None)
        self._locks.pop(dpid, None)

    async def sync_all(self) -> dict[int, SyncResult]:
        dpids = sorted(self._mirrors)
        results = await asyncio.gather(*(self.sync(d) for d in dpids))
        return dict(zip(dpids, results, strict=True))

    async def sync(self, dpid: int) -> SyncResult:
        lock = self._locks.setdefault(dpid, asyncio.Lock())
        async with lock:
            return await self._sync(dpid)

    async def _sync(self, dpid: int) -> SyncResult:
        result = SyncResult(dpid)
        session = self._sessions.get(dpid)
        mirror = self._mirrors.get(dpid)
        if session is None or mirror is None:
            result.error = "not connected"
            return result
        tap = self.settled(dpid)
        result.tap_synced = tap
        want = self._desired(dpid, tap)
        if mirror.synced is not None and mirror.synced == (tap, want.flows, want.groups):
            return result  # nothing changed on either side since the last successful sync
        synced = (tap, want.flows, want.groups)
        mirror.synced = None

        def owned(cookie: int) -> bool:
            return is_reconciled(cookie) and (tap or not is_tap(cookie))

        actual = [r for r in mirror.flows.values() if owned(r.cookie)]
        changes = diff(
            want.flows,
            actual,
            owns_cookie=owned,
            desired_groups=want.groups if tap else [],
            actual_groups=list(mirror.groups.values()) if tap else [],
            owns_group=owns_group,
        )
        if changes.empty:
            mirror.synced = synced
            return result
        try:
            await session.apply(codec.change_messages(changes))
        except BatchError as exc:
            result.rejected = _rejected(changes, exc.failures)
            log.warning("switch %016x: %d change(s) rejected: %s", dpid, len(exc.failures), exc)
            await self._reread(session, mirror)
            return result
        except (SessionClosed, ConnectionError, OSError) as exc:
            result.error = str(exc)
            return result
        _apply_to_mirror(mirror, changes)
        mirror.synced = synced
        result.applied = len(changes)
        log.info("switch %016x: %d change(s) confirmed", dpid, len(changes))
        return result

    async def _reread(self, session: SwitchSession, mirror: _Mirror) -> None:
        with contextlib.suppress(SessionClosed, ConnectionError, OSError):
            flows, groups = await self._read(session)
            mirror.flows = {r.key: r for r in flows if is_reconciled(r.cookie)}
            mirror.groups = {g.group_id: g for g in groups if owns_group(g.group_id)}
        mirror.synced = None

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


def _ordered(changes: ChangeSet) -> Sequence[FlowRule | GroupRule | int]:
    """The objects behind `codec.change_messages(changes)`, index for index."""
    return [
        *changes.group_adds,
        *changes.group_mods,
        *changes.flow_adds,
        *changes.flow_deletes,
        *changes.group_deletes,
    ]


def _rejected(
    changes: ChangeSet, failures: dict[int, m.Error]
) -> list[tuple[FlowRule | GroupRule | int, m.Error]]:
    ordered = _ordered(changes)
    return [(ordered[i], err) for i, err in sorted(failures.items()) if i < len(ordered)]


def _apply_to_mirror(mirror: _Mirror, changes: ChangeSet) -> None:
    for g in (*changes.group_adds, *changes.group_mods):
        mirror.groups[g.group_id] = g
    for r in changes.flow_adds:
        mirror.flows[r.key] = r
    for r in changes.flow_deletes:
        mirror.flows.pop(r.key, None)
    for gid in changes.group_deletes:
        mirror.groups.pop(gid, None)
