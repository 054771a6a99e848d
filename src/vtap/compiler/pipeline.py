"""The OpenFlow pipeline vtap owns, declared as data in one place.

Table 0 classifies for TAP policies (and traps LLDP before anything can copy it); table 1
forwards. Cookies name the owner of every rule so that ownership survives a controller restart:

    bits 63..48  0x5654 ("VT"): the rule is vtap's
    bits 47..40  owner kind (Owner)
    bits 39..0   owner id (e.g. a policy id); 0 for the shared pipeline and forwarding
"""

from __future__ import annotations

from enum import IntEnum

TABLE_TAP = 0
TABLE_FORWARD = 1

# Table 0, highest first. A copy of a packet carries an outer tag from the reserved range;
# guards drop such tags arriving from hosts, transit/delivery rules carry copies to the
# monitor above every classification rule (a copy is never copied again), and classification
# rules sit at PRIO_TAP_BASE + the number of policies they combine (see compiler/tap.py).
PRIO_LLDP_TRAP = 65000
PRIO_GUARD = 60000
PRIO_COPY_TRANSIT = 50000
PRIO_TAP_MAX = PRIO_COPY_TRANSIT - 1
PRIO_TAP_BASE = 1000
PRIO_TAP_DEFAULT = 0
# Table 1
PRIO_PATH = 1000
PRIO_ARP_TRAP = 20
PRIO_IPV4_TRAP = 10

COOKIE_MAGIC = 0x5654
COOKIE_OURS_MASK = 0xFFFF << 48
COOKIE_OWNER_MASK = 0xFFFFFF << 40
_ID_MASK = (1 << 40) - 1


class Owner(IntEnum):
    PIPELINE = 1  # static trap and table-miss rules
    FORWARDING = 2  # reactive per-5-tuple paths
    POLICY = 3  # TAP policies (owner id = policy id)
    TAP_SHARED = 4  # TAP rules several policies need (combinations, copy transit, guards)


def cookie(owner: Owner, owner_id: int = 0) -> int:
    if not 0 <= owner_id <= _ID_MASK:
        raise ValueError(f"owner id {owner_id} does not fit in a cookie")
    return (COOKIE_MAGIC << 48) | (int(owner) << 40) | owner_id


def owner_of(value: int) -> tuple[Owner, int] | None:
    """Who owns a rule with this cookie, or None if it is not vtap's."""
    if value >> 48 != COOKIE_MAGIC:
        return None
    try:
        owner = Owner((value >> 40) & 0xFF)
    except ValueError:
        return None
    return owner, value & _ID_MASK


# Groups carry no cookie in OpenFlow 1.3, so vtap owns a range of group ids instead.
GROUP_ID_FIRST = 0x56000000
GROUP_ID_LAST = 0x56FFFFFF


def owns_group(group_id: int) -> bool:
    """True for a group id in vtap's range: the reconciler may delete it."""
    return GROUP_ID_FIRST <= group_id <= GROUP_ID_LAST


def owner_mask() -> int:
    """Cookie mask that selects every rule of one owner kind (any owner id)."""
    return COOKIE_OWNER_MASK
