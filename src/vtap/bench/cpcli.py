"""`vtap bench controlplane`: compiler scaling, policy throughput and latency, restart."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_OUT = Path("docs/results/controlplane")
POSTS_UP_TO = 1_000  # largest N also created one POST at a time


def run(
    *,
    full: bool,
    out: Path,
    api: str | None,
    lab: bool,
    take_lock: bool,
    counts: tuple[int, ...],
    compile_cases: tuple[tuple[int, int, int, bool], ...],
    lab_plan: tuple[int, int, int],
    latency_n: int,
    first_copy_n: int,
    restart_n: int | None,
    concurrency: int,
    command: str,
    say: Any,
    bar: Any,
) -> dict[str, Any]:
    """Everything the command does, callable from a test with tiny sizes."""
    from vtap.bench import compilescale, cpreport, labrun
    from vtap.lab.topo import LeafSpinePlan

    results: dict[str, Any] = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "full": full,
        "machine": cpreport.machine(),
        "compile": [],
        "notes": [],
    }
    for spines, leaves, n, detail in compile_cases:
        say(f"compile {n:,} policies on {spines}x{leaves}")
        results["compile"].append(compilescale.measure(spines, leaves, n, detail=detail))
        bar(None, None)
    if lab:
        plan = LeafSpinePlan(*lab_plan)
        with (
            labrun.lab_lock(take_lock and api is None),
            tempfile.TemporaryDirectory(prefix="vtap-bench-") as tmp,
        ):
            work = Path(tmp)
            if api is None:
                ctx = labrun.own_lab(plan, work / "state", say)
            else:
                ctx = _external(labrun.LabTarget(api.rstrip("/"), plan))
            with ctx as target:
                labrun.prepare(target, say)
                labrun.delete_everything(target)
                section: dict[str, Any] = {
                    "plan": {
                        "spines": plan.spines,
                        "leaves": plan.leaves,
                        "hosts_per_leaf": plan.hosts_per_leaf,
                    },
                    "concurrency": concurrency,
                    "throughput": [],
                }
                results["lab"] = section
                for n in counts:
                    # One bulk request for every N; one POST each up to POSTS_UP_TO (beyond,
                    # every POST's round recompiles all policies so far: minutes, and no client
                    # creating that many would do it one by one).
                    for via in ("bulk", "posts") if n <= POSTS_UP_TO else ("bulk",):
                        say(f"throughput: {n:,} policies ({via})")
                        restart = via == "bulk" and restart_n == n and target.state_dir is not None
                        t = labrun.throughput(target, n, concurrency, bar, restart=restart, via=via)
                        if "restart" in t:
                            section["restart"] = t.pop("restart")
                        section["throughput"].append(t)
                if latency_n:
                    say(f"apply latency: {latency_n} policies one at a time")
                    section["latency"] = labrun.apply_latency(target, latency_n, bar)
                if first_copy_n:
                    say(f"first copy at the monitor: {first_copy_n} policies")
                    section["first_copy"] = labrun.first_copy(target, first_copy_n, bar, work)
                if restart_n and "restart" not in section:
                    results["notes"].append(
                        "controller restart not measured (needs a lab this command started)"
                    )
    results["notes"].append(
        "destination-only policies dominate compile time and rule count: each is classified on "
        "every port of the destination's edge switch and combined with suppressors (source "
        "policies, monitors' own traffic), see compiler/tap.py"
    )
    cpreport.write(results, out)
    return results


class _external:
    def __init__(self, target: Any) -> None:
        self.target = target

    def __enter__(self) -> Any:
        return self.target

    def __exit__(self, *exc: object) -> None:
        return None


def controlplane(
    full: Annotated[
        bool, typer.Option("--full", help="also 10,000 policies on the lab and every compile case")
    ] = False,
    api: Annotated[
        str | None,
        typer.Option(help="URL of a running controller (default: start a lab, default size)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="directory for the results")] = DEFAULT_OUT,
    concurrency: Annotated[int, typer.Option(help="POSTs in flight")] = 16,
    no_lab: Annotated[bool, typer.Option("--no-lab", help="compiler scaling only")] = False,
    no_lock: Annotated[
        bool,
        typer.Option("--no-lock", help="the caller holds /tmp/vtap-lab.lock (e.g. under flock)"),
    ] = False,
    readme: Annotated[
        Path | None,
        typer.Option(help="also put the headline figures into this README's controlplane block"),
    ] = None,
) -> None:
    """Benchmark the control plane; results (JSON, README.md, PNG) go to --out."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    counts = (10, 100, 1_000, 10_000) if full else (10, 100, 1_000)
    cases: list[tuple[int, int, int, bool]] = []
    for spines, leaves in ((4, 8), (8, 32), (16, 64)):
        for n in (1_000, 10_000):
            # Quick mode: 10,000 policies on 4x8 only, and only its compile time.
            if n == 10_000 and not full and (spines, leaves) != (4, 8):
                continue
            cases.append((spines, leaves, n, full or n < 10_000))
    command = "vtap bench controlplane" + (
        " " + shlex.join(sys.argv[3:]) if len(sys.argv) > 3 else ""
    )
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console) as progress:
        stage = progress.add_task("starting", total=None)

        def say(text: str) -> None:
            progress.update(stage, description=text, completed=0, total=None)

        def bar(done: int | None, total: int | None) -> None:
            if done is not None:
                progress.update(stage, completed=done, total=total)

        results = run(
            full=full,
            out=out,
            api=api,
            lab=not no_lab,
            take_lock=not no_lock,
            counts=counts,
            compile_cases=tuple(cases),
            lab_plan=(4, 8, 2),
            latency_n=300 if full else 100,
            first_copy_n=100 if full else 5,
            restart_n=1_000,
            concurrency=concurrency,
            command=command,
            say=say,
            bar=bar,
        )
    console.print(f"done in {time.monotonic() - started:.0f} s; results in {out}")
    if readme is not None:
        from vtap.bench import readme as readme_block

        readme_block.sync(readme, "controlplane", (out / "headline.md").read_text())
    for t in (results.get("lab") or {}).get("throughput", []):
        console.print(
            f"  {t['policies']:>6,} policies: all active in {t['to_active_s']:.2f} s, "
            f"{t['flow_mods_per_s']:,.0f} flow-mods/s, ratio vs ofctl bundle "
            f"{t['ratio_vs_ofctl_bundle']:.3f}"
        )


def register(app: typer.Typer) -> None:
    from vtap.bench import register_bench

    register_bench(app, "controlplane", controlplane)
