"""Access control on the REST API: a token is needed for everything but /health, and its
role decides what it may do (viewer reads, operator changes policies, admin manages tokens)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.conftest import POLICIES, admin_headers, spec_body
from vtap.api.app import create_app
from vtap.controller.core import Controller
from vtap.domain.tokens import Role
from vtap.store.tokens import SqliteTokenRepository


def _client(controller: Controller, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(controller))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers)


async def test_no_token_or_an_unknown_one_is_401_but_health_answers(controller: Controller) -> None:
    async with _client(controller) as anonymous:
        assert (await anonymous.get("/api/v1/health")).status_code == 200
        for path in (POLICIES, "/api/v1/topology", "/api/v1/alerts", "/api/v1/tokens"):
            resp = await anonymous.get(path)
            assert resp.status_code == 401, path
            assert resp.headers["www-authenticate"] == "Bearer"
            assert "vtap token create" in resp.json()["detail"]
        forged = {"Authorization": "Bearer vtap_not-a-token"}
        assert (await anonymous.get(POLICIES, headers=forged)).status_code == 401
        query = await anonymous.get("/api/v1/topology", params={"access_token": "x"})
        assert query.status_code == 401  # a token in the URL only for the event stream


async def test_roles_decide_what_a_token_may_do(controller: Controller) -> None:
    viewer = admin_headers(controller, Role.VIEWER)
    operator = admin_headers(controller, Role.OPERATOR)
    async with _client(controller) as http:
        assert (await http.get(POLICIES, headers=viewer)).status_code == 200
        write = await http.post(POLICIES, json=spec_body("v"), headers=viewer)
        assert write.status_code == 403
        assert write.json()["detail"] == "token 'test-viewer' has role viewer; operator needed"
        created = await http.post(POLICIES, json=spec_body("o"), headers=operator)
        assert created.status_code == 201
        assert (await http.get("/api/v1/tokens", headers=operator)).status_code == 403
        put = await http.put(POLICIES, json={"policies": []}, headers=viewer)
        assert put.status_code == 403
        assert len((await http.get(POLICIES, headers=viewer)).json()) == 1


async def test_an_admin_makes_and_revokes_tokens(controller: Controller) -> None:
    async with _client(controller, admin_headers(controller)) as admin:
        made = await admin.post("/api/v1/tokens", json={"role": "viewer", "name": "grafana"})
        assert made.status_code == 201
        secret, token_id = made.json()["token"], made.json()["id"]
        assert secret.startswith("vtap_") and made.json()["role"] == "viewer"
        bad = await admin.post("/api/v1/tokens", json={"role": "root", "name": "x\n"})
        assert bad.status_code == 422
        assert {e["loc"][-1] for e in bad.json()["detail"]} == {"role", "name"}
        listed = (await admin.get("/api/v1/tokens")).json()
        assert "grafana" in {t["name"] for t in listed}
        assert all("token" not in t for t in listed)  # secrets are shown once, never listed
        mine = {"Authorization": f"Bearer {secret}"}
        assert (await admin.get(POLICIES, headers=mine)).status_code == 200
        assert (await admin.delete(f"/api/v1/tokens/{token_id}")).status_code == 204
        assert (await admin.get(POLICIES, headers=mine)).status_code == 401


def test_token_create_as_root_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTAP_")}
    env["VTAP_STATE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "vtap", "token", "create", "--role", "operator", "--name", "ci"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1]
    store = SqliteTokenRepository(tmp_path / "policies.db")
    found = store.find(secret)
    store.close()
    assert found is not None and (found.name, found.role) == ("ci", Role.OPERATOR)
    wrong = subprocess.run(
        [sys.executable, "-m", "vtap", "token", "create", "--role", "boss"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


async def test_every_change_is_in_the_audit_log_with_who_before_and_after(
    controller: Controller,
) -> None:
    operator = admin_headers(controller, Role.OPERATOR)
    async with _client(controller, admin_headers(controller)) as admin:
        made = await admin.post(POLICIES, json=spec_body("audited"), headers=operator)
        pid = made.json()["id"]
        await admin.patch(f"{POLICIES}/{pid}", json={"dst_port": 81}, headers=operator)
        await admin.delete(f"{POLICIES}/{pid}", headers=operator)
        token = await admin.post("/api/v1/tokens", json={"role": "viewer", "name": "ro"})
        assert (await admin.get("/api/v1/audit", headers=operator)).status_code == 403
        log = (await admin.get("/api/v1/audit")).json()
    assert [e["action"] for e in log] == [
        "policy.create", "policy.update", "policy.delete", "token.create",
    ]  # fmt: skip
    create, update, delete, made_token = log
    assert create["who"].startswith("test-operator (token ") and create["before"] is None
    assert create["after"]["name"] == "audited" and create["subject"] == f"policy {pid}"
    assert (update["before"]["dst_port"], update["after"]["dst_port"]) == (80, 81)
    assert delete["before"]["dst_port"] == 81 and delete["after"] is None
    assert made_token["after"]["name"] == "ro" and made_token["who"].startswith("test-admin")
    assert token.json()["token"] not in str(log)  # never a secret
