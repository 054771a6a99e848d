"""Structured logs and the access log: a JSON line per record with the request's fields, and
one access record per REST request naming the token that made it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import admin_headers
from vtap.api.app import create_app
from vtap.controller.core import Controller
from vtap.domain.tokens import Role
from vtap.logs import JsonFormatter
from vtap.settings import Settings
from vtap.store.memory import MemoryPolicyRepository


async def test_each_request_is_logged_with_who_made_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctl = Controller(Settings(state_dir=tmp_path, access_log=True), MemoryPolicyRepository())
    viewer = admin_headers(ctl, Role.VIEWER)
    transport = httpx.ASGITransport(app=create_app(ctl))
    with caplog.at_level(logging.INFO, logger="vtap.access"):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            assert (await http.get("/api/v1/topology", headers=viewer)).status_code == 200
            assert (await http.get("/api/v1/policies")).status_code == 401
    records = [r for r in caplog.records if r.name == "vtap.access"]
    assert [(r.method, r.path, r.status, r.token) for r in records] == [  # type: ignore[attr-defined]
        ("GET", "/api/v1/topology", 200, "test-viewer"),
        ("GET", "/api/v1/policies", 401, "-"),
    ]
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["logger"] == "vtap.access" and line["level"] == "info"
    assert line["status"] == 200 and line["token"] == "test-viewer"
    assert "GET /api/v1/topology" in line["message"]


async def test_no_access_log_unless_asked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctl = Controller(Settings(state_dir=tmp_path), MemoryPolicyRepository())
    transport = httpx.ASGITransport(app=create_app(ctl))
    with caplog.at_level(logging.INFO, logger="vtap.access"):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            await http.get("/api/v1/health")
    assert not [r for r in caplog.records if r.name == "vtap.access"]


def test_json_lines_carry_exceptions() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("vtap.test").makeRecord(
            "vtap.test", logging.ERROR, __file__, 1, "it failed: %s", ("x",), None
        )
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "it failed: x" and "ValueError: bad" in line["exception"]
