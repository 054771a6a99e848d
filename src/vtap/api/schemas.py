"""Response models of the REST API (the public contract: add fields, never rename)."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    version: str
    uptime_s: float
    switches: int
    links: int
    hosts: int


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


class TopologyOut(BaseModel):
    switches: list[SwitchOut]
    links: list[LinkOut]
    hosts: list[HostOut]


class RuleOut(BaseModel):
    kind: str  # "flow" or "group"
    table_id: int | None = None
    priority: int | None = None
    group_id: int | None = None
    cookie: str | None = None
    ofctl: str


class SwitchRules(BaseModel):
    dpid: str
    switch: str
    rules: list[RuleOut]


class PolicyRules(BaseModel):
    policy_id: int
    status: str
    status_reason: str
    switches: list[SwitchRules]


class CopyCounter(BaseModel):
    dpid: str
    switch: str
    group_id: int
    monitor: str
    packets: int
    bytes: int


class PolicyStats(BaseModel):
    policy_id: int
    packets: int
    bytes: int
    copies: list[CopyCounter]
