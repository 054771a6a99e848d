"""The lab holder: the long-lived process that owns a running lab.

Mininet hosts are shells in unnamed network namespaces whose pty master is held by the Python
process that created them; when that process exits they hang up and their namespaces vanish.
So one process must stay alive for the lab's whole life. It builds the lab, reports readiness,
then sleeps until SIGTERM/SIGINT/SIGHUP and tears everything down again.

`vtap lab up` runs `hold()` in its own process; `vtap lab up --detach` runs it in a daemon
started as `python -m vtap.lab.holder ...` (see detach.py), which reports back over a pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from vtap.apiauth import read_token_file, token_file, write_token_file
from vtap.domain.tokens import Role
from vtap.errors import LabError, VtapError
from vtap.lab import ctlproc, registry
from vtap.lab.ovs import OvsEnv, OvsService
from vtap.lab.proc import ProcRef, require_root
from vtap.lab.state import LEFTOVER_MSG, LabState, StateStore
from vtap.lab.teardown import cleanup, root_links
from vtap.lab.topo import LeafSpinePlan
from vtap.pki import Pki, init_pki
from vtap.store.tokens import SqliteTokenRepository

if TYPE_CHECKING:
    from vtap.lab.network import LabNetwork

log = logging.getLogger("vtap.lab")

OF_HOST = "127.0.0.1"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class LabConfig:
    """Everything that decides what a lab looks like; passed to the daemon as arguments."""

    plan: LeafSpinePlan
    state_dir: Path
    of_port: int = 6653
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    external_controller: bool = False
    ovs_rundir: Path | None = None
    health_timeout: float = 30.0
    tls: bool = False  # OpenFlow over TLS with the PKI in <state_dir>/pki (made if missing)

    def to_args(self) -> list[str]:
        args = [
            "--spines",
            str(self.plan.spines),
            "--leaves",
            str(self.plan.leaves),
            "--hosts-per-leaf",
            str(self.plan.hosts_per_leaf),
            "--state-dir",
            str(self.state_dir),
            "--of-port",
            str(self.of_port),
            "--api-host",
            self.api_host,
            "--api-port",
            str(self.api_port),
            "--health-timeout",
            str(self.health_timeout),
        ]
        if self.external_controller:
            args.append("--external-controller")
        if self.ovs_rundir is not None:
            args += ["--ovs-rundir", str(self.ovs_rundir)]
        if self.tls:
            args.append("--tls")
        return args

    @property
    def of_protocol(self) -> str:
        return "ssl" if self.tls else "tcp"


class LabSummary(BaseModel):
    """What an operator is told once the lab is up."""

    spines: int
    leaves: int
    hosts: int
    fabric_links: int
    holder_pid: int
    controller_pid: int | None
    of_port: int
    api_url: str | None
    ovs: str
    of_protocol: str = "tcp"
    token_file: str | None = None

    def lines(self) -> list[str]:
        host_range = f"h1..h{self.hosts}" if self.hosts > 1 else "h1"
        lines = [
            f"lab up: {self.spines + self.leaves} switches (spine1..spine{self.spines}, "
            f"leaf1..leaf{self.leaves}), {self.hosts} hosts ({host_range}), "
            f"{self.fabric_links} leaf-spine links",
            self.ovs,
        ]
        if self.controller_pid is None:
            lines.append(
                f"controller: external, expected on {self.of_protocol}:{OF_HOST}:{self.of_port}"
            )
        else:
            lines.append(
                f"controller: pid {self.controller_pid}, OpenFlow {self.of_protocol}:{OF_HOST}:"
                f"{self.of_port}, REST API {self.api_url}/api/v1"
            )
        if self.token_file is not None:
            lines.append(
                f"API token (admin) in {self.token_file}: vtap commands read it; the console "
                f"logs in with {self.api_url}/?token=$(cat {self.token_file})"
            )
        lines += [
            f"run a command in a host: vtap lab exec h1 -- ping -c1 10.0.0.{self.hosts}",
            "stop the lab: vtap lab down",
        ]
        return lines


class Reporter(Protocol):
    def ready(self, summary: LabSummary) -> None: ...


class LabStopped(BaseException):
    """A stop signal arrived. BaseException so that no `except Exception` swallows it."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise LabStopped(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    old = {sig: signal.signal(sig, _raise_stop) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _ignore_stop_signals() -> None:
    """Teardown must finish: a second Ctrl-C or `lab down`'s SIGTERM must not cut it short."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class _Lab:
    """One lab's build and teardown, with the record kept current at every step."""

    def __init__(self, config: LabConfig, store: StateStore, ovs: OvsService) -> None:
        self.config = config
        self.store = store
        self.ovs = ovs
        self.network: LabNetwork | None = None
        self.controller: subprocess.Popen | None = None
        self.token: str | None = None
        me = ProcRef.of(os.getpid())
        assert me is not None
        self.state = LabState.planned(
            config.plan,
            holder=me,
            of_port=config.of_port,
            api_host=config.api_host,
            api_port=config.api_port,
            external_controller=config.external_controller,
        )
        # Nothing of the network exists yet; the full plan is recorded once it is known that
        # none of its names belongs to someone else (cleanup deletes by name).
        self.state.bridges, self.state.interfaces = [], []

    def save(self) -> None:
        self.store.save(self.state)
        registry.publish(self.config.state_dir, self.state)

    def build(self) -> LabSummary:
        plan = self.config.plan
        t0 = time.monotonic()
        self.state.ovs_started = self.ovs.will_start()
        self.state.ovs_rundir = str(self.ovs.rundir) if self.state.ovs_started else None
        self.save()
        env = self.ovs.ensure()
        env.export()
        self.state.ovs_rundir = str(env.rundir)
        self.save()
        if self.state.ovs_started:
            # OVS parses two VLAN headers, so a policy's IP and port fields match double-tagged
            # (802.1ad) traffic too.
            env.vsctl("set", "Open_vSwitch", ".", "other_config:vlan-limit=2")
        else:
            log.info("system OVS: set other_config:vlan-limit=2 to classify double-tagged traffic")
        self._check_conflicts(env)
        pki = None
        if self.config.tls:
            pki = Pki(self.config.state_dir / "pki")
            if not pki.complete:
                init_pki(pki.directory, force=True)
                log.info("PKI for OpenFlow over TLS made in %s", pki.directory)
            env.vsctl("set-ssl", str(pki.key("switch")), str(pki.cert("switch")),
                      str(pki.controller_ca))  # fmt: skip
        self.state.bridges = list(plan.bridges)
        self.state.interfaces = list(plan.interfaces())
        self.save()

        if not self.config.external_controller:
            self.token = lab_token(self.config.state_dir)
            self.controller = ctlproc.start_controller(
                self.config.of_port,
                self.config.api_host,
                self.config.api_port,
                self.store.controller_log,
                tls_dir=pki.directory if pki is not None else None,
                host_names={key: h.name for h in self.config.plan.hosts for key in (h.ip, h.mac)},
            )
            self.state.controller = ProcRef.of(self.controller.pid)
            self.save()

        from vtap.lab.network import LabNetwork  # Mininet only where it is needed

        network = LabNetwork(plan, OF_HOST, self.config.of_port, self.config.of_protocol)
        self.network = network
        network.build()
        self.state.nodes = {
            name: ref
            for name, pid in network.node_pids().items()
            if (ref := ProcRef.of(pid)) is not None
        }
        self.save()
        network.start()
        missing = sorted(set(plan.bridges) - set(env.bridges()))
        if missing:
            raise LabError(f"bridges missing after start: {', '.join(missing)}")
        log.info(
            "network of %d switches and %d hosts built in %.1f s",
            len(plan.switches),
            plan.host_count,
            time.monotonic() - t0,
        )

        if self.controller is not None:
            ctlproc.wait_healthy(
                self.controller,
                self.state.api_url,
                self.store.controller_log,
                self.config.health_timeout,
            )
        self.state.phase = "ready"
        self.save()
        log.info("lab ready after %.1f s", time.monotonic() - t0)
        return self._summary(env)

    def _check_conflicts(self, env: OvsEnv) -> None:
        plan = self.config.plan
        taken = sorted(set(plan.bridges) & set(env.bridges()))
        if taken:
            raise LabError(
                f"Open vSwitch already has a bridge named {taken[0]} that this lab "
                "did not create; delete it (ovs-vsctl del-br) or free the name"
            )
        present = root_links()
        clash = [n for n in (*plan.interfaces(), *plan.bridges) if n in present]
        if clash:
            raise LabError(f"network interface {clash[0]} already exists; the lab needs its name")
        if not self.config.external_controller:
            ctlproc.check_port_free(OF_HOST, self.config.of_port, "OpenFlow")
            ctlproc.check_port_free(self.config.api_host, self.config.api_port, "REST API")

    def _summary(self, env: OvsEnv) -> LabSummary:
        plan = self.config.plan
        who = (
            "started by the lab"
            if self.state.ovs_started
            else ("system" if env.kind == "system" else "started by vtap ovs up")
        )
        return LabSummary(
            spines=plan.spines,
            leaves=plan.leaves,
            hosts=plan.host_count,
            fabric_links=len(plan.fabric_links),
            holder_pid=os.getpid(),
            controller_pid=self.controller.pid if self.controller else None,
            of_port=self.config.of_port,
            of_protocol=self.config.of_protocol,
            api_url=None if self.controller is None else self.state.api_url,
            token_file=str(token_file(self.config.state_dir)) if self.token else None,
            ovs=f"Open vSwitch: {who}, run dir {env.rundir}",
        )

    def watch(self) -> None:
        """Sleep until a stop signal; note (but survive) a controller that exits, since
        operators restart it by hand to test reconnection."""
        noted = False
        while True:
            time.sleep(1.0)
            if self.controller is not None and not noted and self.controller.poll() is not None:
                log.warning(
                    "controller exited with code %s; the lab keeps running",
                    self.controller.returncode,
                )
                noted = True

    def teardown(self) -> None:
        if self.store.state_file.exists():
            self.state.phase = "stopping"
            self.save()
        if self.network is not None:
            self.network.stop(log.info)
        if self.controller is not None and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(10.0)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait()
        cleanup(self.state, self.ovs, log.info)
        self.store.remove()
        registry.withdraw(self.config.state_dir)


