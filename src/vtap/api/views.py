"""Controller state turned into the rows the REST API and the event stream send.

Rows are plain JSON-ready dicts in the shape of the response models (schemas.FlowOut, …):
the event stream sends thousands of them a second and validating each through pydantic would
cost more than the poll itself. The REST routes validate the same rows into their models, so
the two cannot drift apart (and tests check the stream's rows against the models).

A flow's row is cached with the flow record's version: a browser left open on 5,000 flows
costs one row build per flow whose counters changed, not 5,000 per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vtap.api.tappaths import Route, order_hops, peer_map, policy_routes
from vtap.controller.core import Controller
from vtap.domain.network import FlowKey, PortRef, dpid_str
from vtap.domain.policy import Policy
from vtap.stats.flowtable import FlowRecord

Row = dict[str, Any]


def flow_id(key: FlowKey) -> str:
    return f"{key.ip_proto}_{key.ipv4_src}_{key.src_port}_{key.ipv4_dst}_{key.dst_port}"


def parse_flow_id(text: str) -> FlowKey | None:
    parts = text.split("_")
    if len(parts) != 5:
        return None
    proto, src, sport, dst, dport = parts
    if not (proto.isdigit() and sport.isdigit() and dport.isdigit()):
        return None
    return FlowKey(src, dst, int(proto), int(sport), int(dport))


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class FlowFilter:
    """The flows an operator asked for: by host (IP, MAC or name), protocol and port."""

    host: str | None = None
    proto: int | None = None
    port: int | None = None

    def admits(self, key: FlowKey, hosts: set[str]) -> bool:
        if self.proto is not None and key.ip_proto != self.proto:
            return False
        if self.port is not None and self.port not in (key.src_port, key.dst_port):
            return False
        return self.host is None or bool(hosts & {key.ipv4_src, key.ipv4_dst})


class LiveViews:
    """Builds rows from one controller; one instance per app (no module state)."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller
        self._flow_rows: dict[FlowKey, tuple[int, Row]] = {}
        self._peers: tuple[int, dict[PortRef, PortRef]] = (-1, {})

    # ------------------------------------------------------------ names

    def host_name(self, ip: str | None = None, mac: str | None = None) -> str | None:
        names = self._controller.state.settings.host_names
        if ip is not None and ip in names:
            return names[ip]
        if mac is None and ip is not None:
            host = self._controller.state.hosts.by_ip(ip)
            mac = host.mac if host is not None else None
        if mac is not None:
            return names.get(mac) or names.get(mac.upper())
        return None

    def switch_name(self, dpid: int) -> str:
        switch = self._controller.state.topology.switch(dpid)
        return switch.name if switch is not None and switch.name else dpid_str(dpid)

    def host_ips(self, text: str) -> set[str]:
        """The IPs a host filter stands for: the text itself, and a MAC's or a name's IP."""
        ips = {text}
        hosts = self._controller.state.hosts
        host = hosts.by_mac(text) if ":" in text else None
        if host is not None and host.ip:
            ips.add(host.ip)
        for key, name in self._controller.state.settings.host_names.items():
            if name == text:
                ips.add(key)
                by_mac = hosts.by_mac(key) if ":" in key else None
                if by_mac is not None and by_mac.ip:
                    ips.add(by_mac.ip)
        return ips

    def _peer_map(self) -> dict[PortRef, PortRef]:
        topology = self._controller.state.topology
        if self._peers[0] != topology.generation:
            self._peers = (topology.generation, peer_map(topology))
        return self._peers[1]

    # ------------------------------------------------------------ flows

    def _path_order(self, record: FlowRecord) -> list[int]:
        state = self._controller.state
        src = state.hosts.by_ip(record.key.ipv4_src)
        rules = state.flows.hops(record.key)
        order, _ = order_hops(rules, src.location.dpid if src else None, self._peer_map())
        counted = [d for d in order if d in record.hops]
        return counted + sorted(d for d in record.hops if d not in counted)

    def flow_row(self, record: FlowRecord) -> Row:
        cached = self._flow_rows.get(record.key)
        if cached is not None and cached[0] == record.version:
            return cached[1]
        key = record.key
        hops = []
        for dpid in self._path_order(record):
            hop = record.hops[dpid]
            hops.append(
                {
                    "dpid": dpid_str(dpid),
                    "switch": self.switch_name(dpid),
                    "packets": hop.reading.packets,
                    "bytes": hop.reading.bytes,
                    "pps": round(hop.rate.pps, 3),
                    "bps": round(hop.rate.bps, 1),
                }
            )
        first = hops[0] if hops else {"packets": 0, "bytes": 0, "pps": 0.0, "bps": 0.0}
        row = {
            "id": flow_id(key),
            "src_ip": key.ipv4_src,
            "dst_ip": key.ipv4_dst,
            "ip_proto": key.ip_proto,
            "src_port": key.src_port,
            "dst_port": key.dst_port,
            "src_host": self.host_name(key.ipv4_src),
            "dst_host": self.host_name(key.ipv4_dst),
            "first_seen": _when(record.first_seen),
            "last_seen": _when(record.last_seen),
            "packets": first["packets"],
            "bytes": first["bytes"],
            "pps": first["pps"],
            "bps": first["bps"],
            "hops": hops,
        }
        self._flow_rows[record.key] = (record.version, row)
        return row

    def flow_rows(self, flt: FlowFilter | None = None) -> list[Row]:
        """Rows of every in-flight flow (that the filter admits), newest first."""
        table = self._controller.flowstats.flows
        records = list(table)
        live = {r.key for r in records}
        for key in [k for k in self._flow_rows if k not in live]:
            del self._flow_rows[key]
        hosts = self.host_ips(flt.host) if flt is not None and flt.host else set()
        if flt is not None:
            records = [r for r in records if flt.admits(r.key, hosts)]
        records.sort(key=lambda r: (-r.first_seen, r.key))
        return [self.flow_row(r) for r in records]

    def flow_versions(self) -> dict[str, tuple[int, FlowRecord]]:
        """Every flow's id with its record's version: the stream's cheap change test."""
        return {flow_id(r.key): (r.version, r) for r in self._controller.flowstats.flows}

    def flow_detail(self, key: FlowKey) -> Row | None:
        record = self._controller.flowstats.flows.get(key)
        if record is None:
            return None
        row = dict(self.flow_row(record))
        row["history"] = [
            {
                "dpid": dpid_str(dpid),
                "switch": self.switch_name(dpid),
                "points": [
                    {"t": p.at, "pps": round(p.pps, 3), "bps": round(p.bps, 1)}
                    for p in record.hops[dpid].history
                ],
            }
            for dpid in self._path_order(record)
        ]
        return row

    # ------------------------------------------------------------ policies

    def copy_row(self, policy_id: int) -> Row:
        stat = self._controller.flowstats.copies_of(policy_id)
        if stat is None:
            return {"policy_id": policy_id, "packets": 0, "bytes": 0, "pps": 0.0, "bps": 0.0}
        return {
            "policy_id": policy_id,
            "packets": stat.packets,
            "bytes": stat.bytes,
            "pps": round(stat.pps, 3),
            "bps": round(stat.bps, 1),
        }

    def policy_rows(self) -> dict[int, Row]:
        return {
            p.id: {**p.model_dump(mode="json"), "copies": self.copy_row(p.id)}
            for p in self._controller.policies.list()
        }

    def _route_row(self, route: Route) -> Row:
        def end(ref: PortRef) -> Row:
            return {
                "dpid": dpid_str(ref.dpid),
                "switch": self.switch_name(ref.dpid),
                "port_no": ref.port_no,
            }

        return {
            "switches": [
                {"dpid": dpid_str(d), "name": self.switch_name(d)} for d in route.switches
            ],
            "links": [{"a": end(a), "b": end(b)} for a, b in route.cables],
            "src_host": route.src_host.mac if route.src_host else None,
            "dst_host": route.dst_host.mac if route.dst_host else None,
            "flow": flow_id(route.flow) if route.flow else None,
        }

    def policy_paths(self, policy: Policy) -> Row:
        state = self._controller.state
        flows = ((key, state.flows.hops(key)) for key in state.flows)
        routes = policy_routes(policy, state.topology, state.hosts, flows)
        return {
            "policy_id": policy.id,
            "production_paths": [self._route_row(r) for r in routes.production],
            "copy_path": self._route_row(routes.copy) if routes.copy else None,
            "reason": routes.reason,
        }
