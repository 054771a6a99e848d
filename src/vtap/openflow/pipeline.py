"""The OpenFlow pipeline vtap owns, declared as data in one place.

Tables, in the order a packet meets them:

    0  INGRESS    LLDP trap; fabric ports mark the packet (metadata FABRIC) and go to TRANSIT;
                  host ports go to CLASSIFY when the switch classifies, else to FORWARD
    2  TRANSIT    copies from the fabric: carried on or delivered by their MPLS label; any
                  other MPLS frame from the fabric is dropped; the rest goes on to CLASSIFY
    3  CLASSIFY   one entry: resubmit to every shape table of this switch, then EMIT
    10..249       shape tables: one per set of fields that policies pin (a *shape*). Entries of
                  one shape are disjoint or identical, so at most one matches: "want" tables
                  set the bit of each monitor slot to copy to, "suppress" tables (visited
                  after every want table) clear the bits of monitors already served
    4  EMIT       no bit set: forward; else note the ethertype (ETHCLASS), apply the switch's
                  copy group (a bucket per slot, each resubmitting to COPY), forward
    5  COPY       per slot: if its bit is set, make the copy (push the label, output)
    6  ETHCLASS   the packet's ethertype class into REG_ETHCLASS (carried in the copy's MPLS TC
                  so the monitor's edge knows what to pop back to)
    1  FORWARD    the forwarding app: reactive per-5-tuple paths, ARP/IPv4 to the controller

Cookies name the owner of every rule so that ownership survives a controller restart:

    bits 63..48  0x5654 ("VT"): the rule is vtap's
    bits 47..40  owner kind (Owner)
    bits 39..0   owner id (e.g. a policy id); 0 for the shared pipeline and forwarding
"""

from __future__ import annotations

from enum import IntEnum

TABLE_INGRESS = 0
TABLE_TAP = TABLE_INGRESS  # the table-0 name the seed's single-table pipeline used
TABLE_FORWARD = 1
TABLE_TRANSIT = 2
TABLE_CLASSIFY = 3
TABLE_EMIT = 4
TABLE_COPY = 5
TABLE_ETHCLASS = 6
TABLE_SHAPE_FIRST = 10
TABLE_SHAPE_LAST = 249

# Table 0
PRIO_LLDP_TRAP = 65000
PRIO_FABRIC_MARK = 100
PRIO_TO_CLASSIFY = 1
PRIO_TAP_DEFAULT = 0  # the base pipeline's "no TAP here: forward"
# TRANSIT
PRIO_COPY_TRANSIT = 100
PRIO_FOREIGN_MPLS = 10
PRIO_TRANSIT_DEFAULT = 0
# shape tables: constant, so adding a policy never re-prioritises another entry
PRIO_WANT = 100
PRIO_WANT_EXCLUDED_PORT = 200  # a destination policy's ports that must not copy
PRIO_SUPPRESS = 100
# EMIT, COPY, ETHCLASS
PRIO_NOTHING_WANTED = 10
PRIO_EMIT = 0
PRIO_COPY = 10
PRIO_COPY_BACK = 20  # the copy leaves by the port the packet came in on: IN_PORT
PRIO_ETHCLASS = 10
# FORWARD
PRIO_PATH = 1000
PRIO_ARP_TRAP = 20
PRIO_IPV4_TRAP = 10

# Packet metadata and registers (they live only while the switch handles the packet).
META_FABRIC = 0x1  # the packet entered by a fabric port
WANT_REGS = 8  # reg0..reg7: one bit per monitor slot
SLOTS_PER_SWITCH = WANT_REGS * 32
REG_SLOT = 8  # the slot a copy bucket is making a copy for
REG_ETHCLASS = 9  # bits 0..2 the ethertype class, bit 8 "class known"
ETHCLASS_KNOWN = 0x100

# The ethertypes a copy can carry, by class (the MPLS TC of the copy). MPLS has no next-protocol
# field, so the monitor's edge pops each class back to its own ethertype. Open vSwitch reads
# the ethertype after up to two VLAN tags; the two tag types cover deeper stacks.
ETHERTYPE_CLASSES = (0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8, 0x8847, 0x8848, 0x8035)
ETH_TYPE_MPLS = 0x8847

COOKIE_MAGIC = 0x5654
COOKIE_OURS_MASK = 0xFFFF << 48
COOKIE_OWNER_MASK = 0xFFFFFF << 40
_ID_MASK = (1 << 40) - 1


class Owner(IntEnum):
    PIPELINE = 1  # static trap and table-miss rules
    FORWARDING = 2  # reactive per-5-tuple paths
    POLICY = 3  # TAP policies (owner id = policy id)
    TAP_SHARED = 4  # TAP rules several policies need, and the TAP pipeline of a switch


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
GROUP_COPY = GROUP_ID_FIRST + 1  # the switch's copy group: one bucket per monitor slot


def owns_group(group_id: int) -> bool:
    """True for a group id in vtap's range: the reconciler may delete it."""
    return GROUP_ID_FIRST <= group_id <= GROUP_ID_LAST


def owner_mask() -> int:
    """Cookie mask that selects every rule of one owner kind (any owner id)."""
    return COOKIE_OWNER_MASK
