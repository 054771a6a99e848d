"""The lab's address plan: names, MACs, IPs, dpids, ports, links, limits."""

from __future__ import annotations

import pytest

from vtap.errors import LabError
from vtap.lab.topo import MAX_HOSTS, LeafSpinePlan


@pytest.fixture
def plan() -> LeafSpinePlan:
    return LeafSpinePlan()


def test_default_size_is_4_spines_8_leaves_16_hosts(plan: LeafSpinePlan) -> None:
    assert (plan.spines, plan.leaves, plan.hosts_per_leaf) == (4, 8, 2)
    assert [h.name for h in plan.hosts] == [f"h{i}" for i in range(1, 17)]
    assert plan.bridges == (
        "spine1", "spine2", "spine3", "spine4",
        "leaf1", "leaf2", "leaf3", "leaf4", "leaf5", "leaf6", "leaf7", "leaf8",
    )  # fmt: skip


def test_host_addresses_follow_the_index(plan: LeafSpinePlan) -> None:
    h1, h16 = plan.host("h1"), plan.host("h16")
    assert (h1.mac, h1.ip, h1.cidr) == ("00:00:00:00:00:01", "10.0.0.1", "10.0.0.1/24")
    assert (h16.mac, h16.ip) == ("00:00:00:00:00:10", "10.0.0.16")
    assert len({h.mac for h in plan.hosts}) == len({h.ip for h in plan.hosts}) == 16


def test_hosts_fill_leaves_in_order(plan: LeafSpinePlan) -> None:
    placed = [(h.name, h.leaf, h.leaf_port) for h in plan.hosts[:5]]
    assert placed == [
        ("h1", "leaf1", 1), ("h2", "leaf1", 2), ("h3", "leaf2", 1), ("h4", "leaf2", 2),
        ("h5", "leaf3", 1),
    ]  # fmt: skip
    assert plan.host("h16").leaf == "leaf8"


def test_dpids_are_0x100_plus_leaf_and_0x200_plus_spine(plan: LeafSpinePlan) -> None:
    assert plan.switch("leaf1").dpid == 0x101
    assert plan.switch("leaf8").dpid == 0x108
    assert plan.switch("spine1").dpid == 0x201
    assert plan.switch("spine4").dpid_hex == "0000000000000204"
    assert len({s.dpid for s in plan.switches}) == 12


def test_every_leaf_connects_to_every_spine(plan: LeafSpinePlan) -> None:
    assert len(plan.fabric_links) == 32
    assert len(plan.edge_links) == 16
    pairs = {(lk.a.node, lk.b.node) for lk in plan.fabric_links}
    assert pairs == {(f"leaf{i}", f"spine{j}") for i in range(1, 9) for j in range(1, 5)}


def test_ports_and_interface_names(plan: LeafSpinePlan) -> None:
    # leaf ports 1..H face hosts, H+j faces spine j; spine port i faces leaf i
    assert plan.fabric_port(leaf=3, spine=2) == (4, 3)
    link = plan.link("spine2", "leaf3")
    assert (link.a.intf, link.b.intf) == ("leaf3-eth4", "spine2-eth3")
    assert plan.link("leaf1", "h2").a.intf == "h2-eth0"
    assert plan.ports_of("leaf1") == {1: "h1", 2: "h2", 3: "spine1", 4: "spine2",
                                      5: "spine3", 6: "spine4"}  # fmt: skip
    assert plan.ports_of("spine1") == {i: f"leaf{i}" for i in range(1, 9)}


def test_interface_lists(plan: LeafSpinePlan) -> None:
    assert len(plan.interfaces()) == 2 * (16 + 32)
    switch_side = plan.switch_interfaces()
    assert len(switch_side) == 16 + 2 * 32
    assert not any(name.startswith("h") for name in switch_side)
    assert all(len(name) <= 15 for name in plan.interfaces())  # IFNAMSIZ


def test_largest_plan_keeps_names_and_addresses_valid() -> None:
    plan = LeafSpinePlan(spines=32, leaves=127, hosts_per_leaf=2)
    assert plan.host_count == MAX_HOSTS
    assert plan.hosts[-1].ip == "10.0.0.254"
    assert plan.hosts[-1].mac == "00:00:00:00:00:fe"
    assert all(len(name) <= 15 for name in plan.interfaces())
    assert max(s.dpid for s in plan.spine_switches) < 0x300


def test_small_plan() -> None:
    plan = LeafSpinePlan(spines=2, leaves=2, hosts_per_leaf=1)
    assert [h.name for h in plan.hosts] == ["h1", "h2"]
    assert len(plan.fabric_links) == 4
    assert plan.host_range == "h1..h2"


@pytest.mark.parametrize(
    ("spines", "leaves", "hosts_per_leaf", "message"),
    [
        (0, 8, 2, "spines"),
        (4, 0, 2, "leaves"),
        (4, 8, 0, "hosts per leaf"),
        (-1, 8, 2, "positive"),
        (33, 8, 2, "at most 32 spines"),
        (4, 128, 2, "at most 254"),
        (4, 1, 255, "at most 254"),
    ],
)
def test_bad_sizes_are_rejected(
    spines: int, leaves: int, hosts_per_leaf: int, message: str
) -> None:
    with pytest.raises(LabError, match=message):
        LeafSpinePlan(spines, leaves, hosts_per_leaf)


def test_unknown_names_name_the_valid_range(plan: LeafSpinePlan) -> None:
    with pytest.raises(LabError, match=r"unknown host 'h99': the lab has h1\.\.h16"):
        plan.host("h99")
    with pytest.raises(LabError, match="unknown switch 'leaf9'"):
        plan.switch("leaf9")
    with pytest.raises(LabError, match="unknown node 'spine9'"):
        plan.link("spine9", "leaf1")
    with pytest.raises(LabError, match="no link between leaf1 and leaf2"):
        plan.link("leaf1", "leaf2")
