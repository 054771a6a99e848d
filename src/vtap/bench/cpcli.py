"""`vtap bench controlplane`: compiler scaling, policy throughput and latency, event-loop lag,
a link flap and a restart with policies installed, the first copy at the monitor."""

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
    latency_levels: tuple[int, ...],
    latency_n: int,
    first_copy_n: int,
    restart_n: int | None,
    flap_n: int | None,
    command: str,
    say: Any,
    bar: Any,
) -> dict[str, Any]:
    """Everything the command does, callable from a test with tiny sizes."""
    from vtap.bench import compilescale, cpmeasure, cpreport, labrun
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
                cpmeasure.delete_everything(target)
                section: dict[str, Any] = {
                    "plan": {
                        "spines": plan.spines,
                        "leaves": plan.leaves,
                        "hosts_per_leaf": plan.hosts_per_leaf,
                    },
                    "throughput": [],
                    "latency": [],
                }
                results["lab"] = section
                for n in counts:
                    say(f"throughput: {n:,} policies in one bulk request")
                    owned = target.state_dir is not None
                    t = cpmeasure.throughput(
                        target,
                        n,
                        bar,
                        restart=owned and restart_n == n,
                        flap=owned and flap_n == n,
                    )
                    for key in ("restart", "link_flap"):
                        if key in t:
                            section[key] = t.pop(key)
                    section["throughput"].append(t)
                for present in latency_levels:
                    say(f"apply latency: {latency_n} policies one at a time, {present:,} present")
                    section["latency"].append(
                        cpmeasure.apply_latency(target, present, latency_n, bar)
                    )
                if first_copy_n:
                    say(f"first copy at the monitor: {first_copy_n} policies")
                    section["first_copy"] = cpmeasure.first_copy(target, first_copy_n, bar, work)
                for key, n_key in (("restart", restart_n), ("link_flap", flap_n)):
                    if n_key and key not in section:
                        results["notes"].append(
                            f"{key.replace('_', ' ')} not measured (needs a lab this command "
                            "started, and that many policies in the throughput runs)"
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
        bool,
        typer.Option("--full", help="also 10,000 and 50,000 policies on the lab, 100,000 compiled"),
    ] = False,
    api: Annotated[
        str | None,
        typer.Option(help="URL of a running controller (default: start a lab, default size)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="directory for the results")] = DEFAULT_OUT,
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

    counts = (1_000, 10_000, 50_000) if full else (1_000,)
    cases: list[tuple[int, int, int, bool]] = []
    for spines, leaves in ((4, 8), (16, 64)):
        for n in (10_000, 100_000) if full else (10_000,):
            cases.append((spines, leaves, n, True))
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
            latency_levels=(0, 1_000, 10_000) if full else (0, 1_000),
            latency_n=300 if full else 100,
            first_copy_n=100 if full else 5,
            restart_n=10_000 if full else 1_000,
            flap_n=10_000 if full else 1_000,
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
            f"  {t['policies']:>6,} policies: {t['final_status']} in {t['to_active_s']:.2f} s, "
            f"{t['flow_mods_per_s']:,.0f} flow-mods/s, ratio vs ofctl bundle "
            f"{t['ratio_vs_ofctl_bundle']:.3f}"
        )


def register(app: typer.Typer) -> None:
    from vtap.bench import register_bench

    register_bench(app, "controlplane", controlplane)
