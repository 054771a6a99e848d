"""`vtap bench dataplane`, normal-OVS role: OVS userspace datapath, veth ports, testpmd endpoints.

Testbed (one bridge, three namespaces, each with one veth whose other end is a bridge port):

    sender (vbd-snd) --> br-vbench --> receiver (vbd-rcv)
                               \\--> monitor  (vbd-mon)   (copies, when a TAP is active)

The sender is DPDK testpmd in txonly mode on an AF_PACKET vdev bound to the namespace's veth
(`--no-huge`); receiver and monitor are counted by their veths' kernel rx counters (no process
can miss a packet the kernel counted). Forwarding is always our controller's: the bridge is
connected to `vtap controller`, which routes the sender's UDP flow reactively, so all three
methods share the same forwarding rules and differ only in how the copy is made:

- `none`: no TAP;
- `mirror`: an OVSDB Mirror (select_src_port=sender, output_port=monitor), then
  `ovs-appctl revalidator/purge` (platform notes: the datapath flow is stale otherwise);
- `vtap`: a policy created through the controller's REST API (src_ip=sender, monitor_ip=monitor);
  the rules are the ones our compiler produces and our controller installs.

The *10,000-policy phase* (`_policies_phase`, on testbed 1 of both datapaths, at 64 and 1518 B)
adds `none-10k` and `vtap-10k`: the same as `none` and `vtap` with a background set of 10,000
policies installed that can never match the sender's flow (`background_specs`), created in one
bulk request and proven on the bridge by counting its TAP flow entries.

Before a method is measured its copy path is proven: the datapath flow of the sender's port
outputs to both receiver and monitor (`dpctl/dump-flows`), and the monitor receives packets;
a method whose monitor receives nothing fails the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from vtap.domain.tokens import Role
from vtap.errors import VtapError
from vtap.lab.ovs import OvsEnv, OvsService
from vtap.openflow.pipeline import Owner, owner_of, owns_group
from vtap.store.tokens import SqliteTokenRepository

SIZES = (64, 128, 256, 512, 1024, 1280, 1518)
METHODS = ("none", "mirror", "vtap")
# The 10,000-policy phase: its methods, its sizes, the labels of its samples.
BACKGROUND_METHODS = ("none-10k", "vtap-10k")  # `none` / `vtap` with the background set
POLICY_METHODS = ("none", "none-10k", "mirror", "vtap", "vtap-10k")
ALL_METHODS = (*METHODS, *BACKGROUND_METHODS)
NO_COPY = ("none", "none-10k")  # methods under which the monitor must receive nothing
POLICY_SIZES = (64, 1518)
POLICIES = {"ovs-veth": "ovs-veth-10k", "ovs-dpdk": "ovs-dpdk-10k"}  # Sample.datapath
BACKGROUND_POLICIES = 10_000
MAX_BULK = 100_000  # the REST API's largest bulk request
# testpmd's txonly flow: UDP from port 9 to port 9 (its default; the proofs show
# `udp(src=9,dst=9)`). No background policy may name this UDP port.
TEST_FLOW_UDP_PORT = 9
BACKGROUND_FIRST_PORT = 1024
DATAPATHS = ("ovs-veth", "ovs-dpdk")
# Labels of the OVS-DPDK experiments beyond testbed 1 (Sample.datapath).
CAPACITY = "ovs-dpdk-capacity"  # no TAP, unpaced, 64 B: what the pace is half of
PACED = "ovs-dpdk-paced"  # every method at half that capacity
TWO_PAIRS = {1: "ovs-dpdk-2pairs-1pmd", 2: "ovs-dpdk-2pairs-2pmd"}  # seed Tables 5.5/5.6
PACED_SIZE = 64
QUICK_TWO_PAIR_SIZES = (64, 512, 1518)
SWITCH_SETTLE = 0.5  # seconds between changing the method and measuring
BRIDGE = "br-vbench"
MTU = 1600
NS = {"sender": "vbd-snd", "receiver": "vbd-rcv", "monitor": "vbd-mon"}
PORT = {"sender": "vbd-s0", "receiver": "vbd-r0", "monitor": "vbd-m0"}
IP = {"sender": "10.93.0.1", "receiver": "10.93.0.2", "monitor": "10.93.0.3"}
MAC = {"sender": "02:93:00:00:00:01", "receiver": "02:93:00:00:00:02",
       "monitor": "02:93:00:00:00:03"}  # fmt: skip
IFACE = "eth0"  # the namespace end of each veth
TESTPMD = "dpdk-testpmd"


@dataclass
class Sample:
    """One measurement window of one (datapath, method, size)."""

    datapath: str
    method: str
    size: int
    repeat: int
    seconds: float
    sent: int
    received: int
    monitored: int
    sender_pps: float = 0.0
    receiver_pps: float = 0.0
    receiver_mbps: float = 0.0
    monitor_pps: float = 0.0
    monitor_mbps: float = 0.0
    drops: int = 0  # sent - received in the window (the sender's own tx counter)
    monitor_drops: int = 0  # sent - monitored (only meaningful when a TAP is active)
    pmd_cycles_per_packet: float = 0.0  # OVS-DPDK only (pmd-perf-show, busy cycles / rx pkt)
    receiver_ring_drops: int = 0  # OVS-DPDK only: tx_dropped of the receiver's vhost port
    monitor_ring_drops: int = 0
    # The second pair of the 2-pair testbed (seed Tables 5.5/5.6); 0 elsewhere.
    sent2: int = 0
    received2: int = 0
    receiver2_pps: float = 0.0
    receiver2_mbps: float = 0.0
    policed: int = 0  # packets the sender's ingress policer dropped (paced runs only)
    target_pps: float = 0.0  # the pace asked for (paced runs only)
    controller_cpu: float = 0.0  # the vtap controller's CPU in the window, % of one core

    def finish(self) -> Sample:
        s = self.seconds
        self.sender_pps = self.sent / s
        self.receiver_pps = self.received / s
        self.monitor_pps = self.monitored / s
        self.receiver_mbps = self.receiver_pps * self.size * 8 / 1e6
        self.receiver2_pps = self.received2 / s
        self.receiver2_mbps = self.receiver2_pps * self.size * 8 / 1e6
        self.monitor_mbps = self.monitor_pps * self.size * 8 / 1e6
        self.drops = max(0, self.sent - self.received) + max(0, self.sent2 - self.received2)
        copied = self.sent + self.sent2
        self.monitor_drops = max(0, copied - self.monitored) if copies(self.method) else 0
        return self


def copies(method: str) -> bool:
    """Whether the monitor gets a copy of the sender's flow under this method."""
    return method not in NO_COPY


