"""The data-plane report reads what OVS printed and judges the paced goal and the 10,000-policy
goals from the samples; the committed results still render."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from vtap.bench.dataplane import harness, report
from vtap.bench.dataplane.dpdk import pmd_cycles_per_packet
from vtap.bench.dataplane.harness import (
    CAPACITY,
    PACED,
    POLICIES,
    PolicySet,
    Proof,
    RunConfig,
    RunResult,
    Sample,
)
from vtap.domain.policy import PolicySpec
from vtap.errors import VtapError

ROOT = Path(__file__).resolve().parents[2]

PERF_TWO_PMDS = """
pmd thread numa_id 0 core_id 0:

  Iterations:              5998389  (0.33 us/it)
  Rx packets:               100000  (48 Kpps, 1000 cycles/pkt)
  Datapath passes:          100000  (1.00 passes/pkt)

pmd thread numa_id 0 core_id 1:

  Iterations:              5998389  (0.33 us/it)
  Rx packets:               300000  (148 Kpps, 2000 cycles/pkt)
"""


def test_cycles_per_packet_are_weighted_by_each_pmds_packets() -> None:
    assert pmd_cycles_per_packet(PERF_TWO_PMDS) == (100_000 * 1000 + 300_000 * 2000) / 400_000
    assert pmd_cycles_per_packet("no pmd thread here") == 0.0


def _paced(method: str, sent: int, received: int, monitored: int) -> Sample:
    s = Sample("ovs-dpdk", method, 64, 0, 1.0, sent, received, monitored).finish()
    s.datapath, s.target_pps = PACED, 10_000
    return s


def _result(monitored: int) -> RunResult:
    samples = [Sample(CAPACITY, "none", 64, 0, 1.0, 900_000, 20_000, 0).finish()]
    samples += [_paced("none", 10_000, 10_000, 0), _paced("vtap", 10_000, 9_990, monitored)]
    return RunResult(RunConfig(datapaths=("ovs-dpdk",)), samples, started="2026-11-25T00:00")


def test_paced_goal_is_met_only_when_receiver_and_monitor_get_99_percent(tmp_path: Path) -> None:
    good = "\n".join(report.headline(_result(monitored=9_950), {}, "cmd"))
    assert "goal ≥ 99 %: met" in good
    bad = "\n".join(report.headline(_result(monitored=9_800), {}, "cmd"))
    assert "goal ≥ 99 %: not met" in bad and "98.00 %" in bad
    section = "\n".join(report._paced_section(_result(monitored=9_800).samples))
    assert "**Goal not met**" in section and "20,000" in section  # the measured capacity


def test_quick_mode_measures_testbed_2_at_three_sizes_and_full_mode_at_all() -> None:
    quick, full = RunConfig(), RunConfig(quick=False)
    assert quick.two_pair_sizes == (64, 512, 1518)
    assert full.two_pair_sizes == full.sizes and len(full.sizes) == 7
    assert RunConfig(sizes=(128,)).two_pair_sizes == (128,)
    # The progress bar's total follows: 4 testbed-2 sizes fewer, 2 PMD settings, 3 repeats.
    assert full.windows() - quick.windows() == 2 * 4 * quick.repeats


# --- the 10,000-policy phase -------------------------------------------------------------------

FLOW = (
    "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=02:93:00:00:00:01,"
    "dst=02:93:00:00:00:02),eth_type(0x0800),ipv4(src=10.93.0.1,dst=10.93.0.2,proto=17,"
    "frag=no),udp(src=9,dst=9), packets:{n}, bytes:{b}, used:0.001s, actions:{a}"
)
# Per-packet PMD cycles (OVS-DPDK) and receiver pps (normal OVS) per method; the three
# windows of a method are ±2 % around these.
DPDK_CYCLES = {"none": 300, "none-10k": 312, "mirror": 820, "vtap": 790, "vtap-10k": 830}
VETH_RX = {"none": 90_000, "none-10k": 70_000, "mirror": 75_000, "vtap": 76_000, "vtap-10k": 74_000}


def _phase_result() -> RunResult:
    samples = []
    for label, base in ((POLICIES["ovs-dpdk"], DPDK_CYCLES), (POLICIES["ovs-veth"], VETH_RX)):
        for size in (64, 1518):
            for rep, wobble in enumerate((0.98, 1.0, 1.02)):
                for method, value in base.items():
                    rx = 30_000 if label == POLICIES["ovs-dpdk"] else round(value * wobble)
                    monitored = 0 if method.startswith("none") else rx
                    s = Sample(label, method, size, rep, 1.0, 400_000, rx, monitored).finish()
                    if label == POLICIES["ovs-dpdk"]:
                        s.pmd_cycles_per_packet = value * wobble
                    samples.append(s)
    proofs = [
        Proof(label, m, FLOW.format(n=100 + i, b=6400 + i, a="3,4" if "vtap" in m else "3"), 9)
        for label in POLICIES.values()
        for i, m in enumerate(("none", "mirror", "vtap", "none-10k", "vtap-10k"))
    ]
    sets = [
        PolicySet(
            label,
            10_000,
            {"src_ip+tcp_src_port": 2_500, "dst_ip+udp_dst_port": 2_500},
            active=10_000,
            install_seconds=4.2,
            tap_flows=15_012,
            tap_flows_by_table={"3": 1, "10": 2_500, "11": 7_500},
            tap_groups=1,
            delete_seconds=2.5,
            tap_flows_after_delete=0,
        )
        for label in POLICIES.values()
    ]
    config = RunConfig(sizes=(64, 1518), paced=False, two_pairs=False)
    return RunResult(config, samples, proofs, started="2026-11-29T00:00", policy_sets=sets)


def test_policy_goals_are_cost_ratios_of_one_sender_with_their_spread() -> None:
    goals = report.policy_goals(_phase_result().samples)
    dpdk, veth = goals[POLICIES["ovs-dpdk"]][64], goals[POLICIES["ovs-veth"]][1518]
    assert dpdk["vtap/mirror"][0] == pytest.approx(790 / 820)
    assert dpdk["vtap-10k/mirror"][0] == pytest.approx(830 / 820)
    assert dpdk["none-10k/none"][0] == pytest.approx(1.04)
    # Window r against window r: the same wobble on both sides, so no spread here.
    assert dpdk["none-10k/none"][1] == pytest.approx(1.04)
    # Normal OVS has no cycle counter: the cost is 1 / receiver pps.
    assert veth["none-10k/none"][0] == pytest.approx(90_000 / 70_000)
    assert veth["vtap/mirror"][0] == pytest.approx(75_000 / 76_000)


def test_policies_section_tables_goals_and_proofs(tmp_path: Path) -> None:
    result = _phase_result()
    written = {p.name for p in report.write(result, tmp_path, "vtap bench dataplane")}
    assert "policies_10k.png" in written
    text = (tmp_path / "README.md").read_text()
    section = text.split("## 10,000 installed policies (testbed 1)", 1)[1].split("\n## ", 1)[0]
    for title in ("OVS-DPDK (dpdkvhostuserclient, 1 PMD) — 10,000 policies",
                  "Normal OVS (userspace datapath, veth) — 10,000 policies"):  # fmt: skip
        assert f"### {title}" in section
    assert "| 64 | no TAP + 10,000 policies | 30,000 (30,000–30,000) |" in section
    assert "| 400,000 (400,000–400,000) | 0.0 (0.0–0.0) | 312.0 (305.8–318.2) |" in section
    assert "| 1518 | vTAP (group table) + 10,000 policies |" in section
    assert "312.0 (305.8–318.2)" in section  # none-10k's cycles: median (min–max)
    assert "15,012 (3: 1, 10: 2,500, 11: 7,500)" in section  # TAP entries on the bridge
    # OVS-DPDK: vTAP 0.963 met, vTAP-10k 1.012 not met, none-10k 1.040 met.
    assert "| 64 | 0.963 (0.963–0.963) **met** | 1.012 (1.012–1.012) **not met** | " \
        "1.040 (1.040–1.040) **met** |" in section  # fmt: skip
    # Normal OVS: none-10k costs 90,000 / 70,000 = 1.286 per packet: not met.
    assert "1.286 (1.286–1.286) **not met**" in section
    assert "none-10k vs. none: the background set left the datapath flow as it was" in section
    assert "packets:" not in section  # counters left out of the proof flows
    assert "## Not measured in this run" in text and "10,000-policy phase" not in text
    head = (tmp_path / "headline.md").read_text()
    assert (
        "- OVS-DPDK, 10,000 policies installed (15,012 TAP flow entries on the bridge), "
        "64 B / 1518 B, PMD cycles/pkt: vTAP ÷ mirror 0.963 / 0.963 (goal ≤ 1.00: met); "
        "vTAP-10k ÷ mirror 1.012 / 1.012 (goal ≤ 1.00: not met); none-10k ÷ none "
        "1.040 / 1.040 (goal ≤ 1.10: met)"
    ) in head
    assert "normal OVS, 10,000 policies" in head and "(goal ≤ 1.10: not met)" in head
    # And back from raw.json: the same report.
    again = report.load(tmp_path / "raw.json")
    assert again.policy_sets == result.policy_sets
    assert report._markdown(again, report.aggregate(again.samples), "vtap bench dataplane") == text


def test_the_committed_results_still_render_from_their_raw_json(tmp_path: Path) -> None:
    """Every line of the committed report comes back from its raw.json (a run without the
    10,000-policy phase only gains a "not measured" line), and the headline is the same."""
    committed = ROOT / "docs" / "results" / "dataplane"
    result = report.load(committed / "raw.json")
    old = (committed / "README.md").read_text()
    command = old.split("Command: `", 1)[1].split("`", 1)[0]
    report.write(result, tmp_path, command)
    if not any(p.exists() for p in report.SEED_DIR_CANDIDATES):
        return  # the seed's tables feed some cells; without them only rendering is checked
    new = (tmp_path / "README.md").read_text().splitlines()
    at = 0
    for line in old.splitlines():
        assert line in new[at:], line
        at = new.index(line, at) + 1
    assert (tmp_path / "headline.md").read_text() == (committed / "headline.md").read_text()


def test_background_policies_never_match_the_test_flow_and_are_distinct() -> None:
    specs = harness.background_specs(10_000)
    assert len(specs) == 10_000
    shapes = Counter(harness.spec_shape(s) for s in specs)
    assert shapes == {
        "src_ip+tcp_src_port": 2_500,
        "src_ip+dst_ip+tcp_dst_port": 2_500,
        "dst_ip+udp_dst_port": 2_500,
        "src_ip+udp_src_port": 2_500,
    }
    identities = {PolicySpec.model_validate(s).identity() for s in specs}
    assert len(identities) == 10_000
    hosts = set(harness.IP.values())
    for s in specs:
        assert {s.get("src_ip"), s.get("dst_ip"), s["monitor_ip"]} - {None} <= hosts
        if s["ip_proto"] == 17:  # testpmd's flow is UDP 9 → 9
            assert harness.TEST_FLOW_UDP_PORT not in (s.get("src_port"), s.get("dst_port"))
    with pytest.raises(VtapError):
        harness.background_specs(100_001)


def test_the_phase_counts_its_windows_and_methods_select_it() -> None:
    quick = RunConfig()
    assert quick.policy_sizes == (64, 1518)
    off = RunConfig(policies_10k=False)
    assert quick.windows() - off.windows() == 2 * 2 * 5 * quick.repeats  # 2 datapaths
    assert RunConfig(sizes=(128,)).policy_sizes == (128,)
    assert RunConfig(sizes=(128, 512, 1024)).policy_sizes == (128, 1024)
    assert not RunConfig(policies_10k_methods=("none", "mirror")).policy_phase
    assert harness.copies("vtap-10k") and not harness.copies("none-10k")
    assert harness.base_method("vtap-10k") == "vtap"
