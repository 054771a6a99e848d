"""The policy repository in one SQLite file (stdlib sqlite3).

Why this shape:
* One row per policy with the spec as JSON, plus `name` and `identity` columns that carry
  UNIQUE constraints. The spec is validated by pydantic on the way in and out, so the JSON
  column needs no schema of its own, while the constraints keep the file consistent even if
  the Python-side duplicate check were bypassed.
* `AUTOINCREMENT`, so ids are never reused after a delete (cookies on switches name them).
* WAL journal: readers (the API) do not block on the writer. `synchronous=FULL`: every commit
  is fsynced before the call returns, so a change the API confirmed survives an OS crash or a
  power cut (NORMAL only survives a crash of the process).
* Every write runs in `BEGIN IMMEDIATE … COMMIT` under a lock, and is rolled back on any error,
  so a failed write leaves the file as it was. The connection is shared by the asyncio thread
  and whatever thread pool FastAPI uses, hence `check_same_thread=False` plus the lock.
* `schema_version` records the layout; a file written by a newer vtap is refused rather than
  misread.
* Reads come from an in-memory copy of the rows (policies are frozen models), filled once when
  the file is opened and changed only after a write committed: the controller lists every
  policy in each install round, and parsing 1,000 JSON specs took 55 ms each time. Only this
  object writes the file (one controller per state directory), so the copy cannot go stale.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from vtap.domain.policy import Policy, PolicySpec
from vtap.store.base import (
    BatchConflict,
    DuplicateName,
    DuplicatePolicy,
    PolicyNotFound,
    ReplacePlan,
    StoreError,
    check_batch,
)

SCHEMA_VERSION = 2  # 2: specs re-validated strictly (no trailing newline in names or MACs)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    identity TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def _check_id(policy_id: int) -> None:
    """An id SQLite cannot even store (beyond 64 bits) names no policy (not an OverflowError)."""
    if not -(2**63) <= policy_id < 2**63:
        raise PolicyNotFound(policy_id)


def _identity_text(spec: PolicySpec) -> str:
    return json.dumps(list(spec.identity()), separators=(",", ":"))


def _canonicalise(db: sqlite3.Connection, path: Path | str) -> None:
    """Upgrade from schema 1, whose validation let a trailing newline through: strip the
    whitespace around every text field and store each spec in its canonical form. A row that
    is still invalid, or that becomes a duplicate of another, is refused by name."""
    seen_names: dict[str, int] = {}
    seen_identities: dict[str, int] = {}
    for row in db.execute("SELECT id, spec FROM policies ORDER BY id").fetchall():
        raw = json.loads(row["spec"])
        cleaned = {k: v.strip() if isinstance(v, str) else v for k, v in raw.items()}
        try:
            spec = PolicySpec.model_validate(cleaned)
        except ValueError as exc:
            raise StoreError(f"{path}: policy {row['id']} is invalid: {exc}") from None
        identity = _identity_text(spec)
        checks = ((seen_names, spec.name, "name"), (seen_identities, identity, "match"))
        for seen, key, what in checks:
            if key in seen:
                raise StoreError(
                    f"{path}: policies {seen[key]} and {row['id']} have the same {what} once "
                    "whitespace is removed; delete one with an older vtap first"
                )
            seen[key] = row["id"]
        try:
            db.execute(
                "UPDATE policies SET spec = ?, name = ?, identity = ? WHERE id = ?",
                (spec.model_dump_json(), spec.name, identity, row["id"]),
            )
        except sqlite3.IntegrityError:
            raise StoreError(
                f"{path}: policy {row['id']} duplicates another once whitespace is removed; "
                "delete one with an older vtap first"
            ) from None


class SqlitePolicyRepository:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                row = db.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                elif row["version"] > SCHEMA_VERSION:
                    raise StoreError(
                        f"{path}: schema version {row['version']} is newer than this vtap "
                        f"understands ({SCHEMA_VERSION})"
                    )
                elif row["version"] < 2:
                    _canonicalise(db, path)
                    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            with self._read() as db:
                rows = db.execute("SELECT * FROM policies ORDER BY id").fetchall()
            self._policies = {row["id"]: self._row_policy(row) for row in rows}
            # identity text and name → id, as the table's UNIQUE columns hold them: batches
            # are checked here, not with two SELECTs per item
            self._identities = {row["identity"]: row["id"] for row in rows}
            self._names = {row["name"]: row["id"] for row in rows}
        except StoreError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{path}: cannot open policy store: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    # --- policies -------------------------------------------------------------------------

    @staticmethod
    def _row_policy(row: sqlite3.Row) -> Policy:
        spec = PolicySpec.model_validate_json(row["spec"])
        return Policy.stored(
            row["id"],
            spec,
            datetime.fromisoformat(row["created_at"]),
            datetime.fromisoformat(row["updated_at"]),
        )

    def _check_unique(self, identity: str, name: str, exclude: int) -> None:
        other = self._identities.get(identity)
        if other is not None and other != exclude:
            raise DuplicatePolicy(other)
        other = self._names.get(name)
        if other is not None and other != exclude:
            raise DuplicateName(name, other)

    def add(self, spec: PolicySpec, now: datetime) -> Policy:
        return self._add([spec], now, batch=False)[0]

    def add_many(self, specs: Sequence[PolicySpec], now: datetime) -> list[Policy]:
        check_batch(specs)
        return self._add(specs, now, batch=True)

    def _add(self, specs: Sequence[PolicySpec], now: datetime, batch: bool) -> list[Policy]:
        identities = [_identity_text(spec) for spec in specs]
        stamp = now.isoformat()
        with self._write() as db:
            for index, (spec, identity) in enumerate(zip(specs, identities, strict=True)):
                try:
                    self._check_unique(identity, spec.name, 0)
                except (DuplicatePolicy, DuplicateName) as exc:
                    if batch:
                        raise BatchConflict(index, str(exc)) from exc
                    raise
            added = []
            for spec, identity in zip(specs, identities, strict=True):
                cursor = db.execute(
                    "INSERT INTO policies (name, identity, spec, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (spec.name, identity, spec.model_dump_json(), stamp, stamp),
                )
                assert cursor.lastrowid is not None
                added.append(Policy.stored(cursor.lastrowid, spec, now, now))
        # one step each (readers in the event loop see all of them or none)
        self._policies.update({p.id: p for p in added})
        self._identities.update(zip(identities, (p.id for p in added), strict=True))
        self._names.update({p.name: p.id for p in added})
        return added

    def get(self, policy_id: int) -> Policy:
        try:
            return self._policies[policy_id]
        except KeyError:
            raise PolicyNotFound(policy_id) from None

    def count(self) -> int:
        return len(self._policies)

    def list(self) -> list[Policy]:
        return list(self._policies.values())  # ids only grow: insertion order is id order

    def update(self, policy_id: int, spec: PolicySpec, now: datetime) -> Policy:
        _check_id(policy_id)
        with self._write() as db:
            row = db.execute(
                "SELECT created_at FROM policies WHERE id = ?", (policy_id,)
            ).fetchone()
            if row is None:
                raise PolicyNotFound(policy_id)
            identity = _identity_text(spec)
            self._check_unique(identity, spec.name, policy_id)
            db.execute(
                "UPDATE policies SET name = ?, identity = ?, spec = ?, updated_at = ? WHERE id = ?",
                (spec.name, identity, spec.model_dump_json(), now.isoformat(), policy_id),
            )
            created_at = datetime.fromisoformat(row["created_at"])
        self._forget_keys(policy_id)
        policy = Policy.stored(policy_id, spec, created_at, now)
        self._policies[policy_id] = policy
        self._identities[identity] = policy_id
        self._names[spec.name] = policy_id
        return policy

    def _forget_keys(self, policy_id: int) -> None:
        old = self._policies.get(policy_id)
        if old is not None:
            self._identities.pop(_identity_text(old), None)
            self._names.pop(old.name, None)

    def delete(self, policy_id: int) -> None:
        _check_id(policy_id)
        with self._write() as db:
            cursor = db.execute("DELETE FROM policies WHERE id = ?", (policy_id,))
            if cursor.rowcount == 0:
                raise PolicyNotFound(policy_id)
        self._forget_keys(policy_id)
        self._policies.pop(policy_id, None)

    def delete_many(self, policy_ids: Sequence[int]) -> None:
        for policy_id in policy_ids:
            if policy_id not in self._policies:
                raise PolicyNotFound(policy_id)
        with self._write() as db:
            db.executemany("DELETE FROM policies WHERE id = ?", [(i,) for i in policy_ids])
        for policy_id in policy_ids:
            self._forget_keys(policy_id)
            self._policies.pop(policy_id, None)

    def replace(self, plan: ReplacePlan, now: datetime) -> tuple[list[Policy], list[Policy]]:
        stamp = now.isoformat()
        changed = [(pid, spec, _identity_text(spec)) for pid, spec in plan.change]
        created_ids: list[int] = []
        with self._write() as db:
            db.executemany("DELETE FROM policies WHERE id = ?", [(p.id,) for p in plan.remove])
            # Two policies may swap matches: park every changed identity on a value of its
            # own first, so that no UNIQUE check sees a half-done swap.
            db.executemany(
                "UPDATE policies SET identity = ? WHERE id = ?",
                [(f"parked:{pid}", pid) for pid, _, _ in changed],
            )
            db.executemany(
                "UPDATE policies SET identity = ?, spec = ?, updated_at = ? WHERE id = ?",
                [(identity, spec.model_dump_json(), stamp, pid) for pid, spec, identity in changed],
            )
            for spec in plan.create:
                cursor = db.execute(
                    "INSERT INTO policies (name, identity, spec, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (spec.name, _identity_text(spec), spec.model_dump_json(), stamp, stamp),
                )
                assert cursor.lastrowid is not None
                created_ids.append(cursor.lastrowid)
        for p in plan.remove:
            self._forget_keys(p.id)
            self._policies.pop(p.id, None)
        updated = [
            Policy.stored(pid, spec, self._policies[pid].created_at, now)
            for pid, spec, _ in changed
        ]
        for pid, _, _ in changed:
            self._forget_keys(pid)
        created = [
            Policy.stored(pid, spec, now, now)
            for pid, spec in zip(created_ids, plan.create, strict=True)
        ]
        for policy in (*updated, *created):
            self._policies[policy.id] = policy
            self._identities[_identity_text(policy)] = policy.id
            self._names[policy.name] = policy.id
        if created:  # keep id order (list() relies on it)
            self._policies = dict(sorted(self._policies.items()))
        return created, updated

    # --- tags -----------------------------------------------------------------------------

    def get_tags(self) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT key, value FROM tags ORDER BY key").fetchall()
        return {r["key"]: r["value"] for r in rows}

    def set_tags(self, mapping: Mapping[str, int]) -> None:
        items = sorted((str(k), int(v)) for k, v in mapping.items())
        with self._write() as db:
            db.execute("DELETE FROM tags")
            db.executemany("INSERT INTO tags (key, value) VALUES (?, ?)", items)

    def update_tags(self, changed: Mapping[str, int], removed: Iterable[str]) -> None:
        """Write only what changed (a round changes a few allocations out of thousands)."""
        items = [(str(k), int(v)) for k, v in changed.items()]
        gone = [(str(k),) for k in removed]
        if not items and not gone:
            return
        with self._write() as db:
            db.executemany("DELETE FROM tags WHERE key = ?", gone)
            db.executemany(
                "INSERT INTO tags (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                items,
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
