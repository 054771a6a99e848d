"""Response models of the REST API (the public contract: add fields, never rename)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from vtap.domain.policy import Policy
from vtap.domain.reports import (  # noqa: F401  (part of the API's schemas)
    CopyCounter,
    PolicyRules,
    PolicyStats,
    RuleOut,
    SwitchRules,
)


class Stall(BaseModel):
    at: float  # when the event loop woke late (Unix time)
    ms: float  # how late


class LoopLagOut(BaseModel):
    """How late the controller's event loop ran (controller/looplag.py): the worst since start,
    a histogram, and the recent stalls over 50 ms."""

    interval_ms: float
    samples: int
    max_ms: float
    histogram_ms: dict[str, int]
    stalls: list[Stall]


class InstallOut(BaseModel):
    rounds: int  # install rounds run since start
    full_builds: int  # full builds (topology changes, start, large batches) since start
    last_full_build_s: float  # the last full build (off the event loop), seconds
    copies_ready: bool = True  # False while a switch that lost its tables awaits its TAP entries
    held_packets: int = 0  # new flows not forwarded meanwhile (their copy could not be made)
    unanswered_bundles: int = 0  # bundles a live switch did not answer in time (then re-read)


class AuditOut(BaseModel):
    interval_s: float  # how often every switch's tables are compared with the intent
    passes: int  # audits run since start
    repairs: int  # switches found changed behind vtap (each handed to a repair round)


class Health(BaseModel):
    status: str
    version: str
    uptime_s: float
    switches: int
    links: int
    hosts: int
    event_loop: LoopLagOut | None = None
    install: InstallOut | None = None
    audit: AuditOut | None = None
    alerts: int = 0  # security and fault alerts raised since start (GET /alerts)


class PortOut(BaseModel):
    port_no: int
    name: str
    hw_addr: str
    up: bool
    role: str  # "fabric" (carries LLDP), "edge" (host-facing) or "pending" (not yet classified)


class SwitchOut(BaseModel):
    dpid: str
    name: str
    connected: bool
    ports: list[PortOut]


class LinkEnd(BaseModel):
    dpid: str
    switch: str
    port_no: int


class LinkOut(BaseModel):
    a: LinkEnd
    b: LinkEnd


class HostOut(BaseModel):
    mac: str
    ip: str | None
    dpid: str
    switch: str
    port_no: int
    name: str | None = None  # display name (settings.host_names), if known


class TopologyOut(BaseModel):
    switches: list[SwitchOut]
    links: list[LinkOut]
    hosts: list[HostOut]


class FlowHop(BaseModel):
    """A flow's forwarding entry on one switch of its path, with the switch's counters."""

    dpid: str
    switch: str
    packets: int
    bytes: int
    pps: float
    bps: float  # bits per second


class FlowOut(BaseModel):
    """An in-flight flow: its 5-tuple and its counters at every switch, in path order."""

    id: str  # stable: "<proto>_<src ip>_<src port>_<dst ip>_<dst port>"
    src_ip: str
    dst_ip: str
    ip_proto: int
    src_port: int  # 0 for protocols without ports
    dst_port: int
    src_host: str | None = None  # display name (settings.host_names), if known
    dst_host: str | None = None
    first_seen: datetime  # when its oldest entry was installed
    last_seen: datetime  # when its counters last grew
    packets: int  # at the first switch of the path
    bytes: int
    pps: float
    bps: float
    hops: list[FlowHop]


class FlowList(BaseModel):
    total: int  # flows matching the filters (all pages)
    offset: int
    interval: float  # seconds between counter readings
    flows: list[FlowOut]


class RatePoint(BaseModel):
    t: float  # seconds since the epoch
    pps: float
    bps: float


class HopHistory(BaseModel):
    dpid: str
    switch: str
    points: list[RatePoint]


class FlowDetail(FlowOut):
    """A flow with the rate history of each of its switches (oldest point first)."""

    history: list[HopHistory]


class SwitchRef(BaseModel):
    dpid: str
    name: str


class RouteOut(BaseModel):
    """A path: switches in travel order and the cables between them (a = where it leaves)."""

    switches: list[SwitchRef]
    links: list[LinkOut]
    src_host: str | None = None  # MAC of the host it starts at, if known
    dst_host: str | None = None  # MAC of the host it ends at
    flow: str | None = None  # the flow id it was read from; null when computed


class PolicyPaths(BaseModel):
    """Where a policy's tapped packets travel (production) and where its copies go."""

    policy_id: int
    production_paths: list[RouteOut]
    copy_path: RouteOut | None
    reason: str = ""  # why there is no copy path


class CopyRate(BaseModel):
    """Copies a policy made (its monitor buckets' counters) and their rate."""

    policy_id: int
    packets: int
    bytes: int
    pps: float
    bps: float


class PolicyLive(Policy):
    """A policy as the live console shows it: the stored policy with its copy counters."""

    copies: CopyRate


class PoliciesEvent(BaseModel):
    """`event: policies` of GET /events. The first is `full`; later ones carry changes."""

    full: bool
    upsert: list[PolicyLive]
    removed: list[int]


class FlowsEvent(BaseModel):
    """`event: flows` of GET /events. The first is `full`; later ones carry changes."""

    full: bool
    upsert: list[FlowOut]
    removed: list[str]
    total: int


class AlertOut(BaseModel):
    """A security or fault alert (see `vtap.controller.alerts.AlertKind` for the kinds)."""

    id: int
    at: datetime
    kind: str
    message: str
    subject: dict[str, str | int]
    repeats: int  # further occurrences within 10 s of each other, folded into this alert
    last_at: datetime


class AlertsOut(BaseModel):
    alerts: list[AlertOut]
    last_id: int  # pass as `after` to get only newer alerts
    counts: dict[str, int]  # alerts raised per kind since the controller started
