"""Smoke test of `vtap bench dataplane`: short windows, normal-OVS datapath.

Checks that the harness runs end to end, writes its result files, and that the monitor got
copies with port mirroring and with vTAP (and none without a TAP); and that the
10,000-policy phase, here with a few hundred background policies at two sizes (so that the
background set is installed once, kept across the sizes, and deleted in the middle of the
second), installs them on the bridge, copies nothing under none-10k and copies under vtap-10k.
Not a speed test: outcomes only, no rates.
"""

from __future__ import annotations

import json
from pathlib import Path

from vtap.bench.dataplane import harness, report

BACKGROUND = 300
LABEL = harness.POLICIES["ovs-veth"]


def test_dataplane_smoke(tmp_path: Path) -> None:
    config = harness.RunConfig(
        sizes=(128, 256),
        datapaths=("ovs-veth",),
        repeats=1,
        window=0.5,
        warmup=0.5,
        background_policies=BACKGROUND,
    )
    assert config.policy_sizes == (128, 256)
    work = tmp_path / "work"
    work.mkdir()
    result = harness.run(config, work)
    out = tmp_path / "results"
    written = report.write(result, out, "pytest smoke")
    names = {p.name for p in written}
    assert {"raw.json", "samples.csv", "summary.csv", "README.md", "headline.md"} <= names
    assert {"ovs_veth_receiver_pps.png", "ovs_veth_monitor_pps.png", "policies_10k.png"} <= names
    raw = json.loads((out / "raw.json").read_text())
    main = [s for s in raw["samples"] if s["datapath"] == "ovs-veth"]
    by_method = {s["method"]: s for s in main}
    assert set(by_method) == {"none", "mirror", "vtap"}
    for method in ("none", "mirror", "vtap"):
        assert by_method[method]["received"] > 0, method
    assert by_method["mirror"]["monitored"] > 0
    assert by_method["vtap"]["monitored"] > 0
    # Without a TAP the monitor sees (almost) nothing of the sender's flood.
    assert by_method["none"]["monitored"] < by_method["none"]["received"] / 100
    proofs = {p["method"]: p for p in raw["proofs"] if p["datapath"] == "ovs-veth"}
    assert proofs["vtap"]["monitor_packets"] > 0 and proofs["mirror"]["monitor_packets"] > 0
    assert "| 128 |" in (out / "README.md").read_text()

    # The 10,000-policy phase: every method at both sizes, under one sender per size.
    phase = [s for s in raw["samples"] if s["datapath"] == LABEL]
    assert {(s["method"], s["size"]) for s in phase} == {
        (m, size) for m in harness.POLICY_METHODS for size in (128, 256)
    }
    for s in phase:
        assert s["received"] > 0, s
        if s["method"] in ("none", "none-10k"):  # no background policy matched
            assert s["monitored"] < s["received"] / 100, s
        else:
            assert s["monitored"] > 0, s
    # Installed once, on the bridge, deleted again to the last TAP entry.
    [bg] = raw["policy_sets"]
    assert bg["datapath"] == LABEL and bg["policies"] == BACKGROUND
    assert bg["active"] == BACKGROUND and bg["pending"] == 0 and bg["error"] == 0
    assert bg["tap_flows"] - bg["tap_flows_before"] >= BACKGROUND
    assert bg["tap_flows_after_delete"] == 0
    assert sum(bg["shapes"].values()) == BACKGROUND and len(bg["shapes"]) == 4
    phase_proofs = {p["method"]: p for p in raw["proofs"] if p["datapath"] == LABEL}
    assert set(phase_proofs) == set(harness.POLICY_METHODS)
    assert phase_proofs["vtap-10k"]["monitor_packets"] > 0
    assert phase_proofs["none-10k"]["monitor_packets"] < 100
    text = (out / "README.md").read_text()
    assert f"## {BACKGROUND} installed policies (testbed 1)" in text
    assert f"| 128 | no TAP + {BACKGROUND} policies |" in text
    assert f"| 256 | vTAP (group table) + {BACKGROUND} policies |" in text
    assert "none-10k ÷ none (≤ 1.10)" in text and "vTAP-10k ÷ mirror (≤ 1.00)" in text
    goals = text.split("Goals (per-packet time", 1)[1].split("\n\n", 2)[1]
    assert goals.count("met**") == 6  # 3 ratios × 2 sizes, each judged met or not met
    head = (out / "headline.md").read_text()
    assert f"normal OVS, {BACKGROUND} policies installed" in head
    assert "none-10k ÷ none" in head and "(goal ≤ 1.10: " in head
