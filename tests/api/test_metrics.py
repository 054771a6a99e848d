"""GET /metrics: Prometheus text a scraper with a viewer token can read, naming policies by
name with their status, switches with their state, and the histograms of rounds and requests.
(The copy counters rising under real traffic: tests/integration/test_tap.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import admin_headers, spec_body
from tests.unit.fakeswitches import controller_with_fakes
from tests.unit.leafspine import Fabric
from vtap.api.app import create_app
from vtap.domain.tokens import Role

ROOT = Path(__file__).resolve().parents[2]


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


async def test_metrics_name_policies_switches_rounds_and_requests(tmp_path: Path) -> None:
    async with controller_with_fakes(tmp_path, Fabric(spines=2, leaves=3, hosts_per_leaf=2)) as (
        ctl,
        _switches,
    ):
        app = create_app(ctl)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            assert (await http.get("/metrics")).status_code == 401
            operator = admin_headers(ctl, Role.OPERATOR)
            created = await http.post(
                "/api/v1/policies", json=spec_body("web-tap", monitor_ip="10.0.0.5"),
                headers=operator,
            )  # fmt: skip
            assert created.status_code == 201, created.text
            viewer = admin_headers(ctl, Role.VIEWER)
            scraped = await http.get("/metrics", headers=viewer)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    metrics = _families(scraped.text)
    pid = str(created.json()["id"])
    status = metrics["vtap_policy_status"]
    assert ("vtap_policy_status", {"policy": "web-tap", "id": pid, "status": "active"}, 1.0) in (
        status
    )
    per_status = {labels["status"]: v for _, labels, v in metrics["vtap_policies"]}
    assert per_status["active"] == 1 and per_status["error"] == 0
    connected = {labels["switch"]: v for _, labels, v in metrics["vtap_switch_connected"]}
    assert len(connected) == 5 and set(connected.values()) == {1.0}
    flows = [v for _, _, v in metrics["vtap_switch_flows"]]
    assert all(v > 0 for v in flows), "every switch holds at least the base pipeline"
    rounds = {name: v for name, labels, v in metrics["vtap_install_round_seconds"] if not labels}
    assert rounds["vtap_install_round_seconds_count"] >= 1
    changes = metrics["vtap_install_round_flow_mods"]
    assert any(n.endswith("_sum") and v > 0 for n, _, v in changes), "no change was counted"
    requests = metrics["vtap_http_request_duration_seconds"]
    posted = [labels for name, labels, v in requests if name.endswith("_count") and v >= 1]
    assert {"method": "POST", "route": "/api/v1/policies", "status": "201"} in posted
    lag = {name: v for name, _, v in metrics["vtap_event_loop_lag_seconds"]}
    assert "vtap_event_loop_lag_seconds_count" in lag


async def test_the_grafana_dashboard_only_uses_metrics_vtap_serves(tmp_path: Path) -> None:
    """docs/grafana/vtap-dashboard.json queries nothing that /metrics does not serve."""
    dashboard = json.loads((ROOT / "docs" / "grafana" / "vtap-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"vtap_[a-z_]+", target["expr"])
    }
    async with controller_with_fakes(tmp_path, Fabric(spines=1, leaves=2, hosts_per_leaf=2)) as (
        ctl,
        _switches,
    ):
        transport = httpx.ASGITransport(app=create_app(ctl))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            await http.get("/api/v1/health")
            text = (await http.get("/metrics", headers=admin_headers(ctl, Role.VIEWER))).text
    families = list(text_string_to_metric_families(text))
    served = {s.name for f in families for s in f.samples}  # histograms' _bucket, _sum, _count
    served |= {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert used and used <= served, sorted(used - served)
