"""The audit log: every change to policies and tokens, who made it, when, before and after.

Kept in the policy database (or memory for tests), append-only; nothing in vtap deletes from
it. Token secrets never appear in it (only a token's id, name and role).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from vtap.store.sqlitedb import open_table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    before TEXT,
    after TEXT
);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    who: str
    action: str  # e.g. policy.create, policy.update, policy.delete, token.create, token.revoke
    subject: str  # e.g. "policy 12", "token 3"
    before: Any
    after: Any


Change = tuple[str, str, Any, Any]  # (action, subject, before, after)


class AuditLog(Protocol):
    def record(self, who: str, at: datetime, changes: Sequence[Change]) -> None: ...

    def entries(self, after: int = 0, limit: int = 100) -> list[AuditEntry]: ...

    def close(self) -> None: ...


class MemoryAuditLog:
    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    def record(self, who: str, at: datetime, changes: Sequence[Change]) -> None:
        for action, subject, before, after in changes:
            self._entries.append(
                AuditEntry(len(self._entries) + 1, at, who, action, subject, before, after)
            )

    def entries(self, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        return [e for e in self._entries if e.id > after][:limit]

    def close(self) -> None:
        pass


class SqliteAuditLog:
    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = open_table(path, _SCHEMA)

    def record(self, who: str, at: datetime, changes: Sequence[Change]) -> None:
        rows = [
            (at.isoformat(), who, action, subject, _json(before), _json(after))
            for action, subject, before, after in changes
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO audit (at, who, action, subject, before, after) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def entries(self, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            ).fetchall()
        return [
            AuditEntry(
                r["id"],
                datetime.fromisoformat(r["at"]),
                r["who"],
                r["action"],
                r["subject"],
                _load(r["before"]),
                _load(r["after"]),
            )
            for r in rows
        ]

    def close(self) -> None:
        self._db.close()


def _entry(r: sqlite3.Row) -> AuditEntry:
    at = datetime.fromisoformat(r["at"])
    before, after = _load(r["before"]), _load(r["after"])
    return AuditEntry(r["id"], at, r["who"], r["action"], r["subject"], before, after)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)
