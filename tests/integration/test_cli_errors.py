"""Bad input and a hostile environment give one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.labkit import AS_NOBODY, one_line_error, vtap, wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_occupied_openflow_port_is_reported() -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = vtap(
            "controller", "--of-port", str(port), "--api", f"127.0.0.1:{_free_port()}", timeout=30
        )
    message = one_line_error(proc)
    assert f"OpenFlow port 127.0.0.1:{port} is already in use" in message


def test_occupied_api_port_is_reported() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = vtap("controller", "--of-port", str(_free_port()), "--api", f"127.0.0.1:{port}")
    assert "already in use" in one_line_error(proc)


def test_malformed_api_address_is_reported() -> None:
    assert "--api must be HOST:PORT" in one_line_error(vtap("controller", "--api", "localhost"))


def test_lab_needs_root(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*AS_NOBODY, sys.executable, "-m", "vtap", "lab", "up", "--detach"],
        capture_output=True,
        text=True,
        env=os.environ | {"VTAP_STATE_DIR": str(tmp_path)},
        check=False,
        timeout=60,
    )
    assert "root" in one_line_error(proc)


def test_missing_ovs_binaries_are_reported(tmp_path: Path) -> None:
    # A PATH with the tools the lab needs besides Open vSwitch, but none of OVS's.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ip", "sysctl", "nsenter", "mnexec", "ps", "kill"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    proc = subprocess.run(
        [sys.executable, "-m", "vtap", "lab", "up", "--detach"],
        capture_output=True,
        text=True,
        env=os.environ | {"PATH": str(bindir), "VTAP_STATE_DIR": str(tmp_path / "state")},
        check=False,
        timeout=60,
    )
    message = one_line_error(proc)
    assert "openvswitch-switch" in message and "ovs-" in message


def test_usage_errors_are_one_line() -> None:
    assert "--vlan-id" in one_line_error(vtap("policy", "add", "--name", "x", "--vlan-id", "abc"))
    assert "No such command" in one_line_error(vtap("lab", "bogus"))


def test_a_second_controller_on_the_same_store_refuses_to_start(tmp_path: Path) -> None:
    env = os.environ | {"VTAP_STATE_DIR": str(tmp_path)}
    api = f"127.0.0.1:{_free_port()}"
    first = subprocess.Popen(
        [sys.executable, "-m", "vtap", "controller", "--of-port", str(_free_port()), "--api", api],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(f"http://{api}/api/v1/health"), timeout=30)
        second = subprocess.run(
            [sys.executable, "-m", "vtap", "controller", "--of-port", str(_free_port()),
             "--api", f"127.0.0.1:{_free_port()}"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        message = one_line_error(second)
        assert f"another vtap controller (pid {first.pid}) uses the policy store" in message
        assert first.poll() is None  # the first one is untouched
    finally:
        first.terminate()
        first.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
