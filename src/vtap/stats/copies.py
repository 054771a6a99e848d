"""Copies made per policy, from the group counters of every switch read in one poll.

A TAP group has one production bucket and one copy bucket per monitor; a bucket's counters are
the copies that monitor received from that switch. Groups may be shared by several policies
(overlap combinations) and a monitor's copy bucket then serves every policy that feeds it, so
each of them is credited with that bucket (as `GET /policies/{id}/stats` does).

Pure: the plan, tag allocations, hosts and counters come in as arguments, and one pass over the
plan's groups serves all policies (a per-policy walk would cost policies × groups per poll).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from vtap.openflow.rules import Action, Output, SetField
from vtap.compiler.tags import monitor_tag_key, policy_tag_key
from vtap.compiler.tap import TapPlan
from vtap.domain.network import Host, PortRef
from vtap.domain.policy import Policy
from vtap.ofchannel.messages import GroupCounters


class Hosts(Protocol):
    def by_ip(self, ip: str) -> Host | None: ...

    def at(self, location: PortRef) -> list[Host]: ...


@dataclass(frozen=True, slots=True)
class CopyTotal:
    packets: int = 0
    bytes: int = 0


def bucket_feeds(
    dpid: int, actions: Iterable[Action], tag_keys: Mapping[int, str], hosts: Hosts
) -> str | None:
    """The tag key a copy bucket feeds (`monitor:<mac>` or `policy:<id>`); None for the
    production bucket. An untagged bucket outputs straight to a monitor on this switch."""
    outputs: list[int] = []
    for action in actions:
        if isinstance(action, SetField) and action.field == "vlan_vid":
            return tag_keys.get(int(action.value) & 0xFFF)
        if isinstance(action, Output):
            outputs.append(action.port)
    if len(outputs) == 1:
        attached = hosts.at(PortRef(dpid, outputs[0]))
        if attached:
            return monitor_tag_key(attached[0].mac)
    return None


def monitor_keys(policy: Policy, hosts: Hosts) -> set[str]:
    """The tag keys whose copy buckets feed this policy's monitor."""
    keys = {policy_tag_key(policy.id)}
    mac = policy.monitor_mac
    if mac is None and policy.monitor_ip is not None:
        host = hosts.by_ip(policy.monitor_ip)
        mac = host.mac if host is not None else None
    if mac is not None:
        keys.add(monitor_tag_key(mac))
    return keys


def copy_totals(
    plan: TapPlan,
    policies: Iterable[Policy],
    tags: Mapping[str, int],
    hosts: Hosts,
    counters: Mapping[int, Mapping[int, GroupCounters]],
) -> dict[int, CopyTotal]:
    """Copied packets and bytes per policy id, summed over the switches that copy for it."""
    wanted = {p.id: monitor_keys(p, hosts) for p in policies}
    tag_keys = {vid: key for key, vid in tags.items()}
    packets: dict[int, int] = dict.fromkeys(wanted, 0)
    octets: dict[int, int] = dict.fromkeys(wanted, 0)
    for dpid, groups in plan.groups.items():
        read = counters.get(dpid)
        if not read:
            continue
        owners = plan.group_owners.get(dpid, {})
        for group in groups:
            counter = read.get(group.group_id)
            fed = [pid for pid in owners.get(group.group_id, ()) if pid in wanted]
            if counter is None or not fed:
                continue
            for index, bucket in enumerate(group.buckets):
                if index >= len(counter.bucket_packets):
                    break
                key = bucket_feeds(dpid, bucket.actions, tag_keys, hosts)
                if key is None:
                    continue
                for pid in fed:
                    if key in wanted[pid]:
                        packets[pid] += counter.bucket_packets[index]
                        octets[pid] += counter.bucket_bytes[index]
    return {pid: CopyTotal(packets[pid], octets[pid]) for pid in wanted}
