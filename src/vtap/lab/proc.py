"""Small process helpers shared by the OVS service and the lab.

Processes the lab starts are remembered as (pid, start time) pairs, not bare pids: a crashed lab
may be cleaned up long after the fact, when its pids could belong to someone else's processes.
The start time from /proc/<pid>/stat tells the two apart, so cleanup never signals a stranger.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vtap.errors import MissingToolError, NotRootError, VtapError

# Root's PATH normally has the sbin directories, but `sudo -E`, cron or a venv wrapper may not;
# ovsdb-server and ovs-vswitchd live there on Debian.
_SBIN_FALLBACK = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ProcRef(BaseModel):
    """A process identity that survives pid reuse: pid plus kernel start time (clock ticks)."""

    model_config = ConfigDict(frozen=True)

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> ProcRef | None:
        """The identity of a running process, or None when it does not exist (or is a zombie)."""
        stat = _read_stat(pid)
        if stat is None or stat[0] == "Z":
            return None
        return cls(pid=pid, start=stat[1])

    def alive(self) -> bool:
        stat = _read_stat(self.pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[1] == self.start

    def stop(self, timeout: float = 5.0, sig: signal.Signals = signal.SIGTERM) -> bool:
        """`sig`, wait up to `timeout`, then SIGKILL. Returns True when it had to be signalled."""
        if not self.alive():
            return False
        self.send(sig)
        if not wait_until(lambda: not self.alive(), timeout):
            self.send(signal.SIGKILL)
            wait_until(lambda: not self.alive(), 5.0)
        return True

    def send(self, sig: signal.Signals) -> None:
        """Signal the process only if it is still the same process."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def _read_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) from /proc/<pid>/stat, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces and ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds pass; True if it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def require_root(what: str = "this command") -> None:
    if os.geteuid() != 0:
        raise NotRootError(
            f"{what} needs root (Open vSwitch, network namespaces); run it as root or with sudo"
        )


def find_tool(name: str, package: str) -> str:
    """Absolute path of an external program, or MissingToolError naming its Debian package."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_FALLBACK])
    found = shutil.which(name, path=search)
    if found is None:
        raise MissingToolError(f"{name} not found; install the Debian package {package}")
    return found


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    check: bool = True,
) -> str:
    """Run a program without a shell and return its stdout.

    On failure the error carries the first line of stderr: that is where OVS tools and iproute2
    put the one sentence an operator needs, and the CLI prints errors as a single line.
    """
    args = [str(a) for a in argv]
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise MissingToolError(f"{args[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise VtapError(f"{Path(args[0]).name} timed out after {timeout:g} s") from exc
    if check and done.returncode != 0:
        reason = first_line(done.stderr) or first_line(done.stdout) or f"exit {done.returncode}"
        cmd = " ".join([Path(args[0]).name, *args[1:3]])
        raise VtapError(f"`{cmd}` failed: {reason}")
    return done.stdout


def tail_line(path: Path) -> str:
    """The last non-empty line of a log file (for one-line error messages), or ''."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    except FileNotFoundError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""
