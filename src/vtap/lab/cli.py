"""`vtap lab ...` and `vtap ovs ...`: thin Typer wrappers over the lab and OVS modules.

Every operator error is raised as a VtapError; the main entry point prints it as one line.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vtap.errors import LabError
from vtap.lab.proc import require_root
from vtap.lab.state import StateStore
from vtap.lab.topo import LeafSpinePlan
from vtap.settings import Settings

if TYPE_CHECKING:
    from vtap.lab.holder import LabConfig


def register(app: typer.Typer) -> None:
    """Add the `lab` and `ovs` command groups to the main `vtap` app."""
    app.add_typer(build_lab_app(), name="lab")
    app.add_typer(build_ovs_app(), name="ovs")


def _say(line: str) -> None:
    print(line, flush=True)


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LabError(f"--api expects HOST:PORT (e.g. 127.0.0.1:8080), not {value!r}")
    return host, int(port)


def build_lab_app() -> typer.Typer:
    lab = typer.Typer(
        help="Emulated leaf-spine data center (Mininet + Open vSwitch).", no_args_is_help=True
    )

    @lab.command()
    def up(
        spines: Annotated[int, typer.Option(help="number of spine switches")] = 4,
        leaves: Annotated[int, typer.Option(help="number of leaf switches")] = 8,
        hosts_per_leaf: Annotated[int, typer.Option(help="hosts attached to each leaf")] = 2,
        detach: Annotated[bool, typer.Option("--detach", help="run in the background")] = False,
        of_port: Annotated[int | None, typer.Option(help="controller's OpenFlow port")] = None,
        api: Annotated[str | None, typer.Option(help="controller's REST API HOST:PORT")] = None,
        external_controller: Annotated[
            bool,
            typer.Option(
                "--external-controller",
                help="do not start a controller; switches connect to --of-port",
            ),
        ] = False,
        tls: Annotated[
            bool,
            typer.Option("--tls", help="OpenFlow over TLS (ssl:), PKI in <state dir>/pki"),
        ] = False,
    ) -> None:
        """Build the lab; without --detach it runs until Ctrl-C and then removes itself."""
        from vtap.lab.holder import LabConfig
        from vtap.lab.ovs import OvsTools

        require_root("vtap lab up")
        settings = Settings()
        plan = LeafSpinePlan(spines, leaves, hosts_per_leaf)
        if of_port is not None and not 0 < of_port < 65536:
            raise LabError(f"--of-port must be 1..65535, not {of_port}")
        api_host, api_port = parse_hostport(api) if api else (settings.api_host, settings.api_port)
        config = LabConfig(
            plan=plan,
            state_dir=settings.state_dir,
            of_port=of_port if of_port is not None else settings.of_port,
            api_host=api_host,
            api_port=api_port,
            external_controller=external_controller,
            ovs_rundir=settings.ovs_rundir,
            tls=tls,
        )
        StateStore(config.state_dir).check_free()
        OvsTools.find()  # a missing OVS binary is reported here, before anything starts
        if detach:
            from vtap.lab.detach import start_detached

            for line in start_detached(config).lines():
                _say(line)
            return
        _run_foreground(config)

    @lab.command()
    def down() -> None:
        """Remove everything the lab created (also after a crash of lab up)."""
        from vtap.lab import registry
        from vtap.lab.ovs import OvsService
        from vtap.lab.teardown import stop_lab

        require_root("vtap lab down")
        settings = Settings()
        store = StateStore(settings.state_dir)
        stopped = stop_lab(store, OvsService.from_settings(settings), _log_to_stderr)
        registry.withdraw(settings.state_dir)
        if stopped:
            _say("lab down")
        else:
            _say("no lab running")

    @lab.command()
    def status() -> None:
        """Whether a lab runs, its size, and where its controller listens."""
        from vtap.lab.ops import status_lines

        require_root("vtap lab status")
        for line in status_lines(StateStore(Settings().state_dir)):
            _say(line)

    @lab.command(
        "exec",
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            "allow_interspersed_args": False,
        },
    )
    def exec_(
        host: Annotated[str, typer.Argument(help="host name, e.g. h1")],
        cmd: Annotated[list[str] | None, typer.Argument(help="command and arguments")] = None,
    ) -> None:
        """Run CMD inside HOST's network namespace: vtap lab exec h1 -- ping -c1 10.0.0.2"""
        from vtap.lab.ops import exec_in_host

        require_root("vtap lab exec")
        exec_in_host(StateStore(Settings().state_dir), host, list(cmd or []))

    @lab.command()
    def link(
        node1: Annotated[str, typer.Argument(help="e.g. spine1")],
        node2: Annotated[str, typer.Argument(help="e.g. leaf1")],
        state: Annotated[str, typer.Argument(help="up or down")],
    ) -> None:
        """Set both ends of the link between two nodes up or down."""
        from vtap.lab.ops import set_link

        require_root("vtap lab link")
        if state not in ("up", "down"):
            raise LabError(f"link state must be up or down, not {state!r}")
        _say(set_link(StateStore(Settings().state_dir), node1, node2, state == "up"))

    @lab.command("crash-switches")
    def crash_switches() -> None:
        """Fault injection: kill the lab's ovs-vswitchd with SIGKILL (every switch loses its
        flow tables at once) and start it again; the controller must restore them."""
        from vtap.lab.ops import crash_switches as crash

        require_root("vtap lab crash-switches")
        _say(crash(StateStore(Settings().state_dir)))

    return lab


def _run_foreground(config: LabConfig) -> None:
    from vtap.lab.holder import LabSummary, hold

    logging.basicConfig(level=logging.WARNING, format="vtap: %(message)s")

    class ConsoleReporter:
        def ready(self, summary: LabSummary) -> None:
            for line in summary.lines():
                _say(line)
            _say("press Ctrl-C to stop the lab")

    hold(config, ConsoleReporter())
    _say("lab down")


def build_ovs_app() -> typer.Typer:
    ovs = typer.Typer(
        help="Open vSwitch service: the system's, or vtap's own.", no_args_is_help=True
    )

    @ovs.command("up")
    def ovs_up() -> None:
        """Use the running Open vSwitch, or start vtap's own (userspace datapath)."""
        from vtap.lab.ovs import OvsService

        require_root("vtap ovs up")
        service = OvsService.from_settings(Settings())
        env = service.ensure()
        if env.started:
            _say(f"started Open vSwitch in {env.rundir}")
        _say(service.status().describe())
        _say(f"use it with: export OVS_RUNDIR={env.rundir}")

    @ovs.command("down")
    def ovs_down() -> None:
        """Stop the Open vSwitch daemons vtap started; a system Open vSwitch is left alone."""
        from vtap.lab.ovs import OvsService

        require_root("vtap ovs down")
        settings = Settings()
        store = StateStore(settings.state_dir)
        if store.holder_running() or store.state_file.exists():
            raise LabError("a lab is using Open vSwitch; vtap lab down first")
        service = OvsService.from_settings(settings)
        stopped = service.stop()
        for what in stopped:
            _say(f"stopped {what}")
        if not stopped:
            _say("vtap did not start Open vSwitch; nothing to stop")

    @ovs.command("status")
    def ovs_status() -> None:
        """Which Open vSwitch vtap would use, and its daemons."""
        from vtap.lab.ovs import OvsService

        require_root("vtap ovs status")
        _say(OvsService.from_settings(Settings()).status().describe())

    return ovs