def lab_token(state_dir: Path) -> str:
    """The lab's admin token: the one in <state dir>/api-token if the store still knows it,
    else a new one written there (root only)."""
    tokens = SqliteTokenRepository(state_dir / "policies.db")
    try:
        existing = read_token_file(state_dir)
        if existing and tokens.find(existing) is not None:
            return existing
        _, secret = tokens.create("lab", Role.ADMIN, datetime.now(UTC))
    finally:
        tokens.close()
    write_token_file(state_dir, secret)
    return secret


def hold(config: LabConfig, reporter: Reporter) -> None:
    """Build the lab, report it ready, block until a stop signal, tear it down.

    Returns after a requested stop; raises VtapError (after tearing down whatever was built)
    when the lab could not be built.
    """
    require_root("vtap lab")
    store = StateStore(config.state_dir)
    ovs = OvsService(config.ovs_rundir or config.state_dir / "ovs")
    with store.hold():
        if store.state_file.exists():
            raise LabError(LEFTOVER_MSG)
        registry.reap_stale(config.state_dir, log.info)
        lab = _Lab(config, store, ovs)
        lab.save()
        ready = False
        with _stop_signals():
            try:
                summary = lab.build()
                ready = True
                reporter.ready(summary)
                lab.watch()
            except LabStopped as stop:
                log.info("stop requested (%s)", stop)
            except VtapError:
                raise
            except Exception as exc:
                log.exception("lab failed")
                raise LabError(f"lab failed: {exc!r} (details in {store.holder_log})") from exc
            finally:
                _ignore_stop_signals()
                log.info("tearing the lab down")
                lab.teardown()
                log.info("lab down")
        if not ready:
            raise LabError("lab up was interrupted before the lab was ready; it was torn down")


