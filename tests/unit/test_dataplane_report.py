"""The data-plane report reads what OVS printed and judges the paced goal from the samples."""

from __future__ import annotations

from pathlib import Path

from vtap.bench.dataplane import report
from vtap.bench.dataplane.dpdk import pmd_cycles_per_packet
from vtap.bench.dataplane.harness import CAPACITY, PACED, RunConfig, RunResult, Sample

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
