"""`vtap bench faults`: inject the faults of bench/faults.py on a lab of its own, one after the
other, and write what survived (results.json, headline.md; the README block on request)."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_OUT = Path("docs/results/faults")


def plan(full: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(scenario, function, arguments): the issue's sizes with --full, small ones otherwise."""
    n = 10_000 if full else 2_000
    chunk = 1_000 if full else 500
    kills: list[tuple[str, str, dict[str, Any]]] = []
    for delay in (0.05, 0.15, 0.3) if full else (0.1,):
        kills.append(
            (
                "controller_killed_mid_batch",
                "killed_mid_bulk",
                {"n": n, "kill_during": n // chunk // 2, "delay": delay, "chunk": chunk},
            )
        )
    for delay in (0.3, 0.8, 1.2) if full else (0.3,):
        kills.append(
            (
                "controller_killed_mid_bulk_install",
                "killed_mid_bulk",
                {"n": n, "kill_during": 0, "delay": delay, "chunk": n},
            )
        )
    return [
        *kills,
        ("barrier_timeout", "barrier_timeout", {}),
        ("switch_restart", "switch_restart", {"count": 1500 if full else 800}),
        ("table_full", "table_full", {}),
        (
            "link_flap",
            "link_flap",
            {"n": 1_000 if full else 200, "duration": 60.0 if full else 10.0},
        ),
    ]


def run(
    *, full: bool, out: Path, take_lock: bool, command: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """Everything the command does, callable from a test."""
    from vtap.bench import cpmeasure, cpreport, faultreport, faults, labrun
    from vtap.lab.topo import LeafSpinePlan

    results: dict[str, Any] = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "full": full,
        "machine": cpreport.machine(),
        "faults": [],
    }
    with (
        labrun.lab_lock(take_lock),
        tempfile.TemporaryDirectory(prefix="vtap-faults-") as tmp,
    ):
        work = Path(tmp)
        with labrun.own_lab(LeafSpinePlan(), work / "state", say) as target:
            labrun.prepare(target, say)
            cpmeasure.delete_everything(target)
            for n, (name, function, kwargs) in enumerate(plan(full), 1):
                say(f"fault {n}: {name.replace('_', ' ')}")
                started = time.monotonic()
                scenario = getattr(faults, function)
                args = (
                    (target,) if function in ("killed_mid_bulk", "table_full") else (target, work)
                )
                try:
                    outcome = scenario(*args, **kwargs)
                except labrun.BenchError as exc:
                    outcome = {"ok": False, "error": str(exc)}
                outcome["took_s"] = round(time.monotonic() - started, 1)
                results["faults"].append({"fault": name, **outcome})
    faultreport.write(results, out)
    return results


def faults_command(
    full: Annotated[
        bool, typer.Option("--full", help="the issue's sizes: 10,000 policies, a 60 s flap")
    ] = False,
    out: Annotated[Path, typer.Option(help="directory for the results")] = DEFAULT_OUT,
    no_lock: Annotated[
        bool,
        typer.Option("--no-lock", help="the caller holds /tmp/vtap-lab.lock (e.g. under flock)"),
    ] = False,
    readme: Annotated[
        Path | None,
        typer.Option(
            help="also put the summary into this README's faults block (and into "
            "docs/reliability.md's next to it)"
        ),
    ] = None,
) -> None:
    """Inject faults on a lab of its own (controller killed mid-batch, a switch that does not
    answer in time, the switches crashing, a full flow table, a flapping link); results (JSON,
    README.md) go to --out."""
    from rich.console import Console

    console = Console(stderr=True)
    command = "vtap bench faults" + (" " + shlex.join(sys.argv[3:]) if len(sys.argv) > 3 else "")
    started = time.monotonic()
    with console.status("starting") as status:

        def say(text: str) -> None:
            status.update(text)
            console.log(text)

        results = run(full=full, out=out, take_lock=not no_lock, command=command, say=say)
    console.print(f"done in {time.monotonic() - started:.0f} s; results in {out}")
    if readme is not None:
        from vtap.bench import readme as readme_block

        text = (out / "headline.md").read_text()
        readme_block.sync(readme, "faults", text)
        reliability = readme.parent / "docs" / "reliability.md"
        if reliability.exists():
            readme_block.sync(reliability, "faults", text)
    for fault in results["faults"]:
        verdict = "met" if fault["ok"] else "NOT met"
        console.print(
            f"  {fault['fault']}: goal {verdict}"
            + (f" ({fault['error']})" if "error" in fault else "")
        )
    if not all(f["ok"] for f in results["faults"]):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from vtap.bench import register_bench

    register_bench(app, "faults", faults_command)
