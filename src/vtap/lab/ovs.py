"""Open vSwitch as a service: use the system's daemons when they run, else run our own.

The machines vtap targets often have no systemd and no OVS kernel module, so vtap can start
ovsdb-server and ovs-vswitchd itself in a run directory it owns (userspace datapath only).
What it started is recorded in that directory, and `stop` only ever stops those daemons: a
system Open vSwitch, or one someone else started, is never touched.

vtap's own Open vSwitch keeps no configuration between runs: the database is created fresh on
start and removed on stop, so a crashed lab can never resurrect stale bridges.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vtap.errors import VtapError
from vtap.lab.proc import ProcRef, find_tool, require_root, run, wait_until
from vtap.settings import Settings

PACKAGE = "openvswitch-switch"
SYSTEM_RUNDIR = Path("/var/run/openvswitch")
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
RECORD = "vtap-ovs.json"
DAEMONS = ("ovsdb-server", "ovs-vswitchd")
# AF_UNIX socket paths are limited to 108 bytes (including the NUL); the longest one we create
# is <rundir>/ovs-vswitchd.<pid>.ctl.
_MAX_RUNDIR = 80


@dataclass(frozen=True)
class OvsTools:
    """Absolute paths of the OVS programs, resolved once so a missing one fails early."""

    vsctl: str
    ofctl: str
    appctl: str
    dbtool: str
    dbserver: str
    vswitchd: str

    @classmethod
    def find(cls) -> OvsTools:
        return cls(
            vsctl=find_tool("ovs-vsctl", PACKAGE),
            ofctl=find_tool("ovs-ofctl", PACKAGE),
            appctl=find_tool("ovs-appctl", PACKAGE),
            dbtool=find_tool("ovsdb-tool", PACKAGE),
            dbserver=find_tool("ovsdb-server", PACKAGE),
            vswitchd=find_tool("ovs-vswitchd", PACKAGE),
        )


@dataclass(frozen=True)
class OvsEnv:
    """A reachable Open vSwitch: where its sockets are and how to talk to it.

    Every tool runs with OVS_RUNDIR set, which is also how Mininet's own ovs-vsctl calls find
    the right database once `export()` has put it into this process's environment.
    """

    rundir: Path
    tools: OvsTools
    kind: Literal["system", "vtap", "external"]
    started: bool = False  # True only for the ensure() call that started the daemons

    @property
    def db_socket(self) -> Path:
        return self.rundir / "db.sock"

    def environ(self) -> dict[str, str]:
        return {**os.environ, "OVS_RUNDIR": str(self.rundir)}

    def export(self) -> None:
        """Make child processes of this process (Mininet's shells) use this Open vSwitch."""
        os.environ["OVS_RUNDIR"] = str(self.rundir)

    def vsctl(self, *args: str, timeout: float = 30.0) -> str:
        return run([self.tools.vsctl, "--timeout=20", *args], env=self.environ(), timeout=timeout)

    def ofctl(self, *args: str, timeout: float = 30.0) -> str:
        argv = [self.tools.ofctl, "-O", "OpenFlow13", *args]
        return run(argv, env=self.environ(), timeout=timeout)

    def appctl(self, *args: str, timeout: float = 30.0) -> str:
        return run([self.tools.appctl, *args], env=self.environ(), timeout=timeout)

    def bridges(self) -> list[str]:
        return self.vsctl("list-br").split()


@dataclass
class OvsStatus:
    """What `vtap ovs status` reports."""

    kind: Literal["system", "vtap", "external", "none"]
    rundir: Path
    daemons: dict[str, int] = field(default_factory=dict)  # name -> pid

    def describe(self) -> str:
        if self.kind == "none":
            return f"Open vSwitch: not running (vtap would start it in {self.rundir})"
        who = {"system": "system", "vtap": "started by vtap", "external": "not started by vtap"}[
            self.kind
        ]
        pids = ", ".join(f"{name} pid {pid}" for name, pid in self.daemons.items())
        return f"Open vSwitch: {who}, run dir {self.rundir}" + (f" ({pids})" if pids else "")


class OvsService:
    """Finds, starts and stops Open vSwitch for vtap."""

    def __init__(self, rundir: Path, system_rundir: Path = SYSTEM_RUNDIR) -> None:
        self.rundir = rundir
        self.system_rundir = system_rundir

    @classmethod
    def from_settings(cls, settings: Settings) -> OvsService:
        return cls(settings.ovs_rundir or settings.state_dir / "ovs")

    # -- inspection -------------------------------------------------------------------------

    def system_running(self) -> bool:
        return db_answers(self.system_rundir) and (
            _pidfile_process(self.system_rundir / "ovs-vswitchd.pid") is not None
        )

    def owned(self) -> bool:
        """True when vtap started (or was starting) the daemons of its run directory."""
        return (self.rundir / RECORD).exists()

    def external_running(self) -> bool:
        """Daemons vtap did not start answer in vtap's run dir (e.g. VTAP_OVS_RUNDIR points to
        someone's Open vSwitch): use them, never stop them."""
        return (
            not self.owned()
            and db_answers(self.rundir)
            and _pidfile_process(self.rundir / "ovs-vswitchd.pid") is not None
        )

    def own_daemons(self) -> dict[str, ProcRef]:
        """The daemons vtap recorded in its run directory (alive or not)."""
        try:
            data = json.loads((self.rundir / RECORD).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {name: ProcRef(**ref) for name, ref in data.get("daemons", {}).items()}

    def own_running(self) -> bool:
        daemons = self.own_daemons()
        return all(name in daemons and daemons[name].alive() for name in DAEMONS) and db_answers(
            self.rundir
        )

    def status(self) -> OvsStatus:
        if self.own_running():
            pids = {name: ref.pid for name, ref in self.own_daemons().items()}
            return OvsStatus("vtap", self.rundir, pids)
        if self.system_running():
            pids = {}
            for name in DAEMONS:
                ref = _pidfile_process(self.system_rundir / f"{name}.pid")
                if ref is not None:
                    pids[name] = ref.pid
            return OvsStatus("system", self.system_rundir, pids)
        if self.external_running():
            pids = {}
            for name in DAEMONS:
                ref = _pidfile_process(self.rundir / f"{name}.pid")
                if ref is not None:
                    pids[name] = ref.pid
            return OvsStatus("external", self.rundir, pids)
        return OvsStatus("none", self.rundir)

    def will_start(self) -> bool:
        """True when ensure() would have to start daemons (used to record intent first)."""
        return not (self.own_running() or self.system_running() or self.external_running())

    # -- lifecycle --------------------------------------------------------------------------

    def ensure(self) -> OvsEnv:
        """A working Open vSwitch: vtap's own if it runs, else the system's, else a new one."""
        require_root("Open vSwitch management")
        tools = OvsTools.find()
        if self.own_running():
            return OvsEnv(self.rundir, tools, "vtap")
        if self.system_running():
            return OvsEnv(self.system_rundir, tools, "system")
        if self.external_running():
            return OvsEnv(self.rundir, tools, "external")
        if db_answers(self.system_rundir):
            raise VtapError(
                f"the system ovsdb-server answers on {self.system_rundir}/db.sock but "
                "ovs-vswitchd is not running; start it (service openvswitch-switch start)"
            )
        _refuse_second_vswitchd()
        self._start(tools)
        return OvsEnv(self.rundir, tools, "vtap", started=True)

    def stop(self) -> list[str]:
        """Stop the daemons vtap started (never the system's). Returns what was stopped."""
        require_root("Open vSwitch management")
        stopped: list[str] = []
        if not self.owned():
            return stopped  # nothing of ours here: leave the directory alone
        daemons = self.own_daemons()
        # The record is written before the daemons start, so a crash between a daemon's start
        # and its entry in the record leaves only its pidfile, which is then ours too.
        for name in DAEMONS:
            ref = _pidfile_process(self.rundir / f"{name}.pid")
            if ref is not None:
                daemons.setdefault(name, ref)
        # vswitchd first: it removes its userspace datapath ports while the database is still up.
        for name in reversed(DAEMONS):
            ref = daemons.get(name)
            if ref is not None and ref.stop(timeout=10.0):
                stopped.append(f"{name} (pid {ref.pid})")
        self._remove_runtime_files()
        return stopped

    def _start(self, tools: OvsTools) -> None:
        if len(str(self.rundir)) > _MAX_RUNDIR:
            raise VtapError(
                f"OVS run dir {self.rundir} is too long for a unix socket path; "
                "set VTAP_OVS_RUNDIR or VTAP_STATE_DIR to a shorter path"
            )
        if self.rundir.resolve() == self.system_rundir.resolve():
            raise VtapError(f"vtap does not start daemons in the system run dir {self.rundir}")
        if not SCHEMA.exists():
            raise VtapError(f"{SCHEMA} not found; reinstall the Debian package {PACKAGE}")
        # Leftovers of a crashed run (daemons killed -9) are stopped before starting afresh.
        self.stop()
        self.rundir.mkdir(parents=True, exist_ok=True)
        _write_json(self.rundir / RECORD, {"owner": "vtap", "daemons": {}})
        env = self._env()
        db = self.rundir / "conf.db"
        db.unlink(missing_ok=True)  # fresh every time: no stale bridges from a crashed run
        run([tools.dbtool, "create", db, SCHEMA], env=env)
        sock = self.rundir / "db.sock"
        quiet = "-vconsole:off"
        run(
            [
                tools.dbserver,
                db,
                f"--remote=punix:{sock}",
                quiet,
                f"--pidfile={self.rundir}/ovsdb-server.pid",
                "--detach",
                f"--log-file={self.rundir}/ovsdb-server.log",
            ],
            env=env,
        )
        self._record("ovsdb-server")
        run([tools.vsctl, "--no-wait", "init"], env=env)
        self._start_vswitchd(tools)
        if not wait_until(self.own_running, 10.0):
            raise VtapError(f"Open vSwitch did not come up; see the logs in {self.rundir}")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OVS_RUNDIR": str(self.rundir),
            "OVS_DBDIR": str(self.rundir),
            "OVS_LOGDIR": str(self.rundir),
        }

    def _start_vswitchd(self, tools: OvsTools) -> None:
        run(
            [
                tools.vswitchd,
                f"unix:{self.rundir / 'db.sock'}",
                "-vconsole:off",
                f"--pidfile={self.rundir}/ovs-vswitchd.pid",
                "--detach",
                f"--log-file={self.rundir}/ovs-vswitchd.log",
            ],
            env=self._env(),
        )
        self._record("ovs-vswitchd")

    def crash_vswitchd(self) -> int:
        """Fault injection: SIGKILL vtap's own ovs-vswitchd (every switch loses its flow tables,
        as in a crash) and start it again on the same database. Returns the killed pid."""
        require_root("Open vSwitch management")
        ref = self.own_daemons().get("ovs-vswitchd")
        if not self.own_running() or ref is None:
            raise VtapError("only an Open vSwitch that vtap started can be crashed and restarted")
        ref.stop(timeout=0.0, sig=signal.SIGKILL)
        (self.rundir / "ovs-vswitchd.pid").unlink(missing_ok=True)
        for ctl in self.rundir.glob("ovs-vswitchd.*.ctl"):
            ctl.unlink(missing_ok=True)
        self._start_vswitchd(OvsTools.find())
        if not wait_until(self.own_running, 10.0):
            raise VtapError(f"ovs-vswitchd did not come back; see {self.rundir}/ovs-vswitchd.log")
        return ref.pid

    def _record(self, name: str) -> None:
        """Remember a daemon we started, right after it started, so a crash cannot orphan it."""
        ref = _pidfile_process(self.rundir / f"{name}.pid")
        if ref is None:
            raise VtapError(f"{name} did not start; see {self.rundir}/{name}.log")
        daemons = {n: r.model_dump() for n, r in self.own_daemons().items()}
        daemons[name] = ref.model_dump()
        _write_json(self.rundir / RECORD, {"owner": "vtap", "daemons": daemons})

    def _remove_runtime_files(self) -> None:
        if not self.rundir.is_dir():
            return
        for path in self.rundir.iterdir():
            if path.suffix in (".pid", ".ctl", ".sock", ".mgmt", ".snoop") or path.name in (
                RECORD,
                "conf.db",
                ".conf.db.~lock~",
            ):
                path.unlink(missing_ok=True)


def _refuse_second_vswitchd() -> None:
    """Two ovs-vswitchd with the userspace datapath cannot share a network namespace: both
    create the tap device `ovs-netdev` (and one tap per bridge), and the second one's bridges
    fail with "No such device". Say so instead of starting a half-working switch."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "exe")).name != "ovs-vswitchd":
                continue
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        db = next((a.decode() for a in args if a.startswith(b"unix:")), "unknown database")
        hint = ""
        if db.startswith("unix:") and db.endswith("/db.sock"):
            hint = f", or use it with VTAP_OVS_RUNDIR={db[5:-8]}"
        raise VtapError(
            f"another Open vSwitch runs on this machine (ovs-vswitchd pid {proc.name}, {db}) "
            f"and two userspace datapaths cannot coexist; stop it{hint}"
        )


def db_answers(rundir: Path) -> bool:
    """True when an ovsdb-server accepts connections on <rundir>/db.sock."""
    path = rundir / "db.sock"
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _pidfile_process(path: Path) -> ProcRef | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return ProcRef.of(pid)


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
