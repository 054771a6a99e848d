"""The forwarding entries vtap believes each switch holds, by 5-tuple.

Filled when a path is installed (and when a reconnecting switch reports entries a previous
controller run installed), emptied by FlowRemoved. Failure handling asks it which flows cross a
dead link; the flow-statistics view reads it for the switches on a flow's path.
"""

from __future__ import annotations

from collections.abc import Iterator

from vtap.domain.network import FlowKey, Link, PortRef
from vtap.openflow.rules import FlowRule, Output, ReservedPort


def _out_ports(rule: FlowRule) -> set[int]:
    return {a.port for a in rule.actions if isinstance(a, Output)}


class InstalledFlows:
    def __init__(self) -> None:
        self._by_key: dict[FlowKey, dict[int, FlowRule]] = {}

    def add(self, key: FlowKey, dpid: int, rule: FlowRule) -> None:
        self._by_key.setdefault(key, {})[dpid] = rule

    def remove(self, key: FlowKey, dpid: int) -> None:
        hops = self._by_key.get(key)
        if hops is None:
            return
        hops.pop(dpid, None)
        if not hops:
            del self._by_key[key]

    def drop_key(self, key: FlowKey) -> dict[int, FlowRule]:
        return self._by_key.pop(key, {})

    def drop_switch(self, dpid: int) -> None:
        for key in [k for k, hops in self._by_key.items() if dpid in hops]:
            self.remove(key, dpid)

    def hops(self, key: FlowKey) -> dict[int, FlowRule]:
        return dict(self._by_key.get(key, {}))

    def __contains__(self, key: FlowKey) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[FlowKey]:
        return iter(list(self._by_key))

    def crossing(self, links: list[Link]) -> list[FlowKey]:
        """Flows whose entries send packets into one of these links (either direction)."""
        ends: set[PortRef] = set()
        for link in links:
            ends.add(link.src)
            ends.add(link.dst)
        hit = []
        for key, hops in self._by_key.items():
            for dpid, rule in hops.items():
                ports = _out_ports(rule)
                if ReservedPort.IN_PORT in ports and rule.match.in_port is not None:
                    ports.add(rule.match.in_port)
                if any(PortRef(dpid, p) in ends for p in ports):
                    hit.append(key)
                    break
        return hit

    def involving(self, ip: str) -> list[FlowKey]:
        return [k for k in self._by_key if ip in (k.ipv4_src, k.ipv4_dst)]
