"""Where API tokens live: a table in the policy database (or memory, for tests).

Only digests are stored. `vtap token create` run as root writes here directly, so it works
whether or not the controller runs; the controller looks tokens up on each request (one indexed
query), so a new or revoked token counts at once.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol

from vtap.domain.tokens import Role, TokenInfo, digest, new_secret
from vtap.store.sqlitedb import open_table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
"""


class TokenRepository(Protocol):
    def create(self, name: str, role: Role, now: datetime) -> tuple[TokenInfo, str]:
        """A new token and its secret (shown once)."""
        ...

    def find(self, secret: str) -> TokenInfo | None: ...

    def list(self) -> list[TokenInfo]: ...

    def revoke(self, token_id: int) -> bool:
        """False when no such token."""
        ...

    def close(self) -> None: ...


class MemoryTokenRepository:
    def __init__(self) -> None:
        self._tokens: dict[str, TokenInfo] = {}
        self._last = 0

    def create(self, name: str, role: Role, now: datetime) -> tuple[TokenInfo, str]:
        self._last += 1
        secret = new_secret()
        info = TokenInfo(self._last, name, role, now)
        self._tokens[digest(secret)] = info
        return info, secret

    def find(self, secret: str) -> TokenInfo | None:
        return self._tokens.get(digest(secret))

    def list(self) -> list[TokenInfo]:
        return sorted(self._tokens.values(), key=lambda t: t.id)

    def revoke(self, token_id: int) -> bool:
        for key, info in list(self._tokens.items()):
            if info.id == token_id:
                del self._tokens[key]
                return True
        return False

    def close(self) -> None:
        pass


class SqliteTokenRepository:
    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = open_table(path, _SCHEMA)

    @staticmethod
    def _info(row: sqlite3.Row) -> TokenInfo:
        return TokenInfo(
            row["id"], row["name"], Role(row["role"]), datetime.fromisoformat(row["created_at"])
        )

    def create(self, name: str, role: Role, now: datetime) -> tuple[TokenInfo, str]:
        secret = new_secret()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO tokens (name, role, digest, created_at) VALUES (?, ?, ?, ?)",
                (name, role.value, digest(secret), now.isoformat()),
            )
        assert cursor.lastrowid is not None
        return TokenInfo(cursor.lastrowid, name, role, now), secret

    def find(self, secret: str) -> TokenInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM tokens WHERE digest = ?", (digest(secret),)
            ).fetchone()
        return None if row is None else self._info(row)

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM tokens ORDER BY id").fetchall()
        return [self._info(r) for r in rows]

    def revoke(self, token_id: int) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()
