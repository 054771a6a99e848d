"""Real packets in the lab: send numbered frames from a host, capture them at others.

Every frame carries a payload `vtap:<run>:<seq>`, so a capture can be checked for exactly-once
delivery and compared byte for byte with what the destination received. Sending runs inside the
host's namespace as `python -m vtap.lab.traffic send …` (via `vtap lab exec`). Used by the demo
and by the integration tests.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PAYLOAD = re.compile(rb"vtap:([0-9a-f]{8}):(\d{6})")


@dataclass(frozen=True)
class FrameSpec:
    """One kind of frame; `count` copies are sent, numbered in the payload."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    proto: str = "udp"  # udp | tcp | icmp
    sport: int = 40000
    dport: int = 5000
    vlan: int | None = None
    mpls: tuple[int, int] | None = None  # (label, tc): an MPLS header before the IP packet
    pad: int = 0  # bytes of padding after the payload marker (pad=1458: full-size UDP frames)
    count: int = 1000
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def payloads(self) -> set[bytes]:
        return {f"vtap:{self.run}:{i:06d}".encode() for i in range(self.count)}


def _frames(spec: FrameSpec) -> list[object]:
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw

    frames = []
    for i in range(spec.count):
        l2 = Ether(src=spec.src_mac, dst=spec.dst_mac)
        if spec.vlan is not None:
            l2 = l2 / Dot1Q(vlan=spec.vlan)
        if spec.mpls is not None:
            l2 = l2 / MPLS(label=spec.mpls[0], cos=spec.mpls[1], s=1, ttl=64)
        l3 = IP(src=spec.src_ip, dst=spec.dst_ip)
        if spec.proto == "udp":
            l4 = UDP(sport=spec.sport, dport=spec.dport)
        elif spec.proto == "tcp":
            l4 = TCP(sport=spec.sport, dport=spec.dport, flags="PA", seq=1000 + i)
        else:
            l4 = ICMP(id=spec.sport, seq=i)
        payload = f"vtap:{spec.run}:{i:06d}".encode() + b"\0" * spec.pad
        frames.append(l2 / l3 / l4 / Raw(payload))
    return frames


def _send_main(args: argparse.Namespace) -> None:
    from scapy.arch.linux import L2ListenSocket  # noqa: F401  (fail early if no raw sockets)
    from scapy.sendrecv import sendp

    fields = json.loads(args.spec)
    if fields.get("mpls") is not None:
        fields["mpls"] = tuple(fields["mpls"])
    spec = FrameSpec(**fields)
    sendp(_frames(spec), iface=args.iface, inter=args.inter, verbose=False)


def host_python() -> list[str]:
    return [sys.executable, "-m", "vtap.lab.traffic"]


def send(host: str, spec: FrameSpec, inter: float = 0.001) -> None:
    """Send the frames from `host` (its first interface, `<host>-eth0`)."""
    body = json.dumps(spec.__dict__)
    argv = [
        sys.executable, "-m", "vtap", "lab", "exec", host, "--",
        *host_python(), "send", "--iface", f"{host}-eth0", "--inter", str(inter), "--spec", body,
    ]  # fmt: skip
    subprocess.run(argv, check=True, timeout=120)


class Capture:
    """tcpdump of the frames a host receives, read back as raw bytes."""

    def __init__(self, host: str, path: Path, bpf: str = "") -> None:
        self.host = host
        self.path = path
        self.bpf = bpf
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        argv = [
            sys.executable, "-m", "vtap", "lab", "exec", self.host, "--",
            "tcpdump", "-i", f"{self.host}-eth0", "-Q", "in", "-U", "-n", "-s", "0",
            "-w", str(self.path), *self.bpf.split(),
        ]  # fmt: skip
        self._proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
        assert self._proc.stderr is not None
        line = self._proc.stderr.readline()  # "listening on …" once the socket is open
        if b"listening" not in line:
            raise RuntimeError(f"tcpdump in {self.host} did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._settle()
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def _settle(self, quiet: float = 1.0, limit: float = 15.0) -> None:
        """Wait until frames stop arriving: on a busy 2-core machine the userspace datapath
        may still be draining its queues well after the sender finished."""
        start = time.monotonic()
        size, since = -1, start
        while time.monotonic() - start < limit:
            now_size = self.path.stat().st_size if self.path.exists() else 0
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def frames(self) -> list[bytes]:
        import scapy.layers.l2  # noqa: F401  (registers Ethernet, so rdpcap parses frames)
        from scapy.utils import rdpcap

        self.stop()
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        return [bytes(p) for p in rdpcap(str(self.path))]


def by_payload(frames: list[bytes], run: str) -> dict[bytes, list[bytes]]:
    """Frames of one run, keyed by their payload marker (a list: duplicates show up)."""
    out: dict[bytes, list[bytes]] = {}
    for frame in frames:
        found = PAYLOAD.search(frame)
        if found and found.group(1).decode() == run:
            out.setdefault(found.group(0), []).append(frame)
    return out


def duplicates(seen: dict[bytes, list[bytes]]) -> Counter[int]:
    return Counter(len(v) for v in seen.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--iface", required=True)
    s.add_argument("--inter", type=float, default=0.001)
    s.add_argument("--spec", required=True)
    args = parser.parse_args()
    if args.cmd == "send":
        _send_main(args)


if __name__ == "__main__":
    main()
