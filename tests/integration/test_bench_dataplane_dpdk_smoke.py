"""Smoke test of `vtap bench dataplane` on OVS-DPDK: one packet size, short windows.

Runs testbed 1 (no TAP, mirror, vTAP), its 10,000-policy phase (here with 200 background
policies), the paced run and testbed 2 end to end on real OVS-DPDK with testpmd vhost-user
endpoints, and checks what each claims: copies reach the monitor only with a TAP (and never
from a background policy), the background set was on the bridge, the pace is near what was
asked, both pairs of testbed 2 are copied, PMD cycles were read, and the machine's hugepages
are as before. Not a speed test.
"""

from __future__ import annotations

import json
from pathlib import Path

from vtap.bench.dataplane import dpdk, harness, report


def test_dpdk_smoke(tmp_path: Path) -> None:
    pages_before = int(dpdk.HUGEPAGES.read_text())
    config = harness.RunConfig(
        sizes=(64,),
        datapaths=("ovs-dpdk",),
        repeats=1,
        window=0.5,
        warmup=0.5,
        background_policies=200,
    )
    work = tmp_path / "work"
    work.mkdir()
    result = harness.run(config, work)
    assert int(dpdk.HUGEPAGES.read_text()) == pages_before
    out = tmp_path / "results"
    written = {p.name for p in report.write(result, out, "pytest smoke")}
    assert {"ovs_dpdk_pmd_cycles_per_packet.png", "ovs_dpdk_two_pairs.png"} <= written
    assert "policies_10k.png" in written
    raw = json.loads((out / "raw.json").read_text())
    samples = raw["samples"]

    def one(datapath: str, method: str) -> dict:
        found = [s for s in samples if s["datapath"] == datapath and s["method"] == method]
        assert found, (datapath, method)
        return found[0]

    none, mirror, vtap = (one("ovs-dpdk", m) for m in ("none", "mirror", "vtap"))
    for s in (none, mirror, vtap):
        assert s["received"] > 0 and s["pmd_cycles_per_packet"] > 0
    assert mirror["monitored"] > 0 and vtap["monitored"] > 0
    assert none["monitored"] < none["received"] / 100

    label = harness.POLICIES["ovs-dpdk"]
    for method in harness.POLICY_METHODS:
        s = one(label, method)
        assert s["received"] > 0 and s["pmd_cycles_per_packet"] > 0, s
        if harness.copies(method):
            assert s["monitored"] > 0, s
        else:  # no background policy matched
            assert s["monitored"] < s["received"] / 100, s
    [bg] = raw["policy_sets"]
    assert bg["datapath"] == label and bg["active"] == bg["policies"] == 200
    assert bg["tap_flows"] - bg["tap_flows_before"] >= 200 and bg["tap_flows_after_delete"] == 0

    paced = one(harness.PACED, "vtap")
    assert paced["policed"] > 0, "the sender was not paced"
    assert paced["target_pps"] > 0 and paced["sender_pps"] > 0  # rates: the bench's results
    assert paced["monitored"] > 0

    for pmds in (1, 2):
        pair = one(harness.TWO_PAIRS[pmds], "vtap")
        assert pair["received"] > 0 and pair["received2"] > 0
        assert pair["monitored"] > 0
        # Proven before measuring: each sender's datapath flow copies to the monitor.
        proof = next(p for p in raw["proofs"] if p["datapath"] == harness.TWO_PAIRS[pmds])
        assert proof["datapath_flow"].count("in_port(") >= 2, proof
    text = (out / "README.md").read_text()
    assert "half the no-TAP capacity" in text and "2 PMD / 1 PMD" in text
    assert "## 200 installed policies (testbed 1)" in text
    assert "OVS-DPDK (dpdkvhostuserclient, 1 PMD) — 200 policies" in text
    assert "Goals (PMD cycles/packet)" in text and "none-10k ÷ none (≤ 1.10)" in text
    assert "OVS-DPDK, 200 policies installed" in (out / "headline.md").read_text()
