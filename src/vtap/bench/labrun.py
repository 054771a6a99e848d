"""The control-plane benchmark on a running lab: throughput, apply latency, first copy at the
monitor, controller restart, and the `ovs-ofctl --bundle` ceiling on the same switches.

Everything goes through the REST API the way an operator's tooling would; switch tables are
read with `ovs-ofctl` (what the switches really hold, not what the controller believes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vtap.bench.workload import FIRST_PORT, mix, policy_specs
from vtap.compiler.tap import REFUSED_OVERLAP
from vtap.errors import VtapError
from vtap.lab.ctlproc import vtap_command
from vtap.lab.topo import LeafSpinePlan
from vtap.lab.traffic import Capture, FrameSpec, send
from vtap.openflow.pipeline import Owner, owner_of

LAB_LOCK = "/tmp/vtap-lab.lock"
Say = Callable[[str], None]


class BenchError(VtapError):
    """A benchmark could not finish: one line for the operator, as every vtap error."""


@dataclass
class LabTarget:
    """A controller to benchmark, and (when the benchmark owns the lab) where its state is."""

    api: str
    plan: LeafSpinePlan
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    restarted: subprocess.Popen | None = None  # a controller this benchmark started

    @property
    def url(self) -> str:
        return f"{self.api}/api/v1"

    def state(self) -> dict[str, Any]:
        if self.state_dir is None:
            return {}
        return json.loads((self.state_dir / "lab" / "state.json").read_text())

    def ovs_env(self) -> dict[str, str]:
        rundir = self.state().get("ovs_rundir")
        return self.env | ({"OVS_RUNDIR": rundir} if rundir else {})

    def ofctl(self, *args: str, proto: str = "OpenFlow13") -> str:
        return subprocess.run(
            ["ovs-ofctl", "-O", proto, *args],
            capture_output=True,
            text=True,
            env=self.ovs_env(),
            check=True,
        ).stdout


# ------------------------------------------------------------------ lab lifecycle


def vtap_cli(target_env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [*vtap_command(), *args],
        capture_output=True,
        text=True,
        env=target_env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"vtap {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@contextlib.contextmanager
def lab_lock(take: bool) -> Iterator[None]:
    """The machine's one-lab lock (tests hold it already and pass take=False)."""
    if not take:
        yield
        return
    import fcntl

    with open(LAB_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def own_lab(plan: LeafSpinePlan, state_dir: Path, say: Say) -> Iterator[LabTarget]:
    """`vtap lab up --detach` with its own state dir; always `vtap lab down` afterwards."""
    env = dict(os.environ) | {"VTAP_STATE_DIR": str(state_dir)}
    target = LabTarget("http://127.0.0.1:8080", plan, state_dir, env)
    say(f"lab up ({plan.spines}x{plan.leaves}, {plan.hosts_per_leaf} hosts per leaf)")
    saved = os.environ.get("VTAP_STATE_DIR")
    os.environ["VTAP_STATE_DIR"] = str(state_dir)  # traffic.Capture/send run `vtap lab exec`
    try:
        vtap_cli(
            env,
            "lab", "up", "--detach",
            "--spines", str(plan.spines),
            "--leaves", str(plan.leaves),
            "--hosts-per-leaf", str(plan.hosts_per_leaf),
        )  # fmt: skip
        yield target
    finally:
        if target.restarted is not None and target.restarted.poll() is None:
            target.restarted.terminate()
            try:
                target.restarted.wait(10)
            except subprocess.TimeoutExpired:
                target.restarted.kill()
                target.restarted.wait()
        say("lab down")
        try:
            vtap_cli(env, "lab", "down")
        finally:
            if saved is None:
                os.environ.pop("VTAP_STATE_DIR", None)
            else:
                os.environ["VTAP_STATE_DIR"] = saved


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise BenchError(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)
    return time.monotonic() - start


def _topology(target: LabTarget) -> dict[str, Any] | None:
    try:
        return httpx.get(f"{target.url}/topology", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


def fabric_ready(target: LabTarget) -> bool:
    topo = _topology(target)
    if topo is None:
        return False
    plan = target.plan
    connected = [s for s in topo["switches"] if s["connected"]]
    edge = [p for s in topo["switches"] for p in s["ports"] if p["role"] == "edge"]
    return (
        len(connected) == len(plan.switches)
        and len(topo["links"]) == plan.spines * plan.leaves
        and len(edge) == plan.host_count
    )


def hosts_known(target: LabTarget) -> int:
    topo = _topology(target)
    return 0 if topo is None else len(topo.get("hosts", []))


def prepare(target: LabTarget, say: Say, settle: float = 6.0) -> None:
    """Fabric discovered, every host learnt (one ping sweep from h1), switches settled."""
    if target.state_dir is not None:
        # `ovs-ofctl bundle` needs OpenFlow 1.4; the controller still negotiates 1.3. Done before
        # the fabric settles, since changing a bridge's versions reconnects its controller.
        for bridge in target.plan.bridges:
            subprocess.run(
                ["ovs-vsctl", "set", "bridge", bridge, "protocols=OpenFlow13,OpenFlow14"],
                env=target.ovs_env(),
                check=True,
                capture_output=True,
            )
        time.sleep(1.0)
    say("waiting for the fabric")
    wait_for(lambda: fabric_ready(target), 90, "fabric discovered", 0.25)
    plan = target.plan
    if hosts_known(target) < plan.host_count:
        say("learning hosts (ping sweep)")
        sweep = " ".join(h.ip for h in plan.hosts[1:])
        vtap_cli(
            target.env, "lab", "exec", plan.hosts[0].name, "--",
            "sh", "-c", f"for ip in {sweep}; do ping -c1 -W1 $ip >/dev/null; done; true",
        )  # fmt: skip
        wait_for(lambda: hosts_known(target) >= plan.host_count, 30, "all hosts learnt", 0.25)
    time.sleep(settle)  # TAP entries are synced once a switch has been connected tap_settle s


# ------------------------------------------------------------------ switch tables


def _is_tap_flow(line: str) -> bool:
    if "cookie=" not in line:
        return False
    value = line.split("cookie=", 1)[1].split(",", 1)[0].split()[0]
    owner = owner_of(int(value, 16))
    return owner is not None and owner[0] in (Owner.POLICY, Owner.TAP_SHARED)


def _normal(line: str) -> str:
    """A dump line without counters or durations (comparable across time, re-addable)."""
    keep = []
    for part in line.strip().split(", "):
        key = part.split("=", 1)[0].strip()
        if key in ("duration", "n_packets", "n_bytes", "idle_age", "hard_age"):
            continue
        keep.append(part.strip())
    return ", ".join(keep)


def snapshot(target: LabTarget) -> dict[str, dict[str, list[str]]]:
    """The TAP flows and all groups on every switch, normalised and sorted."""
    out: dict[str, dict[str, list[str]]] = {}
    for bridge in target.plan.bridges:
        flows = [
            _normal(line)
            for line in target.ofctl("dump-flows", bridge, "--no-stats").splitlines()
            if _is_tap_flow(line)
        ]
        groups = [
            line.strip()
            for line in target.ofctl("dump-groups", bridge).splitlines()
            if line.strip().startswith("group_id=")
        ]
        out[bridge] = {"flows": sorted(flows), "groups": sorted(groups)}
    return out


def counts(snap: dict[str, dict[str, list[str]]]) -> tuple[int, int]:
    return (
        sum(len(s["flows"]) for s in snap.values()),
        sum(len(s["groups"]) for s in snap.values()),
    )


def ofctl_bundle(target: LabTarget, snap: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """Re-add the same rules with one `ovs-ofctl bundle` per switch (groups and flows in one
    atomic transaction), all switches at once, timed; then remove them again."""
    with tempfile.TemporaryDirectory(prefix="vtap-bench-") as tmp:
        return _ofctl_bundle(target, snap, Path(tmp))


def _ofctl_bundle(
    target: LabTarget, snap: dict[str, dict[str, list[str]]], workdir: Path
) -> dict[str, Any]:
    argv: list[list[str]] = []
    for bridge, rules in snap.items():
        if not rules["flows"] and not rules["groups"]:
            continue
        path = workdir / f"{bridge}.txt"
        lines = [f"group add {g}" for g in rules["groups"]]
        lines += [f"flow add {f}" for f in rules["flows"]]
        path.write_text("\n".join(lines) + "\n")
        argv.append(["ovs-ofctl", "-O", "OpenFlow14", "bundle", bridge, str(path)])
    env = target.ovs_env()
    method = "ovs-ofctl -O OpenFlow14 bundle (groups + flows, one transaction per switch)"
    probe = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow14", "show", next(iter(snap))], env=env, capture_output=True
    )
    if probe.returncode != 0:  # a bridge without OpenFlow 1.4 (a lab this command did not start)
        method = "ovs-ofctl -O OpenFlow13 add-groups + add-flows (bridge lacks OpenFlow 1.4)"
        argv = []
        for bridge, rules in snap.items():
            if not rules["flows"] and not rules["groups"]:
                continue
            groups, flows = workdir / f"{bridge}.groups", workdir / f"{bridge}.flows"
            groups.write_text("".join(g + "\n" for g in rules["groups"]))
            flows.write_text("".join(f + "\n" for f in rules["flows"]))
            of13 = "ovs-ofctl -O OpenFlow13"
            argv.append(
                [
                    "sh",
                    "-c",
                    f"{of13} add-groups {bridge} {groups} && {of13} add-flows {bridge} {flows}",
                ]
            )
    start = time.perf_counter()
    procs = [subprocess.Popen(a, env=env, stderr=subprocess.PIPE, text=True) for a in argv]
    errors = [p.communicate()[1].strip() for p in procs if p.wait() != 0]
    parallel = time.perf_counter() - start
    if errors:
        raise BenchError(f"ovs-ofctl bundle failed: {errors[0]}")
    added = counts(snapshot(target))
    _remove_tap_rules(target)
    # Sequential, one switch after another: what a single-threaded installer reaches.
    start = time.perf_counter()
    for a in argv:
        subprocess.run(a, env=env, check=True, capture_output=True)
    sequential = time.perf_counter() - start
    _remove_tap_rules(target)
    flows, groups = counts(snap)
    return {
        "method": method,
        "flows": flows,
        "groups": groups,
        "verified_added": {"flows": added[0], "groups": added[1]},
        "switches": len(argv),
        "parallel_s": round(parallel, 4),
        "sequential_s": round(sequential, 4),
        "rate_parallel": round((flows + groups) / parallel, 1),
        "rate_sequential": round((flows + groups) / sequential, 1),
    }


def _remove_tap_rules(target: LabTarget) -> None:
    for bridge in target.plan.bridges:
        for owner in (Owner.POLICY, Owner.TAP_SHARED):
            value = (0x5654 << 48) | (int(owner) << 40)
            target.ofctl("del-flows", bridge, f"cookie=0x{value:x}/0xffffff0000000000")
        target.ofctl("del-groups", bridge)


# ------------------------------------------------------------------ REST


async def _create_all(
    url: str, specs: list[dict[str, Any]], concurrency: int, tick: Callable[[], None]
) -> tuple[list[dict[str, Any]], list[str]]:
    sem = asyncio.Semaphore(concurrency)
    created: list[dict[str, Any]] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(spec: dict[str, Any]) -> None:
            async with sem:
                try:
                    resp = await client.post("/policies", json=spec)
                except httpx.HTTPError as exc:  # the controller dropped the connection
                    errors.append(f"{type(exc).__name__}: {exc}")
                    tick()
                    return
            if resp.status_code == 201:
                created.append(resp.json())
            else:
                errors.append(f"{resp.status_code} {resp.text[:200]}")
            tick()

        await asyncio.gather(*(one(s) for s in specs))
    return created, errors


def _create_bulk(url: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        resp = httpx.post(f"{url}/policies/bulk", json={"policies": specs}, timeout=600)
    except httpx.HTTPError as exc:
        what = f"bulk create of {len(specs)} policies"
        raise BenchError(f"{what}: {type(exc).__name__}: {exc}") from exc
    if resp.status_code != 201:
        raise BenchError(f"bulk create: {resp.status_code} {resp.text[:200]}")
    return resp.json()


REFUSED = "refused"  # pending for good: the compiler refused it (see compiler/overlap.py)


def _status(policy: dict[str, Any]) -> str:
    if policy["status"] == "pending" and policy["status_reason"].startswith(REFUSED_OVERLAP):
        return REFUSED
    return policy["status"]


def statuses(target: LabTarget) -> dict[int, str]:
    """Each policy's status, with `refused` for a policy the compiler refused at a switch port
    (combination budget exhausted): that one stays pending until policies change."""
    resp = httpx.get(f"{target.url}/policies", timeout=60)
    resp.raise_for_status()
    return {p["id"]: _status(p) for p in resp.json()}


def wait_all_active(
    target: LabTarget,
    ids: set[int],
    timeout: float,
    tick: Callable[[int], None] | None = None,
    interval: float = 0.1,
) -> dict[str, int]:
    """Until every policy is active or refused; how many are in each status then."""
    start = time.monotonic()
    while True:
        try:
            current = statuses(target)
        except httpx.HTTPError:
            current = {}
        mine = {i: current.get(i, "missing") for i in ids}
        active = sum(s == "active" for s in mine.values())
        refused = sum(s == REFUSED for s in mine.values())
        if tick is not None:
            tick(active + refused)
        if active + refused == len(ids):  # settled: nothing left to wait for
            return {"active": active} | ({REFUSED: refused} if refused else {})
        if time.monotonic() - start > timeout:
            out: dict[str, int] = {}
            for s in mine.values():
                out[s] = out.get(s, 0) + 1
            return out
        time.sleep(interval)


def delete_everything(target: LabTarget) -> float:
    """Delete every policy (bulk, as `vtap policy apply` of an empty file would); returns
    seconds until no TAP rule is left on any switch."""
    start = time.perf_counter()
    ids = list(statuses(target))
    for first in range(0, len(ids), 10_000):  # the API's largest batch
        chunk = ids[first : first + 10_000]
        resp = httpx.post(f"{target.url}/policies/bulk-delete", json={"ids": chunk}, timeout=600)
        if resp.status_code != 204:
            raise BenchError(f"bulk delete: {resp.status_code} {resp.text[:200]}")
    wait_for(lambda: counts(snapshot(target)) == (0, 0), 120, "TAP rules removed", 0.2)
    return time.perf_counter() - start


# ------------------------------------------------------------------ measurements


def throughput(
    target: LabTarget,
    n: int,
    concurrency: int,
    progress: Callable[[int, int], None],
    restart: bool = False,
    timeout: float = 900,
    via: str = "posts",
) -> dict[str, Any]:
    """Create n policies at once — one POST each with `concurrency` in flight (`posts`), or one
    POST /policies/bulk (`bulk`) — and time until all are active; flow-mods/s; then
    (optionally) a controller restart; then the ofctl ceiling."""
    specs = policy_specs(target.plan, n, prefix=f"tp{n}{via[0]}")
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress(done, 2 * n)

    start = time.perf_counter()
    if via == "bulk":
        created = _create_bulk(target.url, specs)
        progress(n, 2 * n)
    else:
        created, errors = asyncio.run(_create_all(target.url, specs, concurrency, tick))
        if errors:
            raise BenchError(f"{len(errors)} creates failed, e.g. {errors[0]}")
    posted = time.perf_counter() - start
    final = wait_all_active(
        target,
        {p["id"] for p in created},
        timeout,
        lambda a: progress(n + a, 2 * n),
        interval=min(1.0, max(0.1, n / 10_000)),  # a GET of 10,000 policies is not free
    )
    to_active = time.perf_counter() - start
    snap = snapshot(target)
    flows, groups = counts(snap)
    result: dict[str, Any] = {
        "policies": n,
        "via": via,
        "mix": mix(specs),
        "concurrency": concurrency if via == "posts" else 1,
        "all_active": final.get("active", 0) == n,
        "settled": final.get("active", 0) + final.get(REFUSED, 0) == n,
        "refused": final.get(REFUSED, 0),
        "final_status": final,
        "posted_s": round(posted, 3),
        "to_active_s": round(to_active, 3),
        "policies_per_s": round(n / to_active, 1),
        "flows": flows,
        "groups": groups,
        "flow_mods_per_s": round((flows + groups) / to_active, 1),
    }
    if restart:
        result["restart"] = controller_restart(target, snap, {p["id"] for p in created})
    result["delete_s"] = round(delete_everything(target), 3)
    ceiling = ofctl_bundle(target, snap)
    result["ofctl_bundle"] = ceiling
    result["ratio_vs_ofctl_bundle"] = round(result["flow_mods_per_s"] / ceiling["rate_parallel"], 4)
    return result


def controller_restart(
    target: LabTarget, before: dict[str, dict[str, list[str]]], ids: set[int]
) -> dict[str, Any]:
    """Kill the controller (SIGKILL, like a crash), start `vtap controller` again with the same
    state dir and ports; time until every switch rejoined and every policy is active again."""
    state = target.state()
    ref = state.get("controller")
    if target.restarted is not None and target.restarted.poll() is None:
        pid = target.restarted.pid
    elif ref:
        pid = ref["pid"]
    else:
        raise BenchError("no controller pid in the lab's state.json")
    of_port, api = state["of_port"], f"{state['api_host']}:{state['api_port']}"
    start = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10, "controller gone")
    assert target.state_dir is not None
    log = target.state_dir / "bench-controller.log"
    with open(log, "ab") as out:
        target.restarted = subprocess.Popen(
            [*vtap_command(), "controller", "--of-port", str(of_port), "--api", api],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=target.env,
            start_new_session=True,
        )
    api_up = wait_for(lambda: _healthy(target), 60, "controller API after restart")
    switches = wait_for(lambda: _all_connected(target), 60, "switches rejoined")
    final = wait_all_active(target, ids, 300)
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
        "policies": len(ids),
        "all_active": final.get("active", 0) == len(ids),
        "refused": final.get(REFUSED, 0),
        "api_up_s": round(api_up, 3),
        "switches_rejoined_s": round(api_up + switches, 3),
        "all_active_s": round(active, 3),
        "tables_unchanged": not changed,
        "changed_switches": changed,
        "diff_sample": dict(list(diff.items())[:2]),
        "flows": counts(after)[0],
        "groups": counts(after)[1],
    }


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _healthy(target: LabTarget) -> bool:
    try:
        return httpx.get(f"{target.url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _all_connected(target: LabTarget) -> bool:
    topo = _topology(target)
    return topo is not None and sum(s["connected"] for s in topo["switches"]) == len(
        target.plan.switches
    )


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


def apply_latency(
    target: LabTarget, count: int, progress: Callable[[int, int], None]
) -> dict[str, Any]:
    """One policy at a time: POST → 201 (the API answers after the install round, i.e. after
    the switches' barriers) and → `active` as GET reports it."""
    specs = policy_specs(target.plan, count, prefix="lat")
    response_ms: list[float] = []
    active_ms: list[float] = []
    not_active_at_response = 0
    with httpx.Client(base_url=target.url, timeout=60) as client:
        for i, spec in enumerate(specs):
            start = time.perf_counter()
            resp = client.post("/policies", json=spec)
            answered = time.perf_counter()
            if resp.status_code != 201:
                raise BenchError(f"create failed: {resp.status_code} {resp.text[:200]}")
            policy = resp.json()
            while policy["status"] != "active":
                if time.perf_counter() - start > 60:
                    raise BenchError(f"policy {policy['id']} not active: {policy}")
                time.sleep(0.005)
                policy = client.get(f"/policies/{policy['id']}").json()
            if resp.json()["status"] != "active":
                not_active_at_response += 1
            active_ms.append((time.perf_counter() - start) * 1000)
            response_ms.append((answered - start) * 1000)
            progress(i + 1, count)
    delete_everything(target)
    return {
        "policies": count,
        "response_ms": percentiles(response_ms),
        "active_ms": percentiles(active_ms),
        "not_active_at_response": not_active_at_response,
        "samples_active_ms": [round(v, 3) for v in active_ms],
        "samples_response_ms": [round(v, 3) for v in response_ms],
    }


def first_copy(
    target: LabTarget, count: int, progress: Callable[[int, int], None], workdir: Path
) -> dict[str, Any]:
    """While a source streams matching UDP frames to its destination, create the policy; the
    time from the POST to the first copy tcpdump sees at the monitor (pcap timestamps)."""
    plan = target.plan
    hosts = plan.hosts
    samples: list[dict[str, Any]] = []
    for i in range(count):
        src = hosts[(2 * i) % len(hosts)]
        dst = hosts[(2 * i + plan.hosts_per_leaf + 1) % len(hosts)]  # another leaf if any
        monitor = next(h for h in reversed(hosts) if h.name not in (src.name, dst.name))
        port = FIRST_PORT + 60000 % (65535 - FIRST_PORT) + i
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
            resp = httpx.post(f"{target.url}/policies", json=policy, timeout=60)
            answered = time.time()
            if resp.status_code != 201:
                raise BenchError(f"create failed: {resp.status_code} {resp.text[:200]}")
            sender.join(60)
            mon = _timestamps(cm, spec.run)
            dstt = _timestamps(cd, spec.run)
        httpx.delete(f"{target.url}/policies/{resp.json()['id']}", timeout=60)
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


def python_version() -> str:
    return sys.version.split()[0]
