"""Control-plane measurements on a running lab: throughput, apply latency, event-loop lag, a link
flap, the first copy at the monitor, a controller restart.

Everything goes through the REST API the way an operator's tooling would (`/policies/summary`
to wait for "all active": listing 50,000 policies to count them would itself load the
controller); switch tables are read with `ovs-ofctl` (bench/labrun.py).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vtap import apiauth
from vtap.bench.labrun import (
    BenchError,
    LabTarget,
    counts,
    ofctl_bundle,
    per_switch,
    snapshot,
    vtap_cli,
    wait_for,
)
from vtap.bench.workload import mix, overlap_specs
from vtap.lab.ctlproc import vtap_command
from vtap.lab.traffic import Capture, FrameSpec, send

Progress = Callable[[int, int], None]
MAX_BATCH = 100_000  # the API's largest bulk request
LATENCY_FIRST_PORT = 60_000  # latency samples' ports: clear of the background sets'


# ------------------------------------------------------------------ REST helpers


def summary(target: LabTarget) -> dict[str, int]:
    resp = apiauth.get(f"{target.url}/policies/summary", timeout=30)
    resp.raise_for_status()
    return resp.json()


def health(target: LabTarget) -> dict[str, Any]:
    resp = apiauth.get(f"{target.url}/health", timeout=30)
    resp.raise_for_status()
    return resp.json()


def loop_lag(target: LabTarget, since: float) -> dict[str, Any]:
    """The controller's event-loop stalls (over 50 ms) since `since` (Unix time), from its own
    lag monitor (controller/looplag.py)."""
    loop = health(target)["event_loop"]
    stalls = [s["ms"] for s in loop["stalls"] if s["at"] >= since]
    return {
        "max_stall_ms": max(stalls, default=0.0),
        "stalls_over_50ms": len(stalls),
        "stalls_over_100ms": sum(ms > 100 for ms in stalls),
        "stalls_ms": sorted(stalls, reverse=True)[:20],
    }


def create_bulk(target: LabTarget, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    created: list[dict[str, Any]] = []
    for first in range(0, len(specs), MAX_BATCH):
        chunk = specs[first : first + MAX_BATCH]
        try:
            resp = apiauth.post(
                f"{target.url}/policies/bulk", json={"policies": chunk}, timeout=1800
            )
        except httpx.HTTPError as exc:
            raise BenchError(f"bulk create of {len(chunk)}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 201:
            raise BenchError(f"bulk create: {resp.status_code} {resp.text[:200]}")
        created += resp.json()
    return created


def wait_settled(
    target: LabTarget, timeout: float, tick: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Until every policy is active or in error (nothing left pending); the summary then."""
    start = time.monotonic()
    interval = 0.05
    while True:
        try:
            now = summary(target)
        except httpx.HTTPError:
            now = {"total": -1, "active": 0, "pending": 0, "error": 0}
        if tick is not None:
            tick(now["active"])
        if now["total"] >= 0 and now["pending"] == 0:
            return now
        if time.monotonic() - start > timeout:
            return now
        time.sleep(interval)
        interval = min(0.5, interval * 1.5)


