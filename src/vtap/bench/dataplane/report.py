"""Results of `vtap bench dataplane`: raw JSON/CSV, Markdown tables in the seed's format, plots,
and the comparison with the seed as ratios measured in one run."""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from vtap.bench.dataplane.harness import (
    CAPACITY,
    PACED,
    POLICIES,
    POLICY_METHODS,
    TWO_PAIRS,
    PolicySet,
    Proof,
    RunConfig,
    RunResult,
    Sample,
)

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
    "receiver2_pps",
    "receiver2_mbps",
    "policed",
    "target_pps",
    "controller_cpu",
)
TESTBED1 = ("ovs-veth", "ovs-dpdk")
DATAPATH_TITLE = {
    "ovs-veth": "Normal OVS (userspace datapath, veth)",
    "ovs-dpdk": "OVS-DPDK (dpdkvhostuserclient, 1 PMD)",
    TWO_PAIRS[1]: "OVS-DPDK testbed 2 (two pairs, one monitor), 1 PMD",
    TWO_PAIRS[2]: "OVS-DPDK testbed 2 (two pairs, one monitor), 2 PMDs",
}
# The 10,000-policy phase: goals of the issue, per datapath (POLICIES label).
GOAL_VS_MIRROR = 1.00  # vTAP (and vTAP with the background set) ÷ mirror, per-packet cost
GOAL_BACKGROUND = 1.10  # no TAP with the background set ÷ no TAP, per-packet cost
POLICY_LABELS = tuple(POLICIES.values())


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
    sets = [PolicySet(**p) for p in data.get("policy_sets", [])]
    return RunResult(
        config, samples, proofs, data["machine"], data["started"], data["seconds"], sets
    )


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
    head = outdir / "headline.md"
    head.write_text("\n".join(headline(result, agg, command)) + "\n")
    written.append(head)
    return written


