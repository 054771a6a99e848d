"""A host on the data plane may lie: forged LLDP never makes a link, and a claim on a live
host's MAC or IP from another port never moves its binding. Both are raised as alerts."""

from __future__ import annotations

from pathlib import Path

from tests.unit.leafspine import Fabric
from vtap.controller.alerts import AlertKind
from vtap.controller.discovery import Discovery
from vtap.controller.forwarding import Forwarding
from vtap.controller.lldpauth import LldpSigner
from vtap.controller.state import ControllerState
from vtap.domain.network import Link, PortRef
from vtap.packets import build_lldp, parse_frame
from vtap.settings import Settings

FAB = Fabric(spines=2, leaves=2, hosts_per_leaf=2)


class _Session:
    closed = None


def _state(tmp_path: Path) -> ControllerState:
    state = ControllerState(Settings(state_dir=tmp_path))
    topo = FAB.build()
    state.topology = topo
    for dpid in (*FAB.spine_ids(), *FAB.leaf_ids()):
        state.sessions[dpid] = _Session()  # type: ignore[assignment]
    return state


def _received(discovery: Discovery, frame: bytes, at: PortRef) -> None:
    parsed = parse_frame(frame)
    assert parsed is not None and parsed.lldp is not None
    discovery.on_lldp(at.dpid, at.port_no, parsed.lldp)


async def _nothing(_links: list[Link]) -> None:
    return None


def test_only_our_fresh_signed_probes_make_links(tmp_path: Path) -> None:
    state = _state(tmp_path)
    discovery = Discovery(state, _nothing)
    h1_port, h2_port = FAB.host_port(1), FAB.host_port(2)  # both on leaf1, no host bound yet
    links = len(state.topology.links())

    def probe(src: PortRef, signer: LldpSigner = discovery.signer) -> bytes:
        stamp, signature = signer.sign(src.dpid, src.port_no)
        return build_lldp(src.dpid, src.port_no, "02:00:00:00:00:01", stamp, signature)

    forged = [
        build_lldp(h2_port.dpid, h2_port.port_no, "02:00:00:00:00:01"),  # unsigned
        probe(h2_port, LldpSigner(9.0)),  # another key (an attacker's own "controller")
        probe(h1_port),  # our probe, sent back into the port it went out of
    ]
    stale = LldpSigner(9.0, key=discovery.signer._key, clock=lambda: 0.0)  # signed in 1970
    forged.append(probe(h2_port, stale))
    for frame in forged:
        _received(discovery, frame, h1_port)
    assert len(state.topology.links()) == links
    reasons = [a.message for a in state.alerts.since()]
    assert [a.kind for a in state.alerts.since()] == [AlertKind.FORGED_LLDP]  # folded
    assert "unsigned" in reasons[0] and state.alerts.since()[0].repeats == 3

    # A genuine probe between two ports with no host makes the link...
    _received(discovery, probe(h2_port), h1_port)
    assert Link(h2_port, h1_port) in state.topology.links()


def test_lldp_is_refused_on_a_port_with_a_live_host(tmp_path: Path) -> None:
    """Even a genuine probe, relayed by two hosts, cannot make the source's port fabric."""
    state = _state(tmp_path)
    discovery = Discovery(state, _nothing)
    h1_port, h3_port = FAB.host_port(1), FAB.host_port(3)
    state.hosts.observe("00:00:00:00:00:01", "10.0.0.1", h1_port, 0.0)
    stamp, signature = discovery.signer.sign(h3_port.dpid, h3_port.port_no)
    frame = build_lldp(h3_port.dpid, h3_port.port_no, "02:00:00:00:00:03", stamp, signature)
    _received(discovery, frame, h1_port)
    assert state.hosts.by_ip("10.0.0.1") is not None  # the source is not forgotten
    assert Link(h3_port, h1_port) not in state.topology.links()
    (alert,) = state.alerts.since()
    assert alert.kind is AlertKind.FORGED_LLDP and "00:00:00:00:00:01" in alert.message


async def test_a_gratuitous_arp_for_the_monitors_ip_is_refused(tmp_path: Path) -> None:
    state = _state(tmp_path)
    forwarding = Forwarding(state)
    monitor, attacker = FAB.host_port(3), FAB.host_port(4)
    assert await forwarding.learn("00:00:00:00:00:03", "10.0.0.3", monitor)
    for _ in range(100):
        assert not await forwarding.learn("00:00:00:00:00:04", "10.0.0.3", attacker)
    assert not await forwarding.learn("00:00:00:00:00:03", "10.0.0.3", attacker)
    host = state.hosts.by_ip("10.0.0.3")
    assert host is not None and host.location == monitor and host.mac == "00:00:00:00:00:03"
    kinds = [a.kind for a in state.alerts.since()]
    assert kinds == [AlertKind.HOST_CLAIM_REFUSED, AlertKind.HOST_CLAIM_REFUSED]
    assert state.alerts.counts[AlertKind.HOST_CLAIM_REFUSED] == 101
    assert "claimed IP 10.0.0.3" in state.alerts.since()[0].message
