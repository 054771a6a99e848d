"""`vtap bench controlplane` at tiny sizes: every part runs and writes the fields the README and
plots need. Speed is not checked (the benchmark reports it; tests never time)."""

from __future__ import annotations

import json
from pathlib import Path

from vtap.bench.cpcli import run


def test_controlplane_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run(
        full=False,
        out=out,
        api=None,
        lab=True,
        take_lock=False,  # integration tests hold the machine's lab lock already
        counts=(10,),
        compile_cases=((4, 8, 50, True),),
        lab_plan=(2, 2, 2),
        latency_levels=(0, 5),
        latency_n=5,
        first_copy_n=1,
        restart_n=10,
        flap_n=10,
        command="smoke",
        say=lambda _text: None,
        bar=lambda _done, _total: None,
    )
    results = json.loads((out / "results.json").read_text())
    assert {"nproc", "cpu", "memory_gib", "ovs"} <= results["machine"].keys()
    (compiled,) = results["compile"]
    assert compiled["ready"] == 50 and compiled["pending"] == 0 and compiled["flows"] > 0
    assert {"build_s", "peak_mib", "change"} <= compiled.keys()
    assert {"create", "patch", "delete"} <= compiled["change"].keys()
    lab = results["lab"]
    (bulk,) = lab["throughput"]
    assert bulk["all_active"] and bulk["policies"] == 10
    assert bulk["final_status"] == {"total": 10, "active": 10, "pending": 0, "error": 0}
    added = bulk["ofctl_bundle"]["verified_added"]
    assert added == {"flows": bulk["flows"], "groups": bulk["groups"]}
    assert {"to_active_s", "flow_mods_per_s", "ratio_vs_ofctl_bundle", "loop_lag"} <= bulk.keys()
    assert bulk["per_switch"]["flows_max"] <= bulk["flows"]
    assert lab["restart"]["all_active"] and lab["restart"]["tables_unchanged"]
    flap = lab["link_flap"]
    assert flap["down_all_active"] and flap["up_all_active"] and flap["tables_as_before"]
    assert [level["present"] for level in lab["latency"]] == [0, 5]
    for level in lab["latency"]:
        assert len(level["samples_active_ms"]) == 5
        assert {"p50", "p95", "max"} <= level["active_ms"].keys()
    (sample,) = lab["first_copy"]["samples"]
    assert sample["first_copy_ms"] is not None and sample["copies_before_post"] == 0
    for name in ("README.md", "compile-time.png", "time-to-active.png", "latency-cdf.png"):
        assert (out / name).stat().st_size > 0
    assert "goal" in (out / "headline.md").read_text()
