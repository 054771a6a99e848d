"""Results of `vtap bench dataplane`: raw JSON/CSV, Markdown tables in the seed's format, plots,
and the comparison with the seed as ratios measured in one run."""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

from vtap.bench.dataplane.harness import Proof, RunConfig, RunResult, Sample

SEED_DIR_CANDIDATES = (
    Path(__file__).resolve().parents[4] / ".." / "shared" / "paper-results",
    Path("/work/shared/paper-results"),
)
METHOD_TITLE = {"none": "no TAP", "mirror": "OVSDB port mirroring", "vtap": "vTAP (group table)"}
FIELDS = (
    "receiver_pps",
    "receiver_mbps",
    "monitor_pps",
    "monitor_mbps",
    "drops",
    "pmd_cycles_per_packet",
    "receiver_ring_drops",
    "monitor_ring_drops",
)
DATAPATH_TITLE = {
    "ovs-veth": "Normal OVS (userspace datapath, veth)",
    "ovs-dpdk": "OVS-DPDK (dpdkvhostuserclient, 1 PMD)",
}


def _median_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def aggregate(samples: list[Sample]) -> dict[tuple[str, str, int], dict[str, tuple]]:
    groups: dict[tuple[str, str, int], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.datapath, s.method, s.size)].append(s)
    out = {}
    for key, group in groups.items():
        out[key] = {f: _median_spread([float(getattr(s, f)) for s in group]) for f in FIELDS}
        out[key]["sender_pps"] = _median_spread([s.sender_pps for s in group])
        out[key]["n"] = (len(group), len(group), len(group))
    return out


def seed_table(name: str) -> dict[int, dict[str, float]]:
    for d in SEED_DIR_CANDIDATES:
        path = d / name
        if path.exists():
            with path.open() as f:
                return {
                    int(r["packet_size_bytes"]): {k: float(v) for k, v in r.items()}
                    for r in csv.DictReader(f)
                }
    return {}


def load(raw: Path) -> RunResult:
    """A run back from its raw.json (to re-render the report of an existing run)."""
    data = json.loads(raw.read_text())
    cfg = data["config"]
    config = RunConfig(**{**cfg, **{k: tuple(v) for k, v in cfg.items() if isinstance(v, list)}})
    samples = [Sample(**s) for s in data["samples"]]
    proofs = [Proof(**{"datapath": "ovs-veth", **p}) for p in data["proofs"]]
    return RunResult(config, samples, proofs, data["machine"], data["started"], data["seconds"])


