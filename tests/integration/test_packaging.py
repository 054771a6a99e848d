"""The built wheel, installed without extras into a fresh virtualenv, is a working controller:
`vtap controller` starts and answers, and the lab/bench/test dependencies are not pulled in."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_wheel_alone_runs_the_controller(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("vtap-*.whl")
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    present = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in "
            "('scapy', 'matplotlib', 'playwright', 'pytest') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert present == "[]", f"runtime pulled in {present}"
    vtap = venv / "bin" / "vtap"
    version = subprocess.run(
        [str(vtap), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert version.stdout.startswith("vtap ")
    api_port, of_port = _free_port(), _free_port()
    env = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "VTAP_STATE_DIR": str(tmp_path / "state"),
        "HOME": str(tmp_path),
    }
    controller = subprocess.Popen(
        [str(vtap), "controller", "--of-port", str(of_port), "--api", f"127.0.0.1:{api_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and controller.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, controller.poll()
        assert health.json()["status"] == "ok"
        # Tokens are on: the CLI as root on this machine reads the controller's token file.
        denied = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/policies", timeout=5)
        assert denied.status_code == 401
    finally:
        controller.terminate()
        _, err = controller.communicate(timeout=30)
    assert "Traceback" not in err.decode(), err.decode()[-2000:]
