"""Copies made per policy, from the packet counters of the switches' copy entries.

A copy entry (table COPY) makes the copies of one monitor slot on one switch; its counters are
the copies that monitor received from that switch. A slot serves every policy classified there
that copies to its monitor, so each of them is credited with the slot's copies (as
`GET /policies/{id}/stats` does). The compiler records which policies each copy entry serves
(TapCompiler.copy_entries), so nothing here guesses from actions or tags.

Pure: the entries and the counters come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vtap.openflow.rules import EntryKey


@dataclass(frozen=True, slots=True)
class CopyTotal:
    packets: int = 0
    bytes: int = 0


CopyEntries = Mapping[EntryKey, tuple[str, frozenset[int]]]  # key → (copy key, policies)


def copy_totals(
    policy_ids: Iterable[int],
    entries: Mapping[int, CopyEntries],
    counters: Mapping[int, Mapping[EntryKey, tuple[int, int]]],
) -> dict[int, CopyTotal]:
    """Copied packets and bytes per policy id, summed over the switches that copy for it."""
    packets = dict.fromkeys(policy_ids, 0)
    octets = dict.fromkeys(packets, 0)
    for dpid, by_key in entries.items():
        read = counters.get(dpid)
        if not read:
            continue
        for key, (_copy_key, users) in by_key.items():
            count = read.get(key)
            if count is None:
                continue
            for pid in users:
                if pid in packets:
                    packets[pid] += count[0]
                    octets[pid] += count[1]
    return {pid: CopyTotal(packets[pid], octets[pid]) for pid in packets}
