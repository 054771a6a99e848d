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


def _goal(ok: bool) -> str:
    return "met" if ok else "**not met**"


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
        "The policy set (`vtap.bench.workload.overlap_specs`) is the overlapping mix of the "
        "compiler-v2 issue: 20 % destination-only with a UDP destination port, 20 % source-only "
        "with a TCP source port, 60 % source + destination with a TCP destination port, random "
        "monitors among the hosts, all ports distinct. Policies that pin different fields "
        "overlap (a packet from port 443 to port 80 can match several).",
        "",
    ]
    comp = r.get("compile") or []
    if comp:
        lines += [
            "## Compiler (no switches)",
            "",
            "A *full build* places every policy and derives every switch's rules from nothing "
            "(what a restart or a topology change costs; the controller runs it in a worker "
            "thread). *Change*: CPU time of one create, patch (new monitor) or delete against the "
            "built set, each with the flush that yields the changed keys (what an API call "
            "costs), over many changes of each kind. Peak memory from tracemalloc in a second "
            "run. Goal: one change ≤ 2 ms CPU at 10,000 policies.",
            "",
            "| fabric | hosts | policies | pending | build (s) | peak memory (MiB) | flows "
            "| flows, largest switch | copy labels | create p50 / p95 (ms) | patch p50 / p95 (ms) "
            "| delete p50 / p95 (ms) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in comp:
            ch = c.get("change") or {}

            def pp(kind: str, ch: dict[str, Any] = ch) -> str:
                v = ch.get(kind)
                return f"{_fmt(v['p50_ms'], 3)} / {_fmt(v['p95_ms'], 3)}" if v else "—"

            lines.append(
                f"| {c['spines']}×{c['leaves']} | {c['hosts']} | {_fmt(c['policies'])} "
                f"| {_fmt(c['pending'])} | {_fmt(c['build_s'])} | {_fmt(c['peak_mib'], 1)} "
                f"| {_fmt(c['flows'])} | {_fmt(c['flows_max_switch'])} | {_fmt(c['labels'])} "
                f"| {pp('create')} | {pp('patch')} | {pp('delete')} |"
            )
        lines.append("")
    lab = r.get("lab")
    if lab:
        p = lab["plan"]
        lines += [
            f"## On the lab ({p['spines']}×{p['leaves']}, {p['hosts_per_leaf']} hosts per leaf)",
            "",
            "### Throughput: N policies in one bulk request",
            "",
            "*To active* runs from the request until `GET /api/v1/policies/summary` reports every "
            "policy `active` (committed by every switch it touches). Flows and groups: the TAP "
            "entries the switches hold afterwards (`ovs-ofctl dump-flows` / `dump-groups`). "
            "The ceiling: the same rules re-added with one `ovs-ofctl bundle` per switch, all "
            "switches in parallel (goal: ≥ 50 % of its flow-mods/s). *Loop stall*: the longest "
            "the controller's event loop was late meanwhile (goal ≤ 100 ms).",
            "",
            "| N | active | to active (s) | flows (total / largest switch) | groups "
            "| flow-mods/s | ofctl bundle flow-mods/s | ratio | longest loop stall (ms) "
            "| delete all (s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in lab["throughput"]:
            o = t["ofctl_bundle"]
            ps = t["per_switch"]
            lines.append(
                f"| {_fmt(t['policies'])} | {_fmt(t['final_status']['active'])} "
                f"| {_fmt(t['to_active_s'])} | {_fmt(t['flows'])} / {_fmt(ps['flows_max'])} "
                f"| {_fmt(t['groups'])} | {_fmt(t['flow_mods_per_s'], 0)} "
                f"| {_fmt(o['rate_parallel'], 0)} | {_fmt(t['ratio_vs_ofctl_bundle'], 3)} "
                f"| {_fmt(t['loop_lag']['max_stall_ms'], 0)} | {_fmt(t['delete_s'])} |"
            )
        lines.append("")
        lat = lab.get("latency") or []
        if lat:
            lines += [
                "### Apply latency, one policy at a time",
                "",
                "With 0, 1,000 or 10,000 policies of the mix already installed, more are created "
                "one after another: POST → 201 (the API answers after the install round) and "
                "POST → `active` (as GET reports it). Goal at every level: p50 ≤ 15 ms, "
                "p95 ≤ 40 ms.",
                "",
                "| present | samples | POST → 201 p50 / p95 (ms) | POST → active p50 (ms) "
                "| p95 (ms) | max (ms) |",
                "|---|---|---|---|---|---|",
            ]
            for level in lat:
                a, s = level["active_ms"], level["response_ms"]
                lines.append(
                    f"| {_fmt(level['present'])} | {level['policies']} "
                    f"| {_fmt(s['p50'])} / {_fmt(s['p95'])} | {_fmt(a['p50'])} "
                    f"| {_fmt(a['p95'])} | {_fmt(a['max'])} |"
                )
            lines.append("")
        flap = lab.get("link_flap")
        if flap:
            lines += [
                "### A fabric link flaps with the policies installed",
                "",
                f"Link {flap['link']} down, then up, with {_fmt(flap['policies'])} policies "
                "installed: each is a topology change, so a full build (in a worker thread) "
                "and the differences sent to the switches.",
                "",
                "| down: all active again (s) | up: all active again (s) "
                "| longest loop stall (ms) | tables as before afterwards |",
                "|---|---|---|---|",
                f"| {_fmt(flap['down_s'])} | {_fmt(flap['up_s'])} "
                f"| {_fmt(flap['loop_lag']['max_stall_ms'], 0)} | {flap['tables_as_before']} |",
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
        for fabric in sorted({(c["spines"], c["leaves"]) for c in comp}):
            rows = sorted(
                (c for c in comp if (c["spines"], c["leaves"]) == fabric),
                key=lambda c: c["policies"],
            )
            ax.plot(
                [c["policies"] for c in rows],
                [c["build_s"] for c in rows],
                marker="o",
                label=f"{fabric[0]}×{fabric[1]} full build",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("policies")
        ax.set_ylabel("full build (s)")
        ax.set_title("Compiler: full build vs. policies")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "compile-time.png"))
    lab = r.get("lab") or {}
    tp = lab.get("throughput") or []
    if tp:
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [t["policies"] for t in tp]
        ax.plot(x, [t["to_active_s"] for t in tp], marker="o", label="vtap, one bulk request")
        ax.plot(
            x,
            [(t["flows"] + t["groups"]) / t["ofctl_bundle"]["rate_parallel"] for t in tp],
            marker="s",
            linestyle="--",
            label="ovs-ofctl bundle of the same rules",
        )
        ax.legend()
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("policies created at once (N)")
        ax.set_ylabel("time until all active (s)")
        ax.set_title("Time to active vs. N")
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, out / "time-to-active.png"))
    lat = lab.get("latency") or []
    if lat:
        fig, ax = plt.subplots(figsize=(6, 4))
        for level in lat:
            values = sorted(level["samples_active_ms"])
            ax.step(
                values,
                [(i + 1) / len(values) for i in range(len(values))],
                label=f"POST → active, {level['present']:,} present",
            )
        fc = lab.get("first_copy")
        if fc:
            values = sorted(s["first_copy_ms"] for s in fc["samples"] if s["first_copy_ms"])
            if values:
                ax.step(
                    values,
                    [(i + 1) / len(values) for i in range(len(values))],
                    label="POST → first copy at monitor",
                )
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of policies")
        ax.set_title("Policy apply latency (CDF)")
        ax.grid(True, which="both", alpha=0.3)
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
    lines = [f"Control plane (`{r['command']}`, {r['date']}; details in `{where}`):", ""]
    for t in lab.get("throughput", []):
        n = t["policies"]
        final = t["final_status"]
        outcome = "all `active`" if t["all_active"] else f"NOT all active ({final})"
        ratio = t["ratio_vs_ofctl_bundle"]
        stall = t["loop_lag"]["max_stall_ms"]
        lines.append(
            f"- {n:,} overlapping policies in one bulk request → {outcome} in "
            f"{t['to_active_s']:.1f} s on the default lab ({plan['spines']}×{plan['leaves']}, "
            f"{plan['hosts_per_leaf']} hosts per leaf): {t['flows']:,} flows "
            f"(largest switch {t['per_switch']['flows_max']:,}), {t['groups']} groups; "
            f"{t['flow_mods_per_s']:,.0f} flow-mods/s = {ratio * 100:.0f} % of `ovs-ofctl "
            f"bundle` of the same rules (goal ≥ 50 %: {_goal(ratio >= 0.5)}); longest "
            f"event-loop stall {stall:.0f} ms (goal ≤ 100 ms: {_goal(stall <= 100)})"
        )
    for level in lab.get("latency", []):
        a = level["active_ms"]
        ok = a["p50"] <= 15 and a["p95"] <= 40
        lines.append(
            f"- apply latency (REST → active, one POST at a time, {level['present']:,} policies "
            f"present, {level['policies']} samples): p50 {a['p50']:.1f} ms, p95 {a['p95']:.1f} ms "
            f"(goal p50 ≤ 15, p95 ≤ 40: {_goal(ok)})"
        )
    flap = lab.get("link_flap")
    if flap:
        stall = flap["loop_lag"]["max_stall_ms"]
        lines.append(
            f"- link {flap['link']} down and up with {flap['policies']:,} policies installed: "
            f"all active again {flap['down_s']:.1f} s / {flap['up_s']:.1f} s later; longest "
            f"event-loop stall {stall:.0f} ms (goal ≤ 100 ms: {_goal(stall <= 100)}); tables as "
            f"before: {flap['tables_as_before']}"
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
    for c in r.get("compile", []):
        ch = c.get("change") or {}
        worst = max((v["p50_ms"] for v in ch.values()), default=None)
        change = (
            f"; one change {worst:.2f} ms CPU (p50, worst of create/patch/delete; goal ≤ 2 ms: "
            f"{_goal(worst <= 2)})"
            if worst is not None
            else ""
        )
        lines.append(
            f"- compile {c['policies']:,} policies on {c['spines']}×{c['leaves']} (no switches): "
            f"full build {c['build_s']:.1f} s, {c['peak_mib']} MiB peak, {c['flows']:,} flows, "
            f"{c['pending']} pending{change}"
        )
    return lines
