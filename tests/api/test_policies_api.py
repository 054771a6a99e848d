"""REST API for TAP policies (issue 3, "Interfaces"): status codes, field names, errors.

No switch is connected, so a policy whose hosts are unknown is `pending` with a reason; the
compiled-plan test at the end observes a fabric and hosts so that the compiler makes rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api.conftest import POLICIES, observe_fabric, spec_body
from tests.unit.leafspine import Fabric
from vtap.api.ofctl import to_ofctl
from vtap.compiler.plan import compile_tap
from vtap.compiler.topoview import TopologyView
from vtap.controller.core import Controller
from vtap.domain.network import dpid_str
from vtap.domain.policy import Policy
from vtap.store import MemoryPolicyRepository

# The names, spelled out here (not imported) so that a rename fails this suite.
SPEC_NAMES = {
    "name",
    "src_mac",
    "src_ip",
    "dst_mac",
    "dst_ip",
    "monitor_mac",
    "monitor_ip",
    "vlan_id",
    "ip_proto",
    "src_port",
    "dst_port",
    "delivery",
    "enabled",
}
SERVER_NAMES = {"id", "status", "status_reason", "created_at", "updated_at"}

Seed = Callable[..., Policy]


async def count(client: httpx.AsyncClient) -> int:
    resp = await client.get(POLICIES)
    assert resp.status_code == 200
    return len(resp.json())


def error_fields(resp: httpx.Response) -> set[str]:
    """The fields a 422 names: the last element of each error's `loc`."""
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail, resp.text
    return {str(err["loc"][-1]) for err in detail}


# ------------------------------------------------------------------------------ create


