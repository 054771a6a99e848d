"""results.json, README.md and PNG plots of `vtap bench controlplane`. Every number in the
README is read from the results; nothing is typed in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    try:
        ovs = subprocess.run(
            ["ovs-vswitchd", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        ovs = "unknown"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 2**20, 1),
        "ovs": ovs,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    written += _plots(results, out)
    readme = out / "README.md"
    readme.write_text(render(results, [p.name for p in written if p.suffix == ".png"]))
    written.append(readme)
    head = out / "headline.md"
    head.write_text("\n".join(headline(results)) + "\n")
    written.append(head)
    return written


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(r: dict[str, Any], plots: list[str]) -> str:
    m = r["machine"]
    lines = [
        "# Control-plane benchmark",
        "",
        f"Produced by `{r['command']}` on {r['date']} ({'full' if r['full'] else 'quick'} mode).",
        "Every figure below is read from `results.json` of that run.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, {m['ovs']}, "
        f"kernel {m['kernel']}, Python {m['python']}. Open vSwitch runs the userspace datapath "
        "(no kernel module here).",
        "",
    ]
    comp = r.get("compile") or []
    if comp:
        lines += [
            "## Compiler scaling (no switches)",
            "",
            "The policy mix (`vtap.bench.workload`): 60 % `src_ip` + UDP/TCP `dst_port`, 20 % "
            "`src_ip` + `dst_ip` + TCP port, 20 % destination-only; one distinct port per policy; "
            "monitors spread over the hosts (tagged delivery). Compiled as the controller does "
            "(compile, allocate tags, compile again); *one pass* is a later round with the tags "
            "known; peak memory from tracemalloc in a separate run. *Refused*: policies the "
            "compiler left pending because a switch port ran out of its combination budget "
            "(1,024 cubes; no host is missing here, so that is the only reason).",
            "",
            "| fabric (spines×leaves) | hosts | policies | refused | compile (s) | one pass (s) "
            "| peak memory (MiB) | flows | groups | tags |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in comp:
            lines.append(
                f"| {c['spines']}×{c['leaves']} | {c['hosts']} | {_fmt(c['policies'])} "
                f"| {_fmt(c.get('pending', 0))} | {_fmt(c['compile_s'])} "
                f"| {_fmt(c['one_pass_s'])} | {_fmt(c['peak_mib'], 1)} "
                f"| {_fmt(c['flows'])} | {_fmt(c['groups'])} | {c['tags']} |"
            )
        lines.append("")
    lab = r.get("lab")
    if lab:
        p = lab["plan"]
        lines += [
            f"## On the lab ({p['spines']}×{p['leaves']}, {p['hosts_per_leaf']} hosts per leaf)",
            "",
            "### Throughput: N policies created at once",
            "",
            "Two ways: *bulk* = one `POST /api/v1/policies/bulk` with all N (what `vtap policy "
            f"apply` does); *posts* = one POST per policy, at most {lab['concurrency']} in "
            "flight (only up to 1,000: each POST's install round recompiles every policy so "
            "far). *To active* runs from the first request until GET /policies shows all N "
            "`active` (barrier-confirmed). Flow-mods = TAP flows + groups on the switches "
            "afterwards (`ovs-ofctl dump-flows` / `dump-groups`). The ceiling: the same rules "
            "re-added with one `ovs-ofctl bundle` (groups and flows in one transaction) per "
            "switch, all switches in parallel.",
            "",
            "A policy the compiler *refused* (more overlapping policies at one switch port than "
            "the combination budget allows, see `compiler/overlap.py`) stays `pending` with that "
            "reason; it counts as settled, and *to active* ends when every policy is active or "
            "refused.",
            "",
            "| N | via | in flight | active / refused | requests done (s) | to active (s) "
            "| policies/s | flows + groups | flow-mods/s | ofctl bundle (s) | ofctl flow-mods/s "
            "| ratio | delete all (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in lab["throughput"]:
            o = t["ofctl_bundle"]
            lines.append(
                f"| {_fmt(t['policies'])} | {t.get('via', 'posts')} "
                f"| {t.get('concurrency', lab['concurrency'])} "
                f"| {_fmt(t['final_status'].get('active', 0))} / {_fmt(t.get('refused', 0))} "
                f"| {_fmt(t['posted_s'])} "
                f"| {_fmt(t['to_active_s'])} | {_fmt(t['policies_per_s'], 1)} "
                f"| {_fmt(t['flows'] + t['groups'])} | {_fmt(t['flow_mods_per_s'], 0)} "
                f"| {_fmt(o['parallel_s'], 3)} | {_fmt(o['rate_parallel'], 0)} "
                f"| {_fmt(t['ratio_vs_ofctl_bundle'], 3)} | {_fmt(t['delete_s'])} |"
            )
        lines.append("")
        lat = lab.get("latency")
        if lat:
            a, s = lat["active_ms"], lat["response_ms"]
            lines += [
                "### Policy apply latency, one policy at a time",
                "",
                f"{lat['policies']} policies created one after another on an otherwise empty "
                "controller. The API answers a POST after the install round (barriers "
                f"confirmed); {lat['not_active_at_response']} answers were not yet `active`, "
                "for those *active* includes polling GET.",
                "",
                "| | p50 (ms) | p95 (ms) | max (ms) |",
                "|---|---|---|---|",
                f"| POST → 201 | {_fmt(s['p50'])} | {_fmt(s['p95'])} | {_fmt(s['max'])} |",
                f"| POST → active | {_fmt(a['p50'])} | {_fmt(a['p95'])} | {_fmt(a['max'])} |",
                "",
            ]
        fc = lab.get("first_copy")
        if fc:
            f = fc["first_copy_ms"]
            lines += [
                "### First copy at the monitor",
                "",
                "The source streams UDP frames (1 per ms) to a host on another leaf; the policy is "
                "created while the stream flows; tcpdump at the monitor timestamps the first copy "
                f"(pcap time − POST time). {fc['policies']} policies.",
                "",
                "| p50 (ms) | p95 (ms) | max (ms) | copies before the POST |",
                "|---|---|---|---|",
                f"| {_fmt(f.get('p50'))} | {_fmt(f.get('p95'))} | {_fmt(f.get('max'))} "
                f"| {sum(s['copies_before_post'] for s in fc['samples'])} |",
                "",
            ]
        rs = lab.get("restart")
        if rs:
            lines += [
                "### Controller restart",
                "",
                f"With {_fmt(rs['policies'])} policies active the controller is killed (SIGKILL) "
                "and `vtap controller` started again with the same state directory.",
                "",
                "| API up (s) | all switches rejoined (s) | all policies active (s) "
                "| switch tables unchanged |",
                "|---|---|---|---|",
                f"| {_fmt(rs['api_up_s'])} | {_fmt(rs['switches_rejoined_s'])} "
                f"| {_fmt(rs['all_active_s'])} | {rs['tables_unchanged']} |",
                "",
                "The controller syncs TAP entries on a switch only after it has been connected for "
                "`tap_settle` seconds (5 s by default), so a restart cannot finish sooner.",
                "",
            ]
    if r.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in r["notes"]] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(r: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    comp = r.get("compile") or []
    if comp:
        fig, ax = plt.subplots(figsize=(6, 4))
        for count in sorted({c["policies"] for c in comp}):
            rows = [c for c in comp if c["policies"] == count]
            ax.plot(
                [c["spines"] + c["leaves"] for c in rows],
                [c["compile_s"] for c in rows],
                marker="o",
                label=f"{count:,} policies",
            )
            for c in rows:
                ax.annotate(
                    f"{c['spines']}×{c['leaves']}", (c["spines"] + c["leaves"], c["compile_s"])
                )
        ax.set_xlabel("switches (spines + leaves)")
        ax.set_ylabel("compile time (s)")
        ax.set_title("Compiler scaling (no switches)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "compile-time.png"))
    lab = r.get("lab") or {}
    tp = lab.get("throughput") or []
    if tp:
        fig, ax = plt.subplots(figsize=(6, 4))
        for via, label in (("bulk", "one bulk request"), ("posts", "one POST each")):
            rows = [t for t in tp if t.get("via", "posts") == via]
            if rows:
                x = [t["policies"] for t in rows]
                ax.plot(x, [t["to_active_s"] for t in rows], marker="o", label=label)
        ax.legend()
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("policies created at once (N)")
        ax.set_ylabel("time until all active (s)")
        ax.set_title("Time to active vs. N")
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, out / "time-to-active.png"))
    lat = lab.get("latency")
    if lat:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in (
            ("samples_response_ms", "POST → 201"),
            ("samples_active_ms", "POST → active"),
        ):
            values = sorted(lat[key])
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
        fc = lab.get("first_copy")
        if fc:
            values = sorted(s["first_copy_ms"] for s in fc["samples"] if s["first_copy_ms"])
            if values:
                ax.step(
                    values,
                    [(i + 1) / len(values) for i in range(len(values))],
                    label="POST → first copy at monitor",
                )
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of policies")
        ax.set_title("Policy apply latency (CDF)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "latency-cdf.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def headline(r: dict[str, Any], where: str = "docs/results/controlplane/") -> list[str]:
    """The top-level README's control-plane lines, read from a results.json."""
    lab = r.get("lab") or {}
    plan = lab.get("plan", {})
    by_n = {(t["policies"], t.get("via", "posts")): t for t in lab.get("throughput", [])}
    comp = {(c["spines"], c["leaves"], c["policies"]): c for c in r.get("compile", [])}
    lines = [f"Control plane (`{r['command']}`, {r['date']}; details in `{where}`):", ""]
    for n, via, how in (
        (1_000, "bulk", "in one bulk request"),
        (10_000, "bulk", "in one bulk request"),
        (1_000, "posts", f"one POST each, {lab.get('concurrency')} in flight"),
    ):
        t = by_n.get((n, via))
        if t is None:
            continue
        refused = t.get("refused", 0)
        outcome = (
            "all `active`"
            if t["all_active"]
            else (
                f"{t['final_status'].get('active', 0):,} `active` and {refused:,} refused by the "
                "compiler (combination limit at leaf fabric ports)"
                if t.get("settled")
                else f"NOT all active ({t['final_status']})"
            )
        )
        lines.append(
            f"- {n:,} policies created {how} → {outcome} in {t['to_active_s']:.1f} s on "
            f"the default lab ({plan['spines']}×{plan['leaves']}, {plan['hosts_per_leaf']} "
            f"hosts per leaf): {t['flow_mods_per_s']:,.0f} flow-mods/s, "
            f"{t['ratio_vs_ofctl_bundle'] * 100:.1f} % of `ovs-ofctl bundle` of the same "
            f"{t['flows'] + t['groups']:,} rules ({t['ofctl_bundle']['rate_parallel']:,.0f}/s; "
            "goal ≥ 50 %)"
        )
    if lab.get("latency"):
        a = lab["latency"]["active_ms"]
        lines.append(
            f"- policy apply latency (REST → active, barrier-confirmed, "
            f"{lab['latency']['policies']} policies one at a time): p50 {a['p50']:.1f} ms, "
            f"p95 {a['p95']:.1f} ms, max {a['max']:.1f} ms (goal: p50 ≤ 20 ms)"
        )
    if lab.get("first_copy", {}).get("first_copy_ms"):
        f = lab["first_copy"]["first_copy_ms"]
        lines.append(
            f"- REST → first copy captured at the monitor: p50 {f['p50']:.0f} ms "
            f"({lab['first_copy']['policies']} policies)"
        )
    if lab.get("restart"):
        rs = lab["restart"]
        lines.append(
            f"- controller restart with {rs['policies']:,} policies: all active again after "
            f"{rs['all_active_s']:.1f} s; switch tables unchanged: {rs['tables_unchanged']}"
        )
    c = comp.get((4, 8, 10_000))
    if c:
        lines.append(
            f"- compile 10,000 policies on 4×8 (no switches): {c['compile_s']:.1f} s "
            f"({c['flows']:,} flows, {c['groups']:,} groups; goal ≤ 2 s)"
        )
    return lines
