"""The lab's own controller: `vtap controller` as a child process of the lab holder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from vtap.errors import LabError
from vtap.lab.proc import tail_line

HEALTH_PATH = "/api/v1/health"


def vtap_command() -> list[str]:
    """How to run `vtap` with the same interpreter and install as this process."""
    script = Path(sys.executable).with_name("vtap")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from vtap.cli import main; main()"]


def check_port_free(host: str, port: int, what: str) -> None:
    """Fail before starting anything when the controller could not bind its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the controller's server does: TIME_WAIT leftovers of the last lab are no conflict,
        # only a listener is.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise LabError(
                f"{what} port {host}:{port} is already in use ({exc.strerror}); "
                "stop what listens there or choose another port"
            ) from None


def start_controller(
    of_port: int,
    api_host: str,
    api_port: int,
    log: Path,
    tls_dir: Path | None = None,
    host_names: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start `vtap controller` in its own session, so a Ctrl-C at the lab's terminal reaches
    only the lab, which then stops the controller in order. `host_names` (IP or MAC → name):
    the lab's names for its hosts, unless the operator set VTAP_HOST_NAMES."""
    env = dict(os.environ)
    if host_names and "VTAP_HOST_NAMES" not in env:
        env["VTAP_HOST_NAMES"] = json.dumps(host_names)
    argv = [
        *vtap_command(),
        "controller",
        "--of-port",
        str(of_port),
        "--api",
        f"{api_host}:{api_port}",
        *(["--tls-dir", str(tls_dir)] if tls_dir is not None else []),
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    """Block until GET <url>/api/v1/health answers 200; LabError if the controller dies or
    stays silent, with the last line of its log as the reason."""
    # No proxy: an http_proxy in the environment must not intercept a loopback health check.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            reason = tail_line(log) or "no output"
            raise LabError(f"the controller exited with code {code}: {reason} (log: {log})")
        try:
            with opener.open(url + HEALTH_PATH, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise LabError(
        f"the controller did not answer at {url}{HEALTH_PATH} within {timeout:g} s (log: {log})"
    )