def base_method(method: str) -> str:
    """What is set on the switch for a method: `none-10k` is `none`, `vtap-10k` is `vtap`
    (the background set is installed apart, once per datapath)."""
    return method.removesuffix("-10k")


@dataclass
class Proof:
    datapath: str
    method: str
    datapath_flow: str
    monitor_packets: int


@dataclass
class PolicySet:
    """The background set of one datapath's 10,000-policy phase, and what it did on the bridge."""

    datapath: str  # the phase's label (POLICIES)
    policies: int  # created in one bulk request
    shapes: dict[str, int]  # policies per match shape (background_specs)
    active: int = 0  # GET /policies/summary once nothing was pending any more
    pending: int = 0
    error: int = 0
    install_seconds: float = 0.0  # bulk request sent → every policy active
    tap_flows: int = 0  # TAP flow entries on the bridge then (`ovs-ofctl dump-flows`)
    tap_flows_by_table: dict[str, int] = field(default_factory=dict)
    tap_groups: int = 0
    tap_flows_before: int = 0  # TAP flow entries just before the bulk request
    delete_seconds: float = 0.0  # bulk delete sent → no TAP flow entry left on the bridge
    tap_flows_after_delete: int = -1


@dataclass
class RunConfig:
    sizes: tuple[int, ...] = SIZES
    methods: tuple[str, ...] = METHODS
    datapaths: tuple[str, ...] = DATAPATHS
    repeats: int = 3
    window: float = 2.0
    warmup: float = 1.0
    quick: bool = True
    paced: bool = True  # OVS-DPDK: every method at half the no-TAP capacity (64 B)
    two_pairs: bool = True  # OVS-DPDK testbed 2: two pairs, one monitor, 1 vs. 2 PMDs
    policies_10k: bool = True  # testbed 1, both datapaths: the 10,000-policy phase
    policies_10k_methods: tuple[str, ...] = POLICY_METHODS
    background_policies: int = BACKGROUND_POLICIES

    @property
    def policy_sizes(self) -> tuple[int, ...]:
        """The 10,000-policy phase's sizes: 64 and 1518 B (quick and full mode alike) when
        the run has them, else the run's smallest and largest."""
        chosen = tuple(s for s in self.sizes if s in POLICY_SIZES)
        return chosen or tuple(sorted({min(self.sizes), max(self.sizes)}))

    @property
    def policy_phase(self) -> bool:
        """Whether the 10,000-policy phase runs (it needs one of its background methods)."""
        return self.policies_10k and any(m in BACKGROUND_METHODS for m in self.policies_10k_methods)

    @property
    def two_pair_sizes(self) -> tuple[int, ...]:
        """Testbed 2's sizes: all in full mode; quick mode keeps three (it must stay < 10 min)."""
        if not self.quick:
            return self.sizes
        return tuple(s for s in self.sizes if s in QUICK_TWO_PAIR_SIZES) or self.sizes[:1]

    def windows(self) -> int:
        """Measurement windows the run will take (for a progress bar)."""
        per_datapath = len(self.sizes) * len(self.methods) * self.repeats
        if self.policy_phase:
            per_datapath += len(self.policy_sizes) * len(self.policies_10k_methods) * self.repeats
        n = per_datapath * len(self.datapaths)
        if "ovs-dpdk" in self.datapaths:
            if self.paced:
                n += self.repeats * (1 + len(self.methods))
            if self.two_pairs:
                n += 2 * len(self.two_pair_sizes) * self.repeats
        return n


@dataclass
class RunResult:
    config: RunConfig
    samples: list[Sample] = field(default_factory=list)
    proofs: list[Proof] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0
    policy_sets: list[PolicySet] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "config": asdict(self.config),
            "machine": self.machine,
            "started": self.started,
            "seconds": self.seconds,
            "proofs": [asdict(p) for p in self.proofs],
            "samples": [asdict(s) for s in self.samples],
            "policy_sets": [asdict(p) for p in self.policy_sets],
        }