def headline(
    result: RunResult, agg: dict, command: str, where: str = "docs/results/dataplane/"
) -> list[str]:
    """The top-level README's data-plane lines: a few sizes, the ratios and the goals."""
    sizes = [s for s in (64, 512, 1518) if any(k[2] == s for k in agg)]
    s_mirror = seed_table("table5_1_ovs_port_mirroring.csv")
    s_group = seed_table("table5_2_ovs_group_table.csv")
    cyc = "pmd_cycles_per_packet"

    def med(dp: str, method: str, f: str, size: int) -> float:
        v = agg.get((dp, method, size))
        return v[f][0] if v else 0.0

    lines = [
        f"Data plane (`{command}`, {result.started[:16].replace('T', ' ')} UTC, "
        f"{result.seconds / 60:.1f} min; details in `{where}`). Two cores: absolute rates are "
        "contention-bound, compare the ratios. Normal OVS = the userspace datapath with veth "
        "ports (no kernel module here); OVS-DPDK = vhost-user ports, testpmd endpoints, 1 PMD.",
        "",
        "| size | normal OVS rx pps: no TAP / mirror / vTAP | vTAP÷mirror rx (seed) "
        "| OVS-DPDK PMD cycles/pkt: no TAP / mirror / vTAP | vTAP÷mirror cycles "
        "| vTAP÷no TAP cycles |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        rx = [med("ovs-veth", m, "receiver_pps", size) for m in ("none", "mirror", "vtap")]
        cy = [med("ovs-dpdk", m, cyc, size) for m in ("none", "mirror", "vtap")]
        seed = _ratio(
            s_group.get(size, {}).get("receiver_pps", 0),
            s_mirror.get(size, {}).get("receiver_pps", 0),
        )
        lines.append(
            f"| {size} | {' / '.join(f'{x:,.0f}' for x in rx)} | {_ratio(rx[2], rx[1])} "
            f"({seed}) | {' / '.join(f'{x:,.0f}' for x in cy)} | {_ratio(cy[2], cy[1])} | "
            f"{_ratio(cy[2], cy[0])} |"
        )
    lines.append("")
    vtap = _delivery(result.samples, "vtap")
    if vtap:
        met = vtap["receiver"][1] >= 0.99 and vtap["monitor"][1] >= 0.99
        lines.append(
            f"- OVS-DPDK, 64 B, sender policed to half the no-TAP capacity "
            f"({vtap['offered_pps'][0]:,.0f} pps offered): with vTAP the receiver got "
            f"{_pct(vtap['receiver'])}, the monitor {_pct(vtap['monitor'])} of the packets "
            f"(goal ≥ 99 %: {'met' if met else 'not met'})"
        )
    one = agg.get((TWO_PAIRS[1], "vtap", 64))
    two = agg.get((TWO_PAIRS[2], "vtap", 64))
    if one and two:
        seed = _seed_two_pmd_ratio()
        lines.append(
            f"- two pairs, one monitor, 64 B: 2 PMD ÷ 1 PMD receiver-1 pps "
            f"{_ratio(two['receiver_pps'][0], one['receiver_pps'][0])} (seed {seed}); the "
            "second PMD shares core 0 with every endpoint here"
        )
    dp = med("ovs-dpdk", "vtap", "receiver_pps", 64)
    ov = med("ovs-veth", "vtap", "receiver_pps", 64)
    if dp and ov:
        seed = _ratio(
            seed_table("table5_4_ovsdpdk_group_table.csv").get(64, {}).get("receiver_pps", 0),
            s_group.get(64, {}).get("receiver_pps", 0),
        )
        lines.append(
            f"- OVS-DPDK ÷ normal OVS, vTAP receiver pps at 64 B: {_ratio(dp, ov)} (seed "
            f"{seed}); our receivers are testpmd processes sharing one core, so this ratio "
            "says little about the datapaths"
        )
    lines += _policies_headline(result)
    return lines


def _policies_headline(result: RunResult) -> list[str]:
    """One line per datapath of the 10,000-policy phase: its goal ratios and verdicts."""
    goals = policy_goals(result.samples)
    lines = []
    for label in POLICY_LABELS:
        if label not in goals:
            continue
        per_size = goals[label]
        sizes = sorted(per_size)
        n = _background_count(result, label)
        flows = next((p.tap_flows for p in result.policy_sets if p.datapath == label), 0)
        what = "PMD cycles/pkt" if _is_dpdk(label) else "per-packet time (1 ÷ receiver pps)"
        cells = []
        for key, goal in (("vtap/mirror", GOAL_VS_MIRROR), ("vtap-10k/mirror", GOAL_VS_MIRROR),
                          ("none-10k/none", GOAL_BACKGROUND)):  # fmt: skip
            vals = [per_size[s].get(key) for s in sizes]
            shown = " / ".join(f"{v[0]:.3f}" if v else "n/a" for v in vals)
            cells.append(f"{_GOAL_TITLE[key]} {shown} (goal ≤ {goal:.2f}: {_verdict(vals, goal)})")
        lines.append(
            f"- {_SHORT_TITLE[label]}, {n:,} policies installed ({flows:,} TAP flow entries on "
            f"the bridge), {' / '.join(f'{s} B' for s in sizes)}, {what}: " + "; ".join(cells)
        )
    return lines


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
                "busy cycles per received packet (`dpif-netdev/pmd-perf-show`, cleared per "
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
        f"Repeats: {cfg.repeats} windows of {cfg.window:g} s per (method, size). One sender "
        f"per size (after {cfg.warmup:g} s warm-up) whose windows go round the methods — no "
        "TAP, mirror, vTAP, no TAP, … — so that every method is measured under the same "
        "sender, alternately (a method is switched 0.5 s before its window)"
        + (" — **quick mode** (`--full`: 5 windows of 5 s)." if cfg.quick else ".")
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
        if p.datapath in POLICY_LABELS:
            continue  # in the 10,000-policy section
        flow = p.datapath_flow.replace("|", "\\|").replace("\n", "<br>") or "(none)"
        lines.append(f"| {p.method} | `{flow}` | {p.monitor_packets} |")
    lines.append("")
    sizes = sorted({k[2] for k in agg})
    datapaths = [d for d in TESTBED1 if any(k[0] == d for k in agg)]
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
    lines += _paced_section(result.samples)
    lines += _two_pairs_section(agg, sizes)
    lines += _goals_section(agg, sizes, result.samples)
    lines += _policies_section(result, agg)
    lines += _comparison(agg, sizes)
    have_two = any(k[0] in TWO_PAIRS.values() for k in agg)
    have_policies = any(k[0] in POLICY_LABELS for k in agg)
    lines += [
        "## Plots",
        "",
        *[
            f"![{dp} {f}]({dp.replace('-', '_')}_{f}.png)"
            for dp in datapaths
            for f in ("receiver_pps", "monitor_pps")
        ],
        *(["![PMD cycles](ovs_dpdk_pmd_cycles_per_packet.png)"] if "ovs-dpdk" in datapaths else []),
        *(["![testbed 2](ovs_dpdk_two_pairs.png)"] if have_two else []),
        *(["![10,000 policies](policies_10k.png)"] if have_policies else []),
        "",
    ]
    missing = []
    if "ovs-dpdk" not in datapaths:
        missing.append(
            "- OVS-DPDK (`dpdkvhostuserclient` + testpmd virtio-user), PMD cycles/packet "
            "and the DPDK/OVS ratio (`--datapaths ovs-veth,ovs-dpdk`)."
        )
    if not have_two:
        missing.append("- The 2-pair / 1-vs-2-PMD testbed (seed Tables 5.5/5.6).")
    if not any(s.datapath == PACED for s in result.samples):
        missing.append("- The paced half-capacity goal (≥ 99 % at receiver and monitor).")
    if not have_policies:
        missing.append(
            "- The 10,000-policy phase (none-10k, vtap-10k vs. no TAP, mirror and vTAP; "
            "`--policies-10k`)."
        )
    if missing:
        lines += ["## Not measured in this run", "", *missing, ""]
    return "\n".join(lines)


def _delivery(samples: list[Sample], method: str) -> dict[str, tuple[float, float, float]]:
    """Per-window fractions of the admitted packets that reached receiver and monitor."""
    mine = [s for s in samples if s.datapath == PACED and s.method == method and s.sent]
    if not mine:
        return {}
    out = {
        "offered_pps": _median_spread([s.sender_pps for s in mine]),
        "receiver": _median_spread([s.received / s.sent for s in mine]),
        "cycles": _median_spread([s.pmd_cycles_per_packet for s in mine]),
        "target": _median_spread([s.target_pps for s in mine]),
    }
    if method != "none":
        out["monitor"] = _median_spread([s.monitored / s.sent for s in mine])
    return out


def _pct(v: tuple[float, float, float] | None) -> str:
    if v is None:
        return "—"
    med, lo, hi = v
    return f"{med * 100:.2f} % ({lo * 100:.2f}–{hi * 100:.2f})"


def _paced_section(samples: list[Sample]) -> list[str]:
    capacity = [s.receiver_pps for s in samples if s.datapath == CAPACITY]
    if not capacity or not any(s.datapath == PACED for s in samples):
        return []
    lines = [
        "## OVS-DPDK at half the no-TAP capacity (64 B, paced)",
        "",
        f"Capacity = the receiver's rate with no TAP and an unpaced sender: "
        f"{_fmt(_median_spread(capacity))} pps (median of {len(capacity)} windows). Each "
        "method then runs with the sender's port policed to half of it by OVS's own ingress "
        "policer (`ingress_policing_rate`, corrected from the measured admitted rate), so "
        "the *offered* load is what the policer admits (rx − policer drops of the sender's "
        "port). Delivery = packets at the receiver (monitor) ÷ offered, per window; it can "
        "exceed 100 % by the packets in flight at a window's edges (the counters are read "
        "one after another). PMD cycles per packet here include the policer's work on the "
        "excess it drops (the sender offers far more than it admits), so they compare the "
        "methods with each other, not with the unpaced rows. Goal (issue 5): receiver and "
        "monitor each ≥ 99 % with vTAP active.",
        "",
        "| method | target pps | offered pps | receiver got | monitor got | PMD cycles/packet |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in ("none", "mirror", "vtap"):
        d = _delivery(samples, method)
        if not d:
            continue
        lines.append(
            f"| {METHOD_TITLE[method]} | {d['target'][0]:,.0f} | {_fmt(d['offered_pps'])} | "
            f"{_pct(d['receiver'])} | {_pct(d.get('monitor'))} | {_fmt(d['cycles'], 1)} |"
        )
    vtap = _delivery(samples, "vtap")
    if vtap:
        met = vtap["receiver"][1] >= 0.99 and vtap["monitor"][1] >= 0.99
        lines += [
            "",
            f"**Goal {'met' if met else 'not met'}**: with vTAP the worst window delivered "
            f"{vtap['receiver'][1] * 100:.2f} % to the receiver and "
            f"{vtap['monitor'][1] * 100:.2f} % to the monitor.",
        ]
    return [*lines, ""]


def _two_pairs_section(agg: dict, sizes: list[int]) -> list[str]:
    if not any(k[0] in TWO_PAIRS.values() for k in agg):
        return []
    lines = [
        "## OVS-DPDK testbed 2: two sender/receiver pairs, one monitor (seed Tables 5.5/5.6)",
        "",
        "Two vTAP policies (src_ip = each sender, one monitor). With 1 PMD both senders' rx "
        "queues are polled on core 1; with 2 PMDs (`pmd-cpu-mask=0x3`) sender's queue stays "
        "on core 1 and sender2's goes to core 0 (`pmd-rxq-affinity`). **What two cores "
        "allow**: the second PMD can only be core 0, which all five testpmd endpoints, OVS's "
        "main thread and the controller already share, so that PMD is preempted and its "
        "cycles/packet count time it was not running; the seed had a spare core per PMD. "
        "A 2 PMD / 1 PMD ratio below 1 here measures that contention, not OVS.",
        "",
    ]
    for label in TWO_PAIRS.values():
        lines += [
            f"### {DATAPATH_TITLE[label]}",
            "",
            "| packet_size_bytes | receiver1_pps | receiver1_mbps | receiver2_pps | "
            "receiver2_mbps | monitor_pps | monitor_mbps | PMD cycles/packet |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for size in sizes:
            v = agg.get((label, "vtap", size))
            if v is None:
                continue
            lines.append(
                f"| {size} | {_fmt(v['receiver_pps'])} | {_fmt(v['receiver_mbps'], 1)} | "
                f"{_fmt(v['receiver2_pps'])} | {_fmt(v['receiver2_mbps'], 1)} | "
                f"{_fmt(v['monitor_pps'])} | {_fmt(v['monitor_mbps'], 1)} | "
                f"{_fmt(v['pmd_cycles_per_packet'], 1)} |"
            )
        lines.append("")
    one = seed_table("table5_5_ovsdpdk_group_one_pmd_two_pairs.csv")
    two = seed_table("table5_6_ovsdpdk_group_two_pmd_two_pairs.csv")
    lines += [
        "### 2 PMD / 1 PMD, ours vs. the seed",
        "",
        "| size | receiver1 (ours) | receiver1 (seed) | receiver2 (ours) | receiver2 (seed) | "
        "monitor (ours) | monitor (seed) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        a, b = agg.get((TWO_PAIRS[2], "vtap", size)), agg.get((TWO_PAIRS[1], "vtap", size))
        if a is None or b is None:
            continue
        cells = []
        for f in ("receiver_pps", "receiver2_pps", "monitor_pps"):
            seed_f = {"receiver_pps": "receiver1_pps"}.get(f, f)
            cells += [
                _ratio(a[f][0], b[f][0]),
                _ratio(two.get(size, {}).get(seed_f, 0), one.get(size, {}).get(seed_f, 0)),
            ]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _goals_section(agg: dict, sizes: list[int], samples: list[Sample]) -> list[str]:
    if not any(k[0] == "ovs-dpdk" for k in agg):
        return []
    cyc = "pmd_cycles_per_packet"
    lines = [
        "## Goals: PMD cycles per packet (OVS-DPDK, testbed 1)",
        "",
        "Busy PMD cycles per received packet (`pmd-perf-show`, cleared per window). Goal: "
        "vTAP ÷ mirror ≤ 1.00. *Copy overhead* = vTAP ÷ no TAP. Unpaced, the receivers' rings "
        "overflow (their testpmd shares core 0), and failed enqueues cost cycles too; in the "
        "paced row the rings keep up but the PMD also polices the sender's excess. The "
        "datapath actions of mirror and vTAP are the same two outputs (see the proof "
        "table), so differences between them are noise of this contended machine.",
        "",
        "| load | size | no TAP | mirror | vTAP | vTAP / mirror | vTAP / no TAP |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        n, m, g = (agg.get(("ovs-dpdk", x, size)) for x in ("none", "mirror", "vtap"))
        if not (n and m and g):
            continue
        lines.append(
            f"| unpaced | {size} | {n[cyc][0]:,.0f} | {m[cyc][0]:,.0f} | {g[cyc][0]:,.0f} | "
            f"{_ratio(g[cyc][0], m[cyc][0])} | {_ratio(g[cyc][0], n[cyc][0])} |"
        )
    paced = {x: _delivery(samples, x) for x in ("none", "mirror", "vtap")}
    if all(paced.values()):
        n, m, g = (paced[x]["cycles"][0] for x in ("none", "mirror", "vtap"))
        lines.append(
            f"| paced (half capacity) | 64 | {n:,.0f} | {m:,.0f} | {g:,.0f} | "
            f"{_ratio(g, m)} | {_ratio(g, n)} |"
        )
    return [*lines, ""]


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
        "| 2 PMD / 1 PMD (group, 2 pairs, 64 B rx1 pps) | "
        + _ratio(
            med(agg.get((TWO_PAIRS[2], "vtap", 64)), "receiver_pps"),
            med(agg.get((TWO_PAIRS[1], "vtap", 64)), "receiver_pps"),
        )
        + " | "
        + _seed_two_pmd_ratio()
        + " |",
        "",
    ]
    return lines


def _seed_two_pmd_ratio(size: int = 64) -> str:
    """The seed's 2 PMD / 1 PMD ratio of receiver 1's pps (Tables 5.6 / 5.5)."""
    two = seed_table("table5_6_ovsdpdk_group_two_pmd_two_pairs.csv").get(size, {})
    one = seed_table("table5_5_ovsdpdk_group_one_pmd_two_pairs.csv").get(size, {})
    return _ratio(two.get("receiver1_pps", 0), one.get("receiver1_pps", 0))


def _plots(agg: dict, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sizes = sorted({k[2] for k in agg})
    order = ["none", "mirror", "vtap"]
    methods = sorted({k[1] for k in agg if k[0] in TESTBED1}, key=order.index)
    datapaths = sorted({k[0] for k in agg} & set(TESTBED1))
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
    if any(k[0] in TWO_PAIRS.values() for k in agg):
        written.append(_two_pairs_plot(agg, sizes, outdir, plt))
    if any(k[0] in POLICY_LABELS for k in agg):
        written.append(_policies_plot(agg, outdir, plt))
    return written


def _two_pairs_plot(agg: dict, sizes: list[int], outdir: Path, plt) -> Path:  # type: ignore[no-untyped-def]
    """Receiver 1, receiver 2 and monitor pps per size, 1 vs. 2 PMDs (as the seed's Fig. 5.5)."""
    sizes = [s for s in sizes if any((label, "vtap", s) in agg for label in TWO_PAIRS.values())]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    series = (("receiver_pps", "receiver 1"), ("receiver2_pps", "receiver 2"),
              ("monitor_pps", "monitor"))  # fmt: skip
    width = 0.8 / len(series)
    for ax, (pmds, label) in zip(axes, TWO_PAIRS.items(), strict=True):
        for i, (field, name) in enumerate(series):
            vals = [agg.get((label, "vtap", s), {}).get(field, (0, 0, 0)) for s in sizes]
            xs = [j + (i - 1) * width for j in range(len(sizes))]
            err = [[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]]
            ax.bar(xs, [v[0] for v in vals], width, yerr=err, capsize=2, label=name)
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("packet size (bytes)")
        ax.set_title(f"vTAP, two pairs, {pmds} PMD{'s' if pmds > 1 else ''}")
    axes[0].set_ylabel("packets/s")
    axes[0].legend()
    fig.tight_layout()
    path = outdir / "ovs_dpdk_two_pairs.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ the 10,000-policy phase

_SHORT_TITLE = {POLICIES["ovs-veth"]: "normal OVS", POLICIES["ovs-dpdk"]: "OVS-DPDK"}
_GOAL_TITLE = {
    "vtap/mirror": "vTAP ÷ mirror",
    "vtap-10k/mirror": "vTAP-10k ÷ mirror",
    "none-10k/none": "none-10k ÷ none",
}


def _is_dpdk(label: str) -> bool:
    return label == POLICIES["ovs-dpdk"]


def _background_count(result: RunResult, label: str) -> int:
    found = [p.policies for p in result.policy_sets if p.datapath == label]
    return found[0] if found else result.config.background_policies


def method_title(method: str, background: int = 10_000) -> str:
    """A method's name in the 10,000-policy tables (`-10k`: with the background set)."""
    if method.endswith("-10k"):
        return f"{METHOD_TITLE[method.removesuffix('-10k')]} + {background:,} policies"
    return METHOD_TITLE[method]


def _cost(s: Sample) -> float:
    """What one packet costs the switch: PMD cycles on OVS-DPDK; on normal OVS, whose
    forwarding thread is the bottleneck of an unpaced sender, 1 ÷ receiver pps."""
    if _is_dpdk(s.datapath):
        return s.pmd_cycles_per_packet
    return 1 / s.receiver_pps if s.receiver_pps else 0.0


def _paired_ratio(
    samples: list[Sample], label: str, a: str, b: str, size: int
) -> tuple[float, float, float] | None:
    """Cost of method a ÷ method b: ratio of the medians, and the min–max of the per-repeat
    ratios (window r of a with window r of b, measured under the same sender)."""

    def costs(method: str) -> dict[int, float]:
        return {
            s.repeat: _cost(s)
            for s in samples
            if s.datapath == label and s.method == method and s.size == size and s.repeat >= 0
        }

    ca, cb = costs(a), costs(b)
    if not ca or not cb or not all(ca.values()) or not all(cb.values()):
        return None
    per = [ca[r] / cb[r] for r in ca if r in cb]
    med = statistics.median(ca.values()) / statistics.median(cb.values())
    return (med, min(per, default=med), max(per, default=med))


def policy_goals(samples: list[Sample]) -> dict[str, dict[int, dict[str, tuple]]]:
    """Per phase label and size: the goal ratios of the 10,000-policy phase (cost ratios,
    `_paired_ratio`); a ratio whose two methods were not both measured is left out."""
    out: dict[str, dict[int, dict[str, tuple]]] = {}
    for label in POLICY_LABELS:
        sizes = sorted({s.size for s in samples if s.datapath == label})
        for size in sizes:
            ratios = {}
            for key in _GOAL_TITLE:
                a, b = key.split("/")
                r = _paired_ratio(samples, label, a, b, size)
                if r is not None:
                    ratios[key] = r
            out.setdefault(label, {})[size] = ratios
    return out


def _verdict(values: list[tuple | None], goal: float) -> str:
    """`met` when every measured ratio's median is within the goal."""
    have = [v for v in values if v]
    if not have:
        return "n/a"
    return "met" if all(v[0] <= goal for v in have) else "not met"


def _ratio_cell(v: tuple | None, goal: float) -> str:
    if not v:
        return "n/a"
    return f"{v[0]:.3f} ({v[1]:.3f}–{v[2]:.3f}) **{'met' if v[0] <= goal else 'not met'}**"


def _bare_flow(flow: str) -> str:
    """A datapath flow without its counters (`packets:…, bytes:…, used:…`)."""
    return re.sub(r" ?(packets|bytes|used):[^,\s]*,?", "", flow).strip()


def _policies_section(result: RunResult, agg: dict) -> list[str]:
    labels = [x for x in POLICY_LABELS if any(k[0] == x for k in agg)]
    if not labels:
        return []
    sets = {p.datapath: p for p in result.policy_sets}
    n = max((p.policies for p in result.policy_sets), default=result.config.background_policies)
    cfg = result.config
    lines = [
        f"## {n:,} installed policies (testbed 1)",
        "",
        f"The issue's case: {n:,} policies installed, first with none matching the sender's "
        "flow (`none-10k`), then with the one matching vTAP policy as well (`vtap-10k`), "
        "against no TAP, the OVSDB mirror and the one vTAP policy alone. The background set "
        "is created in **one bulk request** (`POST /api/v1/policies/bulk`), awaited through "
        "`GET /api/v1/policies/summary` until every policy is active, and proven on the "
        "bridge by counting its TAP flow entries with `ovs-ofctl dump-flows` (cookies of a "
        "policy or of the shared TAP pipeline). Its policies are built over the testbed's "
        "own hosts (a policy naming a host the controller does not know would stay pending "
        "and install nothing) and can never match the sender's flow, testpmd's UDP 9 → 9; "
        "they copy to the monitor. Shapes, round robin, each with its own run of ports from "
        "1024: TCP source port from the sender; TCP sender → receiver destination port; UDP "
        "destination port ≠ 9 to the receiver from anywhere (a destination policy, "
        "classified on the sender's port too); UDP source port ≠ 9 from the sender. The UDP "
        "shapes make the classifier look up the very fields the sender's packets carry.",
        "",
        "Per size one sender, under which two blocks of windows run: *plain* (no TAP, "
        "mirror, vTAP round robin, as in the main tables) and *with the background set* "
        "(none-10k, vtap-10k round robin: only the one matching policy is created and "
        "deleted between windows). The set is installed once per datapath and kept: at "
        f"{cfg.policy_sizes[0]} B the plain block runs first, then the set is installed"
        + (
            f"; at {cfg.policy_sizes[1]} B the background block runs first, then the set is "
            "deleted in one bulk request (`POST /api/v1/policies/bulk-delete`, until the "
            "bridge holds no TAP flow entry) and the plain block follows"
            if len(cfg.policy_sizes) > 1
            else ""
        )
        + ". Every ratio below thus compares windows of one sender; cells: median "
        "(min–max over the windows), ratios: of the medians (min–max of the per-window "
        "ratios, window r with window r). *Cost* per packet: PMD busy cycles per packet on "
        "OVS-DPDK; on normal OVS, whose forwarding thread is what limits an unpaced sender, "
        "1 ÷ receiver pps (no cycle counter there). Goals (issue): vTAP ÷ mirror cost ≤ "
        f"{GOAL_VS_MIRROR:.2f} — alone and with the background set; the background set adds "
        f"≤ {round((GOAL_BACKGROUND - 1) * 100)} % to the no-TAP path (none-10k ÷ none ≤ "
        f"{GOAL_BACKGROUND:.2f}). Met = the median ratio within the goal.",
        "",
        "Where a cost shows: the proofs below say whether the set changed the sender's "
        "datapath flow (its megaflow), i.e. the datapath's own per-packet work. What else the "
        "set costs — the controller (its CPU in each window is in the tables, % of one "
        "core), OVS's main thread, revalidators — runs on the two shared cores: on normal OVS "
        "the forwarding thread is OVS's main thread itself, so it shows in receiver pps; on "
        "OVS-DPDK those threads are not pinned away from the PMD's core 1, and time they take "
        "from a busy PMD counts in its cycles per packet (`pmd-perf-show` measures TSC "
        "cycles), as it does in the receivers' rates (their testpmd shares core 0).",
        "",
        "| datapath | policies | shapes | until all active | TAP flow entries on the bridge "
        "(by table) | copy groups | bulk delete → no TAP entry |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    for label in labels:
        p = sets.get(label)
        if p is None:
            continue
        shapes = ", ".join(f"{k} {v:,}" for k, v in p.shapes.items())
        tables = ", ".join(f"{t}: {c:,}" for t, c in p.tap_flows_by_table.items())
        deleted = (
            f"{p.delete_seconds:.1f} s ({p.tap_flows_after_delete} left)"
            if p.tap_flows_after_delete >= 0
            else "—"
        )
        lines.append(
            f"| {_SHORT_TITLE[label]} | {p.policies:,} ({p.active:,} active) | {shapes} | "
            f"{p.install_seconds:.1f} s | {p.tap_flows:,} ({tables}) | {p.tap_groups} | "
            f"{deleted} |"
        )
    lines.append("")
    goals = policy_goals(result.samples)
    for label in labels:
        dpdk = _is_dpdk(label)
        count = _background_count(result, label)
        lines += [
            f"### {DATAPATH_TITLE[label.removesuffix('-10k')]} — {count:,} policies",
            "",
            "| size | method | receiver_pps | monitor_pps | sender_pps | controller CPU % |"
            + (" PMD cycles/packet |" if dpdk else ""),
            "|---:|---|---:|---:|---:|---:|" + ("---:|" if dpdk else ""),
        ]
        sizes = sorted({k[2] for k in agg if k[0] == label})
        for size in sizes:
            for method in POLICY_METHODS:
                v = agg.get((label, method, size))
                if v is None:
                    continue
                lines.append(
                    f"| {size} | {method_title(method, count)} | {_fmt(v['receiver_pps'])} | "
                    f"{_fmt(v['monitor_pps'])} | {_fmt(v['sender_pps'])} | "
                    f"{_fmt(v['controller_cpu'], 1)} |"
                    + (f" {_fmt(v['pmd_cycles_per_packet'], 1)} |" if dpdk else "")
                )
        cost = "PMD cycles/packet" if dpdk else "per-packet time, 1 ÷ receiver pps"
        lines += [
            "",
            f"Goals ({cost}):",
            "",
            f"| size | vTAP ÷ mirror (≤ {GOAL_VS_MIRROR:.2f}) | vTAP-10k ÷ mirror "
            f"(≤ {GOAL_VS_MIRROR:.2f}) | none-10k ÷ none (≤ {GOAL_BACKGROUND:.2f}) |",
            "|---:|---:|---:|---:|",
        ]
        per_size = goals.get(label, {})
        for size in sizes:
            g = per_size.get(size, {})
            lines.append(
                f"| {size} | {_ratio_cell(g.get('vtap/mirror'), GOAL_VS_MIRROR)} | "
                f"{_ratio_cell(g.get('vtap-10k/mirror'), GOAL_VS_MIRROR)} | "
                f"{_ratio_cell(g.get('none-10k/none'), GOAL_BACKGROUND)} |"
            )
        if not dpdk:
            lines += [
                "",
                "Receiver pps ratios, for reference (higher is better): "
                + "; ".join(
                    f"{size} B: none-10k ÷ none "
                    f"{_ratio(_med(agg, label, 'none-10k', size), _med(agg, label, 'none', size))}"
                    f", vTAP ÷ mirror "
                    f"{_ratio(_med(agg, label, 'vtap', size), _med(agg, label, 'mirror', size))}"
                    for size in sizes
                )
                + ".",
            ]
        lines += ["", *_policy_proofs(result, label), ""]
    return lines


def _med(agg: dict, label: str, method: str, size: int, f: str = "receiver_pps") -> float:
    v = agg.get((label, method, size))
    return v[f][0] if v else 0.0


def _policy_proofs(result: RunResult, label: str) -> list[str]:
    """The proofs of one datapath's phase, and whether the background set changed the
    sender's datapath flow (its megaflow: match and actions, counters left out)."""
    proofs = {p.method: p for p in result.proofs if p.datapath == label}
    if not proofs:
        return []
    lines = [
        "Proofs (before the first window of each method): the sender's datapath flow "
        "(`dpctl/dump-flows`, counters left out) and the monitor's packets in 0.5 s.",
        "",
        "| method | datapath flow of the sender's UDP packets | monitor packets in 0.5 s |",
        "|---|---|---|",
    ]
    for method in POLICY_METHODS:
        p = proofs.get(method)
        if p is None:
            continue
        flow = _bare_flow(p.datapath_flow).replace("|", "\\|").replace("\n", "<br>")
        lines.append(f"| {method} | `{flow or '(none)'}` | {p.monitor_packets} |")
    notes = []
    for plain, loaded in (("none", "none-10k"), ("vtap", "vtap-10k")):
        if plain in proofs and loaded in proofs:
            same = _bare_flow(proofs[plain].datapath_flow) == _bare_flow(
                proofs[loaded].datapath_flow
            )
            notes.append(
                f"- {loaded} vs. {plain}: the background set "
                + (
                    "left the datapath flow as it was (same match, same actions)."
                    if same
                    else "changed the datapath flow (see the rows above)."
                )
            )
    return [*lines, *([""] if notes else []), *notes]


def _policies_plot(agg: dict, outdir: Path, plt) -> Path:  # type: ignore[no-untyped-def]
    """Per datapath of the phase, its cost-like figure per size and method: receiver pps on
    normal OVS, PMD cycles/packet on OVS-DPDK."""
    panels = [
        (label, f)
        for label, f in (
            (POLICIES["ovs-veth"], "receiver_pps"),
            (POLICIES["ovs-dpdk"], "pmd_cycles_per_packet"),
            (POLICIES["ovs-dpdk"], "receiver_pps"),
        )
        if any(k[0] == label for k in agg)
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (label, field) in zip(axes[0], panels, strict=True):
        sizes = sorted({k[2] for k in agg if k[0] == label})
        methods = [m for m in POLICY_METHODS if any(k[:2] == (label, m) for k in agg)]
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            vals = [agg.get((label, method, s), {}).get(field, (0, 0, 0)) for s in sizes]
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(sizes))]
            err = [[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]]
            ax.bar(xs, [v[0] for v in vals], width, yerr=err, capsize=2, label=method)
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("packet size (bytes)")
        ax.set_title(f"{_SHORT_TITLE[label]}: {field.replace('_', ' ')}")
        ax.legend(fontsize="small")
    fig.suptitle("Background policies installed (none-10k, vtap-10k) vs. without")
    fig.tight_layout()
    path = outdir / "policies_10k.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