def write(result: RunResult, outdir: Path, command: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    raw = outdir / "raw.json"
    raw.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    written.append(raw)
    samples_csv = outdir / "samples.csv"
    with samples_csv.open("w", newline="") as f:
        fields = list(result.samples[0].__dict__) if result.samples else []
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for s in result.samples:
            w.writerow(s.__dict__)
    written.append(samples_csv)
    agg = aggregate(result.samples)
    summary_csv = outdir / "summary.csv"
    with summary_csv.open("w", newline="") as f:
        w = csv.writer(f)
        stats = [f"{x}_{k}" for x in ("sender_pps", *FIELDS) for k in ("median", "min", "max")]
        w.writerow(["datapath", "method", "packet_size_bytes", "repeats", *stats])
        for (dp, method, size), v in sorted(agg.items()):
            row: list[object] = [dp, method, size, v["n"][0]]
            for x in ("sender_pps", *FIELDS):
                row += [round(y, 1) for y in v[x]]
            w.writerow(row)
    written.append(summary_csv)
    written += _plots(agg, outdir)
    md = outdir / "README.md"
    md.write_text(_markdown(result, agg, command))
    written.append(md)
    return written


def _fmt(v: tuple[float, float, float], digits: int = 0) -> str:
    med, lo, hi = v
    return f"{med:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if a and b else "n/a"


def _markdown(result: RunResult, agg: dict, command: str) -> str:
    cfg = result.config
    m = result.machine
    lines = [
        "# Data plane benchmark (`vtap bench dataplane`)",
        "",
        f"Command: `{command}` — run {result.started}, {result.seconds:.0f} s.",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory', '?')} RAM, "
        f"kernel {m.get('kernel', '?')}, {m.get('ovs', '?')}, DPDK (testpmd) {m.get('dpdk', '?')}.",
        "",
        '**Datapath measured: "normal OVS" = the OVS userspace datapath (`datapath_type=netdev`) '
        "with veth ports.** This machine has no Open vSwitch kernel module, so the seed's kernel "
        "datapath cannot be reproduced; the userspace datapath with kernel interfaces takes its "
        "role. The sender is DPDK `testpmd` (txonly, `--no-huge`, AF_PACKET vdev on the "
        "sender namespace's veth, unpaced: it offers as much as it can); receiver and monitor "
        "are counted by the kernel rx counters of their namespaces' veths. Forwarding is always "
        "our controller's reactive route for the sender's UDP flow; `mirror` adds an OVSDB "
        "Mirror (select_src_port=sender, output_port=monitor, then `revalidator/purge`), `vtap` "
        "a policy (src_ip=sender, monitor_ip=monitor) created through the controller's REST "
        "API — the copy rules are those our compiler produces (an ALL group).",
        "",
        *(
            [
                "**OVS-DPDK**: Debian's ovs-vswitchd-dpdk (DPDK 22.11) with `dpdkvhostuserclient` "
                "ports; sender, receiver and monitor are DPDK testpmd virtio-user endpoints "
                "(txonly / rxonly / rxonly, unpaced). One PMD thread on core 1 "
                "(`pmd-cpu-mask=0x2`, `pmd-perf-metrics=true`); all three endpoints and OVS's "
                "main thread share core 0, so endpoint rates are contention-bound and PMD "
                "processing cycles per packet (`dpif-netdev/pmd-stats-show`, cleared per "
                "window) is the robust comparison. Counts are live datapath port counters "
                "(`dpctl/show -s`: rx of the sender's port, tx of the receiver's and "
                "monitor's). Each endpoint is one interactive testpmd for the whole run (sizes "
                "change with `set txpkts`), so no vhost port flaps. 1024 × 2 MB hugepages are "
                "set for the run and the original count restored after.",
                "",
            ]
            if "ovs-dpdk" in cfg.datapaths
            else []
        ),
        f"Repeats: {cfg.repeats} consecutive windows of {cfg.window:g} s per (method, size) "
        f"after {cfg.warmup:g} s warm-up, one sender process per (method, size)"
        + (" — **quick mode** (the default 5 repeats are `--full`)." if cfg.quick else ".")
        + " Cells: median (min–max). Packet size = Ethernet frame length without FCS; "
        "Mbps = pps × size × 8.",
        "",
        "On 2 cores, the sender, OVS's main thread (which polls non-DPDK ports) and the "
        "kernel's veth/softirq work share both cores: these figures are contention-bound "
        "and only their ratios within this run are meaningful.",
        "",
        "## Proof that each method copies (before measuring)",
        "",
        "| method | datapath flow of the sender's UDP packets (`ovs-appctl dpctl/dump-flows`) "
        "| monitor packets in 0.5 s |",
        "|---|---|---|",
    ]
    for p in result.proofs:
        flow = p.datapath_flow.replace("|", "\\|").replace("\n", "<br>") or "(none)"
        lines.append(f"| {p.method} | `{flow}` | {p.monitor_packets} |")
    lines.append("")
    sizes = sorted({k[2] for k in agg})
    datapaths = [d for d in cfg.datapaths if any(k[0] == d for k in agg)]
    for dp in datapaths:
        dpdk = dp == "ovs-dpdk"
        for method in cfg.methods:
            lines += [
                f"## {DATAPATH_TITLE[dp]} — {METHOD_TITLE[method]}",
                "",
                "| packet_size_bytes | receiver_pps | receiver_mbps | monitor_pps | monitor_mbps "
                "| drops/window | sender_pps |" + (" PMD cycles/packet |" if dpdk else ""),
                "|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if dpdk else ""),
            ]
            for size in sizes:
                v = agg.get((dp, method, size))
                if v is None:
                    continue
                lines.append(
                    f"| {size} | {_fmt(v['receiver_pps'])} | {_fmt(v['receiver_mbps'], 1)} | "
                    f"{_fmt(v['monitor_pps'])} | {_fmt(v['monitor_mbps'], 1)} | "
                    f"{_fmt(v['drops'])} | {_fmt(v['sender_pps'])} |"
                    + (f" {_fmt(v['pmd_cycles_per_packet'], 1)} |" if dpdk else "")
                )
            lines.append("")
    lines += _comparison(agg, sizes)
    lines += [
        "## Plots",
        "",
        *[
            f"![{dp} {f}]({dp.replace('-', '_')}_{f}.png)"
            for dp in datapaths
            for f in ("receiver_pps", "monitor_pps")
        ],
        *(["![PMD cycles](ovs_dpdk_pmd_cycles_per_packet.png)"] if "ovs-dpdk" in datapaths else []),
        "",
        "## Not measured in this run",
        "",
        *(
            []
            if "ovs-dpdk" in datapaths
            else [
                "- OVS-DPDK (`dpdkvhostuserclient` + testpmd virtio-user), PMD cycles/packet "
                "and the DPDK/OVS ratio (`--datapaths ovs-veth,ovs-dpdk`)."
            ]
        ),
        "- The 2-pair / 1-vs-2-PMD testbed (seed Tables 5.5/5.6): not implemented yet.",
        "- The paced half-capacity goal (≥ 99 % at receiver and monitor): not implemented yet.",
        "",
    ]
    return "\n".join(lines)


def _comparison(agg: dict, sizes: list[int]) -> list[str]:
    s_mirror = seed_table("table5_1_ovs_port_mirroring.csv")
    s_group = seed_table("table5_2_ovs_group_table.csv")
    sd_mirror = seed_table("table5_3_ovsdpdk_port_mirroring.csv")
    sd_group = seed_table("table5_4_ovsdpdk_group_table.csv")
    lines = [
        "## Comparison with the seed (ratios measured within one run)",
        "",
        "Ratios of receiver pps (and monitor pps) medians. The seed's ratios are from its "
        "Tables 5.1/5.2 (normal OVS) and 5.3/5.4 (OVS-DPDK); the seed measured no no-TAP "
        "baseline, so mirror overhead has no seed column.",
        "",
        "| size | group/mirror rx (ours OVS) | group/mirror rx (seed OVS) | group/mirror "
        "monitor (ours OVS) | group/mirror monitor (seed OVS) | mirror/no-TAP rx (ours OVS) "
        "| vTAP/no-TAP rx (ours OVS) | group/mirror rx (ours DPDK) | group/mirror rx (seed "
        "DPDK) | group/mirror PMD cycles/pkt (ours DPDK) | vTAP/no-TAP PMD cycles/pkt (ours "
        "DPDK) | DPDK/OVS vTAP rx (ours) | DPDK/OVS group rx (seed) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def med(v: dict | None, f: str) -> float:
        return v[f][0] if v else 0.0

    for size in sizes:
        none = agg.get(("ovs-veth", "none", size))
        mir = agg.get(("ovs-veth", "mirror", size))
        grp = agg.get(("ovs-veth", "vtap", size))
        dnone = agg.get(("ovs-dpdk", "none", size))
        dmir = agg.get(("ovs-dpdk", "mirror", size))
        dgrp = agg.get(("ovs-dpdk", "vtap", size))
        sm, sg = s_mirror.get(size, {}), s_group.get(size, {})
        dm, dg = sd_mirror.get(size, {}), sd_group.get(size, {})
        cyc = "pmd_cycles_per_packet"
        lines.append(
            f"| {size} | {_ratio(med(grp, 'receiver_pps'), med(mir, 'receiver_pps'))} | "
            f"{_ratio(sg.get('receiver_pps', 0), sm.get('receiver_pps', 0))} | "
            f"{_ratio(med(grp, 'monitor_pps'), med(mir, 'monitor_pps'))} | "
            f"{_ratio(sg.get('monitor_pps', 0), sm.get('monitor_pps', 0))} | "
            f"{_ratio(med(mir, 'receiver_pps'), med(none, 'receiver_pps'))} | "
            f"{_ratio(med(grp, 'receiver_pps'), med(none, 'receiver_pps'))} | "
            f"{_ratio(med(dgrp, 'receiver_pps'), med(dmir, 'receiver_pps'))} | "
            f"{_ratio(dg.get('receiver_pps', 0), dm.get('receiver_pps', 0))} | "
            f"{_ratio(med(dgrp, cyc), med(dmir, cyc))} | "
            f"{_ratio(med(dgrp, cyc), med(dnone, cyc))} | "
            f"{_ratio(med(dgrp, 'receiver_pps'), med(grp, 'receiver_pps'))} | "
            f"{_ratio(dg.get('receiver_pps', 0), sg.get('receiver_pps', 0))} |"
        )
    lines += [
        "",
        "| ratio | ours | seed |",
        "|---|---|---|",
        "| OVS-DPDK / OVS (group, 64 B rx pps) | "
        + _ratio(
            med(agg.get(("ovs-dpdk", "vtap", 64)), "receiver_pps"),
            med(agg.get(("ovs-veth", "vtap", 64)), "receiver_pps"),
        )
        + " | "
        + _ratio(
            sd_group.get(64, {}).get("receiver_pps", 0), s_group.get(64, {}).get("receiver_pps", 0)
        )
        + " |",
        "| 2 PMD / 1 PMD (group, 2 pairs, 64 B rx1 pps) | not measured | "
        + _ratio(
            seed_table("table5_6_ovsdpdk_group_two_pmd_two_pairs.csv")
            .get(64, {})
            .get("receiver1_pps", 0),
            seed_table("table5_5_ovsdpdk_group_one_pmd_two_pairs.csv")
            .get(64, {})
            .get("receiver1_pps", 0),
        )
        + " |",
        "",
    ]
    return lines


def _plots(agg: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sizes = sorted({k[2] for k in agg})
    order = ["none", "mirror", "vtap"]
    methods = sorted({k[1] for k in agg}, key=order.index)
    datapaths = sorted({k[0] for k in agg})
    plots = [(dp, f) for dp in datapaths for f in ("receiver_pps", "monitor_pps")]
    if "ovs-dpdk" in datapaths:
        plots.append(("ovs-dpdk", "pmd_cycles_per_packet"))
    for dp, field in plots:
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            vals = [agg.get((dp, method, s), {}).get(field, (0, 0, 0)) for s in sizes]
            med = [v[0] for v in vals]
            err = [[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]]
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(sizes))]
            ax.bar(xs, med, width, yerr=err, capsize=2, label=METHOD_TITLE[method])
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("packet size (bytes)")
        ax.set_ylabel(field.replace("_", " "))
        ax.set_title(f"{DATAPATH_TITLE[dp]}: {field.replace('_', ' ')}")
        ax.legend()
        fig.tight_layout()
        path = outdir / f"{dp.replace('-', '_')}_{field}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