async def test_create_answers_201_pending_with_reason_and_every_field(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post(POLICIES, json=spec_body("web", vlan_id=100))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == SPEC_NAMES | SERVER_NAMES
    assert isinstance(body["id"], int) and body["id"] >= 1
    # Nothing is discovered: pending, and the reason says which host is missing.
    assert body["status"] == "pending"
    assert "10.0.0.3" in body["status_reason"]
    assert "not discovered" in body["status_reason"]
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert body["updated_at"] == body["created_at"]
    # What was given comes back; what was not is a wildcard (null); defaults are filled in.
    assert body["name"] == "web"
    assert (body["src_ip"], body["dst_ip"], body["monitor_ip"]) == (
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
    )
    assert (body["ip_proto"], body["dst_port"], body["vlan_id"]) == (6, 80, 100)
    for wildcard in ("src_mac", "dst_mac", "monitor_mac", "src_port"):
        assert body[wildcard] is None
    assert body["delivery"] == "tagged"
    assert body["enabled"] is True


async def test_create_normalises_addresses(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        POLICIES,
        json={"name": "macs", "src_mac": "AA:BB:CC:00:00:01", "monitor_mac": "AA:BB:CC:00:00:03"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["src_mac"] == "aa:bb:cc:00:00:01"
    assert resp.json()["monitor_mac"] == "aa:bb:cc:00:00:03"


async def test_create_disabled_is_pending_because_disabled(client: httpx.AsyncClient) -> None:
    resp = await client.post(POLICIES, json=spec_body("off", enabled=False))
    assert resp.status_code == 201, resp.text
    assert resp.json()["enabled"] is False
    assert (resp.json()["status"], resp.json()["status_reason"]) == ("pending", "disabled")


async def test_rewrite_with_destination_is_accepted(client: httpx.AsyncClient) -> None:
    body = spec_body("rw", delivery="rewrite", dst_mac="00:00:00:00:00:02")
    resp = await client.post(POLICIES, json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["delivery"] == "rewrite"


# ------------------------------------------------------------------------------ read


async def test_list_and_get(client: httpx.AsyncClient, seed: Seed) -> None:
    assert (await client.get(POLICIES)).json() == []
    a = seed("a")
    b = seed("b", dst_port=443)
    listed = (await client.get(POLICIES)).json()
    assert [p["id"] for p in listed] == [a.id, b.id]
    assert [p["name"] for p in listed] == ["a", "b"]
    for p in listed:
        assert set(p) == SPEC_NAMES | SERVER_NAMES
        assert p["status"] in ("pending", "active", "error")

    resp = await client.get(f"{POLICIES}/{b.id}")
    assert resp.status_code == 200
    assert resp.json()["dst_port"] == 443
    assert resp.json() == listed[1]


async def test_get_after_create_shows_the_same_policy(client: httpx.AsyncClient) -> None:
    created = (await client.post(POLICIES, json=spec_body("same"))).json()
    fetched = (await client.get(f"{POLICIES}/{created['id']}")).json()
    assert fetched == created


# ------------------------------------------------------------------------------ update


async def test_patch_is_partial(client: httpx.AsyncClient, seed: Seed) -> None:
    p = seed("p")
    resp = await client.patch(f"{POLICIES}/{p.id}", json={"vlan_id": 200})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["vlan_id"] == 200
    # everything not mentioned stays
    assert (body["name"], body["src_ip"], body["dst_ip"], body["dst_port"]) == (
        "p",
        "10.0.0.1",
        "10.0.0.2",
        80,
    )
    assert body["monitor_ip"] == "10.0.0.3"
    assert datetime.fromisoformat(body["created_at"]) == p.created_at
    assert datetime.fromisoformat(body["updated_at"]) >= p.updated_at
    assert (await client.get(f"{POLICIES}/{p.id}")).json()["vlan_id"] == 200


async def test_patch_null_makes_a_wildcard(client: httpx.AsyncClient, seed: Seed) -> None:
    p = seed("p", vlan_id=100)
    resp = await client.patch(f"{POLICIES}/{p.id}", json={"dst_ip": None, "vlan_id": None})
    assert resp.status_code == 200, resp.text
    stored = (await client.get(f"{POLICIES}/{p.id}")).json()
    assert stored["dst_ip"] is None
    assert stored["vlan_id"] is None
    assert stored["src_ip"] == "10.0.0.1"  # untouched


async def test_disable_and_enable(client: httpx.AsyncClient, seed: Seed) -> None:
    p = seed("p")
    off = await client.patch(f"{POLICIES}/{p.id}", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    assert (off.json()["status"], off.json()["status_reason"]) == ("pending", "disabled")
    assert (await client.get(f"{POLICIES}/{p.id}")).json()["status_reason"] == "disabled"

    on = await client.patch(f"{POLICIES}/{p.id}", json={"enabled": True})
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is True
    assert on.json()["status"] == "pending"
    assert "not discovered" in on.json()["status_reason"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"monitor_ip": "10.0.0.1"}, "monitor_ip"),  # monitor becomes the source
        ({"monitor_ip": "10.0.0.2"}, "monitor_ip"),  # … or the destination
        ({"ip_proto": 1}, "dst_port"),  # the port filter loses its TCP
        ({"ip_proto": None}, "dst_port"),
        ({"src_ip": None, "dst_ip": None}, "src_mac"),  # neither source nor destination
        ({"monitor_ip": None}, "monitor_mac"),  # no monitor left
        ({"delivery": "rewrite"}, "delivery"),  # rewrite without dst_mac
        ({"src_mac": "00:00:00:00:00"}, "src_mac"),
        ({"vlan_id": 4095}, "vlan_id"),
        ({"name": "no spaces"}, "name"),
        ({"name": None}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, seed: Seed, patch: dict[str, Any], field: str
) -> None:
    p = seed("p")
    before = (await client.get(f"{POLICIES}/{p.id}")).json()
    resp = await client.patch(f"{POLICIES}/{p.id}", json=patch)
    assert error_fields(resp) == {field}
    assert (await client.get(f"{POLICIES}/{p.id}")).json() == before


async def test_patch_into_a_duplicate_is_409(client: httpx.AsyncClient, seed: Seed) -> None:
    a = seed("a")
    b = seed("b", dst_port=443)
    before = (await client.get(f"{POLICIES}/{b.id}")).json()
    same_match = await client.patch(f"{POLICIES}/{b.id}", json={"dst_port": 80})
    assert same_match.status_code == 409, same_match.text
    assert str(a.id) in same_match.json()["detail"]
    same_name = await client.patch(f"{POLICIES}/{b.id}", json={"name": "a"})
    assert same_name.status_code == 409, same_name.text
    assert (await client.get(f"{POLICIES}/{b.id}")).json() == before


# ------------------------------------------------------------------------------ delete


async def test_delete_is_204_then_404(client: httpx.AsyncClient, seed: Seed) -> None:
    keep = seed("keep")
    gone = seed("gone", dst_port=443)
    resp = await client.delete(f"{POLICIES}/{gone.id}")
    assert resp.status_code == 204
    assert resp.content == b""
    assert (await client.get(f"{POLICIES}/{gone.id}")).status_code == 404
    assert (await client.delete(f"{POLICIES}/{gone.id}")).status_code == 404
    assert [p["id"] for p in (await client.get(POLICIES)).json()] == [keep.id]


async def test_ids_are_not_reused_after_delete(client: httpx.AsyncClient) -> None:
    first = (await client.post(POLICIES, json=spec_body("one"))).json()
    assert (await client.delete(f"{POLICIES}/{first['id']}")).status_code == 204
    second = await client.post(POLICIES, json=spec_body("one"))
    assert second.status_code == 201, second.text
    assert second.json()["id"] > first["id"]


# ------------------------------------------------------------------------------ 404


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"vlan_id": 10}),
        ("DELETE", "", None),
        ("GET", "/rules", None),
        ("GET", "/stats", None),
    ],
)
@pytest.mark.parametrize("policy_id", [999, 0, 2**70])
async def test_unknown_id_is_404(
    client: httpx.AsyncClient,
    seed: Seed,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    policy_id: int,
) -> None:
    seed("exists")
    resp = await client.request(method, f"{POLICIES}/{policy_id}{suffix}", json=body)
    assert resp.status_code == 404, resp.text
    assert f"no policy with id {policy_id}" in resp.json()["detail"]
    assert await count(client) == 1