def delete_everything(target: LabTarget) -> float:
    """Delete every policy in bulk; seconds until no TAP rule is left on any switch (label
    entries linger two seconds after their last user, see controller/reconciler.py)."""
    start = time.perf_counter()
    resp = apiauth.get(f"{target.url}/policies", timeout=300)
    resp.raise_for_status()
    ids = [p["id"] for p in resp.json()]
    for first in range(0, len(ids), MAX_BATCH):
        chunk = ids[first : first + MAX_BATCH]
        resp = apiauth.post(f"{target.url}/policies/bulk-delete", json={"ids": chunk}, timeout=1800)
        if resp.status_code != 204:
            raise BenchError(f"bulk delete: {resp.status_code} {resp.text[:200]}")
    wait_for(lambda: counts(snapshot(target)) == (0, 0), 300, "TAP rules removed", 0.2)
    return time.perf_counter() - start


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(pick(0.95), 2),
        "max": round(ordered[-1], 2),
        "min": round(ordered[0], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


# ------------------------------------------------------------------ throughput


def throughput(
    target: LabTarget,
    n: int,
    progress: Progress,
    restart: bool = False,
    flap: bool = False,
    timeout: float = 1800,
) -> dict[str, Any]:
    """The overlapping mix, N policies in one bulk request: time until all are active, the
    rules the switches then hold, the event loop's stalls meanwhile; optionally a link flap and
    a controller restart with them installed; then the `ovs-ofctl bundle` ceiling."""
    specs = overlap_specs(target.plan, n, prefix=f"ov{n}")
    since = time.time()
    start = time.perf_counter()
    create_bulk(target, specs)
    posted = time.perf_counter() - start
    progress(0, n)
    final = wait_settled(target, timeout, lambda a: progress(a, n))
    to_active = time.perf_counter() - start
    lag = loop_lag(target, since)
    snap = snapshot(target)
    flows, groups = counts(snap)
    result: dict[str, Any] = {
        "policies": n,
        "via": "bulk",
        "workload": "overlap",
        "mix": mix(specs),
        "all_active": final["active"] == n,
        "final_status": final,
        "posted_s": round(posted, 3),
        "to_active_s": round(to_active, 3),
        "policies_per_s": round(n / to_active, 1),
        "flows": flows,
        "groups": groups,
        "per_switch": per_switch(snap),
        "flow_mods_per_s": round((flows + groups) / to_active, 1),
        "loop_lag": lag,
    }
    if flap:
        result["link_flap"] = link_flap(target, snap)
    if restart:
        result["restart"] = controller_restart(target, snap, n)
    result["delete_s"] = round(delete_everything(target), 3)
    ceiling = ofctl_bundle(target, snap)
    result["ofctl_bundle"] = ceiling
    result["ratio_vs_ofctl_bundle"] = round(result["flow_mods_per_s"] / ceiling["rate_parallel"], 4)
    return result


def link_flap(
    target: LabTarget, before: dict[str, dict[str, list[str]]], spine: str = "spine1",
    leaf: str = "leaf1",
) -> dict[str, Any]:  # fmt: skip
    """One fabric link down, then up again, with the policies installed: how long until every
    policy is active again each time, the event loop's stalls meanwhile, and whether the
    switches end up holding exactly what they held before."""
    n = summary(target)["total"]
    since = time.time()
    out: dict[str, Any] = {"link": f"{spine}-{leaf}", "policies": n}
    for state in ("down", "up"):
        builds = health(target)["install"]["full_builds"]
        start = time.perf_counter()
        vtap_cli(target.env, "lab", "link", spine, leaf, state)
        wait_for(
            lambda b=builds: health(target)["install"]["full_builds"] > b,
            60,
            f"controller saw link {state}",
            0.05,
        )
        final = wait_settled(target, 600)
        out[f"{state}_s"] = round(time.perf_counter() - start, 3)
        out[f"{state}_all_active"] = final["active"] == n
    out["loop_lag"] = loop_lag(target, since)
    # The detour's label entries linger a moment after the link is back (reconciler.py).
    try:
        wait_for(lambda: snapshot(target) == before, 20, "tables as before", 0.5)
        out["tables_as_before"] = True
    except BenchError:
        out["tables_as_before"] = False
    return out


# ------------------------------------------------------------------ latency


def apply_latency(
    target: LabTarget, present: int, count: int, progress: Progress
) -> dict[str, Any]:
    """With `present` policies already installed (the overlapping mix), `count` more created one
    at a time: POST → 201 (the API answers after the install round) and → `active`."""
    if present:
        create_bulk(target, overlap_specs(target.plan, present, prefix=f"bg{present}"))
        final = wait_settled(target, 1800)
        if final["active"] != present:
            raise BenchError(f"background set not active: {final}")
    specs = overlap_specs(
        target.plan, count, prefix=f"lat{present}", seed=present + 1,
        first_port=LATENCY_FIRST_PORT,
    )  # fmt: skip
    response_ms: list[float] = []
    active_ms: list[float] = []
    not_active_at_response = 0
    with apiauth.client(target.url, 60) as client:
        for i, spec in enumerate(specs):
            start = time.perf_counter()
            resp = client.post("/policies", json=spec)
            answered = time.perf_counter()
            if resp.status_code != 201:
                raise BenchError(f"create failed: {resp.status_code} {resp.text[:200]}")
            policy = resp.json()
            if policy["status"] != "active":
                not_active_at_response += 1
            while policy["status"] != "active":
                if time.perf_counter() - start > 60:
                    raise BenchError(f"policy {policy['id']} not active: {policy}")
                time.sleep(0.002)
                policy = client.get(f"/policies/{policy['id']}").json()
            active_ms.append((time.perf_counter() - start) * 1000)
            response_ms.append((answered - start) * 1000)
            progress(i + 1, count)
    delete_everything(target)
    return {
        "present": present,
        "policies": count,
        "response_ms": percentiles(response_ms),
        "active_ms": percentiles(active_ms),
        "not_active_at_response": not_active_at_response,
        "samples_active_ms": [round(v, 3) for v in active_ms],
        "samples_response_ms": [round(v, 3) for v in response_ms],
    }


# ------------------------------------------------------------------ first copy


def first_copy(target: LabTarget, count: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    """While a source streams matching UDP frames to its destination, create the policy; the
    time from the POST to the first copy tcpdump sees at the monitor (pcap timestamps)."""
    plan = target.plan
    hosts = plan.hosts
    samples: list[dict[str, Any]] = []
    for i in range(count):
        src = hosts[(2 * i) % len(hosts)]
        dst = hosts[(2 * i + plan.hosts_per_leaf + 1) % len(hosts)]  # another leaf if any
        monitor = next(h for h in reversed(hosts) if h.name not in (src.name, dst.name))
        port = LATENCY_FIRST_PORT - 2000 + i
        spec = FrameSpec(src.mac, dst.mac, src.ip, dst.ip, "udp", 40000, port, count=4000)
        policy = {
            "name": f"first-copy-{i}",
            "src_ip": src.ip,
            "ip_proto": 17,
            "dst_port": port,
            "monitor_mac": monitor.mac,
        }
        at_dst = workdir / f"first-copy-{i}-dst.pcap"
        at_mon = workdir / f"first-copy-{i}-mon.pcap"
        with (
            Capture(dst.name, at_dst, f"udp port {port}") as cd,
            Capture(monitor.name, at_mon, f"udp port {port}") as cm,
        ):
            sender = threading.Thread(target=send, args=(src.name, spec, 0.001), daemon=True)
            sender.start()
            # The sender needs a moment to start scapy in the host's namespace: wait until the
            # destination sees the stream, so the policy meets a flowing stream.
            wait_for(lambda p=at_dst: p.exists() and p.stat().st_size > 200, 30, "stream")
            posted = time.time()
            resp = apiauth.post(f"{target.url}/policies", json=policy, timeout=60)
            answered = time.time()
            if resp.status_code != 201:
                raise BenchError(f"create failed: {resp.status_code} {resp.text[:200]}")
            sender.join(60)
            mon = _timestamps(cm, spec.run)
            dstt = _timestamps(cd, spec.run)
        apiauth.delete(f"{target.url}/policies/{resp.json()['id']}", timeout=60)
        before = [t for t in mon if t < posted]
        after = [t for t in mon if t >= posted]
        samples.append(
            {
                "src": src.name,
                "dst": dst.name,
                "monitor": monitor.name,
                "response_ms": round((answered - posted) * 1000, 2),
                "first_copy_ms": round((min(after) - posted) * 1000, 2) if after else None,
                "copies_before_post": len(before),
                "copies": len(after),
                "delivered_to_dst": len(dstt),
                "status_at_response": resp.json()["status"],
            }
        )
        progress(i + 1, count)
    values = [s["first_copy_ms"] for s in samples if s["first_copy_ms"] is not None]
    return {"policies": count, "first_copy_ms": percentiles(values), "samples": samples}


def _timestamps(capture: Capture, run: str) -> list[float]:
    import scapy.layers.l2  # noqa: F401
    from scapy.utils import rdpcap

    capture.stop()
    if not capture.path.exists() or capture.path.stat().st_size == 0:
        return []
    marker = f"vtap:{run}:".encode()
    return [float(p.time) for p in rdpcap(str(capture.path)) if marker in bytes(p)]


# ------------------------------------------------------------------ restart


def controller_restart(
    target: LabTarget, before: dict[str, dict[str, list[str]]], n: int
) -> dict[str, Any]:
    """Kill the controller (SIGKILL, like a crash), start `vtap controller` again with the same
    state dir and ports; time until every switch rejoined and every policy is active again,
    and whether every switch table is exactly as before."""
    start = time.perf_counter()
    kill_controller(target)
    start_controller(target)
    api_up = wait_for(lambda: healthy(target), 60, "controller API after restart")
    switches = wait_for(lambda: all_connected(target), 60, "switches rejoined")
    wait_for(lambda: summary(target)["active"] == n, 600, "all policies active after restart")
    active = time.perf_counter() - start
    after = snapshot(target)
    changed = [b for b in before if before[b] != after.get(b)]
    diff: dict[str, list[str]] = {}
    for b in changed:
        for kind in ("flows", "groups"):
            old, new = set(before[b][kind]), set(after.get(b, {}).get(kind, []))
            diff.setdefault(b, []).extend(
                [f"- {x}" for x in sorted(old - new)[:2]]
                + [f"+ {x}" for x in sorted(new - old)[:2]]
            )
    return {
        "policies": n,
        "all_active": summary(target)["active"] == n,
        "api_up_s": round(api_up, 3),
        "switches_rejoined_s": round(api_up + switches, 3),
        "all_active_s": round(active, 3),
        "tables_unchanged": not changed,
        "changed_switches": changed,
        "diff_sample": dict(list(diff.items())[:2]),
        "flows": counts(after)[0],
        "groups": counts(after)[1],
    }


def kill_controller(target: LabTarget) -> None:
    """SIGKILL the controller (like a crash): the one this benchmark started last, else the
    lab's; returns once it is gone."""
    ref = target.state().get("controller")
    if target.restarted is not None and target.restarted.poll() is None:
        pid = target.restarted.pid
    elif ref:
        pid = ref["pid"]
    else:
        raise BenchError("no controller pid in the lab's state.json")
    os.kill(pid, signal.SIGKILL)
    if target.restarted is not None and target.restarted.pid == pid:
        target.restarted.wait(10)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10, "controller gone")


def start_controller(target: LabTarget, env: dict[str, str] | None = None) -> None:
    """`vtap controller` again with the lab's state dir and ports (and `env` on top)."""
    state = target.state()
    of_port, api = state["of_port"], f"{state['api_host']}:{state['api_port']}"
    assert target.state_dir is not None
    log = target.state_dir / "bench-controller.log"
    with open(log, "ab") as out:
        target.restarted = subprocess.Popen(
            [*vtap_command(), "controller", "--of-port", str(of_port), "--api", api],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=target.env | (env or {}),
            start_new_session=True,
        )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def healthy(target: LabTarget) -> bool:
    try:
        return apiauth.get(f"{target.url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def all_connected(target: LabTarget) -> bool:
    try:
        topo = apiauth.get(f"{target.url}/topology", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return sum(s["connected"] for s in topo["switches"]) == len(target.plan.switches)
