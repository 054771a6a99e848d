"""Copies made per monitor slot, from the packet counters of the switches' copy entries.

A copy entry (table COPY) makes the copies of one monitor slot on one switch; its counters are
the copies that slot's copy key (a monitor, or a rewrite policy) received from that switch. A
slot serves every policy classified there that copies to its monitor, so each of them is
credited with the slot's copies (as `GET /policies/{id}/stats` does). The compiler records
which copy key each copy entry serves (TapCompiler.copy_entries); a policy's slot is its
placement's (origin, copy key). Totals are kept per slot, not per policy: a round costs the
same with ten policies or fifty thousand.

Pure: the entries and the counters come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vtap.openflow.rules import EntryKey

Slot = tuple[int, str]  # (switch, copy key)
CopyEntries = Mapping[EntryKey, tuple[str, frozenset[int]]]  # key → (copy key, policies)


@dataclass(frozen=True, slots=True)
class CopyTotal:
    packets: int = 0
    bytes: int = 0


def slot_totals(
    entries: Mapping[int, CopyEntries],
    counters: Mapping[int, Mapping[EntryKey, tuple[int, int]]],
) -> dict[Slot, CopyTotal]:
    """Copied packets and bytes per (switch, copy key), over each slot's copy entries."""
    packets: dict[Slot, int] = {}
    octets: dict[Slot, int] = {}
    for dpid, by_key in entries.items():
        read = counters.get(dpid)
        if not read:
            continue
        for key, (copy_key, _users) in by_key.items():
            count = read.get(key)
            if count is None:
                continue
            slot = (dpid, copy_key)
            packets[slot] = packets.get(slot, 0) + count[0]
            octets[slot] = octets.get(slot, 0) + count[1]
    return {slot: CopyTotal(packets[slot], octets[slot]) for slot in packets}
