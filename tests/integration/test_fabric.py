"""The default lab (4 spines, 8 leaves, 16 hosts) with the controller, on real OVS.

The tests run in file order on one lab: reachability first (timed from `lab up`), then the
topology view, link failure, and last the controller restart (which replaces the lab's
controller with one this module owns).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.labkit import (
    Lab,
    fabric_complete,
    one_line_error,
    running_lab,
    vtap,
    wait_until,
)
from vtap.lab.reach import ping_all

# How long a step may take before the test gives up: a liveness bound for a loaded 2-core
# machine, not a speed target (the times are printed; `pytest -s` shows them).
LIVENESS = 120.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("vtap-state")) as lab:
        yield lab


def _hosts(lab: Lab) -> dict[str, str]:
    return {h.name: h.ip for h in lab.plan.hosts}


def test_all_pairs_reach_each_other_after_start(lab: Lab) -> None:
    """Every pair of hosts reaches every other; how long it took is printed (a figure for the
    README, not an assertion: the deadline is a liveness bound for a loaded machine)."""
    wait_until(lambda: fabric_complete(lab, 32), timeout=LIVENESS)
    deadline = lab.started + LIVENESS
    report = ping_all(_hosts(lab))
    while report.failed and time.monotonic() < deadline:
        report = ping_all(_hosts(lab))
    elapsed = time.monotonic() - lab.started
    assert report.pairs == 240
    assert report.failed == [], f"unreachable after {elapsed:.1f}s: {report.failed[:10]}"
    print(f"all 240 pairs reachable {elapsed:.1f}s after lab up")
    # And once settled, a second round has no loss at all.
    again = ping_all(_hosts(lab))
    assert again.failed == []


def test_topology_lists_switches_links_and_hosts_on_the_right_ports(lab: Lab) -> None:
    topo = lab.topology()
    assert len(topo["switches"]) == 12
    names = {s["name"] for s in topo["switches"]}
    assert names == {s.name for s in lab.plan.switches}

    seen_links = {
        frozenset(
            {(lk["a"]["switch"], lk["a"]["port_no"]), (lk["b"]["switch"], lk["b"]["port_no"])}
        )
        for lk in topo["links"]
    }
    want_links = set()
    for leaf in lab.plan.leaf_switches:
        for spine in lab.plan.spine_switches:
            leaf_port, spine_port = lab.plan.fabric_port(leaf.index, spine.index)
            want_links.add(frozenset({(leaf.name, leaf_port), (spine.name, spine_port)}))
    assert len(topo["links"]) == 32
    assert seen_links == want_links

    hosts = {h["ip"]: h for h in topo["hosts"]}
    assert len(hosts) == 16
    for spec in lab.plan.hosts:
        host = hosts[spec.ip]
        assert host["mac"] == spec.mac
        assert (host["switch"], host["port_no"]) == (spec.leaf, spec.leaf_port)


def test_unknown_host_is_a_one_line_error(lab: Lab) -> None:
    message = one_line_error(vtap("lab", "exec", "h99", "--", "true"))
    assert "h99" in message and "h1..h16" in message


def _spine_carrying(lab: Lab, src_ip: str, dst_ip: str) -> str:
    for spine in lab.plan.spine_switches:
        for line in lab.our_flows(spine.name):
            if f"nw_src={src_ip}," in line and f"nw_dst={dst_ip} " in line:
                return spine.name
    raise AssertionError(f"no spine holds a path entry for {src_ip} -> {dst_ip}")


def test_spine_link_failure_recovers_and_link_is_rediscovered(lab: Lab) -> None:
    assert lab.exec("h1", "ping", "-c1", "-W1", "10.0.0.16").returncode == 0
    spine = _spine_carrying(lab, "10.0.0.1", "10.0.0.16")
    down = vtap("lab", "link", spine, "leaf1", "down")
    assert down.returncode == 0, down.stderr
    try:
        took = wait_until(
            lambda: lab.exec("h1", "ping", "-c1", "-W1", "10.0.0.16").returncode == 0,
            timeout=LIVENESS,
        )
        print(f"connectivity back {took:.2f}s after {spine}-leaf1 went down")
        assert _spine_carrying(lab, "10.0.0.1", "10.0.0.16") != spine
        wait_until(lambda: fabric_complete(lab, 31), timeout=LIVENESS)
    finally:
        up = vtap("lab", "link", spine, "leaf1", "up")
    assert up.returncode == 0, up.stderr
    took = wait_until(lambda: fabric_complete(lab, 32), timeout=LIVENESS)
    print(f"{spine}-leaf1 rediscovered {took:.2f}s after it came back up")


def _all_our_flows(lab: Lab) -> dict[str, list[str]]:
    return {name: lab.our_flows(name) for name in lab.plan.bridges}


def _entry_key(line: str) -> str:
    """table, priority and match of a dump line: its identity in the switch."""
    fields = re.sub(r"cookie=\S+ |idle_timeout=\d+, |hard_timeout=\d+, |send_flow_rem ", "", line)
    return fields.split(" actions=")[0]


def test_controller_restart_keeps_rules_and_restores_reachability(lab: Lab, tmp_path: Path) -> None:
    hosts = _hosts(lab)
    assert ping_all(hosts).failed == []
    before = _all_our_flows(lab)

    pid = lab.state["controller"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=5)
    log = (tmp_path / "controller.log").open("w")
    restarted = time.monotonic()
    controller = subprocess.Popen(
        [sys.executable, "-m", "vtap", "controller"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # Entries stay on the switches (fail_mode=secure), so pings alone prove little: wait
        # until every switch has rejoined the new controller, then check.
        wait_until(lambda: fabric_complete(lab, 32), timeout=LIVENESS)
        deadline = restarted + LIVENESS
        report = ping_all(hosts)
        while report.failed and time.monotonic() < deadline:
            report = ping_all(hosts)
        took = time.monotonic() - restarted
        assert report.failed == [], f"unreachable {took:.1f}s after restart: {report.failed[:10]}"
        print(f"all pairs reachable {took:.1f}s after the controller restart")
        after = _all_our_flows(lab)
        for bridge, lines in after.items():
            keys = [_entry_key(line) for line in lines]
            assert len(keys) == len(set(keys)), f"{bridge} holds duplicate entries"
            assert lines == before[bridge], f"{bridge} rules differ after restart"
        text = (tmp_path / "controller.log").read_text()
        assert text.count("joined: 0 change(s)") == 12, text
    finally:
        controller.send_signal(signal.SIGTERM)
        try:
            controller.wait(10)
        except subprocess.TimeoutExpired:
            controller.kill()
        log.close()
