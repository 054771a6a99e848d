"""Undo a lab from its record alone: works after a clean stop, a crash, or a half-built lab.

Everything here is idempotent and only touches what the record names: bridges by name (with
--if-exists), veths by name (only if still present), processes by (pid, start time), and the
OVS daemons only when the lab itself started them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from vtap.errors import VtapError
from vtap.lab.ovs import OvsService, OvsTools, db_answers
from vtap.lab.proc import find_tool, run, wait_until
from vtap.lab.state import LabState, StateStore

Log = Callable[[str], None]


def root_links() -> set[str]:
    """Names of the network interfaces in the root namespace."""
    base = Path("/sys/class/net")
    return {p.name for p in base.iterdir()} if base.is_dir() else set()


def cleanup(state: LabState, ovs: OvsService, log: Log) -> None:
    """Remove everything `state` records, in an order that never leaves orphans behind:
    node shells first (their namespaces and host veths go with them), then bridges, then the
    remaining veths, then the controller, then Open vSwitch if the lab started it."""
    for name, ref in state.nodes.items():
        # Interactive bash ignores SIGTERM; SIGHUP is what ends it (as when its pty closes).
        if ref.stop(timeout=2.0, sig=signal.SIGHUP):
            log(f"stopped node shell {name} (pid {ref.pid})")
    _delete_bridges(state, ovs, log)
    _delete_links(state, log)
    if state.controller is not None and state.controller.stop(timeout=10.0):
        log(f"stopped controller (pid {state.controller.pid})")
    if state.ovs_started:
        for what in ovs.stop():
            log(f"stopped {what}")


def _delete_bridges(state: LabState, ovs: OvsService, log: Log) -> None:
    if state.ovs_rundir is None or not state.bridges:
        return  # the lab died before it reached Open vSwitch or named its bridges
    rundir = Path(state.ovs_rundir)
    if not db_answers(rundir):
        return  # no database, no bridges (vtap's own database is recreated on start)
    try:
        vsctl = OvsTools.find().vsctl
        args = [vsctl, "--timeout=20"]
        for bridge in state.bridges:
            args += ["--", "--if-exists", "del-br", bridge]
        run(args, env={"OVS_RUNDIR": str(rundir), "PATH": "/usr/bin:/bin"})
    except VtapError as exc:
        log(f"deleting bridges failed: {exc}")


def _delete_links(state: LabState, log: Log) -> None:
    """Delete recorded veths (and bridge taps) still in the root namespace. Deleting one end of
    a veth deletes its peer, so the second end of a pair is usually gone already."""
    present = root_links()
    leftovers = [n for n in [*state.interfaces, *state.bridges] if n in present]
    if not leftovers:
        return
    ip = find_tool("ip", "iproute2")
    for name in leftovers:
        if name in root_links():
            try:
                run([ip, "link", "del", "dev", name])
                log(f"deleted interface {name}")
            except VtapError as exc:
                log(f"deleting {name} failed: {exc}")


def stop_lab(store: StateStore, ovs: OvsService, log: Log, timeout: float = 60.0) -> bool:
    """`vtap lab down`: ask a running holder to tear down, then clean whatever is left.

    Returns False when there was no lab at all.
    """
    state = store.load()
    if state is None and not store.holder_running():
        return False
    if store.holder_running() and state is not None and state.holder.alive():
        log(f"stopping lab holder (pid {state.holder.pid})")
        state.holder.send(signal.SIGTERM)
        holder = state.holder
        if not wait_until(lambda: not store.holder_running(), timeout, interval=0.1):
            log("the lab holder did not stop in time; killing it")
            holder.send(signal.SIGKILL)
            wait_until(lambda: not store.holder_running(), 5.0)
        # It releases its lock when its teardown is done, a moment before the process ends:
        # `lab down` returns once the process is gone too (nothing of the lab left running).
        if not wait_until(lambda: not holder.alive(), 10.0, interval=0.05):
            holder.send(signal.SIGKILL)
            wait_until(lambda: not holder.alive(), 5.0)
    state = store.load()  # the holder removes it when it finished its own teardown
    if state is not None:
        cleanup(state, ovs, log)
        store.remove()
    return True
