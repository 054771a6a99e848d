"""Security and fault alerts: what an operator must hear about, kept for the API and console.

A bounded log (oldest dropped first) so a peer that misbehaves in a loop costs memory once.
Each alert also goes to the controller log at WARNING.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)

KEEP = 1000


class AlertKind(StrEnum):
    DUPLICATE_DATAPATH = "duplicate_datapath"  # a second connection claimed a live switch's id
    DATAPATH_NOT_ALLOWED = "datapath_not_allowed"  # a switch outside the allow-list
    PROTOCOL_VIOLATION = "protocol_violation"  # a malformed message closed a session
    HOST_CLAIM_REFUSED = "host_claim_refused"  # ARP tried to take over a learned binding
    FORGED_LLDP = "forged_lldp"  # an LLDP frame without the controller's signature


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    at: float  # unix time
    kind: AlertKind
    message: str
    subject: dict[str, str | int] = field(default_factory=dict)


class AlertLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._alerts: deque[Alert] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self.counts: Counter[AlertKind] = Counter()

    def raise_(self, kind: AlertKind, message: str, **subject: str | int) -> Alert:
        alert = Alert(next(self._ids), time.time(), kind, message, dict(subject))
        self._alerts.append(alert)
        self.counts[kind] += 1
        log.warning("alert %s: %s", kind.value, message)
        return alert

    def since(self, after: int = 0, limit: int = KEEP) -> list[Alert]:
        """Alerts with id > `after`, oldest first, at most `limit`."""
        return [a for a in self._alerts if a.id > after][:limit]

    @property
    def last_id(self) -> int:
        return self._alerts[-1].id if self._alerts else 0
