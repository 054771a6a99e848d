"""Policy validation: every refusal names the field an operator must fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from vtap.domain.policy import Policy, PolicyPatch, PolicySpec, PolicyStatus

BASE: dict[str, Any] = {
    "name": "tap1",
    "src_ip": "10.0.0.1",
    "dst_ip": "10.0.0.2",
    "monitor_mac": "00:00:00:00:00:03",
}


def spec(**changes: Any) -> PolicySpec:
    return PolicySpec.model_validate({**BASE, **changes})


def error_field(**changes: Any) -> str:
    with pytest.raises(ValidationError) as info:
        spec(**changes)
    errors = info.value.errors()
    assert len(errors) >= 1
    return str(errors[0]["loc"][-1])


def test_minimal_spec_and_defaults() -> None:
    s = spec()
    assert s.delivery == "tagged"
    assert s.enabled is True
    assert s.vlan_id is None


def test_addresses_are_normalised() -> None:
    s = spec(src_mac="AA:BB:CC:DD:EE:0F", monitor_mac="00:00:00:00:00:0A")
    assert s.src_mac == "aa:bb:cc:dd:ee:0f"
    assert s.monitor_mac == "00:00:00:00:00:0a"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"src_mac": "00:11:22:33:44"}, "src_mac"),
        ({"dst_mac": "00-11-22-33-44-55"}, "dst_mac"),
        ({"monitor_mac": "zz:11:22:33:44:55"}, "monitor_mac"),
        ({"src_ip": "10.0.0.256"}, "src_ip"),
        ({"dst_ip": "10.0.0"}, "dst_ip"),
        ({"monitor_ip": "::1"}, "monitor_ip"),
        ({"src_ip": "10.0.0.0/24"}, "src_ip"),
        ({"vlan_id": 0}, "vlan_id"),
        ({"vlan_id": 4095}, "vlan_id"),
        ({"ip_proto": 256}, "ip_proto"),
        ({"ip_proto": -1}, "ip_proto"),
        ({"ip_proto": 6, "src_port": 0}, "src_port"),
        ({"ip_proto": 6, "dst_port": 65536}, "dst_port"),
        ({"src_port": 80}, "src_port"),
        ({"ip_proto": 1, "dst_port": 80}, "dst_port"),
        ({"monitor_mac": None}, "monitor_mac"),
        ({"src_ip": None, "dst_ip": None}, "src_mac"),
        ({"monitor_ip": "10.0.0.1"}, "monitor_ip"),
        ({"monitor_ip": "10.0.0.2"}, "monitor_ip"),
        ({"src_mac": "00:00:00:00:00:03"}, "monitor_mac"),
        ({"dst_mac": "00:00:00:00:00:03"}, "monitor_mac"),
        ({"delivery": "mirror"}, "delivery"),
        ({"delivery": "rewrite"}, "delivery"),
        ({"delivery": "rewrite", "dst_mac": "00:00:00:00:00:02", "dst_ip": None}, "delivery"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": None}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    assert error_field(**changes) == field


def test_name_is_required() -> None:
    with pytest.raises(ValidationError) as info:
        PolicySpec.model_validate({k: v for k, v in BASE.items() if k != "name"})
    assert info.value.errors()[0]["loc"] == ("name",)


def test_valid_variants() -> None:
    spec(ip_proto=17, src_port=53, dst_port=5353, vlan_id=4094)
    spec(delivery="rewrite", dst_mac="00:00:00:00:00:02")
    spec(src_ip=None)  # destination only
    spec(dst_ip=None, monitor_mac=None, monitor_ip="10.0.0.3")  # source only, monitor by IP
    spec(name="a.b_c-1")


def test_identity_ignores_name_enabled_delivery() -> None:
    a = spec(dst_mac="00:00:00:00:00:02")
    b = spec(name="other", enabled=False, delivery="rewrite", dst_mac="00:00:00:00:00:02".upper())
    assert a.identity() == b.identity()
    assert spec(vlan_id=5).identity() != a.identity()
    assert spec(monitor_ip="10.0.0.9").identity() != spec().identity()


def test_patch_keeps_absent_fields_and_clears_nulls() -> None:
    s = spec(ip_proto=6, dst_port=80)
    patched = PolicyPatch.model_validate({"dst_port": None, "vlan_id": 7}).apply(s)
    assert patched.dst_port is None
    assert patched.ip_proto == 6
    assert patched.vlan_id == 7
    assert patched.name == "tap1"


def test_patch_revalidates_the_whole_result() -> None:
    s = spec(ip_proto=6, dst_port=80)
    with pytest.raises(ValidationError) as info:
        PolicyPatch(ip_proto=1).apply(s)
    assert info.value.errors()[0]["loc"] == ("dst_port",)
    with pytest.raises(ValidationError) as info:
        PolicyPatch.model_validate({"name": None}).apply(s)
    assert info.value.errors()[0]["loc"] == ("name",)
    with pytest.raises(ValidationError) as info:
        PolicyPatch.model_validate({"src_mac": "nope"})
    assert info.value.errors()[0]["loc"] == ("src_mac",)


def test_stored_policy() -> None:
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    p = Policy.stored(7, spec(), now, now)
    assert p.id == 7
    assert p.status == PolicyStatus.PENDING
    assert p.status_reason == ""
    assert p.spec() == spec()
    assert p.identity() == spec().identity()
    active = p.with_status(PolicyStatus.ACTIVE)
    assert active.status == "active"
    assert p.model_dump(mode="json")["created_at"] == "2024-01-02T03:04:05Z"