class PipeReporter:
    """Tells the `lab up --detach` process the outcome: one JSON line on an inherited pipe."""

    def __init__(self, fd: int) -> None:
        if fd >= 0:
            os.set_inheritable(fd, False)  # the controller and host shells must not keep it
        self.fd = fd

    def _send(self, payload: str) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, payload.encode() + b"\n")
            os.close(self.fd)
        except OSError:
            pass  # the waiting `lab up` gave up; the log has the outcome
        self.fd = -1

    def ready(self, summary: LabSummary) -> None:
        self._send('{"ok": true, "summary": ' + summary.model_dump_json() + "}")

    def failed(self, message: str) -> None:
        self._send(json.dumps({"ok": False, "error": message}))


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vtap.lab.holder")
    p.add_argument("--spines", type=int, required=True)
    p.add_argument("--leaves", type=int, required=True)
    p.add_argument("--hosts-per-leaf", type=int, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--of-port", type=int, required=True)
    p.add_argument("--api-host", required=True)
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--health-timeout", type=float, default=30.0)
    p.add_argument("--external-controller", action="store_true")
    p.add_argument("--ovs-rundir", type=Path)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--report-fd", type=int, default=-1)
    return p.parse_args(argv)


def _config(a: argparse.Namespace) -> LabConfig:
    return LabConfig(
        plan=LeafSpinePlan(a.spines, a.leaves, a.hosts_per_leaf),
        state_dir=a.state_dir,
        of_port=a.of_port,
        api_host=a.api_host,
        api_port=a.api_port,
        external_controller=a.external_controller,
        ovs_rundir=a.ovs_rundir,
        health_timeout=a.health_timeout,
        tls=a.tls,
    )


def main(argv: list[str] | None = None) -> int:
    """Daemon entry point; its stdout/stderr are the lab's holder.log."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = _parse(sys.argv[1:] if argv is None else argv)
    reporter = PipeReporter(args.report_fd)
    try:
        hold(_config(args), reporter)
    except VtapError as exc:
        log.error("%s", exc)
        reporter.failed(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
