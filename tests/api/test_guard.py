"""Before any route runs: a foreign Host is refused (DNS rebinding), a body over the limit is
413 without being parsed, and a 422 names the fields without echoing megabytes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import admin_headers
from vtap.api.app import create_app
from vtap.controller.core import Controller
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

LIMIT = 64 * 1024


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(state_dir=tmp_path, api_max_body=LIMIT, api_hosts=["vtap.lab", "::1"])
    controller = Controller(settings, MemoryPolicyRepository())
    transport = httpx.ASGITransport(app=create_app(controller))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://vtap.lab:8080", headers=admin_headers(controller)
    ) as http:
        yield http


async def test_only_listed_host_names_get_through(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/health")).status_code == 200
    ipv6 = await client.get("/api/v1/health", headers={"host": "[::1]:8080"})
    assert ipv6.status_code == 200
    rebound = await client.get("/api/v1/health", headers={"host": "attacker.example:8080"})
    assert rebound.status_code == 400 and "'attacker.example' is not allowed" in rebound.text
    write = await client.post("/api/v1/policies", headers={"host": "127.0.0.1"}, json={})
    assert write.status_code == 400  # not in this controller's list: loopback is not implied


async def test_a_body_over_the_limit_is_413_before_parsing(client: httpx.AsyncClient) -> None:
    huge = b'{"policies": [' + b'{"name": "x"},' * (LIMIT // 10) + b'{"name": "y"}]}'
    resp = await client.post("/api/v1/policies/bulk", content=huge,
                             headers={"content-type": "application/json"})  # fmt: skip
    assert resp.status_code == 413 and f"{LIMIT:,} bytes" in resp.text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(huge), 8192):
            yield huge[start : start + 8192]

    resp = await client.post("/api/v1/policies/bulk", content=chunks(),
                             headers={"content-type": "application/json"})  # fmt: skip
    assert resp.status_code == 413
    assert len(resp.content) < 200


async def test_a_422_names_the_fields_and_echoes_only_excerpts(client: httpx.AsyncClient) -> None:
    bad = {"name": "ok", "src_ip": "1" * 50_000, "monitor_ip": "10.0.0.3"}
    resp = await client.post("/api/v1/policies", json=bad)
    assert resp.status_code == 422
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["body", "src_ip"] and len(error["input"]) <= 121
    many = {"policies": [{"name": f"p{i}", "src_ip": "bad", "monitor_ip": "10.0.0.3"}
                         for i in range(300)]}  # fmt: skip
    resp = await client.post("/api/v1/policies/bulk", json=many)
    assert resp.status_code == 422
    body = resp.json()
    assert len(body["detail"]) == 50 and body["more_errors"] == 250
    assert body["detail"][0]["loc"] == ["body", "policies", 0, "src_ip"]
