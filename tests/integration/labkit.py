"""Helpers for tests that drive the real lab: the vtap CLI, OVS dumps, the REST API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

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

    def topology(self) -> dict:
        return httpx.get(f"{self.api}/api/v1/topology", timeout=5).json()

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
