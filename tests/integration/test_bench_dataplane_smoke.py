"""Smoke test of `vtap bench dataplane`: one packet size, short windows, normal-OVS datapath.

Checks that the harness runs end to end, writes its result files, and that the monitor got
copies with port mirroring and with vTAP (and none without a TAP). Not a speed test.
"""

from __future__ import annotations

import json
from pathlib import Path

from vtap.bench.dataplane import harness, report


def test_dataplane_smoke(tmp_path: Path) -> None:
    config = harness.RunConfig(
        sizes=(128,), datapaths=("ovs-veth",), repeats=1, window=0.5, warmup=0.5
    )
    work = tmp_path / "work"
    work.mkdir()
    result = harness.run(config, work)
    out = tmp_path / "results"
    written = report.write(result, out, "pytest smoke")
    names = {p.name for p in written}
    assert {"raw.json", "samples.csv", "summary.csv", "README.md"} <= names
    assert {"ovs_veth_receiver_pps.png", "ovs_veth_monitor_pps.png"} <= names
    raw = json.loads((out / "raw.json").read_text())
    by_method = {s["method"]: s for s in raw["samples"]}
    assert set(by_method) == {"none", "mirror", "vtap"}
    for method in ("none", "mirror", "vtap"):
        assert by_method[method]["received"] > 0, method
    assert by_method["mirror"]["monitored"] > 0
    assert by_method["vtap"]["monitored"] > 0
    # Without a TAP the monitor sees (almost) nothing of the sender's flood.
    assert by_method["none"]["monitored"] < by_method["none"]["received"] / 100
    proofs = {p["method"]: p for p in raw["proofs"]}
    assert proofs["vtap"]["monitor_packets"] > 0 and proofs["mirror"]["monitor_packets"] > 0
    assert "| 128 |" in (out / "README.md").read_text()
