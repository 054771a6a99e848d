"""POST /api/v1/trace with the seed's TAP 1 and TAP 2: the model of the compiled rules says the
packet reaches its destination unchanged, and a matching one also reaches the monitor (one
copy, original headers), naming the policy and the entries it hit by cookie; a packet that
matches no policy is not copied. (Against the real switches: the CLI's --verify, on the lab.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import admin_headers
from tests.unit.fakeswitches import controller_with_fakes
from tests.unit.leafspine import Fabric
from vtap.api.app import create_app
from vtap.demo import SEED_TAPS
from vtap.domain.tokens import Role

TRACE = "/api/v1/trace"


async def _traces(tmp_path: Path, *bodies: dict[str, str]) -> list[httpx.Response]:
    async with controller_with_fakes(tmp_path, Fabric(spines=2, leaves=3, hosts_per_leaf=2)) as (
        ctl,
        _switches,
    ):
        transport = httpx.ASGITransport(app=create_app(ctl))
        operator = admin_headers(ctl, Role.OPERATOR)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=operator
        ) as http:
            for spec in SEED_TAPS:
                made = await http.post("/api/v1/policies", json=spec)
                assert made.status_code == 201 and made.json()["status"] == "active", made.text
            return [await http.post(TRACE, json=body) for body in bodies]


def _where(out: dict[str, Any]) -> dict[str, list[tuple[str, bool]]]:
    by_role: dict[str, list[tuple[str, bool]]] = {}
    for d in out["delivered"]:
        by_role.setdefault(d["role"], []).append((d["host"], d["unchanged"]))
    return by_role


async def test_trace_shows_delivery_copies_and_the_policies_that_made_them(
    tmp_path: Path,
) -> None:
    tap1, not_tap1, tap2, not_tap2, bad_host, bad_packet = await _traces(
        tmp_path,
        {"from": "10.0.0.1", "packet": "tcp,ipv4_dst=10.0.0.2,tcp_dst=80"},
        {"from": "00:00:00:00:00:01", "packet": "tcp,ipv4_dst=10.0.0.2,tcp_dst=81"},
        {"from": "10.0.0.1", "packet": "udp,nw_dst=10.0.0.6,udp_dst=5000,dl_vlan=100"},
        {"from": "10.0.0.1", "packet": "udp,nw_dst=10.0.0.6,udp_dst=5000,dl_vlan=200"},
        {"from": "h99", "packet": "tcp"},
        {"from": "10.0.0.1", "packet": "tcp,ipv4_dst=10.0.0.2,colour=red"},
    )
    out = tap1.json()
    assert tap1.status_code == 200, out
    assert _where(out) == {"destination": [("10.0.0.2", True)], "copy": [("10.0.0.3", True)]}
    assert out["policies"] == ["seed-tap1"] and out["path"] == "computed"
    assert out["packet"].startswith("tcp,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02")
    tapping = [h for h in out["hops"] if "seed-tap1" in h["policies"]]
    assert tapping and all(h["cookie"].startswith("0x5654") for h in tapping)
    assert any(h["copy_in_flight"] for h in out["hops"]), "the copy's way is shown"

    assert _where(not_tap1.json()) == {"destination": [("10.0.0.2", True)]}
    assert not_tap1.json()["policies"] == []

    assert _where(tap2.json()) == {
        "destination": [("10.0.0.6", True)],
        "copy": [("10.0.0.4", True)],
    }
    assert tap2.json()["policies"] == ["seed-tap2"]
    assert _where(not_tap2.json()) == {"destination": [("10.0.0.6", True)]}

    assert bad_host.status_code == 422 and bad_host.json()["detail"][0]["loc"] == ["body", "from"]
    assert bad_packet.status_code == 422
    assert "colour" in bad_packet.json()["detail"][0]["msg"]
