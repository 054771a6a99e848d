"""The REST API in process: a real controller (no switches), an in-memory store, ASGI transport.

The reconciler runs as a background task, so a create/update/delete returns after its first
round as it does in production. Nothing listens on a socket and no switch is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.leafspine import Fabric
from vtap.api.app import create_app
from vtap.controller import policies as policy_service
from vtap.controller.core import Controller
from vtap.domain.policy import Policy, PolicySpec
from vtap.domain.tokens import Role
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

POLICIES = "/api/v1/policies"

# With no switch, a policy whose monitor is unknown makes a create wait for ARP-probe answers
# until about a second has passed (APPLY_WAIT's probe loop). Nothing can answer here, so the
# tests cut that wait short; the first install round (about 10 ms) still completes well inside.
QUICK_APPLY_WAIT = 0.3


@pytest.fixture
def quick_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_service, "APPLY_WAIT", QUICK_APPLY_WAIT)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture
def store() -> MemoryPolicyRepository:
    return MemoryPolicyRepository()


@pytest.fixture
async def controller(
    settings: Settings, store: MemoryPolicyRepository, quick_apply: None
) -> AsyncIterator[Controller]:
    controller = Controller(settings, store)
    rounds = asyncio.create_task(controller.installer.run(), name="test-installer")
    yield controller
    rounds.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await rounds


def admin_headers(controller: Controller, role: Role = Role.ADMIN) -> dict[str, str]:
    """A token of `role` in the controller's store: tests authenticate like any client."""
    _, secret = controller.tokens.create(f"test-{role.value}", role, datetime.now(UTC))
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def client(controller: Controller) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(controller))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=admin_headers(controller)
    ) as http:
        yield http


def spec_body(name: str = "tap1", **fields: Any) -> dict[str, Any]:
    """A valid create body (h1 → h2 TCP 80, monitor h3) with `fields` replacing or adding."""
    body: dict[str, Any] = {
        "name": name,
        "src_ip": "10.0.0.1",
        "dst_ip": "10.0.0.2",
        "ip_proto": 6,
        "dst_port": 80,
        "monitor_ip": "10.0.0.3",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
def seed(store: MemoryPolicyRepository) -> Callable[..., Policy]:
    """Put a policy straight into the store (a precondition, not the thing under test)."""

    def add(name: str = "seeded", **fields: Any) -> Policy:
        return store.add(PolicySpec.model_validate(spec_body(name, **fields)), datetime.now(UTC))

    return add


def observe_fabric(controller: Controller, fab: Fabric) -> None:
    """Feed the controller's state what discovery would have learnt: switches, links and hosts
    h1… (MAC 00:00:00:00:00:0i, IP 10.0.0.i) at their lab ports. No switch is connected."""
    state = controller.state
    now = state.now()
    for dpid in fab.spine_ids() + fab.leaf_ids():
        state.topology.switch_up(fab.switch(dpid), now)
    for cable in fab.cables():
        state.topology.lldp_seen(cable, now)
        state.topology.lldp_seen(cable.reversed(), now)
    for i in range(1, fab.leaves * fab.hosts_per_leaf + 1):
        state.hosts.observe(f"00:00:00:00:00:{i:02x}", f"10.0.0.{i}", fab.host_port(i), now)
    state.changed()
