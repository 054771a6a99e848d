"""One way to open the policy database for a table of its own (tokens, audit log): a
connection shared across threads behind a lock, durable commits, its table created."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_table(path: Path | str, schema: str) -> sqlite3.Connection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA synchronous=FULL")  # a confirmed change survives an OS crash
    db.executescript(schema)
    return db
