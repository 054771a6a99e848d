"""Copy tags: outer VLAN ids from a reserved range that mark a packet as a TAP copy.

A copy travels to its monitor with an outer 802.1ad tag (TPID 0x88a8) pushed outside any tag
the packet already has. The tag is what makes a copy distinguishable from every genuine packet:
guards drop it on host ports, so no host can forge one, and transit and delivery rules forward
by it alone.

Keys name what a tag stands for:
* ``monitor:<mac>`` — tagged delivery: one tag per monitor, however many policies feed it, so
  a range of ~100 ids serves thousands of policies.
* ``policy:<id>`` — rewrite delivery: the monitor's edge must know which destination address
  to restore, so each such policy needs its own tag.

Allocations are persisted by the caller (the store's tags table) and passed back in, so a
monitor keeps its tag across restarts and the rules read back from switches still match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TapConfig:
    """Settings of the TAP compiler.

    `tag_first` to `tag_last` (inclusive) is the reserved VLAN range: no genuine traffic may use
    it (frames carrying such a tag are dropped at host ports). `max_combinations` bounds the
    overlap rules per switch port (see compiler/tap.py).
    """

    tag_first: int = 3900
    tag_last: int = 4000
    outer_tpid: int = 0x88A8
    max_combinations: int = 1024

    def __post_init__(self) -> None:
        if not 1 <= self.tag_first <= self.tag_last <= 4094:
            raise ValueError(f"bad copy-tag range {self.tag_first}-{self.tag_last}")
        if self.max_combinations < 1:
            raise ValueError("max_combinations must be positive")

    def in_range(self, vid: int) -> bool:
        return self.tag_first <= vid <= self.tag_last

    @property
    def size(self) -> int:
        return self.tag_last - self.tag_first + 1

    def describe_range(self) -> str:
        return f"{self.tag_first}-{self.tag_last}"


def monitor_tag_key(mac: str) -> str:
    return f"monitor:{mac.lower()}"


def policy_tag_key(policy_id: int) -> str:
    return f"policy:{policy_id}"


def allocate(
    existing: Mapping[str, int], needed: Iterable[str], config: TapConfig
) -> dict[str, int]:
    """Tags for every needed key that fits in the range; deterministic.

    A needed key that already holds a valid tag keeps it (no rule churn on recompilation).
    New keys, in sorted order, take the lowest free tag, preferring tags no key held before:
    a tag released a moment ago may still sit in rules on some switch, so it is reused last.
    Keys no longer needed are dropped from the result (their tags are released). Keys that do
    not fit are left out; the compiler then reports their policies pending ("range exhausted").
    """
    wanted = sorted(set(needed))
    result: dict[str, int] = {}
    taken: set[int] = set()
    for key in wanted:
        tag = existing.get(key)
        if tag is not None and config.in_range(tag) and tag not in taken:
            result[key] = tag
            taken.add(tag)
    held_before = set(existing.values())
    all_tags = range(config.tag_first, config.tag_last + 1)
    fresh = [t for t in all_tags if t not in taken and t not in held_before]
    released = [t for t in all_tags if t not in taken and t in held_before]
    free = iter(fresh + released)
    for key in wanted:
        if key in result:
            continue
        tag = next(free, None)
        if tag is None:
            break
        result[key] = tag
    return result


class _TagUser(Protocol):
    id: int
    enabled: bool
    delivery: str
    monitor_mac: str | None
    monitor_ip: str | None


def still_referenced(
    existing: Mapping[str, int],
    policies: Iterable[_TagUser],
    mac_of_ip: Callable[[str], str | None],
) -> set[str]:
    """Keys of `existing` that an enabled policy still names, ready to compile or not.

    A policy may be pending for a moment — its switch has not rejoined after a controller
    restart, a link is down — and must not lose its tag meanwhile: the tag would be handed
    out again in another order and every switch's transit, delivery and guard rules would
    change (churn, and a window in which copies go to the wrong monitor)."""
    keys: set[str] = set()
    for policy in policies:
        if not policy.enabled:
            continue
        if policy.delivery != "tagged":
            keys.add(policy_tag_key(policy.id))
            continue
        mac = policy.monitor_mac or (mac_of_ip(policy.monitor_ip) if policy.monitor_ip else None)
        if mac is None:
            # A monitor known only by an IP nobody has answered for yet: any monitor tag may
            # be its own, so none is released until it is found.
            keys.update(k for k in existing if k.startswith("monitor:"))
        else:
            keys.add(monitor_tag_key(mac))
    return keys & set(existing)
