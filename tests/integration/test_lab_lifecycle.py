"""`vtap lab` and `vtap ovs` on real Open vSwitch and Mininet: up, exec, link, down, crash.

Small labs (2 spines x 2 leaves x 1 host) keep this fast; the default size is exercised by the
fabric tests. Switches point at a free port rather than 6653, so a controller someone runs on
this machine never sees these test switches.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.labkit import AS_NOBODY
from vtap.lab.topo import LeafSpinePlan

pytestmark = pytest.mark.integration

SMALL = ["--spines", "2", "--leaves", "2", "--hosts-per-leaf", "1"]
PLAN = LeafSpinePlan(2, 2, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Env:
    """One vtap environment: its own state dir (and so its own OVS run dir)."""

    state_dir: Path
    of_port: int

    @property
    def environ(self) -> dict[str, str]:
        return os.environ | {"VTAP_STATE_DIR": str(self.state_dir)}

    def vtap(self, *args: str, timeout: float = 180, **kw: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vtap", *args],
            capture_output=True,
            text=True,
            env=kw.get("env", self.environ),  # type: ignore[arg-type]
            timeout=timeout,
            check=False,
        )

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        return self.vtap(
            "lab", "up", "--detach", "--external-controller", "--of-port", str(self.of_port),
            *SMALL, *extra,
        )  # fmt: skip

    def state(self) -> dict:
        return json.loads((self.state_dir / "lab" / "state.json").read_text())

    def vsctl(self, *args: str) -> str:
        env = os.environ | {"OVS_RUNDIR": self.state()["ovs_rundir"]}
        done = subprocess.run(
            ["ovs-vsctl", *args], capture_output=True, text=True, env=env, check=True
        )
        return done.stdout.strip()


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vtap: error: "), lines[0]
    return lines[0]


def _processes() -> dict[int, str]:
    """pid -> command line of every live (non-zombie) process."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            procs[int(entry.name)] = cmd.strip()
    return procs


def snapshot() -> dict[str, object]:
    """What `lab down` must restore: interfaces, namespaces, OVS daemons, lab processes."""
    procs = _processes()
    markers = ("ovs-vswitchd", "ovsdb-server", "mininet:", "vtap.lab.holder", "vtap controller")
    return {
        "links": sorted(p.name for p in Path("/sys/class/net").iterdir()),
        "netns": subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout,
        "processes": sorted(
            (pid, cmd) for pid, cmd in procs.items() if any(m in cmd for m in markers)
        ),
    }


def assert_restored(before: dict[str, object]) -> None:
    deadline = time.monotonic() + 5  # killed processes may take a moment to be reaped
    while snapshot() != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert snapshot() == before


def holder_pids() -> list[int]:
    return [pid for pid, cmd in _processes().items() if "vtap.lab.holder" in cmd]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # short path: OVS puts unix sockets in <state_dir>/ovs
    state_dir = Path(tmp_path_factory.mktemp("vtaplab"))
    environment = Env(state_dir, free_port())
    yield environment
    environment.vtap("lab", "down")  # whatever a failed test left behind
    environment.vtap("ovs", "down")


@pytest.fixture(scope="module")
def baseline(env: Env) -> dict[str, object]:
    return snapshot()


@pytest.fixture(scope="module")
def lab(env: Env, baseline: dict[str, object]) -> Iterator[Env]:
    started = time.monotonic()
    up = env.up()
    assert up.returncode == 0, up.stderr
    print(f"lab up took {time.monotonic() - started:.1f}s")  # a figure, not a test
    assert "4 switches" in up.stdout and "vtap lab down" in up.stdout
    try:
        yield env
    finally:
        env.vtap("lab", "down")


def test_bridges_have_the_managed_settings(lab: Env) -> None:
    assert set(PLAN.bridges) <= set(lab.vsctl("list-br").split())
    for switch in PLAN.switches:
        br = switch.name
        assert lab.vsctl("get", "bridge", br, "datapath_type") == "netdev"
        assert lab.vsctl("get", "bridge", br, "protocols") == "[OpenFlow13]"
        assert lab.vsctl("get", "bridge", br, "fail_mode") == "secure"
        assert lab.vsctl("get-controller", br) == f"tcp:127.0.0.1:{lab.of_port}"
        assert lab.vsctl("get", "bridge", br, "other_config:datapath-id") == (
            f'"{switch.dpid_hex}"'
        )
        ports = set(lab.vsctl("list-ports", br).split())
        assert ports == {f"{br}-eth{p}" for p in PLAN.ports_of(br)}


