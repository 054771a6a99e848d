"""Flows, policy paths, copy counters and the event stream, with faked switch answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import admin_headers
from tests.api.livekit import FakeFabric, ip
from vtap.api.app import create_app
from vtap.api.schemas import FlowOut, PolicyLive, TopologyOut
from vtap.controller.core import Controller
from vtap.domain.network import FlowKey, dpid_str
from vtap.domain.policy import PolicySpec
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

API = "/api/v1"
WEB = FlowKey(ip(1), ip(16), 6, 40000, 80)
DNS = FlowKey(ip(3), ip(4), 17, 5353, 53)
PING = FlowKey(ip(5), ip(9), 1)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[Controller, FakeFabric]]:
    settings = Settings(state_dir=tmp_path, host_names={ip(1): "h1", "00:00:00:00:00:10": "h16"})
    controller = Controller(settings, MemoryPolicyRepository())
    fabric = FakeFabric(controller)
    fabric.flow(1, 16, WEB, pps=50)
    fabric.flow(3, 4, DNS, pps=5)
    fabric.flow(5, 9, PING, pps=1)
    fabric.tick()
    fabric.tick()
    yield controller, fabric
    await controller.flowstats.close()


@pytest.fixture
async def api(live: tuple[Controller, FakeFabric]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(live[0]))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=admin_headers(live[0])
    ) as http:
        yield http


async def test_flows_list_every_flow_with_counters_at_each_switch_in_path_order(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    _, fabric = live
    body = (await api.get(f"{API}/flows")).json()
    assert body["total"] == 3 and body["interval"] == 1.0
    web = next(f for f in body["flows"] if f["id"] == "6_10.0.0.1_40000_10.0.0.16_80")
    assert (web["src_ip"], web["dst_ip"], web["ip_proto"], web["src_port"], web["dst_port"]) == (
        ip(1),
        ip(16),
        6,
        40000,
        80,
    )
    assert (web["src_host"], web["dst_host"]) == ("h1", "h16")
    assert [h["dpid"] for h in web["hops"]] == [dpid_str(d) for d in fabric.paths[WEB]]
    for hop in web["hops"]:
        assert hop["switch"].startswith("s")
        assert hop["pps"] == 50.0 and hop["bps"] == 50 * 100 * 8
    assert web["pps"] == 50.0 and web["packets"] == web["hops"][0]["packets"]
    first = datetime.fromisoformat(web["first_seen"])
    last = datetime.fromisoformat(web["last_seen"])
    assert first <= last and last.tzinfo is not None
    same_leaf = next(f for f in body["flows"] if f["ip_proto"] == 17)
    assert len(same_leaf["hops"]) == 1


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("host=10.0.0.16", {"6_10.0.0.1_40000_10.0.0.16_80"}),
        ("host=h1", {"6_10.0.0.1_40000_10.0.0.16_80"}),
        ("host=00:00:00:00:00:04", {"17_10.0.0.3_5353_10.0.0.4_53"}),
        ("proto=udp", {"17_10.0.0.3_5353_10.0.0.4_53"}),
        ("proto=1", {"1_10.0.0.5_0_10.0.0.9_0"}),
        ("port=80", {"6_10.0.0.1_40000_10.0.0.16_80"}),
        ("port=5353&proto=udp", {"17_10.0.0.3_5353_10.0.0.4_53"}),
        ("port=80&proto=udp", set()),
    ],
)
async def test_flow_filters(api: httpx.AsyncClient, query: str, ids: set[str]) -> None:
    body = (await api.get(f"{API}/flows?{query}")).json()
    assert {f["id"] for f in body["flows"]} == ids
    assert body["total"] == len(ids)


async def test_flow_paging_and_bad_filters(api: httpx.AsyncClient) -> None:
    page = (await api.get(f"{API}/flows?offset=1&limit=1")).json()
    assert page["total"] == 3 and page["offset"] == 1 and len(page["flows"]) == 1
    bad = await api.get(f"{API}/flows?proto=sctpish")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "proto"]
    assert (await api.get(f"{API}/flows?port=70000")).status_code == 422


async def test_one_flow_with_rate_history_per_switch(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    _, fabric = live
    fabric.tick()
    detail = (await api.get(f"{API}/flows/6_10.0.0.1_40000_10.0.0.16_80")).json()
    assert [h["dpid"] for h in detail["history"]] == [dpid_str(d) for d in fabric.paths[WEB]]
    points = detail["history"][0]["points"]
    assert len(points) == 3 and points[-1]["pps"] == 50.0
    assert points[0]["t"] < points[-1]["t"]
    assert (await api.get(f"{API}/flows/6_10.0.0.1_1_10.0.0.16_80")).status_code == 404
    assert (await api.get(f"{API}/flows/nonsense")).status_code == 404


async def test_an_ended_flow_disappears(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    _, fabric = live
    fabric.end(DNS)
    fabric.tick()
    ids = {f["id"] for f in (await api.get(f"{API}/flows")).json()["flows"]}
    assert "17_10.0.0.3_5353_10.0.0.4_53" not in ids and len(ids) == 2


async def test_policy_paths_follow_its_flow_and_the_copy_tree(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    controller, fabric = live
    policy = controller.policies._store.add(
        PolicySpec(name="web", src_ip=ip(1), ip_proto=6, dst_port=80, monitor_ip=ip(7)),
        datetime.now(UTC),
    )
    paths = (await api.get(f"{API}/policies/{policy.id}/paths")).json()
    (production,) = paths["production_paths"]
    assert production["flow"] == "6_10.0.0.1_40000_10.0.0.16_80"
    assert [s["dpid"] for s in production["switches"]] == [dpid_str(d) for d in fabric.paths[WEB]]
    assert len(production["links"]) == 2
    copy = paths["copy_path"]
    assert copy["switches"][0]["dpid"] == dpid_str(fabric.paths[WEB][0])
    assert copy["dst_host"] == "00:00:00:00:00:07"
    assert len(copy["switches"]) == 3 and len(copy["links"]) == 2  # leaf1 → spine → leaf4
    assert (await api.get(f"{API}/policies/999/paths")).status_code == 404


async def test_copies_list_every_policy(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    controller, _ = live
    policy = controller.policies._store.add(
        PolicySpec(name="p", src_ip=ip(1), monitor_ip=ip(7)), datetime.now(UTC)
    )
    rows = (await api.get(f"{API}/copies")).json()
    assert rows == [{"policy_id": policy.id, "packets": 0, "bytes": 0, "pps": 0.0, "bps": 0.0}]


# ---------------------------------------------------------------- the event stream


def parse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


async def _stream_caught_up(controller: Controller, timeout: float = 10.0) -> None:
    """Until an event stream has sent everything up to the latest round and waits for more."""
    async with asyncio.timeout(timeout):
        while controller.flowstats.viewers_up_to_date() < 1:
            await asyncio.sleep(0.005)


async def test_event_stream_sends_snapshots_then_changes_and_ends_when_the_controller_stops(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    controller, fabric = live
    controller.policies._store.add(
        PolicySpec(name="p", src_ip=ip(1), monitor_ip=ip(7)), datetime.now(UTC)
    )
    request = asyncio.create_task(api.get(f"{API}/events"))
    await _stream_caught_up(controller)  # it sent its snapshots and waits for a round
    fabric.end(PING)
    fabric.tick()  # WEB and DNS counters change, PING is gone
    await controller.flowstats.publish()  # the round is complete: wakes the stream
    await _stream_caught_up(controller)  # it sent the round's changes
    await controller.flowstats.close()  # as when the controller stops
    response = await asyncio.wait_for(request, 5)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("retry: 2000")
    events = parse_events(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["topology", "policies", "flows"]
    TopologyOut.model_validate(events[0][1])
    policies = events[1][1]
    assert policies["full"] and len(policies["upsert"]) == 1
    PolicyLive.model_validate(policies["upsert"][0])
    flows = events[2][1]
    assert flows["full"] and flows["total"] == 3 and len(flows["upsert"]) == 3
    for row in flows["upsert"]:
        FlowOut.model_validate(row)
    later = [data for name, data in events[3:] if name == "flows"]
    assert later, names
    assert not later[0]["full"] and later[0]["removed"] == ["1_10.0.0.5_0_10.0.0.9_0"]
    assert {r["id"] for r in later[0]["upsert"]} == {
        "6_10.0.0.1_40000_10.0.0.16_80",
        "17_10.0.0.3_5353_10.0.0.4_53",
    }
    assert "topology" not in names[3:]  # nothing changed there


async def test_event_stream_topics(
    api: httpx.AsyncClient, live: tuple[Controller, FakeFabric]
) -> None:
    controller, _ = live
    request = asyncio.create_task(api.get(f"{API}/events?topics=flows"))
    await _stream_caught_up(controller)
    await controller.flowstats.close()
    names = [name for name, _ in parse_events((await asyncio.wait_for(request, 5)).text)]
    assert names == ["flows"]


async def test_event_stream_ends_when_the_client_goes_away(
    live: tuple[Controller, FakeFabric],
) -> None:
    """Drive the ASGI app by hand: the client disconnects after the first chunk."""
    controller, _ = live
    app = create_app(controller)
    token = [(k.lower().encode(), v.encode()) for k, v in admin_headers(controller).items()]
    sent: list[dict] = []
    gone = asyncio.Event()

    async def receive() -> dict:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"{API}/events",
        "raw_path": f"{API}/events".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *token],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert sent[0]["status"] == 200
    assert not controller.flowstats.closed  # it ended because of the client, not a stop


async def test_the_console_is_served_at_the_root(api: httpx.AsyncClient) -> None:
    page = await api.get("/")
    assert page.status_code == 200 and "<title>vtap" in page.text
    assert (await api.get(f"{API}/health")).status_code == 200
    spec = (await api.get("/openapi.json")).json()
    for path in ("/flows", "/flows/{flow_id}", "/events", "/policies/{policy_id}/paths"):
        assert f"{API}{path}" in spec["paths"]
