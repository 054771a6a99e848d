"""Where hosts were last seen, kept across controller restarts.

After a restart the switches still copy traffic (their entries survive in fail_mode=secure), but
a fresh controller knows no host until each one speaks again; a policy whose hosts it cannot
resolve would look pending and, once the switches settled, its entries would be removed. So the
host table is saved after every change and loaded at start; a host that moved meanwhile is
corrected by its next packet (a host move, as at any other time).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from vtap.domain.network import Host, PortRef

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hosts (
    mac TEXT PRIMARY KEY,
    ip TEXT,
    dpid INTEGER NOT NULL,
    port_no INTEGER NOT NULL
);
"""

_Row = tuple[str, str | None, int, int]


class HostRepository(Protocol):
    def load(self, now: float) -> list[Host]: ...

    def sync(self, hosts: Iterable[Host]) -> None: ...

    def close(self) -> None: ...


def _row(host: Host) -> _Row:
    return (host.mac, host.ip, host.location.dpid, host.location.port_no)


class SqliteHostRepository:
    """The host table in the policy database file (its own table and connection)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._saved: dict[str, _Row] = {r[0]: r for r in self._rows()}

    def _rows(self) -> list[_Row]:
        return list(self._db.execute("SELECT mac, ip, dpid, port_no FROM hosts ORDER BY mac"))

    def load(self, now: float) -> list[Host]:
        return [Host(mac, ip, PortRef(dpid, port), now) for mac, ip, dpid, port in self._rows()]

    def sync(self, hosts: Iterable[Host]) -> None:
        """Make the saved table equal to `hosts`; writes only what changed."""
        current = {h.mac: _row(h) for h in hosts}
        if current == self._saved:
            return
        upserts = [r for mac, r in current.items() if self._saved.get(mac) != r]
        deletes = [(mac,) for mac in self._saved if mac not in current]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO hosts (mac, ip, dpid, port_no) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(mac) DO UPDATE SET ip=excluded.ip, dpid=excluded.dpid, "
                    "port_no=excluded.port_no",
                    upserts,
                )
                self._db.executemany("DELETE FROM hosts WHERE mac = ?", deletes)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._saved = current

    def close(self) -> None:
        self._db.close()


class MemoryHostRepository:
    """The same contract without a file (unit tests, controllers that must forget)."""

    def __init__(self) -> None:
        self._hosts: dict[str, Host] = {}

    def load(self, now: float) -> list[Host]:
        return [Host(h.mac, h.ip, h.location, now) for h in self._hosts.values()]

    def sync(self, hosts: Iterable[Host]) -> None:
        self._hosts = {h.mac: h for h in hosts}

    def close(self) -> None:
        pass
