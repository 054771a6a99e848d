"""Operations on a running lab from other processes: exec in a host, flip a link, crash the
switches, status.

They find everything through the lab's record (state.py) and enter host namespaces through the
recorded shell pids, because Mininet's namespaces are unnamed and invisible to `ip netns`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from vtap.errors import LabError
from vtap.lab.ovs import OvsService
from vtap.lab.proc import ProcRef, find_tool, run
from vtap.lab.state import LabState, StateStore


def running_state(store: StateStore) -> LabState:
    """The record of the running lab, or LabError telling the operator what to do."""
    state = store.load()
    if state is None:
        raise LabError("no lab running; start one with vtap lab up")
    if not store.holder_running():
        raise LabError("the lab is not running (its holder exited); vtap lab down cleans up")
    return state


def _host_shell(state: LabState, host: str) -> ProcRef:
    state.plan().host(host)  # LabError naming the valid range for unknown hosts
    ref = state.nodes.get(host)
    if ref is None or not ref.alive():
        raise LabError(f"host {host} is not running (lab phase: {state.phase})")
    return ref


def exec_in_host(store: StateStore, host: str, cmd: list[str]) -> NoReturn:
    """Replace this process with CMD inside the host's network namespace, so its output, exit
    code and signals are CMD's own."""
    if not cmd:
        raise LabError(f"nothing to run: vtap lab exec {host} -- CMD [ARGS...]")
    ref = _host_shell(running_state(store), host)
    nsenter = find_tool("nsenter", "util-linux")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(nsenter, [nsenter, "--target", str(ref.pid), "--net", *cmd])


def set_link(store: StateStore, node1: str, node2: str, up: bool) -> str:
    """Set both veth ends of one link up or down; host ends are set inside the host."""
    state = running_state(store)
    plan = state.plan()
    link = plan.link(node1, node2)
    ip = find_tool("ip", "iproute2")
    hosts = {h.name for h in plan.hosts}
    word = "up" if up else "down"
    for end in (link.a, link.b):
        argv = [ip, "link", "set", "dev", end.intf, word]
        if end.node in hosts:
            ref = _host_shell(state, end.node)
            nsenter = find_tool("nsenter", "util-linux")
            argv = [nsenter, "--target", str(ref.pid), "--net", *argv]
        run(argv)
    return f"link {link.a.intf} <-> {link.b.intf} {word}"


def status_lines(store: StateStore) -> list[str]:
    state = store.load()
    running = store.holder_running()
    if state is None:
        return ["lab: running (starting up)" if running else "no lab running"]
    if not running:
        return [
            "lab: not running, but a previous lab left its record; vtap lab down cleans up",
        ]
    plan = state.plan()
    lines = [
        f"lab: {state.phase}, holder pid {state.holder.pid}",
        f"size: {plan.spines} spines x {plan.leaves} leaves x {plan.hosts_per_leaf} hosts per "
        f"leaf = {len(plan.switches)} switches, {plan.host_count} hosts ({plan.host_range})",
    ]
    if state.external_controller:
        lines.append(f"controller: external, expected on tcp:127.0.0.1:{state.of_port}")
    else:
        alive = state.controller is not None and state.controller.alive()
        pid = state.controller.pid if state.controller else "-"
        lines.append(
            f"controller: pid {pid} ({'running' if alive else 'not running'}), OpenFlow "
            f"tcp:127.0.0.1:{state.of_port}, REST API {state.api_url}/api/v1"
        )
    who = "started by the lab" if state.ovs_started else "not started by the lab"
    lines.append(f"Open vSwitch: run dir {state.ovs_rundir} ({who})")
    return lines


def crash_switches(store: StateStore) -> str:
    """SIGKILL the lab's own ovs-vswitchd and start it again (its database keeps the bridges)."""
    state = running_state(store)
    if not state.ovs_started or not state.ovs_rundir:
        raise LabError("the lab runs on an Open vSwitch vtap did not start; it is not crashed")
    service = OvsService(Path(state.ovs_rundir))
    start = time.monotonic()
    pid = service.crash_vswitchd()
    took = time.monotonic() - start
    return f"ovs-vswitchd (pid {pid}) killed and started again in {took:.1f} s"
