"""Sticky numbers the TAP compiler hands out: copy labels, monitor slots, shape tables.

* A **copy label** (MPLS label) marks a copy for one *copy key* while it crosses the fabric:
  `monitor:<mac>` for tagged delivery (one label per monitor, however many policies feed it)
  and `policy:<id>` for rewrite delivery to a monitor on another switch (the monitor's edge
  must know which destination to restore). 20-bit labels: a million monitors fit.
* A **monitor slot** is a bit in a switch's "want" registers: per switch, one per copy key
  that switch makes copies for (SLOTS_PER_SWITCH of them).
* A **shape table** holds one shape of match: want tables per policy shape (with in_port for
  source policies), suppress tables per source cube shape (with the fabric mark).

Every allocation is kept across restarts (the store persists `changes()`), so a restarted
controller computes exactly the rules the switches hold. A number is released only when
nothing can need it back soon: a label when no enabled policy names its key, a slot when its
key is released or its switch runs out, a table when no enabled policy has its shape. New
numbers take the lowest free one, preferring numbers nobody held before (a number released a
moment ago may still sit in a rule on some switch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from vtap.openflow.pipeline import SLOTS_PER_SWITCH, TABLE_SHAPE_FIRST, TABLE_SHAPE_LAST

LABEL_MIN = 16  # MPLS labels 0..15 are reserved
LABEL_MAX = (1 << 20) - 1


@dataclass(frozen=True, slots=True)
class TapConfig:
    """Settings of the TAP compiler: the MPLS label range copies may use."""

    label_first: int = 16
    label_last: int = LABEL_MAX

    def __post_init__(self) -> None:
        if not LABEL_MIN <= self.label_first <= self.label_last <= LABEL_MAX:
            raise ValueError(
                f"bad copy-label range {self.label_first}-{self.label_last} "
                f"(MPLS labels {LABEL_MIN}-{LABEL_MAX})"
            )

    def describe_range(self) -> str:
        return f"{self.label_first}-{self.label_last}"


def monitor_key(mac: str) -> str:
    return f"monitor:{mac.lower()}"


def policy_key(policy_id: int) -> str:
    return f"policy:{policy_id}"


def slot_record(dpid: int, copy_key: str) -> str:
    return f"slot:{dpid:016x}:{copy_key}"


def table_record(kind: str, shape_name: str) -> str:
    return f"table:{kind}:{shape_name}"


class _Pool:
    """Numbers first..last handed to keys; lowest free first, never-held before released."""

    def __init__(self, first: int, last: int, record: Callable[[str, int | None], None]) -> None:
        self.first, self.last = first, last
        self._record = record
        self.by_key: dict[str, int] = {}
        self.by_number: dict[int, str] = {}
        self._next_fresh = first  # below it every number was held at some point
        self._released: list[int] = []  # held before, free now (reused last)

    def load(self, key: str, number: int) -> bool:
        if not self.first <= number <= self.last or number in self.by_number:
            return False  # out of range, or two keys claim it (a corrupt store): neither
        self.by_key[key] = number
        self.by_number[number] = key
        return True

    def finish_load(self) -> None:
        held = sorted(self.by_number)
        self._next_fresh = held[-1] + 1 if held else self.first
        self._released = [n for n in range(self.first, self._next_fresh) if n not in self.by_number]
        self._released.reverse()  # pop() takes the lowest

    def take(self, key: str) -> int | None:
        number = self.by_key.get(key)
        if number is not None:
            return number
        if self._next_fresh <= self.last:
            number = self._next_fresh
            self._next_fresh += 1
        elif self._released:
            number = self._released.pop()
        else:
            return None
        self.by_key[key] = number
        self.by_number[number] = key
        self._record(key, number)
        return number

    def release(self, key: str) -> None:
        number = self.by_key.pop(key, None)
        if number is not None:
            del self.by_number[number]
            self._released.append(number)
            self._released.sort(reverse=True)
            self._record(key, None)

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class Allocations:
    """All sticky numbers, loaded from and saved to one key → int mapping (the store's)."""

    def __init__(self, config: TapConfig, saved: Mapping[str, int] | None = None) -> None:
        self.config = config
        self._changed: dict[str, int | None] = {}
        self.labels = _Pool(config.label_first, config.label_last, self._changed.__setitem__)
        self.tables = _Pool(TABLE_SHAPE_FIRST, TABLE_SHAPE_LAST, self._changed.__setitem__)
        self._slots: dict[int, _Pool] = {}
        dropped: list[str] = []
        for record, number in (saved or {}).items():
            if record.startswith("slot:"):
                _, dpid_hex, copy_key = record.split(":", 2)
                ok = self._slot_pool(int(dpid_hex, 16)).load(copy_key, number)
            elif record.startswith("table:"):
                ok = self.tables.load(record, number)
            else:
                ok = self.labels.load(record, number)
            if not ok:
                dropped.append(record)
        for pool in (self.labels, self.tables, *self._slots.values()):
            pool.finish_load()
        for record in dropped:  # invalid or clashing: the store forgets them
            self._changed[record] = None

    def _slot_pool(self, dpid: int) -> _Pool:
        pool = self._slots.get(dpid)
        if pool is None:

            def record(key: str, number: int | None) -> None:
                self._changed[slot_record(dpid, key)] = number

            pool = self._slots[dpid] = _Pool(0, SLOTS_PER_SWITCH - 1, record)
        return pool

    # --- labels -----------------------------------------------------------------------------

    def label(self, copy_key: str) -> int | None:
        return self.labels.take(copy_key)

    def label_of(self, copy_key: str) -> int | None:
        return self.labels.by_key.get(copy_key)

    def label_keys(self) -> list[str]:
        return list(self.labels.by_key)

    def release_label(self, copy_key: str, busy_on: Iterable[int] = ()) -> None:
        """The key is gone: its label, and its slots on every switch but those `busy_on`
        (a monitor's slot on its own switch serves rewrite policies too)."""
        self.labels.release(copy_key)
        keep = set(busy_on)
        for dpid, pool in self._slots.items():
            if dpid not in keep:
                pool.release(copy_key)

    # --- slots ------------------------------------------------------------------------------

    def slot(
        self, dpid: int, copy_key: str, in_use: Callable[[], Iterable[str]] = tuple
    ) -> int | None:
        """The key's slot on this switch; when the switch has none left, slots of keys not
        `in_use()` there are reclaimed first (lowest slot first)."""
        pool = self._slot_pool(dpid)
        number = pool.take(copy_key)
        if number is None:
            busy = set(in_use())
            for idle in sorted(k for k in pool.by_key if k not in busy):
                pool.release(idle)
            number = pool.take(copy_key)
        return number

    def slots_of(self, dpid: int) -> Mapping[str, int]:
        return self._slot_pool(dpid).by_key

    # --- tables -----------------------------------------------------------------------------

    def table(self, kind: str, shape_name: str) -> int | None:
        return self.tables.take(table_record(kind, shape_name))

    def release_table(self, kind: str, shape_name: str) -> None:
        self.tables.release(table_record(kind, shape_name))

    # --- persistence ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        out = dict(self.labels.by_key)
        out.update(self.tables.by_key)
        for dpid, pool in self._slots.items():
            for key, number in pool.by_key.items():
                out[slot_record(dpid, key)] = number
        return out

    def changes(self) -> tuple[dict[str, int], list[str]]:
        """What changed since the last `changes()` (or the load): (set, delete) for the store."""
        changed = {k: v for k, v in self._changed.items() if v is not None}
        gone = [k for k, v in self._changed.items() if v is None]
        self._changed.clear()
        return changed, gone
