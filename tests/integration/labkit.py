"""Helpers for tests that drive the real lab: the vtap CLI, OVS dumps, the REST API."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from vtap import apiauth
from vtap.lab.topo import LeafSpinePlan

OURS = "cookie=0x5654"


def vtap(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vtap", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


# Run a command as nobody (not root), still able to read the checkout: CI's clone sits in a
# `mktemp -d` directory (mode 0700) that nobody could not even enter otherwise.
AS_NOBODY = [
    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
]  # fmt: skip


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the operator-facing error contract and return the message."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@dataclass
class Lab:
    plan: LeafSpinePlan
    state_dir: Path
    started: float
    api: str = "http://127.0.0.1:8080"

    @property
    def state(self) -> dict:
        return json.loads((self.state_dir / "lab" / "state.json").read_text())

    def ovs_env(self) -> dict[str, str]:
        rundir = self.state.get("ovs_rundir") or "/var/run/openvswitch"
        return os.environ | {"OVS_RUNDIR": rundir}

    def ofctl(self, *args: str) -> str:
        return subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", *args],
            capture_output=True,
            text=True,
            env=self.ovs_env(),
            check=True,
        ).stdout

    def vsctl(self, *args: str) -> str:
        return subprocess.run(
            ["ovs-vsctl", *args], capture_output=True, text=True, env=self.ovs_env(), check=True
        ).stdout

    def our_flows(self, bridge: str) -> list[str]:
        """vtap's entries on a bridge, normalised (no counters, no durations), sorted."""
        out = self.ofctl("dump-flows", bridge, "--no-stats")
        return sorted(line.strip() for line in out.splitlines() if OURS in line)

    @property
    def headers(self) -> dict[str, str]:
        """The lab's admin token (`vtap lab up` writes it into the state dir)."""
        return apiauth.headers(self.state_dir)

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api}/api/v1", timeout=timeout, headers=self.headers)

    def topology(self) -> dict:
        return httpx.get(f"{self.api}/api/v1/topology", timeout=5, headers=self.headers).json()

    def exec(self, host: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return vtap("lab", "exec", host, "--", *cmd, timeout=timeout)


def wait_until(predicate, timeout: float, interval: float = 0.25) -> float:  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; returns the seconds it took, fails after timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@contextlib.contextmanager
def running_lab(state_dir: Path, *args: str) -> Iterator[Lab]:
    """`vtap lab up --detach ARGS` with its own state dir; `vtap lab down` afterwards."""
    saved = os.environ.get("VTAP_STATE_DIR")
    os.environ["VTAP_STATE_DIR"] = str(state_dir)
    started = time.monotonic()
    up = vtap("lab", "up", "--detach", *args)
    try:
        assert up.returncode == 0, up.stderr
        yield Lab(LeafSpinePlan(), state_dir, started)
    finally:
        down = vtap("lab", "down")
        if saved is None:
            os.environ.pop("VTAP_STATE_DIR", None)
        else:
            os.environ["VTAP_STATE_DIR"] = saved
        assert down.returncode == 0, down.stderr


def fabric_complete(lab: Lab, links: int = 32) -> bool:
    try:
        topo = lab.topology()
    except httpx.HTTPError:
        return False
    connected = [s for s in topo["switches"] if s["connected"]]
    return len(connected) == len(lab.plan.switches) and len(topo["links"]) == links


def edge_ports_ready(lab: Lab) -> bool:
    """Every host-facing port has passed its edge grace (hosts are learnt there)."""
    try:
        topo = lab.topology()
    except httpx.HTTPError:
        return False
    edge = [p for s in topo["switches"] for p in s["ports"] if p["role"] == "edge"]
    return len(edge) == len(lab.plan.hosts)
