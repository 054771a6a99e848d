"""What the controller reports about a policy: its compiled rules and its copy counters.

Read models shared by the controller (which fills them) and the REST API (which serves them),
kept here so the controller does not depend on the API layer.
"""

from __future__ import annotations

from pydantic import BaseModel


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


# ---------------------------------------------------------------- flows and live views
