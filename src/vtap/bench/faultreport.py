"""What `vtap bench faults` writes: results.json, and headline.md (the README's faults block):
one row per fault injected, what was done, what survived, and whether the goal was met."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "headline.md").write_text(headline(results))


def headline(results: dict[str, Any]) -> str:
    faults = results["faults"]
    met = sum(f["ok"] for f in faults)
    lost = sum(_copies_lost(f) for f in faults)
    lines = [
        f"Measured with `{results['command']}` on {results['date']} "
        f"({results['machine']['nproc']} cores, {results['machine']['ovs']}): "
        f"{len(faults)} faults injected, goal met for {met}; copies lost after recovery: {lost}.",
        "",
        "| fault | injected | outcome | goal met |",
        "|---|---|---|---|",
    ]
    for fault in faults:
        injected, outcome = _describe(fault)
        if "error" in fault:
            outcome = f"did not finish: {fault['error']}"
        lines.append(
            f"| {fault['fault'].replace('_', ' ')} | {injected} | {outcome} | "
            f"{'yes' if fault['ok'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def _copies_lost(fault: dict[str, Any]) -> int:
    if fault["fault"] == "switch_restart":
        return int(fault.get("forwarded_without_copy_after_restart", 0))
    stream = fault.get("stream")
    if isinstance(stream, dict):
        return int(stream["sent"] - stream["copied"])
    return 0


def _answered(f: dict[str, Any]) -> str:
    """How many of the health probes were answered (runs before this figure: not shown)."""
    if "health_probes" not in f:
        return ""
    answered = f["health_probes"] - f["health_unanswered"]
    return f" answered {answered}/{f['health_probes']},"


def _describe(f: dict[str, Any]) -> tuple[str, str]:
    name = f["fault"]
    if name.startswith("controller_killed"):
        injected = (
            f"{f.get('policies', 0):,} policies in {f.get('requests')} bulk request(s); SIGKILL "
            f"{f.get('killed_after_s')} s after request {f.get('killed_during_request')} went out"
        )
        created = f.get("request_in_flight_created")
        in_flight = (
            "none"
            if created is None
            else f"request {f.get('request_in_flight')}, {created:,} of its policies created"
        )
        left = "some" if f.get("tap_entries_left_after_delete") else "none"
        outcome = (
            f"{f.get('answered_201', 0):,} got 201: {f.get('acked_missing', 0)} missing, "
            f"{f.get('acked_not_active_or_error', 0)} neither active nor in error; "
            f"in flight: {in_flight}; "
            f"all settled {f.get('settled_s')} s after the kill; "
            f"entries without an owner: {f.get('ownerless_entries')}; "
            f"left after deleting all: {left}"
        )
        return injected, outcome
    if name == "barrier_timeout":
        injected = (
            f"ovs-vswitchd SIGSTOP for {f.get('switches_stopped_s')} s (request timeout "
            f"{f.get('request_timeout_s')} s) while a policy is created"
        )
        stream = f.get("stream", {})
        outcome = (
            f"{f.get('bundles_unanswered_in_time')} bundles unanswered in time, sessions lost "
            f"{f.get('sessions_lost')}, /health{_answered(f)} max {f.get('health_max_ms')} ms; "
            f"active "
            f"{f.get('active_after_resume_s')} s after SIGCONT; "
            f"{stream.get('copied', 0)}/{stream.get('sent', 0)} copied once"
        )
        return injected, outcome
    if name == "switch_restart":
        injected = (
            f"ovs-vswitchd SIGKILL and restart during {f.get('sent', 0):,} frames at "
            f"{f.get('rate_pps')} pps"
        )
        outcome = (
            f"forwarding back after {f.get('forwarding_resumed_after_s')} s, copies after "
            f"{f.get('copies_resumed_after_s')} s; forwarded without a copy after the restart: "
            f"{f.get('forwarded_without_copy_after_restart')} of "
            f"{f.get('forwarded_after_restart', 0):,}; lost in flight at the crash: "
            f"{f.get('lost_in_flight_at_the_crash')}; copied twice: "
            f"{f.get('copied_twice_or_more')}"
        )
        return injected, outcome
    if name == "table_full":
        status = f.get("status_when_full", {})
        injected = (
            f"{f.get('bridge')} classification tables limited to {f.get('flow_limit')} entries; "
            f"{f.get('created')} policies created"
        )
        outcome = (
            f"{status.get('error')} in error ({', '.join(f.get('error_reasons', []))}), the "
            f"rest active; after {f.get('freed')} deleted, all active in "
            f"{f.get('active_after_room_s')} s"
        )
        return injected, outcome
    if name == "link_flap":
        stream = f.get("stream", {})
        injected = (
            f"{f.get('link')} changes state every {f.get('period_s')} s for "
            f"{f.get('duration_s')} s ({f.get('state_changes')} changes), "
            f"{f.get('policies', 0):,} policies installed"
        )
        outcome = (
            f"switches lost {f.get('switches_lost')}, /health{_answered(f)} max "
            f"{f.get('health_max_ms')} ms, "
            f"longest loop stall {f.get('loop_lag', {}).get('max_stall_ms')} ms; tables as "
            f"before: {'yes' if f.get('tables_as_before') else 'no'} "
            f"({f.get('tables_as_before_after_s')} s after); "
            f"{stream.get('copied', 0)}/{stream.get('sent', 0)} copied once"
        )
        return injected, outcome
    return name, ""
