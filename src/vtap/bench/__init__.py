"""Benchmarks: `vtap bench controlplane` (compiler scaling, policy throughput, apply latency,
controller restart) and `vtap bench dataplane`. Results are written to files; nothing here asserts
a speed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def register_bench(app: typer.Typer, name: str, command: Callable[..., None]) -> None:
    """Add `command` to the `bench` group as `name`, creating the group if nobody did yet."""
    import typer

    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            group.typer_instance.command(name)(command)
            return
    bench = typer.Typer(help="Benchmarks.", no_args_is_help=True)
    bench.command(name)(command)
    app.add_typer(bench, name="bench")
