"""Integration tests drive real Open vSwitch and Mininet; they need root."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (real OVS, network namespaces)")


@pytest.fixture(scope="session", autouse=True)
def _lab_lock(_needs_root: None, machine_lab_lock: None) -> None:
    """Integration tests run under the machine's lab lock (tests/conftest.py)."""
