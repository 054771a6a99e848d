"""Fixtures shared by the suites that drive a real lab (integration, browser)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest

LAB_LOCK = "/tmp/vtap-lab.lock"


@pytest.fixture(scope="session")
def machine_lab_lock() -> Iterator[None]:
    """One lab per machine (fixed bridge and interface names): wait for any other process's
    lab. Taken once per test session, so the suites in one run never wait for each other."""
    with open(LAB_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
