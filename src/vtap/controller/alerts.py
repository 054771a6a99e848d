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
FOLD = 10.0  # s: the same alert again within this time counts as a repeat, not a new alert


class AlertKind(StrEnum):
    DUPLICATE_DATAPATH = "duplicate_datapath"  # a second connection claimed a live switch's id
    DATAPATH_NOT_ALLOWED = "datapath_not_allowed"  # a switch outside the allow-list
    PROTOCOL_VIOLATION = "protocol_violation"  # a malformed message closed a session
    HOST_CLAIM_REFUSED = "host_claim_refused"  # ARP tried to take over a learned binding
    FORGED_LLDP = "forged_lldp"  # an LLDP frame without the controller's signature
    TABLE_DRIFT = "table_drift"  # a switch's tables were changed behind vtap (and repaired)
    SWITCH_LOST = "switch_lost"  # a switch's session ended (closed, or silent past echo_timeout)


@dataclass(slots=True)
class Alert:
    id: int
    at: float  # unix time of the first occurrence
    kind: AlertKind
    message: str
    subject: dict[str, str | int] = field(default_factory=dict)
    repeats: int = 0  # further occurrences folded into this alert (see AlertLog.raise_)
    last_at: float = 0.0


class AlertLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._alerts: deque[Alert] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self._recent: dict[tuple[object, ...], Alert] = {}
        self.counts: Counter[AlertKind] = Counter()

    def raise_(self, kind: AlertKind, message: str, **subject: str | int) -> Alert:
        """Record an alert. The same kind about the same subject within FOLD seconds of the
        last one is a repeat of it (a flood of forged frames is one alert, counted)."""
        now = time.time()
        self.counts[kind] += 1
        key = (kind, *sorted(subject.items()))
        alert = self._recent.get(key)
        if alert is not None and now - alert.last_at < FOLD:
            alert.repeats += 1
            alert.last_at = now
            return alert
        alert = Alert(next(self._ids), now, kind, message, dict(subject), last_at=now)
        self._alerts.append(alert)
        if len(self._recent) > 4 * KEEP:
            self._recent = {k: a for k, a in self._recent.items() if now - a.last_at < FOLD}
        self._recent[key] = alert
        log.warning("alert %s: %s", kind.value, message)
        return alert

    def since(self, after: int = 0, limit: int = KEEP) -> list[Alert]:
        """Alerts with id > `after`, oldest first, at most `limit`."""
        return [a for a in self._alerts if a.id > after][:limit]

    @property
    def last_id(self) -> int:
        return self._alerts[-1].id if self._alerts else 0