def test_state_records_the_plan_and_live_processes(lab: Env) -> None:
    state = lab.state()
    assert state["phase"] == "ready"
    assert state["bridges"] == list(PLAN.bridges)
    assert sorted(state["interfaces"]) == sorted(PLAN.interfaces())
    assert {"h1", "h2", "leaf1", "spine2"} <= set(state["nodes"])
    assert state["holder"]["pid"] in holder_pids()
    assert state["controller"] is None and state["external_controller"] is True


def test_exec_runs_in_the_host_namespace(lab: Env) -> None:
    addr = lab.vtap("lab", "exec", "h1", "--", "ip", "-o", "addr")
    assert addr.returncode == 0, addr.stderr
    assert "10.0.0.1/24" in addr.stdout and "h1-eth0" in addr.stdout
    link = lab.vtap("lab", "exec", "h2", "--", "ip", "-o", "link", "show", "h2-eth0")
    assert "00:00:00:00:00:02" in link.stdout
    ipv6 = lab.vtap("lab", "exec", "h1", "--", "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6")
    assert ipv6.stdout.strip() == "1"


def test_exec_passes_the_exit_code_and_stderr(lab: Env) -> None:
    done = lab.vtap("lab", "exec", "h1", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3
    assert (done.stdout, done.stderr) == ("out\n", "err\n")


def test_exec_unknown_host_is_one_line(lab: Env) -> None:
    message = one_line_error(lab.vtap("lab", "exec", "h99", "--", "true"))
    assert "unknown host 'h99': the lab has h1..h2" in message


def test_second_lab_is_refused(lab: Env) -> None:
    message = one_line_error(lab.up())
    assert "a lab is already running; vtap lab down first" in message
    assert lab.state()["phase"] == "ready"


def test_link_down_and_up(lab: Env) -> None:
    def flags(intf: str) -> str:
        out = subprocess.run(["ip", "-o", "link", "show", intf], capture_output=True, text=True)
        return out.stdout.split("<", 1)[1].split(">", 1)[0]

    done = lab.vtap("lab", "link", "spine1", "leaf1", "down")
    assert done.returncode == 0, done.stderr
    assert "UP" not in flags("leaf1-eth2").split(",")
    assert "UP" not in flags("spine1-eth1").split(",")
    done = lab.vtap("lab", "link", "spine1", "leaf1", "up")
    assert done.returncode == 0, done.stderr
    assert "UP" in flags("leaf1-eth2").split(",")
    assert "no link between" in one_line_error(lab.vtap("lab", "link", "leaf1", "leaf2", "down"))


def test_status_describes_the_lab(lab: Env) -> None:
    out = lab.vtap("lab", "status").stdout
    assert "lab: ready" in out and "2 spines x 2 leaves" in out and "external" in out


def test_down_leaves_the_machine_as_before(lab: Env, baseline: dict[str, object]) -> None:
    down = lab.vtap("lab", "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip().endswith("lab down")
    assert_restored(baseline)
    again = lab.vtap("lab", "down")
    assert (again.returncode, again.stdout.strip()) == (0, "no lab running")
    assert "no lab running" in one_line_error(lab.vtap("lab", "exec", "h1", "--", "true"))


def test_down_cleans_up_after_the_holder_is_killed(env: Env, baseline: dict[str, object]) -> None:
    up = env.up()
    assert up.returncode == 0, up.stderr
    holder = env.state()["holder"]["pid"]
    os.kill(holder, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while holder in holder_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {p.name for p in Path("/sys/class/net").iterdir()}
    assert "leaf1-eth2" in left  # switch-to-switch veths outlive the holder
    message = one_line_error(env.up())
    assert "did not shut down cleanly" in message
    down = env.vtap("lab", "down")
    assert down.returncode == 0, down.stderr
    assert_restored(baseline)


def test_up_reaps_a_lab_killed_with_its_state_dir(
    env: Env, baseline: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A job cut short kills the holder, its node shells and its Open vSwitch at once, and its
    temporary state dir may be deleted afterwards: its veths and bridge taps stay in the root
    namespace. The next lab, from another state dir, must clean them up instead of refusing."""
    doomed = Env(Path(tmp_path_factory.mktemp("doomed")), free_port())
    up = doomed.up()
    assert up.returncode == 0, up.stderr
    state = doomed.state()
    rundir = Path(state["ovs_rundir"])
    victims = [state["holder"]["pid"], *(n["pid"] for n in state["nodes"].values())]
    victims += [int((rundir / f"{d}.pid").read_text()) for d in ("ovs-vswitchd", "ovsdb-server")]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(pid in _processes() for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(["rm", "-rf", str(doomed.state_dir)], check=True)
    assert {"leaf1-eth2", "spine1"} <= {p.name for p in Path("/sys/class/net").iterdir()}

    up = env.up()
    assert up.returncode == 0, up.stderr
    holder_log = (env.state_dir / "lab" / "holder.log").read_text()
    assert f"its state dir was {doomed.state_dir}" in holder_log
    assert env.state()["phase"] == "ready"
    assert env.vtap("lab", "exec", "h2", "--", "ip", "link", "show", "h2-eth0").returncode == 0
    down = env.vtap("lab", "down")
    assert down.returncode == 0, down.stderr
    assert_restored(baseline)


def test_occupied_openflow_port_fails_cleanly(env: Env, baseline: dict[str, object]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = env.vtap(
            "lab", "up", "--detach", "--of-port", str(port), "--api", f"127.0.0.1:{free_port()}",
            *SMALL,
        )  # fmt: skip
    message = one_line_error(done)
    assert f"OpenFlow port 127.0.0.1:{port} is already in use" in message
    assert_restored(baseline)


def test_foreground_lab_stops_on_sigint(env: Env, baseline: dict[str, object]) -> None:
    argv = [sys.executable, "-m", "vtap", "lab", "up", "--external-controller",
            "--of-port", str(env.of_port), *SMALL]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, f"lab up exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        assert env.state()["phase"] == "ready"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert "lab down" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_restored(baseline)


def test_ovs_up_and_down_touch_only_their_own_daemons(
    env: Env, baseline: dict[str, object]
) -> None:
    others = {pid for pid, cmd in _processes().items() if "ovs-vswitchd" in cmd}
    up = env.vtap("ovs", "up")
    assert up.returncode == 0, up.stderr
    assert "started Open vSwitch" in up.stdout
    record = json.loads((env.state_dir / "ovs" / "vtap-ovs.json").read_text())
    ours = {ref["pid"] for ref in record["daemons"].values()}
    assert len(ours) == 2 and all(pid in _processes() for pid in ours)
    status = env.vtap("ovs", "status").stdout
    assert "started by vtap" in status
    again = env.vtap("ovs", "up")  # idempotent: reuses the running daemons
    assert "started Open vSwitch" not in again.stdout
    down = env.vtap("ovs", "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped ") == 2
    assert not ours & set(_processes())
    assert others <= set(_processes())  # anyone else's ovs-vswitchd is untouched
    nothing = env.vtap("ovs", "down")
    assert "nothing to stop" in nothing.stdout
    assert_restored(baseline)


def test_operator_errors_are_one_line(env: Env) -> None:
    bad_size = one_line_error(env.vtap("lab", "up", "--leaves", "200"))
    assert "at most 254" in bad_size
    no_tools = env.environ | {"PATH": "/nonexistent"}
    missing = one_line_error(env.vtap("ovs", "up", env=no_tools))
    assert "ovs-vsctl not found; install the Debian package openvswitch-switch" in missing
    done = subprocess.run(
        [*AS_NOBODY, sys.executable, "-m", "vtap", "lab", "up", "--detach"],
        capture_output=True,
        text=True,
        env=env.environ,
        check=False,
    )
    assert "needs root" in one_line_error(done)
