"""OVS-DPDK testbed: `dpdkvhostuserclient` ports, DPDK testpmd virtio-user endpoints.

WORK IN PROGRESS, not offered by the CLI (harness.DATAPATHS): setup, host introduction, the
no-TAP measurement and teardown (hugepages restored) run; the mirror method's proof does not
find the sender's datapath flow yet — to debug next (see the proof error's flow dump).

Per the platform notes: 2 MB hugepages (the original count is restored on close), OVS started
with Debian's ovs-vswitchd-dpdk in a run dir of our own, `dpdk-init=true dpdk-socket-mem=256
pmd-cpu-mask=0x2 dpdk-extra=--no-pci`, `pmd-perf-metrics=true`. The PMD thread owns core 1; the
three testpmd endpoints (sender txonly, receiver and monitor rxonly) share core 0 with OVS's main
thread, so endpoint rates are contention-bound and PMD cycles/packet is the robust figure.

The controller learns hosts from their packets, and an rxonly endpoint sends none: receiver and
monitor are introduced by running them in txonly for a moment first. Counts come from OVS's
Interface statistics (rx of the sender's port, tx of the receiver's and monitor's ports,
tx_dropped when their rings are full).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from vtap.bench.dataplane import harness
from vtap.bench.dataplane.harness import IP, MAC, Sample, Testbed, VtapError, sh, wait_for
from vtap.lab.ovs import OvsTools, _refuse_second_vswitchd

DPDK_VSWITCHD = Path("/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk")
HUGEPAGES = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
NEED_PAGES = 1024
DPDK_BRIDGE = "br-vbdpdk"
VPORT = {"sender": "vbd-vs", "receiver": "vbd-vr", "monitor": "vbd-vm"}
OTHER_CONFIG = {
    "dpdk-init": "true",
    "dpdk-socket-mem": "256",
    "pmd-cpu-mask": "0x2",
    "dpdk-extra": "--no-pci",
    "pmd-perf-metrics": "true",
}


class DpdkTestbed(Testbed):
    datapath = "ovs-dpdk"
    bridge = DPDK_BRIDGE

    def __init__(self, workdir: Path, log) -> None:  # type: ignore[no-untyped-def]
        super().__init__(workdir, log)
        self.sock_dir = Path(tempfile.mkdtemp(prefix="vbd-vh-", dir="/tmp"))
        self.pages_before: int | None = None
        self.mounted = False
        self.endpoints: dict[str, subprocess.Popen[bytes]] = {}

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
            self._preconfigure(tools)
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
        for role in VPORT:
            self.ovs.vsctl(
                "add-port", self.bridge, VPORT[role], "--", "set", "Interface", VPORT[role],
                "type=dpdkvhostuserclient", f"options:vhost-server-path={self._sock(role)}",
            )  # fmt: skip
        self._connect_controller()
        # Introduce receiver and monitor (they only send while in txonly), then make them sinks.
        for role in ("receiver", "monitor"):
            self._start_endpoint(role, "txonly", 64)
        self._wait_learnt(("receiver", "monitor"))
        for role in ("receiver", "monitor"):
            self._stop_endpoint(role)
            self._start_endpoint(role, "rxonly", 64)
        self.odp = self._odp_ports_of(VPORT)

    def _connect_controller(self) -> None:
        """Also rate-limit packet-ins (OVS's own knob): the endpoints flood at millions of pps
        while the controller does not know them yet, which would drown a Python controller."""
        super()._connect_controller()
        assert self.ovs is not None
        uuid = self.ovs.vsctl("get", "Bridge", self.bridge, "controller").strip("[] \n")
        self.ovs.vsctl(
            "set", "Controller", uuid, "controller_rate_limit=100", "controller_burst_limit=25"
        )

    def _preconfigure(self, tools: OvsTools) -> None:
        """Nothing to do before start: other_config is set at run time (dpdk-init=true)."""

    def port_names(self) -> dict[str, str]:
        return VPORT

    def _sock(self, role: str) -> Path:
        return self.sock_dir / f"{role}.sock"

    def _start_endpoint(self, role: str, mode: str, size: int) -> None:
        logf = (self.workdir / f"testpmd-dpdk-{role}-{mode}-{size}.log").open("wb")
        peer = {"sender": "receiver", "receiver": "sender", "monitor": "sender"}[role]
        argv = [
            harness.TESTPMD, "--lcores=0@0,1@0", "-m", "64", "--no-pci", "--single-file-segments",
            f"--file-prefix=vbd-{role}",
            f"--vdev=virtio_user0,path={self._sock(role)},server=1,mac={MAC[role]}",
            "--", f"--forward-mode={mode}", "--total-num-mbufs=4096", "--stats-period=1",
            f"--txpkts={size}", f"--eth-peer=0,{MAC[peer]}", f"--tx-ip={IP[role]},{IP[peer]}",
        ]  # fmt: skip
        self.endpoints[role] = subprocess.Popen(
            argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
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
        import httpx

        def known() -> bool:
            hosts = httpx.get(f"{self.api}/topology", timeout=5).text
            return all(MAC[r] in hosts for r in roles)

        wait_for(known, 30, f"the controller to learn {', '.join(roles)}")

    def _odp_ports_of(self, names: dict[str, str]) -> dict[str, int]:
        assert self.ovs is not None
        out = self.ovs.appctl("dpctl/show")
        ports = {m.group(2): int(m.group(1)) for m in re.finditer(r"port (\d+): (\S+)", out)}
        return {role: ports[names[role]] for role in names}

    # -- traffic -----------------------------------------------------------------------

    def _stats(self, role: str) -> dict[str, int]:
        assert self.ovs is not None
        out = self.ovs.vsctl("get", "Interface", VPORT[role], "statistics")
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out)}

    def start_sender(self, size: int, tag: str) -> None:
        self.stop_sender()
        self._start_endpoint("sender", "txonly", size)

        def sending() -> bool:
            a = self._stats("sender").get("rx_packets", 0)
            time.sleep(0.3)
            return self._stats("sender").get("rx_packets", 0) > a + 100

        wait_for(sending, 30, "the DPDK sender to send")

    def stop_sender(self) -> None:
        self._stop_endpoint("sender")

    def measure(self, method: str, size: int, repeat: int, window: float) -> Sample:
        assert self.ovs is not None
        self.ovs.appctl("dpif-netdev/pmd-stats-clear")
        a = {r: self._stats(r) for r in VPORT}
        t0 = time.monotonic()
        time.sleep(window)
        b = {r: self._stats(r) for r in VPORT}
        dt = time.monotonic() - t0
        pmd = self.ovs.appctl("dpif-netdev/pmd-stats-show")

        def d(role: str, key: str) -> int:
            return b[role].get(key, 0) - a[role].get(key, 0)

        sample = Sample(
            self.datapath, method, size, repeat, dt,
            d("sender", "rx_packets"), d("receiver", "tx_packets"), d("monitor", "tx_packets"),
        ).finish()  # fmt: skip
        m = re.search(r"avg processing cycles per packet:\s*([\d.]+)", pmd)
        sample.pmd_cycles_per_packet = float(m.group(1)) if m else 0.0
        sample.receiver_ring_drops = d("receiver", "tx_dropped")
        sample.monitor_ring_drops = d("monitor", "tx_dropped")
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