# ------------------------------------------------------------------------------ helpers


def sh(*argv: str, check: bool = True, timeout: float = 30) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise VtapError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def require_tools() -> None:
    if os.geteuid() != 0:
        raise VtapError("vtap bench dataplane needs root (Open vSwitch, network namespaces)")
    if shutil.which(TESTPMD) is None:
        raise VtapError(
            f"{TESTPMD} not found: install it with `apt-get install dpdk-dev` (Debian 12)"
        )
    if shutil.which("ovs-vswitchd") is None:
        raise VtapError(
            "ovs-vswitchd not found: install it with `apt-get install openvswitch-switch`"
        )


def rx_tx(role: str) -> tuple[int, int]:
    """(rx_packets, tx_packets) of the namespace end of a role's veth."""
    out = sh("ip", "-n", NS[role], "-s", "-j", "link", "show", IFACE)
    stats = json.loads(out)[0]["stats64"]
    return int(stats["rx"]["packets"]), int(stats["tx"]["packets"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if pred():
                return
        time.sleep(0.2)
    raise VtapError(f"timed out waiting for {what}")


def machine_description() -> dict[str, str]:
    cpu = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    ovs = sh("ovs-vswitchd", "--version", check=False).splitlines()[:1]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": os.uname().release,
        "ovs": ovs[0] if ovs else "",
        "dpdk": _dpdk_version(),
        "python": sys.version.split()[0],
    }


def _dpdk_version() -> str:
    out = sh("dpkg-query", "-W", "-f=${Version}", "dpdk-dev", check=False)
    return out.strip()


def background_specs(count: int, ip_of: Callable[[str], str] = IP.__getitem__) -> list[dict]:
    """`count` distinct policies over the testbed's own hosts (so the controller knows them
    and installs them) that never match the sender's flow (UDP 9 → 9), in four match shapes,
    round robin, each with its own run of ports from BACKGROUND_FIRST_PORT:

    - `src_ip+tcp_src_port`: TCP from the sender's source port p (at the sender's port);
    - `src_ip+dst_ip+tcp_dst_port`: TCP sender → receiver, destination port p;
    - `dst_ip+udp_dst_port`: UDP to the receiver's port p ≠ 9, from anywhere (a destination
      policy: classified on the bridge's other ports, the sender's among them);
    - `src_ip+udp_src_port`: UDP from the sender's source port p ≠ 9.

    The UDP shapes make the classifier look at the very fields the sender's flow has, with
    values it never carries. Every copy would go to the monitor."""
    shapes = 4
    room = 65535 - BACKGROUND_FIRST_PORT + 1
    if not 0 < count <= min(MAX_BULK, shapes * room):
        raise VtapError(f"background policies: 1..{min(MAX_BULK, shapes * room)}, not {count}")
    sender, receiver, monitor = (ip_of(r) for r in ("sender", "receiver", "monitor"))
    specs = []
    for i in range(count):
        port = BACKGROUND_FIRST_PORT + i // shapes
        match = (
            {"src_ip": sender, "ip_proto": 6, "src_port": port},
            {"src_ip": sender, "dst_ip": receiver, "ip_proto": 6, "dst_port": port},
            {"dst_ip": receiver, "ip_proto": 17, "dst_port": port},
            {"src_ip": sender, "ip_proto": 17, "src_port": port},
        )[i % shapes]
        assert port != TEST_FLOW_UDP_PORT
        specs.append({"name": f"bench-bg-{i}", **match, "monitor_ip": monitor})
    return specs


def spec_shape(spec: dict) -> str:
    """The match shape of a background spec, e.g. `dst_ip+udp_dst_port`."""
    proto = {6: "tcp", 17: "udp"}[spec["ip_proto"]]
    parts = [k for k in ("src_ip", "dst_ip") if k in spec]
    parts += [f"{proto}_{k}" for k in ("src_port", "dst_port") if k in spec]
    return "+".join(parts)


# ------------------------------------------------------------------------------ testbed


class Testbed:
    """The namespaces, veths, bridge, controller and OVS of one run; `close` removes them all."""

    datapath = "ovs-veth"
    bridge = BRIDGE

    def __init__(self, workdir: Path, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.log = log
        self.ovs_service = OvsService(Path(tempfile.mkdtemp(prefix="vbd-ovs-", dir="/tmp")))
        self.ovs: OvsEnv | None = None
        self.created_ns: list[str] = []
        self.bridge_created = False
        self.controller: subprocess.Popen[bytes] | None = None
        self.api = ""
        self.api_headers: dict[str, str] = {}  # the bench's admin token for this controller
        self.of_port = 0
        self.odp: dict[str, int] = {}
        self.mirror = False
        self.policy_ids: list[int] = []
        self.background: list[int] = []  # ids of the 10,000-policy phase's background set
        self.sender: subprocess.Popen[bytes] | None = None

    # -- setup -------------------------------------------------------------------------

    def open(self) -> None:
        self.ovs = self.ovs_service.ensure()
        for ns in NS.values():
            if ns in sh("ip", "netns", "list"):
                raise VtapError(f"network namespace {ns} exists already (a crashed run?)")
        self._start_controller()
        self.ovs.vsctl(
            "add-br", BRIDGE, "--", "set", "Bridge", BRIDGE, "datapath_type=netdev",
            "fail_mode=secure", "protocols=OpenFlow13",
        )  # fmt: skip
        self.bridge_created = True
        for role, ns in NS.items():
            sh("ip", "netns", "add", ns)
            self.created_ns.append(ns)
            sh("ip", "link", "add", PORT[role], "mtu", str(MTU), "type", "veth", "peer", "name",
               IFACE, "netns", ns, "mtu", str(MTU))  # fmt: skip
            sh("ip", "link", "set", PORT[role], "up")
            for knob in ("all", "default", IFACE):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw",
                   f"net.ipv6.conf.{knob}.disable_ipv6=1", check=False)  # fmt: skip
            sh("ip", "-n", ns, "link", "set", IFACE, "address", MAC[role])
            sh("ip", "-n", ns, "addr", "add", f"{IP[role]}/24", "dev", IFACE)
            sh("ip", "-n", ns, "link", "set", IFACE, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            self.ovs.vsctl("add-port", BRIDGE, PORT[role])
        self._connect_controller()
        # Introduce the hosts to the controller (it learns them from their own packets).
        for role in ("sender", "monitor"):
            wait_for(lambda r=role: self._ping(r), 20, f"{role} to reach the receiver")
        self.odp = self._odp_ports()

    def _get(self, path: str, timeout: float = 20) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", headers=self.api_headers, timeout=timeout)

    def _start_controller(self) -> None:
        self.of_port = free_port()
        api_port = free_port()
        self.api = f"http://127.0.0.1:{api_port}/api/v1"
        # A fresh state directory per testbed: the controller persists host locations, and
        # hosts remembered on an earlier testbed's bridge would look learnt before they are.
        state = Path(tempfile.mkdtemp(prefix="controller-state-", dir=self.workdir))
        # The sender's one flow lives for the whole run. On a busy 2-core machine OVS's
        # revalidators may not push its datapath counters to the OpenFlow rule in time, and
        # the reactive path entry would idle out under full traffic: give it a long timeout.
        # The bench authenticates like any client: an admin token in this controller's store.
        tokens = SqliteTokenRepository(state / "policies.db")
        _, secret = tokens.create("bench", Role.ADMIN, datetime.now(UTC))
        tokens.close()
        self.api_headers = {"Authorization": f"Bearer {secret}"}
        env = {**os.environ, "VTAP_STATE_DIR": str(state), "VTAP_FLOW_IDLE_TIMEOUT": "3600"}
        clog = (state / "controller.log").open("wb")
        self.controller = subprocess.Popen(
            [sys.executable, "-m", "vtap", "controller", "--of-port", str(self.of_port),
             "--api", f"127.0.0.1:{api_port}", "--log-level", "info"],
            stdout=clog, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        wait_for(lambda: httpx.get(f"{self.api}/health", timeout=1).status_code < 500, 20,
                 "the vtap controller's REST API")  # fmt: skip

    def _connect_controller(self) -> None:
        assert self.ovs is not None
        self.ovs.vsctl("set-controller", self.bridge, f"tcp:127.0.0.1:{self.of_port}")
        wait_for(lambda: re.search(r"is_connected\s*:\s*true", self.ovs_vsctl_ctl()), 20,
                 "the bridge to connect to the controller")  # fmt: skip

    def ovs_vsctl_ctl(self) -> str:
        assert self.ovs is not None
        return self.ovs.vsctl("list", "Controller")

    def port_names(self) -> dict[str, str]:
        return PORT

    def sender_roles(self) -> tuple[str, ...]:
        """Roles whose traffic a TAP copies (one per sender/receiver pair)."""
        return ("sender",)

    def ip_of(self, role: str) -> str:
        return IP[role]

    def _ping(self, role: str) -> bool:
        cmd = ["ip", "netns", "exec", NS[role], "ping", "-c1", "-W1", IP["receiver"]]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0

    def _odp_ports(self) -> dict[str, int]:
        assert self.ovs is not None
        out = self.ovs.appctl("dpctl/show")
        ports = {}
        for m in re.finditer(r"port (\d+): (\S+)", out):
            ports[m.group(2)] = int(m.group(1))
        return {role: ports[PORT[role]] for role in PORT}

    # -- methods -----------------------------------------------------------------------

    def set_method(self, method: str) -> None:
        """Set a method up; a `-10k` method needs the background set installed, any other
        method needs it absent."""
        self.clear_method()
        assert self.ovs is not None
        if (method in BACKGROUND_METHODS) != bool(self.background):
            state = "installed" if self.background else "not installed"
            raise VtapError(f"{method}: the background policies are {state}")
        method = base_method(method)
        senders = self.sender_roles()
        if method == "mirror":
            names = self.port_names()
            get_senders: list[str] = []
            for i, role in enumerate(senders):
                get_senders += ["--", f"--id=@s{i}", "get", "Port", names[role]]
            selected = ",".join(f"@s{i}" for i in range(len(senders)))
            self.ovs.vsctl(
                *get_senders, "--", "--id=@m", "get", "Port", names["monitor"],
                "--", "--id=@mir", "create", "Mirror", "name=vbench",
                f"select_src_port=[{selected}]", "output_port=@m",
                "--", "set", "Bridge", self.bridge, "mirrors=@mir",
            )  # fmt: skip
            self.mirror = True
        elif method == "vtap":
            for role in senders:
                spec = {"name": f"bench-dataplane-{role}", "src_ip": self.ip_of(role),
                        "monitor_ip": self.ip_of("monitor")}  # fmt: skip
                resp = httpx.post(
                    f"{self.api}/policies", headers=self.api_headers, json=spec, timeout=10
                )
                if resp.status_code != 201:
                    raise VtapError(f"creating the vTAP policy failed: {resp.text}")
                self.policy_ids.append(int(resp.json()["id"]))
            try:
                wait_for(
                    lambda: all(self._policy_status(p) == "active" for p in self.policy_ids),
                    60, "the vTAP policies to be active",
                )  # fmt: skip
            except VtapError:
                states = [self._get(f"/policies/{p}").json() for p in self.policy_ids]
                why = "; ".join(f"{s['name']}: {s['status']} ({s.get('status_reason')})"
                                for s in states)  # fmt: skip
                raise VtapError(f"the vTAP policies did not become active: {why}") from None
        elif method != "none":
            raise VtapError(f"unknown method {method!r}")
        self.ovs.appctl("revalidator/purge")

    def _policy_status(self, policy_id: int) -> str:
        return str(
            httpx.get(
                f"{self.api}/policies/{policy_id}", headers=self.api_headers, timeout=20
            ).json()["status"]
        )

    def clear_method(self) -> None:
        assert self.ovs is not None
        if self.mirror:
            self.ovs.vsctl("clear", "Bridge", self.bridge, "mirrors")
            self.mirror = False
        if self.policy_ids:
            for policy_id in self.policy_ids:
                httpx.delete(
                    f"{self.api}/policies/{policy_id}", headers=self.api_headers, timeout=10
                )
            self.policy_ids = []
            time.sleep(0.5)
        self.ovs.appctl("revalidator/purge")

    # -- the background set ------------------------------------------------------------

    def tap_rules(self) -> tuple[int, dict[str, int], int]:
        """TAP flow entries on the bridge (cookie of a policy or TAP-shared, pipeline.Owner),
        per table, and vtap's groups, as `ovs-ofctl` lists them."""
        assert self.ovs is not None
        by_table: Counter[str] = Counter()
        dump = self.ovs.ofctl("dump-flows", self.bridge, "--no-stats", timeout=120)
        for line in dump.splitlines():
            m = re.search(r"cookie=(0x[0-9a-fA-F]+)", line)
            owner = owner_of(int(m.group(1), 16)) if m else None
            if owner is None or owner[0] not in (Owner.POLICY, Owner.TAP_SHARED):
                continue
            t = re.search(r"table=(\d+)", line)
            by_table[t.group(1) if t else "0"] += 1
        groups = 0
        for line in self.ovs.ofctl("dump-groups", self.bridge, timeout=60).splitlines():
            m = re.search(r"group_id=(\d+)", line)
            groups += bool(m and owns_group(int(m.group(1))))
        ordered = dict(sorted(by_table.items(), key=lambda kv: int(kv[0])))
        return sum(by_table.values()), ordered, groups

    def summary(self) -> dict[str, int]:
        resp = httpx.get(f"{self.api}/policies/summary", headers=self.api_headers, timeout=30)
        resp.raise_for_status()
        return {k: int(v) for k, v in resp.json().items()}

    def install_background(self, specs: list[dict], label: str, timeout: float = 600) -> PolicySet:
        """Create `specs` in one bulk request, wait (`/policies/summary`) until every policy is
        active, and count the TAP flow entries they put on the bridge: at least one each."""
        self.clear_method()
        record = PolicySet(label, len(specs), dict(Counter(spec_shape(s) for s in specs)))
        record.tap_flows_before = self.tap_rules()[0]
        t0 = time.monotonic()
        resp = httpx.post(
            f"{self.api}/policies/bulk",
            headers=self.api_headers,
            json={"policies": specs},
            timeout=timeout,
        )
        if resp.status_code != 201:
            raise VtapError(f"bulk create of {len(specs)} policies: {resp.status_code} "
                            f"{resp.text[:300]}")  # fmt: skip
        self.background = [int(p["id"]) for p in resp.json()]
        deadline = t0 + timeout
        while True:
            now = self.summary()
            if now["pending"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        record.install_seconds = time.monotonic() - t0
        record.active, record.pending, record.error = now["active"], now["pending"], now["error"]
        if now["active"] != len(specs) or now["total"] != len(specs):
            raise VtapError(
                f"{len(specs)} background policies: {now} after {record.install_seconds:.0f} s"
                f"{self._not_active(self.background[:50])}"
            )
        record.tap_flows, record.tap_flows_by_table, record.tap_groups = self.tap_rules()
        if record.tap_flows - record.tap_flows_before < len(specs):
            raise VtapError(
                f"{len(specs)} background policies are active, yet the bridge holds only "
                f"{record.tap_flows} TAP flow entries ({record.tap_flows_by_table})"
            )
        self.ovs.appctl("revalidator/purge")  # type: ignore[union-attr]
        return record

    def _not_active(self, ids: list[int]) -> str:
        reasons = []
        for policy_id in ids:
            with suppress(Exception):
                p = httpx.get(
                    f"{self.api}/policies/{policy_id}", headers=self.api_headers, timeout=20
                ).json()
                if p["status"] != "active":
                    reasons.append(f"{p['name']}: {p['status']} ({p.get('status_reason')})")
        return ("; e.g. " + "; ".join(reasons[:5])) if reasons else ""

    def remove_background(self, record: PolicySet, timeout: float = 300) -> None:
        """Delete the background set in one bulk request; wait until the bridge holds no TAP
        flow entry (nothing else may be set then: the method is cleared first)."""
        self.clear_method()
        t0 = time.monotonic()
        resp = httpx.post(
            f"{self.api}/policies/bulk-delete",
            headers=self.api_headers,
            json={"ids": self.background},
            timeout=timeout,
        )
        if resp.status_code != 204:
            raise VtapError(f"bulk delete of the background policies: {resp.status_code} "
                            f"{resp.text[:300]}")  # fmt: skip
        self.background = []
        wait_for(lambda: self.tap_rules()[0] == 0, timeout, "no TAP flow entry on the bridge")
        record.delete_seconds = time.monotonic() - t0
        record.tap_flows_after_delete = self.tap_rules()[0]
        self.ovs.appctl("revalidator/purge")  # type: ignore[union-attr]

    def sender_flow(self, role: str = "sender") -> str:
        """The datapath flow(s) for a sender's UDP packets (in_port = that sender)."""
        assert self.ovs is not None
        out = self.ovs.appctl("dpctl/dump-flows")
        lines = [
            line for line in out.splitlines()
            if f"in_port({self.odp[role]})" in line and "udp" in line
        ]  # fmt: skip
        return "\n".join(lines)

    def copy_action_present(self, flow: str, role: str = "sender") -> bool:
        """The flow outputs to both the sender's receiver and the monitor."""
        receiver = role.replace("sender", "receiver")
        acts = re.findall(r"actions:(\S+)", flow)
        outs = [set(re.findall(r"(?:^|,)(\d+)", a)) for a in acts]
        r, m = str(self.odp[receiver]), str(self.odp["monitor"])
        return any(r in o and m in o for o in outs)

    # -- traffic -----------------------------------------------------------------------

    def start_sender(self, size: int, tag: str) -> None:
        self.stop_sender()
        logf = (self.workdir / f"testpmd-{tag}.log").open("wb")
        argv = [
            "ip", "netns", "exec", NS["sender"], TESTPMD, "--no-huge", "-m", "256",
            "--no-pci", "--lcores=0@0,1@1", f"--file-prefix=vbd{os.getpid()}",
            f"--vdev=net_af_packet0,iface={IFACE},blocksz=4096,framesz=2048,framecnt=512",
            "--", "--forward-mode=txonly", f"--txpkts={size}",
            f"--eth-peer=0,{MAC['receiver']}", f"--tx-ip={IP['sender']},{IP['receiver']}",
            "--total-num-mbufs=4096", "--stats-period=1",
        ]  # fmt: skip
        self.sender = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)  # fmt: skip

        def sending() -> bool:
            if self.sender is not None and self.sender.poll() is not None:
                raise VtapError(f"testpmd exited; see {logf.name}")
            a = rx_tx("sender")[1]
            time.sleep(0.2)
            return rx_tx("sender")[1] > a + 100

        deadline = time.monotonic() + 20
        while not sending():
            if time.monotonic() > deadline:
                raise VtapError(f"testpmd sends nothing; see {logf.name}")

    def stop_sender(self) -> None:
        if self.sender is not None:
            self.sender.terminate()
            try:
                self.sender.wait(10)
            except subprocess.TimeoutExpired:
                self.sender.kill()
                self.sender.wait(5)
            self.sender = None

    def controller_cpu(self) -> float:
        """CPU seconds the controller has used so far (its share of the two cores)."""
        return cpu_seconds(self.controller.pid) if self.controller is not None else 0.0

    def measure(self, method: str, size: int, repeat: int, window: float) -> Sample:
        r0, _ = rx_tx("receiver")
        m0, _ = rx_tx("monitor")
        _, s0 = rx_tx("sender")
        c0 = self.controller_cpu()
        t0 = time.monotonic()
        time.sleep(window)
        r1, _ = rx_tx("receiver")
        m1, _ = rx_tx("monitor")
        _, s1 = rx_tx("sender")
        dt = time.monotonic() - t0
        c1 = self.controller_cpu()
        sample = Sample(self.datapath, method, size, repeat, dt, s1 - s0, r1 - r0, m1 - m0)
        sample.controller_cpu = 100 * (c1 - c0) / dt
        return sample.finish()

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> list[str]:
        done: list[str] = []
        with suppress(Exception):
            self.stop_sender()
        if self.ovs is not None:
            with suppress(Exception):
                self.clear_method()
        if self.controller is not None:
            self.controller.terminate()
            try:
                self.controller.wait(10)
            except subprocess.TimeoutExpired:
                self.controller.kill()
            done.append("controller")
        for ns in self.created_ns:
            sh("ip", "netns", "del", ns, check=False)
        for role in PORT:
            sh("ip", "link", "del", PORT[role], check=False)
        if self.ovs is not None and self.bridge_created:
            with suppress(Exception):
                self.ovs.vsctl("--if-exists", "del-br", self.bridge)
        if self.ovs is not None and self.ovs.started:
            done += self.ovs_service.stop()
        with suppress(OSError):
            for f in self.ovs_service.rundir.glob("*.log"):
                shutil.copy(f, self.workdir / f"{self.datapath}-{f.name}")
            shutil.rmtree(self.ovs_service.rundir)
        return done


@contextmanager
def testbed(workdir: Path, log: Callable[[str], None]) -> Iterator[Testbed]:
    bed = Testbed(workdir, log)
    try:
        bed.open()
        yield bed
    finally:
        bed.close()


# ------------------------------------------------------------------------------ the run


def run(
    config: RunConfig,
    workdir: Path,
    progress: Callable[[str, int], None] = lambda _d, _n: None,
    log: Callable[[str], None] = lambda _m: None,
) -> RunResult:
    """Measure every (method, size) on the normal-OVS testbed. Each (method, size) starts one
    sender; the repeats are consecutive measurement windows of `config.window` seconds."""
    require_tools()
    result = RunResult(config, machine=machine_description(),
                       started=time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()))  # fmt: skip
    t0 = time.monotonic()
    for datapath in config.datapaths:
        _run_datapath(datapath, config, workdir, result, progress, log)
    result.seconds = time.monotonic() - t0
    return result


def _run_datapath(
    datapath: str,
    config: RunConfig,
    workdir: Path,
    result: RunResult,
    progress: Callable[[str, int], None],
    log: Callable[[str], None],
) -> None:
    if datapath == "ovs-veth":
        bed = Testbed(workdir, log)
        try:
            progress(f"{datapath}: setting up", 0)
            bed.open()
            _methods_by_size(bed, config, config.methods, config.sizes, result, progress)
            if config.policy_phase:
                _policies_phase(bed, config, result, progress)
        finally:
            bed.close()
        return
    if datapath != "ovs-dpdk":
        raise VtapError(f"unknown datapath {datapath!r}")
    from vtap.bench.dataplane.dpdk import DpdkTestbed

    bed = DpdkTestbed(workdir, log)
    try:
        progress("ovs-dpdk: setting up OVS-DPDK and the testpmd endpoints", 0)
        bed.open()
        _methods_by_size(bed, config, config.methods, config.sizes, result, progress)
        if config.policy_phase:
            _policies_phase(bed, config, result, progress)
        if config.paced:
            _paced(bed, config, result, progress)
    finally:
        bed.close()
    if not config.two_pairs:
        return
    bed = DpdkTestbed(workdir, log, pairs=2)
    try:
        progress("ovs-dpdk testbed 2: setting up two pairs and a monitor", 0)
        bed.open()
        for pmds in (1, 2):
            bed.set_pmds(pmds)
            bed.datapath = TWO_PAIRS[pmds]
            _methods_by_size(bed, config, ("vtap",), config.two_pair_sizes, result, progress)
    finally:
        bed.close()


def _methods_by_size(
    bed: Testbed,
    config: RunConfig,
    methods: tuple[str, ...],
    sizes: tuple[int, ...],
    result: RunResult,
    progress: Callable[[str, int], None],
) -> None:
    """Per size one sender; its windows go round the methods (none, mirror, vTAP, none, …).

    Interleaving matters on two busy cores: a sender's rate differs from one process (and one
    minute) to the next by more than the methods differ, so every method is measured under
    the same sender, alternately. Each method is proven under traffic the first time."""
    if not methods:
        return
    label = bed.datapath
    proven: set[str] = set()
    for size in sizes:
        progress(f"{label} {size} B: starting sender", 0)
        bed.start_sender(size, f"{label}-{size}")
        time.sleep(config.warmup)
        _round_robin(bed, config, methods, size, result, progress, proven)
        bed.stop_sender()
    bed.clear_method()


def _round_robin(
    bed: Testbed,
    config: RunConfig,
    methods: tuple[str, ...],
    size: int,
    result: RunResult,
    progress: Callable[[str, int], None],
    proven: set[str],
) -> None:
    """`config.repeats` windows of each method under the running sender, going round the
    methods; a method not in `proven` is proven first (and added)."""
    label = bed.datapath
    for rep in range(config.repeats):
        for method in methods:
            progress(f"{label} {method} {size} B: {rep + 1}/{config.repeats}", 0)
            if len(methods) > 1 or rep == 0:
                bed.set_method(method)
                time.sleep(SWITCH_SETTLE)
            if method not in proven:
                result.proofs.append(prove(bed, method))
                proven.add(method)
            sample = bed.measure(method, size, rep, config.window)
            _check_window(sample)
            result.samples.append(sample)
            progress("", 1)


def _policies_phase(
    bed: Testbed,
    config: RunConfig,
    result: RunResult,
    progress: Callable[[str, int], None],
) -> None:
    """The 10,000-policy phase on testbed 1: per size one sender, under which two blocks of
    windows run: the *plain* block (none, mirror, vTAP round robin; no policy but the one vTAP
    policy) and the *background* block (none-10k, vtap-10k round robin; the background set
    installed, only the one matching policy toggled). Every compared pair is thus measured
    under one sender. The background set is installed once per datapath: the first size runs
    plain → install → background, the second background → bulk delete → plain (and so on,
    alternating), which also puts the plain block first once and last once."""
    main = bed.datapath
    label = POLICIES[main]
    plain = tuple(m for m in config.policies_10k_methods if m not in BACKGROUND_METHODS)
    loaded = tuple(m for m in config.policies_10k_methods if m in BACKGROUND_METHODS)
    specs = background_specs(config.background_policies, bed.ip_of)
    proven: set[str] = set()
    record: PolicySet | None = None
    bed.datapath = label
    try:
        for i, size in enumerate(config.policy_sizes):
            progress(f"{label} {size} B: starting sender", 0)
            bed.start_sender(size, f"{label}-{size}")
            time.sleep(config.warmup)
            blocks = [(plain, False), (loaded, True)]
            for block, with_background in blocks if i % 2 == 0 else blocks[::-1]:
                if not block:
                    continue
                if with_background and not bed.background:
                    progress(f"{label}: installing {len(specs):,} background policies", 0)
                    record = bed.install_background(specs, label)
                    result.policy_sets.append(record)
                    time.sleep(SWITCH_SETTLE)
                elif not with_background and bed.background:
                    assert record is not None
                    progress(f"{label}: deleting the background policies", 0)
                    bed.remove_background(record)
                    time.sleep(SWITCH_SETTLE)
                _round_robin(bed, config, block, size, result, progress, proven)
            bed.stop_sender()
        if bed.background:
            assert record is not None
            progress(f"{label}: deleting the background policies", 0)
            bed.remove_background(record)
        bed.clear_method()
    finally:
        bed.datapath = main


def _check_window(sample: Sample) -> None:
    """A TAP window must have copied; a no-TAP window must not have (a method left behind,
    or a background policy that matched)."""
    what = f"{sample.datapath} {sample.method}, {sample.size} B"
    if copies(sample.method) and sample.monitored == 0:
        raise VtapError(f"{what}: the monitor received nothing in a window")
    if not copies(sample.method) and sample.monitored > max(100, sample.received // 100):
        raise VtapError(f"{what}: the monitor got {sample.monitored} packets without a TAP")


def _paced(
    bed: Testbed,
    config: RunConfig,
    result: RunResult,
    progress: Callable[[str, int], None],
) -> None:
    """Capacity = receiver pps with no TAP, unpaced, 64 B; then every method with the sender
    policed to half of it. The policer is byte-based, so its rate is corrected from the
    measured admitted rate (at most three tries, until within 5 %)."""
    from vtap.bench.dataplane.dpdk import DpdkTestbed

    assert isinstance(bed, DpdkTestbed)
    size = PACED_SIZE
    bed.datapath = CAPACITY
    bed.set_method("none")
    bed.set_pace(None, size)
    bed.start_sender(size, "capacity")
    time.sleep(config.warmup)
    capacity = []
    for rep in range(config.repeats):
        progress(f"{CAPACITY} {size} B: {rep + 1}/{config.repeats}", 0)
        sample = bed.measure("none", size, rep, config.window)
        result.samples.append(sample)
        capacity.append(sample.receiver_pps)
        progress("", 1)
    bed.stop_sender()
    target = sorted(capacity)[len(capacity) // 2] / 2
    bed.datapath = PACED
    for method in config.methods:
        bed.set_method(method)
        bed.start_sender(size, f"paced-{method}")
        asked = target
        for _ in range(3):
            bed.set_pace(asked, size)
            time.sleep(config.warmup)
            admitted = bed.measure(method, size, -1, config.window).sender_pps
            if admitted and abs(admitted / target - 1) <= 0.05:
                break
            if admitted:
                asked *= target / admitted
        for rep in range(config.repeats):
            progress(f"{PACED} {method} {size} B at {target:,.0f} pps: {rep + 1}", 0)
            sample = bed.measure(method, size, rep, config.window)
            sample.target_pps = target
            result.samples.append(sample)
            progress("", 1)
        bed.stop_sender()
        bed.set_pace(None, size)
    bed.clear_method()
    bed.datapath = "ovs-dpdk"


def prove(bed: Testbed, method: str, timeout: float = 15.0) -> Proof:
    """The method does what it claims, on the datapath, under traffic, for every sender.

    The datapath may still hold a flow from before the change for a while (revalidators starve
    on 2 busy cores), so it is purged and looked at again until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        flows = {role: bed.sender_flow(role) for role in bed.sender_roles()}
        done = all(
            bed.copy_action_present(f, r) == copies(method) and "udp" in f for r, f in flows.items()
        )
        if done or time.monotonic() > deadline:
            break
        if bed.ovs is not None:
            bed.ovs.appctl("revalidator/purge")
        time.sleep(1.0)
    sample = bed.measure(method, 0, -1, 0.5)
    shown = "\n".join(flows.values())
    for role, flow in flows.items():
        copied = bed.copy_action_present(flow, role)
        if not copies(method) and copied:
            raise VtapError(f"{method}: no TAP, yet the datapath copies to the monitor: {flow}")
        if copies(method) and not copied:
            raise VtapError(
                f"{method}: the datapath flow of {role} has no copy to the monitor's port "
                f"{bed.odp['monitor']}: {flow or '(no datapath flow)'}; all datapath flows: "
                f"{bed.ovs.appctl('dpctl/dump-flows')[:2000] if bed.ovs else ''}"
            )
    if copies(method) and sample.monitored == 0:
        raise VtapError(f"{method}: the monitor received no copies")
    if not copies(method) and sample.monitored > max(100, sample.received // 100):
        raise VtapError(f"{method}: the monitor got {sample.monitored} packets without a TAP")
    return Proof(bed.datapath, method, shown, sample.monitored)
