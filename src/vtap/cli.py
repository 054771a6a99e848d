"""The `vtap` command. Sub-commands live next to the code they drive; this module wires them."""

from __future__ import annotations

import sys

import typer

from vtap.errors import VtapError

app = typer.Typer(
    help="vtap: virtual TAP for data-center networks on Open vSwitch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # vtap --install-completion / --show-completion
)


def _version(value: bool) -> None:
    if value:
        from vtap import __version__

        typer.echo(f"vtap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """vtap: virtual TAP for data-center networks on Open vSwitch."""


def _register() -> None:
    from vtap.bench.cpcli import register as register_bench_controlplane
    from vtap.bench.dataplane.cli import register as register_bench_dataplane
    from vtap.bench.faultcli import register as register_bench_faults
    from vtap.config_cli import register as register_config
    from vtap.controller.cli import register as register_controller
    from vtap.demo import register as register_demo
    from vtap.lab.cli import register as register_lab
    from vtap.pki_cli import register as register_pki
    from vtap.policy_cli import register as register_policy
    from vtap.read_cli import register as register_reads
    from vtap.token_cli import register as register_token
    from vtap.trace.cli import register as register_trace

    register_controller(app)
    register_config(app)
    register_lab(app)
    register_demo(app)
    register_policy(app)
    register_reads(app)
    register_trace(app)
    register_pki(app)
    register_token(app)
    register_bench_controlplane(app)  # creates the `bench` group; dataplane joins it
    register_bench_dataplane(app)  # joins the `bench` group; keep it after its registration
    register_bench_faults(app)  # likewise


def main() -> None:
    """Entry point: operator errors become one line on stderr and exit code 1."""
    _register()
    try:
        result = app(standalone_mode=False)
    except VtapError as exc:
        print(f"vtap: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("vtap: aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # Usage errors (typer may vendor its own click, so go by shape, not by class):
        # one line, like every other operator error; `--help` shows the usage.
        message = getattr(exc, "format_message", None)
        if message is None or not hasattr(exc, "exit_code"):
            raise
        print(f"vtap: error: {message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    # Without standalone mode click returns the code of a `raise typer.Exit(code)`.
    sys.exit(result if isinstance(result, int) else 0)
