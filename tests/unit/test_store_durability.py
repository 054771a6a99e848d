"""A policy the store confirmed survives an OS crash, one controller per store, and files
written by an older vtap are upgraded to the strict (canonical) form."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vtap.domain.policy import PolicySpec
from vtap.errors import VtapError
from vtap.store.base import StoreError
from vtap.store.lock import StoreLock
from vtap.store.sqlite import SqlitePolicyRepository

WRITER = """
import os, sys, time
from datetime import UTC, datetime
from vtap.domain.policy import PolicySpec
from vtap.store.sqlite import SqlitePolicyRepository
repo = SqlitePolicyRepository(sys.argv[1])
repo.add(PolicySpec(name="durable", src_ip="10.0.0.1", monitor_ip="10.0.0.3"), datetime.now(UTC))
sys.stdout.write(f"RETURNED {os.getpid()}\\n")
sys.stdout.flush()
time.sleep(30)  # killed here: the crash comes right after the confirmed commit
"""


def test_a_confirmed_add_was_fsynced_before_it_returned_and_survives_a_kill(
    tmp_path: Path,
) -> None:
    """The OS keeps what was fsynced: the WAL must be synced after the commit's last write and
    before the call returns (with synchronous=NORMAL it is not, until a checkpoint)."""
    db = tmp_path / "policies.db"
    SqlitePolicyRepository(db).close()  # the file exists; the traced run is only the add
    trace = tmp_path / "trace.txt"
    proc = subprocess.Popen(
        ["strace", "-f", "-e", "trace=openat,write,pwrite64,fsync,fdatasync", "-o", str(trace),
         sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    returned, writer = proc.stdout.readline().split()
    assert returned == "RETURNED"
    os.kill(int(writer), signal.SIGKILL)  # the crash, right after the confirmed commit
    proc.wait()
    lines = trace.read_text().splitlines()
    wal_fds = {
        m.group(1)
        for line in lines
        if (m := re.search(r'openat\(.*policies\.db-wal".*\) = (\d+)', line))
    }
    assert wal_fds, "the WAL was never opened"
    returned = next(i for i, line in enumerate(lines) if "RETURNED" in line)
    last_write = max(
        i
        for i, line in enumerate(lines[:returned])
        if re.search(rf"\b(pwrite64|write)\(({'|'.join(wal_fds)}),", line)
    )
    synced = [
        line
        for line in lines[last_write:returned]
        if re.search(rf"\b(fsync|fdatasync)\(({'|'.join(wal_fds)})\)", line)
    ]
    assert synced, "the commit returned before the WAL reached the disk"
    reopened = SqlitePolicyRepository(db)
    assert [p.name for p in reopened.list()] == ["durable"]
    reopened.close()


def test_a_second_holder_of_the_store_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    db = tmp_path / "policies.db"
    first = StoreLock(db)
    first.acquire()
    with pytest.raises(VtapError, match=rf"pid {os.getpid()}\) uses the policy store"):
        StoreLock(db).acquire()
    first.release()
    again = StoreLock(db)
    again.acquire()  # free once released (and when the holder dies: it is a flock)
    again.release()


def _schema1_file(path: Path, specs: list[dict]) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (1);
        CREATE TABLE policies (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
            identity TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE tags (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        """
    )
    stamp = datetime.now(UTC).isoformat()
    for i, spec in enumerate(specs):
        db.execute(
            "INSERT INTO policies (name, identity, spec, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (spec["name"], f"identity-{i}", json.dumps(spec), stamp, stamp),
        )
    db.commit()
    db.close()


def test_an_older_file_with_trailing_newlines_is_canonicalised(tmp_path: Path) -> None:
    db = tmp_path / "policies.db"
    _schema1_file(db, [{"name": "web\n", "src_mac": "00:00:00:00:00:0A\n",
                        "monitor_ip": "10.0.0.3"}])  # fmt: skip
    repo = SqlitePolicyRepository(db)
    (policy,) = repo.list()
    assert (policy.name, policy.src_mac) == ("web", "00:00:00:00:00:0a")
    # the canonical form is what a new create of the same TAP collides with
    clone = PolicySpec(name="web2", src_mac="00:00:00:00:00:0A", monitor_ip="10.0.0.3")
    with pytest.raises(StoreError):
        repo.add(clone, datetime.now(UTC))
    repo.close()


def test_an_older_file_whose_rows_collide_once_cleaned_is_refused_by_name(
    tmp_path: Path,
) -> None:
    db = tmp_path / "policies.db"
    rows = [
        {"name": "web", "src_ip": "10.0.0.1", "monitor_ip": "10.0.0.3"},
        {"name": "web\n", "src_ip": "10.0.0.2", "monitor_ip": "10.0.0.3"},
    ]
    _schema1_file(db, rows)
    with pytest.raises(StoreError, match="policies 1 and 2 have the same name"):
        SqlitePolicyRepository(db)
