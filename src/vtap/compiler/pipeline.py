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

# Table 0
PRIO_LLDP_TRAP = 65000
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


def owner_mask() -> int:
    """Cookie mask that selects every rule of one owner kind (any owner id)."""
    return COOKIE_OWNER_MASK
