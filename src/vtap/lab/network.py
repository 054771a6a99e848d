"""Mininet glue: turns a LeafSpinePlan into running namespaces, veths and OVS bridges.

Only the lab holder imports this module (Mininet's Python package exists only under Debian's
python3). Mininet describes the network; vtap's own record (state.py) is what cleanup trusts,
because Mininet forgets everything when its process dies.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController
from mininet.topo import Topo

from vtap.lab.proc import find_tool
from vtap.lab.topo import LeafSpinePlan

# Copies cross the fabric with a 4-byte MPLS header: a full-size frame from a host (1514 bytes)
# needs an MTU of at least 1504 on fabric links, as real fabrics have (they run jumbo frames).
FABRIC_MTU = 1600

_NO_IPV6 = (
    "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
    " net.ipv6.conf.lo.disable_ipv6=1"
)


class LeafSpineTopo(Topo):
    """Mininet topology built from the plan, with the plan's names, ports and addresses."""

    def build(self, plan: LeafSpinePlan) -> None:  # type: ignore[override]
        for switch in plan.switches:
            self.addSwitch(switch.name, dpid=switch.dpid_hex)
        for host in plan.hosts:
            self.addHost(host.name, ip=host.cidr, mac=host.mac)
        for link in plan.links:
            self.addLink(
                link.a.node,
                link.b.node,
                port1=link.a.port,
                port2=link.b.port,
                intfName1=link.a.intf,
                intfName2=link.b.intf,
            )


class QuietHost(Host):
    """A host without IPv6, so the controller sees no router solicitations or MLD reports.

    It also computes its own checksums: a veth leaves TCP/UDP checksums to "hardware" that
    never runs on OVS's userspace datapath, so without this TCP and UDP arrive corrupt (ping
    works, since ICMP is checksummed in software).
    """

    def config(self, **params: Any) -> Any:
        self.cmd(_NO_IPV6)
        result = super().config(**params)
        for intf in self.intfList():
            self.cmd(f"ethtool -K {intf.name} tx off >/dev/null 2>&1")
        return result


class LabController(RemoteController):
    """Mininet's remote controller without its telnet probe: the probe sends junk to the
    OpenFlow port and warns while our controller is still starting; the lab checks the
    controller's health itself."""

    def checkListening(self) -> None:
        return None


def disable_ipv6(intf: str) -> None:
    """Per-interface switch: no global sysctl of the machine is changed."""
    path = Path("/proc/sys/net/ipv6/conf") / intf.replace(".", "/") / "disable_ipv6"
    with contextlib.suppress(OSError):  # IPv6 compiled out or interface gone: nothing to do
        path.write_text("1\n")


class LabNetwork:
    """One Mininet network: build (hosts, links), then start (bridges, controller target)."""

    def __init__(
        self, plan: LeafSpinePlan, of_host: str, of_port: int, protocol: str = "tcp"
    ) -> None:
        find_tool("ethtool", "ethtool")  # QuietHost needs it, or TCP/UDP silently break
        setLogLevel("warning")
        # Mininet has its own handler; without this its warnings also reach the root logger.
        logging.getLogger("mininet").propagate = False
        self.plan = plan
        switch = functools.partial(
            OVSSwitch, datapath="user", failMode="secure", protocols="OpenFlow13", batch=True
        )
        self.net = Mininet(
            topo=LeafSpineTopo(plan),
            switch=switch,
            host=QuietHost,
            controller=None,
            build=False,
            autoSetMacs=False,
            waitConnected=False,
        )
        self.net.addController(LabController("c0", ip=of_host, port=of_port, protocol=protocol))

    def build(self) -> None:
        self.net.build()
        for intf in self.plan.switch_interfaces():
            disable_ipv6(intf)
        ip = find_tool("ip", "iproute2")
        for link in self.plan.fabric_links:
            for end in (link.a, link.b):
                subprocess.run(
                    [ip, "link", "set", "dev", end.intf, "mtu", str(FABRIC_MTU)], check=True
                )

    def node_pids(self) -> dict[str, int]:
        """Shell pid of every Mininet node: hosts (namespace holders), switches, controller."""
        nodes = [*self.net.hosts, *self.net.switches, *self.net.controllers]
        return {node.name: node.pid for node in nodes if getattr(node, "pid", None)}

    def start(self) -> None:
        self.net.start()

    def stop(self, log: Callable[[str], None]) -> None:
        try:
            self.net.stop()
            for controller in self.net.controllers:
                controller.terminate()  # Mininet leaves the RemoteController's shell running
        except Exception as exc:  # state-based cleanup runs next and removes what is left
            log(f"mininet stop failed: {exc!r}")
