"""`vtap lab up --detach`: start the lab holder as a daemon and wait for its verdict.

The holder runs in a new session (no controlling terminal, immune to the shell's Ctrl-C and
hang-up) with its output in holder.log. It reports on a pipe: one JSON line, ready or failed.
If the pipe closes without a line, the holder died; the last line of its log says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time

from vtap.errors import LabError
from vtap.lab.holder import LabConfig, LabSummary
from vtap.lab.proc import tail_line
from vtap.lab.state import StateStore


def start_detached(config: LabConfig, timeout: float = 180.0) -> LabSummary:
    store = StateStore(config.state_dir)
    store.dir.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    argv = [
        sys.executable,
        "-m",
        "vtap.lab.holder",
        *config.to_args(),
        "--report-fd",
        str(write_fd),
    ]
    with open(store.holder_log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",  # a daemon must not pin the operator's working directory
            pass_fds=(write_fd,),
        )
    os.close(write_fd)
    try:
        line = _read_line(read_fd, timeout)
    finally:
        os.close(read_fd)
    if line is None:
        proc.terminate()  # it tears down what it built before exiting
        _reap(proc, 60.0)
        raise LabError(
            f"the lab did not become ready within {timeout:g} s (log: {store.holder_log})"
        )
    if not line:
        _reap(proc, 5.0)
        reason = tail_line(store.holder_log) or "no output"
        raise LabError(f"the lab holder exited: {reason} (log: {store.holder_log})")
    report = json.loads(line)
    if not report.get("ok"):
        _reap(proc, 10.0)
        raise LabError(report.get("error", "lab up failed"))
    return LabSummary.model_validate(report["summary"])


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from the pipe; '' on EOF without a line, None on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return data.decode(errors="replace").strip()
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace")


def _reap(proc: subprocess.Popen, timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