async def test_non_numeric_id_is_422_naming_the_path_parameter(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get(f"{POLICIES}/web")
    assert error_fields(resp) == {"policy_id"}


# ------------------------------------------------------------------------------ 422 on create

_MAC_BAD = ["00:00:00:00:00", "00-00-00-00-00-01", "zz:00:00:00:00:01", "000000000001", ""]
_IP_BAD = ["10.0.0.256", "10.0.0", "10.0.0.01", "host1", "10.0.0.1/24", ""]


def _mac_cases() -> list[Any]:
    base = {"name": "m", "src_mac": "00:00:00:00:00:01", "monitor_mac": "00:00:00:00:00:03"}
    cases = []
    for field in ("src_mac", "dst_mac", "monitor_mac"):
        for bad in _MAC_BAD:
            cases.append(pytest.param({**base, field: bad}, field, id=f"{field}={bad!r}"))
    return cases


def _ip_cases() -> list[Any]:
    cases = []
    for field in ("src_ip", "dst_ip", "monitor_ip"):
        for bad in _IP_BAD:
            cases.append(pytest.param(spec_body(**{field: bad}), field, id=f"{field}={bad!r}"))
    return cases


_CREATE_ERRORS = [
    *_mac_cases(),
    *_ip_cases(),
    pytest.param(spec_body(vlan_id=0), "vlan_id", id="vlan 0"),
    pytest.param(spec_body(vlan_id=4095), "vlan_id", id="vlan 4095"),
    pytest.param(spec_body(vlan_id=-1), "vlan_id", id="vlan -1"),
    pytest.param(spec_body(vlan_id="ten"), "vlan_id", id="vlan not a number"),
    pytest.param(spec_body(dst_port=0), "dst_port", id="dst_port 0"),
    pytest.param(spec_body(dst_port=65536), "dst_port", id="dst_port 65536"),
    pytest.param(spec_body(dst_port=..., src_port=0), "src_port", id="src_port 0"),
    pytest.param(spec_body(dst_port=..., src_port=65536), "src_port", id="src_port 65536"),
    pytest.param(spec_body(ip_proto=256), "ip_proto", id="ip_proto 256"),
    pytest.param(spec_body(ip_proto=...), "dst_port", id="dst_port without ip_proto"),
    pytest.param(spec_body(ip_proto=1), "dst_port", id="dst_port with ICMP"),
    pytest.param(
        spec_body(ip_proto=..., dst_port=..., src_port=5000), "src_port", id="src_port no proto"
    ),
    pytest.param(
        spec_body(ip_proto=1, dst_port=..., src_port=5000), "src_port", id="src_port with ICMP"
    ),
    pytest.param(spec_body(monitor_ip="10.0.0.1"), "monitor_ip", id="monitor ip = source"),
    pytest.param(spec_body(monitor_ip="10.0.0.2"), "monitor_ip", id="monitor ip = destination"),
    pytest.param(
        {"name": "m", "src_mac": "00:00:00:00:00:01", "monitor_mac": "00:00:00:00:00:01"},
        "monitor_mac",
        id="monitor mac = source",
    ),
    pytest.param(
        {"name": "m", "src_mac": "aa:00:00:00:00:01", "monitor_mac": "AA:00:00:00:00:01"},
        "monitor_mac",
        id="monitor mac = source, other case",
    ),
    pytest.param(
        {"name": "m", "dst_mac": "00:00:00:00:00:02", "monitor_mac": "00:00:00:00:00:02"},
        "monitor_mac",
        id="monitor mac = destination",
    ),
    pytest.param(spec_body(delivery="mirror"), "delivery", id="unknown delivery"),
    pytest.param(spec_body(delivery=None), "delivery", id="null delivery"),
    pytest.param(spec_body(delivery="rewrite"), "delivery", id="rewrite without dst_mac"),
    pytest.param(
        spec_body(delivery="rewrite", dst_ip=..., dst_mac="00:00:00:00:00:02"),
        "delivery",
        id="rewrite without dst_ip",
    ),
    pytest.param(spec_body(monitor_ip=...), "monitor_mac", id="no monitor"),
    pytest.param(
        spec_body(src_ip=..., dst_ip=..., ip_proto=..., dst_port=...),
        "src_mac",
        id="no source and no destination",
    ),
    pytest.param(spec_body(colour="red"), "colour", id="unknown field"),
    pytest.param(spec_body(id=7), "id", id="server field id"),
    pytest.param(spec_body(status="active"), "status", id="server field status"),
    pytest.param(spec_body(name=...), "name", id="no name"),
    pytest.param(spec_body(name=""), "name", id="empty name"),
    pytest.param(spec_body(name="my tap"), "name", id="name with space"),
    pytest.param(spec_body(name="x" * 65), "name", id="name too long"),
    pytest.param(spec_body(name="tap/1"), "name", id="name with slash"),
    pytest.param(spec_body(enabled="maybe"), "enabled", id="enabled not a bool"),
]


@pytest.mark.parametrize(("body", "field"), _CREATE_ERRORS)
async def test_invalid_create_is_422_naming_the_field(
    client: httpx.AsyncClient, seed: Seed, body: dict[str, Any], field: str
) -> None:
    seed("existing", dst_port=9)
    resp = await client.post(POLICIES, json=body)
    assert error_fields(resp) == {field}
    assert resp.json()["detail"][0]["loc"] == ["body", field]
    assert resp.json()["detail"][0]["msg"]
    assert await count(client) == 1  # nothing created


async def test_several_errors_are_all_named(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        POLICIES, json=spec_body(src_ip="bad", vlan_id=0, monitor_ip="10.0.0.2")
    )
    assert error_fields(resp) >= {"src_ip", "vlan_id"}
    assert await count(client) == 0


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", b'"tap"', b"null"], ids=repr)
async def test_body_that_is_not_a_policy_object_is_422(
    client: httpx.AsyncClient, content: bytes
) -> None:
    resp = await client.post(
        POLICIES, content=content, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert await count(client) == 0


# ------------------------------------------------------------------------------ 409


async def test_same_match_and_monitor_is_409(client: httpx.AsyncClient, seed: Seed) -> None:
    first = seed("first")
    resp = await client.post(POLICIES, json=spec_body("second"))
    assert resp.status_code == 409, resp.text
    assert str(first.id) in resp.json()["detail"]
    assert await count(client) == 1


async def test_same_match_in_another_spelling_is_409(client: httpx.AsyncClient, seed: Seed) -> None:
    macs = {"src_ip": ..., "src_mac": "aa:bb:cc:dd:ee:01", "dst_mac": "aa:bb:cc:dd:ee:02"}
    seed("first", **macs)
    # Upper-case MACs are the same addresses; `delivery` and `enabled` are not part of a TAP's
    # identity: same packets to the same monitor is a duplicate.
    body = spec_body("second", **{k: v.upper() for k, v in macs.items() if v is not ...})
    body = {**body, "src_ip": None, "delivery": "rewrite", "enabled": False}
    resp = await client.post(POLICIES, json=body)
    assert resp.status_code == 409, resp.text
    assert await count(client) == 1


async def test_duplicate_name_is_409(client: httpx.AsyncClient, seed: Seed) -> None:
    seed("web")
    resp = await client.post(POLICIES, json=spec_body("web", dst_port=443))
    assert resp.status_code == 409, resp.text
    assert "web" in resp.json()["detail"]
    assert await count(client) == 1


async def test_same_match_other_monitor_is_not_a_duplicate(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    seed("to-h3")
    resp = await client.post(POLICIES, json=spec_body("to-h4", monitor_ip="10.0.0.4"))
    assert resp.status_code == 201, resp.text
    assert await count(client) == 2


# ------------------------------------------------------------------------------ bulk

BULK = f"{POLICIES}/bulk"


async def test_bulk_creates_all_in_order_with_status(
    client: httpx.AsyncClient, controller: Controller
) -> None:
    observe_fabric(controller, Fabric(spines=2, leaves=2, hosts_per_leaf=2))
    bodies = [spec_body(f"b{i}", dst_port=1000 + i) for i in range(5)]
    resp = await client.post(BULK, json={"policies": bodies})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert [p["name"] for p in created] == [b["name"] for b in bodies]
    assert [p["dst_port"] for p in created] == [1000 + i for i in range(5)]
    # Compiled in the same round (no switch connected to confirm it yet).
    assert all(p["status_reason"].endswith("is not connected") for p in created), created
    assert await count(client) == 5
    for p in created:
        assert controller.installer.compiler.rules_for(p["id"])


async def test_bulk_with_an_invalid_item_is_422_naming_index_and_field(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    seed("existing", dst_port=9)
    bodies = [spec_body("ok"), spec_body("bad", src_ip="10.0.0.300")]
    resp = await client.post(BULK, json={"policies": bodies})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "policies", 1, "src_ip"]
    assert await count(client) == 1  # "ok" was not created either


async def test_bulk_clash_is_409_naming_the_item_and_creates_nothing(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    first = seed("first")
    bodies = [spec_body("new", dst_port=81), spec_body("second")]
    resp = await client.post(BULK, json={"policies": bodies})
    assert resp.status_code == 409, resp.text
    assert resp.json()["detail"].startswith("policies[1]: ")
    assert str(first.id) in resp.json()["detail"]
    twins = [spec_body("a", dst_port=81), spec_body("b", dst_port=81)]
    resp = await client.post(BULK, json={"policies": twins})
    assert resp.status_code == 409, resp.text
    assert resp.json()["detail"] == "policies[1]: same match and monitor as policies[0]"
    assert await count(client) == 1


@pytest.mark.parametrize("body", [{"policies": []}, {}, [], {"policies": "x"}], ids=repr)
async def test_bulk_without_policies_is_422(client: httpx.AsyncClient, body: object) -> None:
    resp = await client.post(BULK, json=body)
    assert resp.status_code == 422, resp.text
    assert await count(client) == 0


async def test_bulk_delete_removes_all_or_none(
    client: httpx.AsyncClient, controller: Controller
) -> None:
    observe_fabric(controller, Fabric(spines=2, leaves=2, hosts_per_leaf=2))
    bodies = [spec_body(f"d{i}", dst_port=2000 + i) for i in range(4)]
    created = (await client.post(BULK, json={"policies": bodies})).json()
    ids = [p["id"] for p in created]
    resp = await client.post(f"{POLICIES}/bulk-delete", json={"ids": [ids[0], 999]})
    assert resp.status_code == 404, resp.text
    assert "999" in resp.json()["detail"]
    assert await count(client) == 4
    resp = await client.post(f"{POLICIES}/bulk-delete", json={"ids": ids[:3]})
    assert resp.status_code == 204, resp.text
    assert [p["id"] for p in (await client.get(POLICIES)).json()] == ids[3:]
    # Their rules are gone from the plan in the same round; the fourth's stay.
    assert not any(controller.installer.compiler.rules_for(i) for i in ids[:3])
    assert controller.installer.compiler.rules_for(ids[3])
    resp = await client.post(f"{POLICIES}/bulk-delete", json={"ids": []})
    assert resp.status_code == 422, resp.text


# ------------------------------------------------------------------------------ rules, stats


async def test_rules_and_stats_of_a_pending_policy(client: httpx.AsyncClient) -> None:
    p = (await client.post(POLICIES, json=spec_body("p"))).json()
    rules = await client.get(f"{POLICIES}/{p['id']}/rules")
    assert rules.status_code == 200, rules.text
    assert rules.json() == {
        "policy_id": p["id"],
        "status": "pending",
        "status_reason": p["status_reason"],
        "switches": [],
    }
    assert "not discovered" in rules.json()["status_reason"]

    stats = await client.get(f"{POLICIES}/{p['id']}/stats")
    assert stats.status_code == 200, stats.text
    assert stats.json() == {"policy_id": p["id"], "packets": 0, "bytes": 0, "copies": []}


async def test_rules_of_a_compiled_policy_are_the_compiled_ofctl_text(
    client: httpx.AsyncClient, controller: Controller, store: MemoryPolicyRepository
) -> None:
    fab = Fabric(spines=2, leaves=2, hosts_per_leaf=2)
    observe_fabric(controller, fab)
    # h1 → h2 (leaf 1), TCP 80, monitor h3 (leaf 2): classified on leaf 1, delivered on leaf 2.
    resp = await client.post(POLICIES, json=spec_body("web"))
    assert resp.status_code == 201, resp.text
    policy = resp.json()
    # Compiled, but no switch is connected to confirm it.
    assert policy["status"] == "pending"
    assert "not connected" in policy["status_reason"]

    out = await client.get(f"{POLICIES}/{policy['id']}/rules")
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["policy_id"] == policy["id"]
    assert body["status"] == "pending"

    plan = compile_tap(
        store.list(),
        TopologyView(controller.state.topology),
        controller.state.hosts,
        store.get_tags(),
    )
    expected = plan.rules_for(policy["id"])
    assert expected, "the policy should compile to rules on this fabric"
    leaf1, leaf2 = (dpid_str(d) for d in fab.leaf_ids())
    by_dpid = {sw["dpid"]: sw for sw in body["switches"]}
    assert set(by_dpid) == {dpid_str(d) for d in expected}
    assert {leaf1, leaf2} <= set(by_dpid)

    for dpid, (flows, groups) in expected.items():
        sw = by_dpid[dpid_str(dpid)]
        assert sw["switch"] == fab.switch(dpid).name
        want = {to_ofctl(r) for r in flows} | {to_ofctl(g) for g in groups}
        assert {r["ofctl"] for r in sw["rules"]} == want
        assert len(sw["rules"]) == len(flows) + len(groups)
        for rule in sw["rules"]:
            assert rule["kind"] in ("flow", "group")
            if rule["kind"] == "group":
                assert rule["group_id"] is not None
                assert rule["ofctl"].startswith(f"group_id=0x{rule['group_id']:08x},")
            else:
                assert rule["table_id"] is not None and rule["priority"] is not None
                assert rule["cookie"].startswith("0x") and len(rule["cookie"]) == 18
                assert f"table={rule['table_id']}" in rule["ofctl"]

    # On the source's leaf: the copy group (a bucket per monitor slot), and a classification
    # entry from h1's port matching the policy, that sets its monitor's bit.
    src_rules = by_dpid[leaf1]["rules"]
    groups = [r for r in src_rules if r["kind"] == "group"]
    assert len(groups) == 1 and ",type=all," in groups[0]["ofctl"]
    assert groups[0]["ofctl"].count("bucket=") == 1
    classify = [r for r in src_rules if "->reg0" in r["ofctl"] and "metadata" not in r["ofctl"]]
    assert len(classify) == 1
    h1_port = fab.host_port(1).port_no
    for part in (f"in_port={h1_port}", "tcp", "nw_src=10.0.0.1", "nw_dst=10.0.0.2", "tp_dst=80"):
        assert part in classify[0]["ofctl"].split(" ")[0].split(",")
    # On the monitor's leaf: rules that deliver the copy to h3's port.
    h3_port = fab.host_port(3).port_no
    assert any(f"output:{h3_port}" in r["ofctl"] for r in by_dpid[leaf2]["rules"])

    stats = (await client.get(f"{POLICIES}/{policy['id']}/stats")).json()
    assert stats == {"policy_id": policy["id"], "packets": 0, "bytes": 0, "copies": []}


# ------------------------------------------------------------------------------ OpenAPI


async def test_openapi_lists_every_route_and_docs_answer(client: httpx.AsyncClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    expected = {
        "/api/v1/policies": {"get", "post"},
        "/api/v1/policies/{policy_id}": {"get", "patch", "delete"},
        "/api/v1/policies/{policy_id}/rules": {"get"},
        "/api/v1/policies/{policy_id}/stats": {"get"},
        "/api/v1/health": {"get"},
        "/api/v1/topology": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert set(paths[path]) >= methods, (path, sorted(paths[path]))
    post = paths["/api/v1/policies"]["post"]
    assert {"201", "409", "422"} <= set(post["responses"])
    one = paths["/api/v1/policies/{policy_id}"]
    assert "404" in one["get"]["responses"]
    assert "204" in one["delete"]["responses"]
    assert {"404", "409", "422"} <= set(one["patch"]["responses"])

    # The create schema names the fields.
    schemas = resp.json()["components"]["schemas"]
    assert set(schemas["PolicySpec"]["properties"]) >= SPEC_NAMES

    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_put_replaces_the_whole_set_in_one_round_and_lets_two_policies_swap(
    client: httpx.AsyncClient, controller: Controller, seed: Seed
) -> None:
    a, b = seed("a", dst_port=80), seed("b", dst_port=81)
    seed("c", dst_port=82)
    desired = [
        spec_body("a", dst_port=81),
        spec_body("b", dst_port=80),
        spec_body("d", dst_port=83),
    ]
    dry = await client.put(POLICIES, params={"dry_run": "true"}, json={"policies": desired})
    assert dry.status_code == 200, dry.text
    assert {k: dry.json()[k] for k in ("created", "changed", "removed", "unchanged")} == {
        "created": ["d"], "changed": ["a", "b"], "removed": ["c"], "unchanged": 0,
    }  # fmt: skip
    assert {p["name"] for p in (await client.get(POLICIES)).json()} == {"a", "b", "c"}

    rounds = controller.installer.rounds
    resp = await client.put(POLICIES, json={"policies": desired})
    assert resp.status_code == 200, resp.text
    assert resp.json()["dry_run"] is False and resp.json()["removed"] == ["c"]
    assert controller.installer.rounds == rounds + 1  # one round for the lot
    now = {p["name"]: (p["id"], p["dst_port"]) for p in (await client.get(POLICIES)).json()}
    assert now["a"] == (a.id, 81) and now["b"] == (b.id, 80) and set(now) == {"a", "b", "d"}
    again = await client.put(POLICIES, json={"policies": desired})
    assert again.json()["unchanged"] == 3 and controller.installer.rounds == rounds + 1


async def test_put_is_all_or_nothing_and_an_empty_set_needs_prune(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    seed("keep", dst_port=80)
    bad = [spec_body("new", dst_port=90), spec_body("broken", src_ip="10.0.0.300")]
    resp = await client.put(POLICIES, json={"policies": bad})
    assert resp.json()["detail"][0]["loc"] == ["body", "policies", 1, "src_ip"]
    twins = [spec_body("x", dst_port=91), spec_body("y", dst_port=91)]
    resp = await client.put(POLICIES, json={"policies": twins})
    assert resp.status_code == 409 and resp.json()["detail"].startswith("policies[1]: ")
    empty = await client.put(POLICIES, json={"policies": []})
    assert error_fields(empty) == {"policies"} and "prune=true" in empty.text
    assert [p["name"] for p in (await client.get(POLICIES)).json()] == ["keep"]
    pruned = await client.put(POLICIES, params={"prune": "true"}, json={"policies": []})
    assert pruned.status_code == 200 and pruned.json()["removed"] == ["keep"]
    assert await count(client) == 0


async def test_list_filters_and_pages(client: httpx.AsyncClient, seed: Seed) -> None:
    web = [seed(f"web-{i}", dst_port=8000 + i) for i in range(5)]
    dns = seed("dns", ip_proto=17, dst_port=53, monitor_ip="10.0.0.9")
    resp = await client.get(POLICIES, params={"q": "WEB", "limit": 2, "offset": 1})
    assert [p["id"] for p in resp.json()] == [web[1].id, web[2].id]
    assert resp.headers["X-Total-Count"] == "5"
    by_monitor = (await client.get(POLICIES, params={"monitor": "10.0.0.9"})).json()
    assert [p["id"] for p in by_monitor] == [dns.id]
    pending = await client.get(POLICIES, params={"status": "pending"})
    assert len(pending.json()) == 6 and pending.headers["X-Total-Count"] == "6"
    assert (await client.get(POLICIES, params={"status": "active"})).json() == []
    bad = await client.get(POLICIES, params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]
    assert (await client.get(POLICIES, params={"limit": 0})).status_code == 422


async def test_if_match_keeps_two_operators_from_overwriting_each_other(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    policy = seed("shared")
    first = await client.get(f"{POLICIES}/{policy.id}")
    etag = first.headers["ETag"]
    assert (
        etag.startswith('"')
        and etag == (await client.get(f"{POLICIES}/{policy.id}")).headers["ETag"]
    ), "the same version has the same tag"
    # Operator 1 changes the port with the tag it read: accepted, with a new tag.
    one = await client.patch(
        f"{POLICIES}/{policy.id}", json={"dst_port": 8443}, headers={"If-Match": etag}
    )
    assert one.status_code == 200 and one.headers["ETag"] != etag
    # Operator 2 still holds the old tag: refused, and nothing it sent is applied.
    two = await client.patch(
        f"{POLICIES}/{policy.id}", json={"dst_port": 9999}, headers={"If-Match": etag}
    )
    assert two.status_code == 412 and "changed since it was read" in two.json()["detail"]
    assert (await client.get(f"{POLICIES}/{policy.id}")).json()["dst_port"] == 8443
    # Without If-Match, a PATCH applies as before; "*" matches any version.
    assert (await client.patch(f"{POLICIES}/{policy.id}", json={"dst_port": 81})).status_code == 200
    star = await client.patch(
        f"{POLICIES}/{policy.id}", json={"dst_port": 82}, headers={"If-Match": "*"}
    )
    assert star.status_code == 200
