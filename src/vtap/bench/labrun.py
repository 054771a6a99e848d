"""The lab a benchmark runs on: bring it up and down, wait for it, read its switch tables, and
the `ovs-ofctl bundle` ceiling on the same switches (the measurements: bench/cpmeasure.py).

Switch tables are read with `ovs-ofctl` (what the switches really hold, not what the
controller believes).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vtap import apiauth
from vtap.errors import VtapError
from vtap.lab.ctlproc import vtap_command
from vtap.lab.topo import LeafSpinePlan
from vtap.openflow.pipeline import Owner, owner_of

LAB_LOCK = "/tmp/vtap-lab.lock"
Say = Callable[[str], None]


class BenchError(VtapError):
    """A benchmark could not finish: one line for the operator, as every vtap error."""


@dataclass
class LabTarget:
    """A controller to benchmark, and (when the benchmark owns the lab) where its state is."""

    api: str
    plan: LeafSpinePlan
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    restarted: subprocess.Popen | None = None  # a controller this benchmark started

    @property
    def url(self) -> str:
        return f"{self.api}/api/v1"

    def state(self) -> dict[str, Any]:
        if self.state_dir is None:
            return {}
        return json.loads((self.state_dir / "lab" / "state.json").read_text())

    def ovs_env(self) -> dict[str, str]:
        rundir = self.state().get("ovs_rundir")
        return self.env | ({"OVS_RUNDIR": rundir} if rundir else {})

    def ofctl(self, *args: str, proto: str = "OpenFlow13") -> str:
        return subprocess.run(
            ["ovs-ofctl", "-O", proto, *args],
            capture_output=True,
            text=True,
            env=self.ovs_env(),
            check=True,
        ).stdout


# ------------------------------------------------------------------ lab lifecycle


def vtap_cli(target_env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [*vtap_command(), *args],
        capture_output=True,
        text=True,
        env=target_env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"vtap {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@contextlib.contextmanager
def lab_lock(take: bool) -> Iterator[None]:
    """The machine's one-lab lock (tests hold it already and pass take=False)."""
    if not take:
        yield
        return
    import fcntl

    with open(LAB_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def own_lab(plan: LeafSpinePlan, state_dir: Path, say: Say) -> Iterator[LabTarget]:
    """`vtap lab up --detach` with its own state dir; always `vtap lab down` afterwards."""
    env = dict(os.environ) | {"VTAP_STATE_DIR": str(state_dir)}
    target = LabTarget("http://127.0.0.1:8080", plan, state_dir, env)
    say(f"lab up ({plan.spines}x{plan.leaves}, {plan.hosts_per_leaf} hosts per leaf)")
    saved = os.environ.get("VTAP_STATE_DIR")
    os.environ["VTAP_STATE_DIR"] = str(state_dir)  # traffic.Capture/send run `vtap lab exec`
    try:
        vtap_cli(
            env,
            "lab", "up", "--detach",
            "--spines", str(plan.spines),
            "--leaves", str(plan.leaves),
            "--hosts-per-leaf", str(plan.hosts_per_leaf),
        )  # fmt: skip
        yield target
    finally:
        if target.restarted is not None and target.restarted.poll() is None:
            target.restarted.terminate()
            try:
                target.restarted.wait(10)
            except subprocess.TimeoutExpired:
                target.restarted.kill()
                target.restarted.wait()
        say("lab down")
        try:
            vtap_cli(env, "lab", "down")
        finally:
            if saved is None:
                os.environ.pop("VTAP_STATE_DIR", None)
            else:
                os.environ["VTAP_STATE_DIR"] = saved


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise BenchError(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)
    return time.monotonic() - start


def _topology(target: LabTarget) -> dict[str, Any] | None:
    try:
        return apiauth.get(f"{target.url}/topology", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


def fabric_ready(target: LabTarget) -> bool:
    topo = _topology(target)
    if topo is None:
        return False
    plan = target.plan
    connected = [s for s in topo["switches"] if s["connected"]]
    edge = [p for s in topo["switches"] for p in s["ports"] if p["role"] == "edge"]
    return (
        len(connected) == len(plan.switches)
        and len(topo["links"]) == plan.spines * plan.leaves
        and len(edge) == plan.host_count
    )


def hosts_known(target: LabTarget) -> int:
    topo = _topology(target)
    return 0 if topo is None else len(topo.get("hosts", []))


def prepare(target: LabTarget, say: Say, settle: float = 6.0) -> None:
    """Fabric discovered, every host learnt (one ping sweep from h1), switches settled."""
    if target.state_dir is not None:
        # `ovs-ofctl bundle` needs OpenFlow 1.4; the controller still negotiates 1.3. Done before
        # the fabric settles, since changing a bridge's versions reconnects its controller.
        for bridge in target.plan.bridges:
            subprocess.run(
                ["ovs-vsctl", "set", "bridge", bridge, "protocols=OpenFlow13,OpenFlow14"],
                env=target.ovs_env(),
                check=True,
                capture_output=True,
            )
        time.sleep(1.0)
    say("waiting for the fabric")
    wait_for(lambda: fabric_ready(target), 90, "fabric discovered", 0.25)
    plan = target.plan
    if hosts_known(target) < plan.host_count:
        say("learning hosts (ping sweep)")
        sweep = " ".join(h.ip for h in plan.hosts[1:])
        vtap_cli(
            target.env, "lab", "exec", plan.hosts[0].name, "--",
            "sh", "-c", f"for ip in {sweep}; do ping -c1 -W1 $ip >/dev/null; done; true",
        )  # fmt: skip
        wait_for(lambda: hosts_known(target) >= plan.host_count, 30, "all hosts learnt", 0.25)
    time.sleep(settle)  # TAP entries are synced once a switch has been connected tap_settle s


# ------------------------------------------------------------------ switch tables


def _is_tap_flow(line: str) -> bool:
    if "cookie=" not in line:
        return False
    value = line.split("cookie=", 1)[1].split(",", 1)[0].split()[0]
    owner = owner_of(int(value, 16))
    return owner is not None and owner[0] in (Owner.POLICY, Owner.TAP_SHARED)


def _normal(line: str) -> str:
    """A dump line without counters or durations (comparable across time, re-addable)."""
    keep = []
    for part in line.strip().split(", "):
        key = part.split("=", 1)[0].strip()
        if key in ("duration", "n_packets", "n_bytes", "idle_age", "hard_age"):
            continue
        keep.append(part.strip())
    return ", ".join(keep)


def snapshot(target: LabTarget) -> dict[str, dict[str, list[str]]]:
    """The TAP flows and all groups on every switch, normalised and sorted."""
    out: dict[str, dict[str, list[str]]] = {}
    for bridge in target.plan.bridges:
        flows = [
            _normal(line)
            for line in target.ofctl("dump-flows", bridge, "--no-stats").splitlines()
            if _is_tap_flow(line)
        ]
        groups = [
            line.strip()
            for line in target.ofctl("dump-groups", bridge).splitlines()
            if line.strip().startswith("group_id=")
        ]
        out[bridge] = {"flows": sorted(flows), "groups": sorted(groups)}
    return out


def per_switch(snap: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """Flows and groups per switch: the largest switch's, and each one's."""
    flows = {b: len(s["flows"]) for b, s in snap.items()}
    groups = {b: len(s["groups"]) for b, s in snap.items()}
    return {
        "flows_max": max(flows.values(), default=0),
        "groups_max": max(groups.values(), default=0),
        "by_switch": {b: [flows[b], groups[b]] for b in snap},
    }


def counts(snap: dict[str, dict[str, list[str]]]) -> tuple[int, int]:
    return (
        sum(len(s["flows"]) for s in snap.values()),
        sum(len(s["groups"]) for s in snap.values()),
    )


def ofctl_bundle(target: LabTarget, snap: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """Re-add the same rules with one `ovs-ofctl bundle` per switch (groups and flows in one
    atomic transaction), all switches at once, timed; then remove them again."""
    with tempfile.TemporaryDirectory(prefix="vtap-bench-") as tmp:
        return _ofctl_bundle(target, snap, Path(tmp))


def _ofctl_bundle(
    target: LabTarget, snap: dict[str, dict[str, list[str]]], workdir: Path
) -> dict[str, Any]:
    argv: list[list[str]] = []
    for bridge, rules in snap.items():
        if not rules["flows"] and not rules["groups"]:
            continue
        path = workdir / f"{bridge}.txt"
        lines = [f"group add {g}" for g in rules["groups"]]
        lines += [f"flow add {f}" for f in rules["flows"]]
        path.write_text("\n".join(lines) + "\n")
        argv.append(["ovs-ofctl", "-O", "OpenFlow14", "bundle", bridge, str(path)])
    env = target.ovs_env()
    method = "ovs-ofctl -O OpenFlow14 bundle (groups + flows, one transaction per switch)"
    probe = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow14", "show", next(iter(snap))], env=env, capture_output=True
    )
    if probe.returncode != 0:  # a bridge without OpenFlow 1.4 (a lab this command did not start)
        method = "ovs-ofctl -O OpenFlow13 add-groups + add-flows (bridge lacks OpenFlow 1.4)"
        argv = []
        for bridge, rules in snap.items():
            if not rules["flows"] and not rules["groups"]:
                continue
            groups, flows = workdir / f"{bridge}.groups", workdir / f"{bridge}.flows"
            groups.write_text("".join(g + "\n" for g in rules["groups"]))
            flows.write_text("".join(f + "\n" for f in rules["flows"]))
            of13 = "ovs-ofctl -O OpenFlow13"
            argv.append(
                [
                    "sh",
                    "-c",
                    f"{of13} add-groups {bridge} {groups} && {of13} add-flows {bridge} {flows}",
                ]
            )
    start = time.perf_counter()
    procs = [subprocess.Popen(a, env=env, stderr=subprocess.PIPE, text=True) for a in argv]
    errors = [p.communicate()[1].strip() for p in procs if p.wait() != 0]
    parallel = time.perf_counter() - start
    if errors:
        raise BenchError(f"ovs-ofctl bundle failed: {errors[0]}")
    added = counts(snapshot(target))
    _remove_tap_rules(target)
    # Sequential, one switch after another: what a single-threaded installer reaches.
    start = time.perf_counter()
    for a in argv:
        subprocess.run(a, env=env, check=True, capture_output=True)
    sequential = time.perf_counter() - start
    _remove_tap_rules(target)
    flows, groups = counts(snap)
    return {
        "method": method,
        "flows": flows,
        "groups": groups,
        "verified_added": {"flows": added[0], "groups": added[1]},
        "switches": len(argv),
        "parallel_s": round(parallel, 4),
        "sequential_s": round(sequential, 4),
        "rate_parallel": round((flows + groups) / parallel, 1),
        "rate_sequential": round((flows + groups) / sequential, 1),
    }


def _remove_tap_rules(target: LabTarget) -> None:
    for bridge in target.plan.bridges:
        for owner in (Owner.POLICY, Owner.TAP_SHARED):
            value = (0x5654 << 48) | (int(owner) << 40)
            target.ofctl("del-flows", bridge, f"cookie=0x{value:x}/0xffffff0000000000")
        target.ofctl("del-groups", bridge)


def python_version() -> str:
    return sys.version.split()[0]
