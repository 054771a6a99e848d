"""Faults injected on the lab while TAP policies copy, and what survived (`vtap bench faults`).

Each scenario injects one fault the way it happens in an operator's world (SIGKILL, SIGSTOP,
`ovs-vsctl`, `ip link`), then judges the outcome through the REST API, the switches' own tables
(`ovs-ofctl`) and packets captured at the hosts. Each returns its figures and `ok`: the goal of
the fault met. The integration test runs them at small sizes and asserts `ok`; the command runs
them at the issue's sizes and writes the figures (bench/faultreport.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from vtap import apiauth
from vtap.bench.cpmeasure import (
    all_connected,
    create_bulk,
    delete_everything,
    healthy,
    kill_controller,
    start_controller,
    summary,
    wait_settled,
)
from vtap.bench.labrun import BenchError, LabTarget, snapshot, wait_for
from vtap.bench.workload import overlap_specs
from vtap.lab.traffic import Capture, FrameSpec, by_payload, send
from vtap.openflow.pipeline import Owner, owner_of

# ------------------------------------------------------------------ helpers


def alert_count(target: LabTarget, kind: str) -> int:
    resp = apiauth.get(f"{target.url}/alerts", params={"limit": 1}, timeout=10)
    resp.raise_for_status()
    return int(resp.json()["counts"].get(kind, 0))


def policies(target: LabTarget) -> list[dict[str, Any]]:
    resp = apiauth.get(f"{target.url}/policies", timeout=300)
    resp.raise_for_status()
    return resp.json()


def create(target: LabTarget, spec: dict[str, Any]) -> dict[str, Any]:
    resp = apiauth.post(f"{target.url}/policies", json=spec, timeout=60)
    if resp.status_code != 201:
        raise BenchError(f"create {spec['name']}: {resp.status_code} {resp.text[:200]}")
    return resp.json()


def status_of(target: LabTarget, pid: int) -> dict[str, Any]:
    resp = apiauth.get(f"{target.url}/policies/{pid}", timeout=10)
    resp.raise_for_status()
    return resp.json()


HEALTH_TIMEOUT = 5.0  # a liveness bound for a busy machine, not a speed target


def probe_health(target: LabTarget, into: list[float | None]) -> None:
    """One `/health` probe: its time in ms, or None when it got no answer in HEALTH_TIMEOUT."""
    started = time.perf_counter()
    try:
        ok = apiauth.get(f"{target.url}/health", timeout=HEALTH_TIMEOUT).status_code == 200
    except httpx.HTTPError:
        ok = False
    into.append((time.perf_counter() - started) * 1000 if ok else None)


def health_figures(probes: list[float | None]) -> dict[str, Any]:
    answered = [ms for ms in probes if ms is not None]
    return {
        "health_probes": len(probes),
        "health_unanswered": len(probes) - len(answered),
        "health_max_ms": round(max(answered, default=0.0), 1),
    }


def restart_controller(target: LabTarget, env: dict[str, str] | None = None) -> None:
    """SIGKILL the controller, start it again (with `env`), wait until every switch rejoined."""
    kill_controller(target)
    start_controller(target, env)
    wait_for(lambda: healthy(target), 60, "controller API after restart")
    wait_for(lambda: all_connected(target), 60, "switches rejoined")


def vswitchd_pid(target: LabTarget) -> int:
    rundir = target.state().get("ovs_rundir")
    if not rundir:
        raise BenchError("the lab runs on an Open vSwitch it did not start: not faulted")
    return int(Path(rundir, "ovs-vswitchd.pid").read_text().strip())


def ownerless(target: LabTarget, ids: set[int]) -> list[str]:
    """Entries on the switches owned by a policy that does not exist."""
    found = []
    for bridge in target.plan.bridges:
        for line in target.ofctl("dump-flows", bridge, "--no-stats").splitlines():
            if "cookie=" not in line:
                continue
            value = int(line.split("cookie=", 1)[1].split(",", 1)[0].split()[0], 16)
            owner = owner_of(value)
            if owner is not None and owner[0] is Owner.POLICY and owner[1] not in ids:
                found.append(f"{bridge}: {line.strip()[:160]}")
    return found


class Stream:
    """Numbered UDP frames from one host to another, captured at the destination and at the
    monitor: which were forwarded, which copied, and how often."""

    def __init__(
        self,
        target: LabTarget,
        work: Path,
        src: int,
        dst: int,
        monitor: int,
        dport: int,
        count: int,
    ) -> None:
        hosts = target.plan.hosts
        self.src, self.dst, self.monitor = hosts[src - 1], hosts[dst - 1], hosts[monitor - 1]
        self.frame = FrameSpec(
            self.src.mac, self.dst.mac, self.src.ip, self.dst.ip, dport=dport, count=count
        )
        self.work = work
        self.forwarded: dict[int, int] = {}
        self.copied: dict[int, int] = {}
        self.sent_s = 0.0

    def warm_up(self) -> None:
        """Three frames first, so the forwarding path exists before anything is counted."""
        send(
            self.src.name,
            FrameSpec(**{**self.frame.__dict__, "count": 3, "run": "00000000"}),
            inter=0.05,
        )
        time.sleep(0.5)

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        tag = self.frame.run
        caps = {
            "dst": Capture(self.dst.name, self.work / f"{tag}-dst.pcap"),
            "monitor": Capture(self.monitor.name, self.work / f"{tag}-mon.pcap"),
        }
        for cap in caps.values():
            cap.__enter__()
        try:
            yield
        finally:
            for role, cap in caps.items():
                seen = by_payload(cap.frames(), self.frame.run)
                counted = {_index(k): len(v) for k, v in seen.items()}
                if role == "dst":
                    self.forwarded = counted
                else:
                    self.copied = counted

    def send(self, inter: float) -> None:
        start = time.monotonic()
        send(self.src.name, self.frame, inter=inter)
        self.sent_s = time.monotonic() - start

    def once(self) -> bool:
        """Every frame forwarded once and copied once."""
        want = set(range(self.frame.count))
        return (
            set(self.forwarded) == want
            and set(self.copied) == want
            and all(n == 1 for n in self.copied.values())
        )

    def figures(self) -> dict[str, Any]:
        return {
            "sent": self.frame.count,
            "forwarded": len(self.forwarded),
            "copied": len(self.copied),
            "copied_twice_or_more": sum(n > 1 for n in self.copied.values()),
        }


def _index(payload: bytes) -> int:
    return int(payload.decode().rsplit(":", 1)[1])


def copied_once(
    target: LabTarget, work: Path, src: int, dst: int, monitor: int, dport: int, count: int = 200
) -> dict[str, Any]:
    """A short stream under an active policy: forwarded once and copied once, every frame."""
    stream = Stream(target, work, src, dst, monitor, dport, count)
    stream.warm_up()
    with stream.capturing():
        stream.send(0.002)
    return {**stream.figures(), "ok": stream.once()}


def udp_policy(name: str, src: int, dst: int, monitor: int, dport: int) -> dict[str, Any]:
    return {
        "name": name,
        "src_ip": f"10.0.0.{src}",
        "dst_ip": f"10.0.0.{dst}",
        "monitor_ip": f"10.0.0.{monitor}",
        "ip_proto": 17,
        "dst_port": dport,
    }


def wait_active(target: LabTarget, pid: int, timeout: float) -> float:
    return wait_for(
        lambda: status_of(target, pid)["status"] == "active", timeout, f"policy {pid} active", 0.05
    )


# ------------------------------------------------------------------ the controller dies


def killed_mid_bulk(
    target: LabTarget, n: int, kill_during: int, delay: float, chunk: int = 1000,
    prefix: str = "kill",
) -> dict[str, Any]:  # fmt: skip
    """N policies posted in bulk requests of `chunk`, one after the other; the controller is
    killed with SIGKILL `delay` seconds after request number `kill_during` went out, and
    started again. Every policy that got a 201 must be there and `active` (or `error` with a
    reason); the request in flight must have created all of its policies or none; no switch
    may hold an entry of a policy that does not exist, and once everything is deleted no TAP
    entry may be left anywhere."""
    specs = overlap_specs(target.plan, n, prefix=prefix)
    chunks = [specs[i : i + chunk] for i in range(0, n, chunk)]
    answered: list[int] = []
    unanswered: list[int] = []
    killed = threading.Event()
    failed: list[BaseException] = []

    def kill_later() -> None:
        time.sleep(delay)
        try:
            kill_controller(target)
        except BaseException as exc:  # reported by the caller's thread
            failed.append(exc)
        killed.set()

    def post_all() -> None:
        for i, part in enumerate(chunks):
            if i == kill_during:
                threading.Thread(target=kill_later, daemon=True).start()
            try:
                resp = apiauth.post(
                    f"{target.url}/policies/bulk", json={"policies": part}, timeout=600
                )
            except httpx.HTTPError:
                unanswered.append(i)
                return
            if resp.status_code != 201:
                unanswered.append(i)
                return
            answered.append(i)

    poster = threading.Thread(target=post_all, daemon=True)
    poster.start()
    if not killed.wait(600) or failed:
        raise BenchError(f"the controller was not killed: {failed[:1]}")
    started = time.perf_counter()
    poster.join(60)
    start_controller(target)
    wait_for(lambda: healthy(target), 60, "controller API after restart")
    api_s = time.perf_counter() - started
    wait_for(lambda: all_connected(target), 60, "switches rejoined")
    final = wait_settled(target, 600)
    settled_s = time.perf_counter() - started
    present = {p["name"]: p for p in policies(target)}
    acked = [s["name"] for i in answered for s in chunks[i]]
    missing = [name for name in acked if name not in present]
    unsettled = [
        name
        for name in acked
        if name in present
        and not (
            present[name]["status"] == "active"
            or (present[name]["status"] == "error" and present[name]["status_reason"])
        )
    ]
    in_flight = None
    hit = unanswered[0] + 1 if unanswered else None  # the request the kill cut short
    if unanswered:
        names = [s["name"] for s in chunks[unanswered[0]]]
        in_flight = sum(name in present for name in names)
    later = [
        s["name"]
        for i, part in enumerate(chunks)
        if i not in answered and i not in unanswered[:1]
        for s in part
    ]
    sneaked = sum(name in present for name in later)
    strays = ownerless(target, {p["id"] for p in present.values()})
    try:
        delete_everything(target)
        leftovers_after_delete = False
    except BenchError:
        leftovers_after_delete = True
    in_flight_size = len(chunks[unanswered[0]]) if unanswered else 0
    all_or_nothing = in_flight is None or in_flight in (0, in_flight_size)
    return {
        "policies": n,
        "requests_of": chunk,
        "killed_during_request": kill_during + 1,
        "killed_after_s": delay,
        "answered_201": len(acked),
        "requests": len(chunks),
        "request_in_flight": hit,
        "request_in_flight_created": in_flight,
        "api_back_s": round(api_s, 2),
        "settled_s": round(settled_s, 2),
        "final_status": final,
        "acked_missing": len(missing),
        "acked_not_active_or_error": len(unsettled),
        "unsent_created": sneaked,
        "ownerless_entries": len(strays),
        "ownerless_sample": strays[:3],
        "tap_entries_left_after_delete": leftovers_after_delete,
        "ok": not missing
        and not unsettled
        and all_or_nothing
        and not sneaked
        and not strays
        and not leftovers_after_delete,
    }


# ------------------------------------------------------------------ a switch stops answering


def barrier_timeout(target: LabTarget, work: Path, request_timeout: float = 2.0) -> dict[str, Any]:
    """ovs-vswitchd is stopped (SIGSTOP) for longer than the controller's request timeout but
    shorter than its echo timeout, while a policy is created: the bundle gets no answer in
    time, yet the switches live. No session may be dropped, the API must keep answering, and
    once the switches run again the policy must become active and copy exactly once."""
    restart_controller(target, {"VTAP_REQUEST_TIMEOUT": str(request_timeout)})
    # a policy through the same switches first: they settled, so the next one is sent at once
    wait_active(target, create(target, udp_policy("settled", 1, 3, 16, 5070))["id"], 60)
    lost_before = alert_count(target, "switch_lost")
    pid = vswitchd_pid(target)
    probes: list[float | None] = []
    created: dict[str, Any] = {}
    stopped_for = request_timeout + 1.5
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        poster = threading.Thread(
            target=lambda: created.update(create(target, udp_policy("stalled", 1, 3, 16, 5071))),
            daemon=True,
        )
        poster.start()
        while time.monotonic() - stopped < stopped_for:
            probe_health(target, probes)
            time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    poster.join(60)
    if not created:
        raise BenchError("the policy create did not answer")
    active_s = wait_active(target, created["id"], 60)
    stream = copied_once(target, work, 1, 3, 16, 5071)
    lost = alert_count(target, "switch_lost") - lost_before
    unanswered = apiauth.get(f"{target.url}/health", timeout=10).json()["install"][
        "unanswered_bundles"
    ]
    restart_controller(target)  # the usual request timeout again
    wait_settled(target, 120)
    delete_everything(target)
    return {
        "request_timeout_s": request_timeout,
        "switches_stopped_s": round(resumed - stopped, 2),
        "status_at_201": created.get("status"),
        "active_after_resume_s": round(active_s, 2),
        **health_figures(probes),
        "bundles_unanswered_in_time": unanswered,
        "sessions_lost": lost,
        "stream": stream,
        "ok": unanswered > 0 and lost == 0 and stream["ok"] and None not in probes,
    }


# ------------------------------------------------------------------ the switches crash


def switch_restart(
    target: LabTarget, work: Path, count: int = 1500, inter: float = 0.01, crash_after: float = 3.0
) -> dict[str, Any]:
    """A stream h1 → h2 copied to h3; ovs-vswitchd is killed (SIGKILL: every switch loses its
    tables) and started again while it runs. Goal: no frame sent after the crash is forwarded
    without its copy, none is copied twice, and copies resume no later than forwarding."""
    policy = create(target, udp_policy("restart", 1, 2, 3, 5081))
    wait_active(target, policy["id"], 30)
    stream = Stream(target, work, 1, 2, 3, 5081, count)
    stream.warm_up()
    crash: dict[str, Any] = {}

    def crash_later() -> None:
        time.sleep(crash_after)
        from vtap.lab.ops import crash_switches
        from vtap.lab.state import StateStore

        assert target.state_dir is not None
        start = time.monotonic()
        crash["message"] = crash_switches(StateStore(target.state_dir))
        crash["restart_s"] = round(time.monotonic() - start, 2)

    crasher = threading.Thread(target=crash_later, daemon=True)
    with stream.capturing():
        crasher.start()
        stream.send(inter)
        crasher.join(60)
    per_frame = stream.sent_s / count
    forwarded, copied = sorted(stream.forwarded), set(stream.copied)
    gap = max(((b - a, a, b) for a, b in itertools.pairwise(forwarded)), default=(0, 0, 0))
    _, last_before, first_after = gap
    after = [i for i in forwarded if i >= first_after]
    uncopied_after = [i for i in after if i not in copied]
    in_flight = [i for i in forwarded if i <= last_before and i not in copied]
    copies_after = sorted(i for i in copied if i > last_before)
    first_copy_after = copies_after[0] if copies_after else None
    delete_everything(target)
    return {
        **stream.figures(),
        "rate_pps": round(1 / per_frame, 1) if per_frame else None,
        "crash": crash,
        "forwarding_resumed_after_s": round((first_after - last_before) * per_frame, 2),
        "copies_resumed_after_s": None
        if first_copy_after is None
        else round((first_copy_after - last_before) * per_frame, 2),
        "forwarded_after_restart": len(after),
        "forwarded_without_copy_after_restart": len(uncopied_after),
        "lost_in_flight_at_the_crash": len(in_flight),
        "ok": not uncopied_after
        and stream.figures()["copied_twice_or_more"] == 0
        and first_copy_after is not None
        and first_copy_after <= first_after,
    }


# ------------------------------------------------------------------ a switch's table is full


def table_full(
    target: LabTarget, limit: int = 20, over: int = 10, bridge: str = "leaf1"
) -> dict[str, Any]:
    """The classification tables of one leaf are limited to `limit` entries (OVS flow_limit,
    overflow_policy=refuse) and `limit + over` policies of one shape are created there, with a
    few others elsewhere. Only the policies that did not fit may go `error`, with the switch's
    text; once `over` policies are deleted, the others must become active by themselves."""
    from vtap.openflow.pipeline import TABLE_SHAPE_FIRST, TABLE_SHAPE_LAST

    tables = [f"flow_tables:{t}=@ft" for t in range(TABLE_SHAPE_FIRST, TABLE_SHAPE_LAST + 1)]
    _vsctl(
        target,
        "--",
        "--id=@ft",
        "create",
        "Flow_Table",
        f"flow_limit={limit}",
        "overflow_policy=refuse",
        "--",
        "set",
        "Bridge",
        bridge,
        *tables,
    )
    try:
        crowd = [udp_policy(f"full{i}", 1, 2, 3, 6000 + i) for i in range(limit + over)]
        others = [udp_policy(f"spare{i}", 5, 7, 9, 6500 + i) for i in range(5)]
        create_bulk(target, crowd + others)
        final = wait_settled(target, 120)
        listed = {p["name"]: p for p in policies(target)}
        errors = [p for p in listed.values() if p["status"] == "error"]
        reasons = sorted({p["status_reason"] for p in errors})
        others_active = all(listed[s["name"]]["status"] == "active" for s in others)
        active_crowd = [listed[s["name"]] for s in crowd if listed[s["name"]]["status"] == "active"]
        freed = active_crowd[: len(errors)]
        start = time.perf_counter()
        resp = apiauth.post(
            f"{target.url}/policies/bulk-delete", json={"ids": [p["id"] for p in freed]}, timeout=60
        )
        if resp.status_code != 204:
            raise BenchError(f"bulk delete: {resp.status_code} {resp.text[:200]}")
        wait_for(lambda: summary(target)["error"] == 0, 60, "refused policies active", 0.1)
        recovered_s = time.perf_counter() - start
        after = summary(target)
    finally:
        _vsctl(target, "clear", "Bridge", bridge, "flow_tables")
    delete_everything(target)
    return {
        "bridge": bridge,
        "flow_limit": limit,
        "created": len(crowd) + len(others),
        "status_when_full": final,
        "error_reasons": reasons,
        "others_active": others_active,
        "freed": len(freed),
        "active_after_room_s": round(recovered_s, 2),
        "status_after": after,
        "ok": bool(errors)
        and len(errors) <= over
        and others_active
        and all(r.endswith("TABLE_FULL") for r in reasons)
        and after["active"] == after["total"],
    }


def _vsctl(target: LabTarget, *args: str) -> None:
    import subprocess

    subprocess.run(["ovs-vsctl", *args], env=target.ovs_env(), check=True, capture_output=True)


# ------------------------------------------------------------------ a link flaps


def link_flap(
    target: LabTarget,
    work: Path,
    n: int = 1000,
    period: float = 0.2,
    duration: float = 60.0,
    spine: str = "spine1",
    leaf: str = "leaf1",
) -> dict[str, Any]:
    """N policies installed; one fabric link changes state every `period` seconds for
    `duration`. No switch may be declared dead, the API must keep answering, and afterwards
    the tables must equal what they were and a stream must be copied exactly once."""
    from vtap.lab.ops import set_link
    from vtap.lab.state import StateStore

    assert target.state_dir is not None
    store = StateStore(target.state_dir)
    create_bulk(target, overlap_specs(target.plan, n, prefix="flap"))
    watch = create(target, udp_policy("flapwatch", 1, 3, 16, 5091))
    final = wait_settled(target, 300)
    if final["active"] != final["total"]:
        raise BenchError(f"policies not active before the flap: {final}")
    before = snapshot(target)
    lost_before = alert_count(target, "switch_lost")
    since = time.time()
    flips = 0
    probes: list[float | None] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            probe_health(target, probes)
            stop.wait(0.5)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    start = time.monotonic()
    try:
        up = True
        while time.monotonic() - start < duration:
            up = not up
            set_link(store, spine, leaf, up)
            flips += 1
            time.sleep(max(0.0, start + flips * period - time.monotonic()))
    finally:
        set_link(store, spine, leaf, True)
        stop.set()
        prober.join(5)
    back = time.monotonic()
    final = wait_settled(target, 300)
    try:
        tables_s = wait_for(lambda: snapshot(target) == before, 60, "tables as before", 0.5)
        tables_equal = True
    except BenchError:
        tables_s, tables_equal = None, False
    active_s = wait_active(target, watch["id"], 60)
    settled_s = time.monotonic() - back
    from vtap.bench.cpmeasure import loop_lag

    lag = loop_lag(target, since)
    stream = copied_once(target, work, 1, 3, 16, 5091)
    lost = alert_count(target, "switch_lost") - lost_before
    delete_everything(target)
    return {
        "policies": n + 1,
        "link": f"{spine}-{leaf}",
        "period_s": period,
        "duration_s": duration,
        "state_changes": flips,
        "switches_lost": lost,
        **health_figures(probes),
        "loop_lag": lag,
        "all_active_after": final["active"] == final["total"],
        "settled_after_s": round(settled_s, 2),
        "tables_as_before": tables_equal,
        "tables_as_before_after_s": None if tables_s is None else round(tables_s, 2),
        "watched_policy_active_after_s": round(active_s, 2),
        "stream": stream,
        "ok": lost == 0
        and tables_equal
        and stream["ok"]
        and final["active"] == final["total"]
        and None not in probes,
    }
