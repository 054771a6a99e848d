"""The saved host table survives a reopen and mirrors the tracker exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from vtap.domain.network import Host, PortRef
from vtap.store.hosts import MemoryHostRepository, SqliteHostRepository


@pytest.fixture(params=["sqlite", "memory"])
def make(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        repo = MemoryHostRepository()
        return lambda: repo
    return lambda: SqliteHostRepository(tmp_path / "db.sqlite")


def test_sync_saves_moves_and_forgets(make) -> None:  # type: ignore[no-untyped-def]
    repo = make()
    a = Host("00:00:00:00:00:01", "10.0.0.1", PortRef(0x101, 1))
    b = Host("00:00:00:00:00:02", None, PortRef(0x101, 2))
    repo.sync([a, b])
    moved = Host(a.mac, "10.0.0.9", PortRef(0x102, 1))
    repo.sync([moved])
    loaded = make().load(now=5.0)
    assert [(h.mac, h.ip, h.location, h.last_seen) for h in loaded] == [
        (moved.mac, "10.0.0.9", PortRef(0x102, 1), 5.0)
    ]
