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
        latency_n=5,
        first_copy_n=1,
        restart_n=10,
        concurrency=4,
        command="smoke",
        say=lambda _text: None,
        bar=lambda _done, _total: None,
    )
    results = json.loads((out / "results.json").read_text())
    assert {"nproc", "cpu", "memory_gib", "ovs"} <= results["machine"].keys()
    (compiled,) = results["compile"]
    assert compiled["ready"] == 50 and compiled["flows"] > 0
    assert {"compile_s", "one_pass_s", "peak_mib"} <= compiled.keys()
    lab = results["lab"]
    bulk, posts = lab["throughput"]
    assert (bulk["via"], posts["via"]) == ("bulk", "posts")
    for tp in (bulk, posts):
        assert tp["all_active"] and tp["policies"] == 10
        added = tp["ofctl_bundle"]["verified_added"]
        assert added == {"flows": tp["flows"], "groups": tp["groups"]}
        assert {"to_active_s", "flow_mods_per_s", "ratio_vs_ofctl_bundle"} <= tp.keys()
    # The same policies, whichever way they were created, make the same number of rules.
    assert (bulk["flows"], bulk["groups"]) == (posts["flows"], posts["groups"])
    assert lab["restart"]["all_active"]
    assert {"api_up_s", "switches_rejoined_s", "all_active_s", "tables_unchanged"} <= (
        lab["restart"].keys()
    )
    assert len(lab["latency"]["samples_active_ms"]) == 5
    assert {"p50", "p95", "max"} <= lab["latency"]["active_ms"].keys()
    (sample,) = lab["first_copy"]["samples"]
    assert sample["first_copy_ms"] is not None and sample["copies_before_post"] == 0
    for name in ("README.md", "compile-time.png", "time-to-active.png", "latency-cdf.png"):
        assert (out / name).stat().st_size > 0
