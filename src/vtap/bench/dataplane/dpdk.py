"""OVS-DPDK testbed: `dpdkvhostuserclient` ports, DPDK testpmd virtio-user endpoints.

Per the platform notes: 2 MB hugepages (the original count is restored on close), OVS started
with Debian's ovs-vswitchd-dpdk in a run dir of our own, `dpdk-init=true dpdk-socket-mem=256
dpdk-extra=--no-pci pmd-perf-metrics=true`, one PMD thread on core 1 (`pmd-cpu-mask=0x2`) unless
a run asks for two (`0x3`). Every endpoint (testpmd, two lcores each) is pinned to core 0, which
it shares with OVS's main thread and the controller, so endpoint rates are contention-bound and
PMD cycles/packet (`dpif-netdev/pmd-perf-show`) is the robust figure.

Testbed 1 is one sender/receiver pair and a monitor; testbed 2 (seed Tables 5.5/5.6) adds a
second pair (`sender2` → `receiver2`), each sender's rx queue pinned to a PMD
(`pmd-rxq-affinity`, `pmd-rxq-isolate=false` so the other queues are still polled).

The controller learns hosts from their packets, and an rxonly endpoint sends none: each
endpoint is one interactive testpmd for the whole run, sending for a moment (txonly) until the
controller knows it, then switched to rxonly in the same process. Restarting one would take its
vhost port down and the controller would forget the host (and a vTAP policy naming it would go
pending), so packet sizes change with `set txpkts`.

Counts come from the live datapath port counters (`dpctl/show -s`; the OVSDB statistics lag
5 s): rx of the senders' ports, tx of the receivers' and monitor's, tx_dropped when their rings
are full. Paced runs use OVS's own ingress policer on the senders' ports
(`ingress_policing_rate`, byte-based: OVS 3.1 has no packet-rate policer on this datapath), so
the offered load is what the policer admits, read from the same counters.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import httpx

from vtap.bench.dataplane import harness
from vtap.bench.dataplane.harness import Sample, Testbed, VtapError, sh, wait_for
from vtap.lab.ovs import OvsTools, _refuse_second_vswitchd

DPDK_VSWITCHD = Path("/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk")
HUGEPAGES = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
NEED_PAGES = 1024
DPDK_BRIDGE = "br-vbdpdk"
VPORT = {"sender": "vbd-vs", "receiver": "vbd-vr", "monitor": "vbd-vm",
         "sender2": "vbd-vs2", "receiver2": "vbd-vr2"}  # fmt: skip
MAC = {**harness.MAC, "sender2": "02:93:00:00:00:04", "receiver2": "02:93:00:00:00:05"}
IP = {**harness.IP, "sender2": "10.93.0.4", "receiver2": "10.93.0.5"}
PEER = {"sender": "receiver", "receiver": "sender", "monitor": "sender",
        "sender2": "receiver2", "receiver2": "sender2"}  # fmt: skip
PMD_MASK = {1: "0x2", 2: "0x3"}
# Where each sender's rx queue is polled: with one PMD both on core 1; with two, sender on
# core 1 and sender2 on core 0 (which it shares with every endpoint: two cores allow no better).
SENDER_CORE = {1: {"sender": 1, "sender2": 1}, 2: {"sender": 1, "sender2": 0}}
OTHER_CONFIG = {
    "dpdk-init": "true",
    "dpdk-socket-mem": "256",
    "pmd-cpu-mask": PMD_MASK[1],
    "dpdk-extra": "--no-pci",
    "pmd-perf-metrics": "true",
    "pmd-rxq-isolate": "false",
}
ETH_HEADER = 14  # the DPDK policer meters the frame without its Ethernet header


class DpdkTestbed(Testbed):
    datapath = "ovs-dpdk"
    bridge = DPDK_BRIDGE

    def __init__(self, workdir: Path, log, pairs: int = 1) -> None:  # type: ignore[no-untyped-def]
        super().__init__(workdir, log)
        self.pairs = pairs
        self.roles = ("sender", "receiver", "monitor") + (
            ("sender2", "receiver2") if pairs == 2 else ()
        )
        self.sock_dir = Path(tempfile.mkdtemp(prefix="vbd-vh-", dir="/tmp"))
        self.pages_before: int | None = None
        self.mounted = False
        self.endpoints: dict[str, subprocess.Popen[bytes]] = {}
        self.pmds = 1

    # -- setup -------------------------------------------------------------------------

    def open(self) -> None:
        if not DPDK_VSWITCHD.exists():
            raise VtapError(
                f"{DPDK_VSWITCHD} not found: install it with "
                "`apt-get install openvswitch-switch-dpdk`"
            )
        self.pages_before = int(HUGEPAGES.read_text())
        if self.pages_before < NEED_PAGES:
            HUGEPAGES.write_text(str(NEED_PAGES))
        if "hugetlbfs" not in Path("/proc/mounts").read_text():
            Path("/dev/hugepages").mkdir(exist_ok=True)
            sh("mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages")
            self.mounted = True
        if self.ovs_service.will_start():
            _refuse_second_vswitchd()
            tools = dataclasses.replace(OvsTools.find(), vswitchd=str(DPDK_VSWITCHD))
            self.ovs_service._start(tools)  # our own run dir, fresh database
            # ovs-appctl looks for ovs-vswitchd.<pid>.ctl; the DPDK binary names its socket
            # after itself.
            rundir = self.ovs_service.rundir
            pid = (rundir / "ovs-vswitchd.pid").read_text().strip()
            (rundir / f"ovs-vswitchd.{pid}.ctl").symlink_to(rundir / f"ovs-vswitchd-dpdk.{pid}.ctl")
        self.ovs = self.ovs_service.ensure()
        if self.ovs.kind != "vtap":
            raise VtapError("OVS-DPDK needs vtap's own Open vSwitch (another one runs)")
        self.ovs = dataclasses.replace(self.ovs, started=True)
        self.ovs.vsctl(
            "set", "Open_vSwitch", ".", *[f"other_config:{k}={v}" for k, v in OTHER_CONFIG.items()]
        )
        wait_for(
            lambda: "true" in self.ovs.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized"),  # type: ignore[union-attr]
            60,
            "DPDK to initialise in ovs-vswitchd",
        )
        self._start_controller()
        self.ovs.vsctl(
            "add-br", self.bridge, "--", "set", "Bridge", self.bridge, "datapath_type=netdev",
            "fail_mode=secure", "protocols=OpenFlow13",
        )  # fmt: skip
        self.bridge_created = True
        for role in self.roles:
            self.ovs.vsctl(
                "add-port", self.bridge, VPORT[role], "--", "set", "Interface", VPORT[role],
                "type=dpdkvhostuserclient", f"options:vhost-server-path={self._sock(role)}",
            )  # fmt: skip
        self._connect_controller()
        # Every endpoint sends for a moment so that the controller learns it; receivers and
        # the monitor then turn to rxonly in the same process.
        listeners = [r for r in self.roles if r not in self.sender_roles()]
        for role in listeners:
            self._start_endpoint(role, "txonly", 64)
            self._command(role, "start")
        self._wait_learnt(tuple(listeners))
        for role in listeners:
            for cmd in ("stop", "set fwd rxonly", "start"):
                self._command(role, cmd)
        for role in self.sender_roles():
            self._start_endpoint(role, "txonly", 64)
            self._command(role, "start")
        self._wait_learnt(self.sender_roles())
        for role in self.sender_roles():
            self._command(role, "stop")
        self.odp = self._odp_ports_of(self.port_names())
        self.set_pmds(1)

    def _connect_controller(self) -> None:
        """Also rate-limit packet-ins (OVS's own knob): the endpoints flood at millions of pps
        while the controller does not know them yet, which would drown a Python controller."""
        super()._connect_controller()
        assert self.ovs is not None
        uuid = self.ovs.vsctl("get", "Bridge", self.bridge, "controller").strip("[] \n")
        self.ovs.vsctl(
            "set", "Controller", uuid, "controller_rate_limit=100", "controller_burst_limit=25"
        )

    def set_pmds(self, n: int) -> None:
        """Run `n` PMD threads and pin each sender's rx queue (SENDER_CORE)."""
        assert self.ovs is not None
        self.ovs.vsctl("set", "Open_vSwitch", ".", f"other_config:pmd-cpu-mask={PMD_MASK[n]}")
        for role in self.sender_roles():
            self.ovs.vsctl(
                "set", "Interface", VPORT[role],
                f"other_config:pmd-rxq-affinity=0:{SENDER_CORE[n][role]}",
            )  # fmt: skip

        def placed() -> bool:
            out = self.ovs.appctl("dpif-netdev/pmd-rxq-show")  # type: ignore[union-attr]
            blocks = re.split(r"(?=pmd thread)", out)
            cores = {int(c) for c in re.findall(r"core_id (\d+):", out)}
            if len(cores) != n:
                return False
            for role in self.sender_roles():
                want = SENDER_CORE[n][role]
                if not any(f"core_id {want}:" in b and f"port: {VPORT[role]} " in b
                           for b in blocks):  # fmt: skip
                    return False
            return True

        wait_for(placed, 30, f"{n} PMD thread(s) polling the senders' queues as pinned")
        self.pmds = n

    def set_pace(self, pps: float | None, size: int) -> None:
        """Police every sender's port to `pps` packets/s of `size` bytes (None: unpaced)."""
        assert self.ovs is not None
        for role in self.sender_roles():
            if pps is None:
                rate = burst = 0
            else:
                rate = max(1, round(pps * (size - ETH_HEADER) * 8 / 1000))  # kbit/s
                # 2 ms of traffic: a longer burst arrives back to back after a pause and
                # can overflow a 256-entry vring whose reader shares a core.
                burst = max(1, rate // 500)
            self.ovs.vsctl(
                "set", "Interface", VPORT[role], f"ingress_policing_rate={rate}",
                f"ingress_policing_burst={burst}",
            )  # fmt: skip

    def port_names(self) -> dict[str, str]:
        return {role: VPORT[role] for role in self.roles}

    def sender_roles(self) -> tuple[str, ...]:
        return ("sender", "sender2") if self.pairs == 2 else ("sender",)

    def ip_of(self, role: str) -> str:
        return IP[role]

    def _sock(self, role: str) -> Path:
        return self.sock_dir / f"{role}.sock"

    def _command(self, role: str, cmd: str) -> None:
        proc = self.endpoints[role]
        assert proc.stdin is not None
        proc.stdin.write(cmd.encode() + b"\n")
        proc.stdin.flush()
        time.sleep(0.3)

    def _start_endpoint(self, role: str, mode: str, size: int) -> None:
        """One interactive testpmd on core 0 (main and forwarding lcore), commands on stdin."""
        logf = (self.workdir / f"testpmd-dpdk-{role}.log").open("wb")
        peer = PEER[role]
        argv = [
            harness.TESTPMD, "--lcores=0@0,1@0", "-m", "64", "--no-pci", "--single-file-segments",
            f"--file-prefix=vbd-{role}",
            f"--vdev=virtio_user0,path={self._sock(role)},server=1,mac={MAC[role]}",
            "--", f"--forward-mode={mode}", "--total-num-mbufs=4096", "-i",
            f"--txpkts={size}", f"--eth-peer=0,{MAC[peer]}", f"--tx-ip={IP[role]},{IP[peer]}",
        ]  # fmt: skip
        self.endpoints[role] = subprocess.Popen(
            argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.PIPE
        )

    def _stop_endpoint(self, role: str) -> None:
        proc = self.endpoints.pop(role, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _wait_learnt(self, roles: tuple[str, ...]) -> None:

        def known() -> bool:
            hosts = httpx.get(f"{self.api}/topology", headers=self.api_headers, timeout=20).text
            return all(MAC[r] in hosts for r in roles)

        # Generous: busy-polling endpoints share core 0 with the controller.
        wait_for(known, 90, f"the controller to learn {', '.join(roles)}")

    def _odp_ports_of(self, names: dict[str, str]) -> dict[str, int]:
        assert self.ovs is not None
        out = self.ovs.appctl("dpctl/show")
        ports = {m.group(2): int(m.group(1)) for m in re.finditer(r"port (\d+): (\S+)", out)}
        return {role: ports[names[role]] for role in names}

    # -- traffic -----------------------------------------------------------------------

    def _stats(self) -> dict[str, dict[str, int]]:
        """Live datapath port counters of every role (the OVSDB statistics lag by 5 s)."""
        assert self.ovs is not None
        out = self.ovs.appctl("dpctl/show", "-s")
        stats = {}
        for role in self.roles:
            block = out.split(f": {VPORT[role]} ", 1)[1].split("\n  port ", 1)[0]
            # Counters a port does not support print as "?".
            rx = re.search(r"RX packets:(\S+)[^\n]*?dropped:(\S+)", block)
            tx = re.search(r"TX packets:(\S+)[^\n]*?dropped:(\S+)", block)
            assert rx is not None and tx is not None, block
            stats[role] = {
                "rx_packets": _num(rx.group(1)),
                "rx_dropped": _num(rx.group(2)),
                "tx_packets": _num(tx.group(1)),
                "tx_dropped": _num(tx.group(2)),
            }
        return stats

    def start_sender(self, size: int, tag: str) -> None:
        for role in self.sender_roles():
            for cmd in ("stop", f"set txpkts {size}", "start"):
                self._command(role, cmd)

        def offered(stats: dict[str, dict[str, int]], role: str) -> int:
            return stats[role]["rx_packets"]

        def sending() -> bool:
            a = self._stats()
            time.sleep(0.3)
            b = self._stats()
            return all(offered(b, r) > offered(a, r) + 100 for r in self.sender_roles())

        wait_for(sending, 30, "the DPDK senders to send")

    def stop_sender(self) -> None:
        for role in self.sender_roles():
            if role in self.endpoints:
                self._command(role, "stop")

    def measure(self, method: str, size: int, repeat: int, window: float) -> Sample:
        assert self.ovs is not None
        self.ovs.appctl("dpif-netdev/pmd-stats-clear")
        a = self._stats()
        c0 = self.controller_cpu()
        t0 = time.monotonic()
        time.sleep(window)
        b = self._stats()
        dt = time.monotonic() - t0
        c1 = self.controller_cpu()
        perf = self.ovs.appctl("dpif-netdev/pmd-perf-show")

        def d(role: str, key: str) -> int:
            return b[role][key] - a[role][key] if role in b else 0

        def admitted(role: str) -> int:
            # rx_packets counts what the policer then dropped (rx_dropped) too.
            return d(role, "rx_packets") - d(role, "rx_dropped")

        sample = Sample(
            self.datapath, method, size, repeat, dt,
            admitted("sender"), d("receiver", "tx_packets"), d("monitor", "tx_packets"),
            sent2=admitted("sender2"), received2=d("receiver2", "tx_packets"),
        ).finish()  # fmt: skip
        sample.pmd_cycles_per_packet = pmd_cycles_per_packet(perf)
        sample.receiver_ring_drops = d("receiver", "tx_dropped") + d("receiver2", "tx_dropped")
        sample.monitor_ring_drops = d("monitor", "tx_dropped")
        sample.policed = d("sender", "rx_dropped") + d("sender2", "rx_dropped")
        sample.controller_cpu = 100 * (c1 - c0) / dt
        return sample

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> list[str]:
        done: list[str] = []
        for role in list(self.endpoints):
            with suppress(Exception):
                self._stop_endpoint(role)
        done += super().close()
        with suppress(OSError):
            for f in self.sock_dir.iterdir():
                f.unlink()
            self.sock_dir.rmdir()
        if self.mounted:
            sh("umount", "/dev/hugepages", check=False)
        if self.pages_before is not None:
            HUGEPAGES.write_text(str(self.pages_before))
            done.append(f"hugepages restored to {self.pages_before}")
        return done


def _num(v: str) -> int:
    return int(v) if v.isdigit() else 0


def pmd_cycles_per_packet(perf: str) -> float:
    """Busy cycles per received packet over every PMD thread, weighted by packets, from
    `dpif-netdev/pmd-perf-show` (per thread: `Rx packets: N (X Kpps, C cycles/pkt)`)."""
    pairs = [
        (int(n), float(c))
        for n, c in re.findall(r"Rx packets:\s+(\d+)\s+\([^,]*,\s*([\d.]+) cycles/pkt\)", perf)
    ]
    total = sum(n for n, _ in pairs)
    return sum(n * c for n, c in pairs) / total if total else 0.0
