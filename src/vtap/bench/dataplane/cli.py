"""`vtap bench dataplane`: registered as a command of the `bench` group (created if absent)."""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from vtap.errors import VtapError

DEFAULT_OUT = Path("docs/results/dataplane")


def dataplane(
    full: Annotated[bool, typer.Option("--full", help="5 repeats of 5 s (default: quick)")] = False,
    sizes: Annotated[str, typer.Option(help="Comma-separated packet sizes (bytes).")] = (
        "64,128,256,512,1024,1280,1518"
    ),
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated: none,mirror,vtap (every size) and none-10k,vtap-10k (the "
            "10,000-policy phase, which also measures the plain methods listed here)."
        ),
    ] = "none,mirror,vtap,none-10k,vtap-10k",
    datapaths: Annotated[
        str, typer.Option(help="Comma-separated datapaths: ovs-veth (normal OVS), ovs-dpdk.")
    ] = "ovs-veth,ovs-dpdk",
    paced: Annotated[
        bool, typer.Option(help="OVS-DPDK: every method at half the no-TAP capacity, 64 B.")
    ] = True,
    two_pairs: Annotated[
        bool, typer.Option(help="OVS-DPDK testbed 2: two pairs, one monitor, 1 vs. 2 PMDs.")
    ] = True,
    policies_10k: Annotated[
        bool,
        typer.Option(
            "--policies-10k/--no-policies-10k",
            help="Testbed 1, both datapaths, 64 and 1518 B: no TAP and vTAP with 10,000 "
            "background policies installed (none matching) vs. without, and vs. the mirror.",
        ),
    ] = True,
    background_policies: Annotated[
        int,
        typer.Option(
            help="How many background policies the 10,000-policy phase installs (one bulk "
            "request, at most 100,000)."
        ),
    ] = 10_000,
    repeats: Annotated[int, typer.Option(help="Windows per size (0: 3 quick, 5 full).")] = 0,
    window: Annotated[float, typer.Option(help="Seconds per window (0: 1 quick, 5 full).")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the results.")] = DEFAULT_OUT,
    no_lock: Annotated[
        bool, typer.Option("--no-lock", help="The caller holds the machine's lab lock.")
    ] = False,
    readme: Annotated[
        Path | None,
        typer.Option(help="Also put the headline figures into this README's dataplane block."),
    ] = None,
) -> None:
    """Measure no TAP vs. OVSDB port mirroring vs. vTAP on normal OVS and OVS-DPDK."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vtap.bench.dataplane import harness, report
    from vtap.bench.labrun import lab_lock

    try:
        size_list = tuple(int(s) for s in sizes.split(",") if s.strip())
    except ValueError:
        raise VtapError(f"--sizes must be comma-separated integers, not {sizes!r}") from None
    method_list = tuple(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))
    bad = [m for m in method_list if m not in harness.ALL_METHODS]
    if bad or not method_list:
        raise VtapError(
            f"--methods must be among {', '.join(harness.ALL_METHODS)}, not {methods!r}"
        )
    main_methods = tuple(m for m in harness.METHODS if m in method_list)
    phase_methods = tuple(m for m in harness.POLICY_METHODS if m in method_list)
    if not 0 < background_policies <= harness.MAX_BULK:
        raise VtapError(f"--background-policies must be within 1..{harness.MAX_BULK:,}")
    dp_list = tuple(d.strip() for d in datapaths.split(",") if d.strip())
    if not dp_list or any(d not in harness.DATAPATHS for d in dp_list):
        raise VtapError(
            f"--datapaths must be among {', '.join(harness.DATAPATHS)}, not {datapaths!r}"
        )
    if not size_list or any(not 60 <= s <= 1518 for s in size_list):
        raise VtapError("--sizes must be within 60..1518")
    config = harness.RunConfig(
        sizes=size_list,
        methods=main_methods,
        datapaths=dp_list,
        repeats=repeats or (5 if full else 3),
        window=window or (5.0 if full else 1.0),
        quick=not full,
        paced=paced,
        two_pairs=two_pairs,
        policies_10k=policies_10k,
        policies_10k_methods=phase_methods,
        background_policies=background_policies,
    )
    command = (
        "vtap bench dataplane " + shlex.join(sys.argv[3:])
        if len(sys.argv) > 3
        else ("vtap bench dataplane")
    )
    total = config.windows()
    with tempfile.TemporaryDirectory(prefix="vbd-") as tmp, lab_lock(not no_lock):
        work = Path(tmp)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns) as bar:
            task = bar.add_task("setting up", total=total)

            def progress(desc: str, n: int) -> None:
                bar.update(task, advance=n, **({"description": desc} if desc else {}))

            try:
                result = harness.run(config, work, progress)
            except VtapError as exc:
                logs = out / "failed-run-logs"
                logs.mkdir(parents=True, exist_ok=True)
                for f in work.rglob("*.log"):
                    name = f.name if f.parent == work else f"{f.parent.name}-{f.name}"
                    (logs / name).write_bytes(f.read_bytes())
                raise VtapError(f"{exc} (logs copied to {logs})") from None
    written = report.write(result, out, command)
    for path in written:
        print(path)
    if readme is not None:
        from vtap.bench import readme as readme_block

        readme_block.sync(readme, "dataplane", (out / "headline.md").read_text())


def register(app: typer.Typer) -> None:
    from vtap.bench import register_bench

    register_bench(app, "dataplane", dataplane)
