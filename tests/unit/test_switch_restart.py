"""A switch that restarted (it comes back with empty tables) gets its TAP entries as soon as its
fabric links are back, not after the settle delay; until then the forwarding app installs no
path, so no packet is forwarded without its copy. A switch that kept its tables goes on copying
by them and waits the settle delay as before."""

from __future__ import annotations

from vtap.compiler.forwarding import base_rules
from vtap.controller.forwarding import Forwarding
from vtap.controller.reconciler import Desired, Reconciler
from vtap.controller.state import ControllerState
from vtap.domain.network import LOCAL_PORT, Link, Port, PortRef, Switch
from vtap.openflow.pipeline import Owner, cookie
from vtap.openflow.rules import FlowRule, Match, Output
from vtap.packets import parse_frame
from vtap.settings import Settings
from vtap.topology.graph import Topology

from .test_audit import Table
from .test_forwarding_grace import RECEIVER, SENDER, FakeSession, udp_frame

LEAF, SPINE = 0x101, 0x201
TAP_ENTRY = FlowRule(2, 100, Match(eth_type=0x0800, ip_proto=17), (Output(3),),
                     cookie=cookie(Owner.POLICY, 7))  # fmt: skip
BASE = {r.key: r for r in base_rules()}


def _ports(*numbers: int) -> tuple[Port, ...]:
    return tuple(Port(n, f"p{n}", f"0a:00:00:00:00:{n:02x}") for n in numbers)


def _fabric() -> Topology:
    topo = Topology()
    topo.switch_up(Switch(LEAF, "leaf1", _ports(1, 3)), 0.0)
    topo.switch_up(Switch(SPINE, "spine1", _ports(1)), 0.0)
    topo.lldp_seen(Link(PortRef(LEAF, 3), PortRef(SPINE, 1)), 1.0)
    return topo


def test_links_are_back_once_every_fabric_port_has_one_again() -> None:
    topo = _fabric()
    assert not topo.links_back(LEAF), "a switch that never left has nothing to come back to"
    # The whole fabric restarts: the spine leaves first and takes the link with it.
    assert not topo.had_links(LEAF)
    topo.switch_down(SPINE, 2.0)
    topo.switch_down(LEAF, 2.0)
    assert topo.had_links(LEAF) and topo.had_links(SPINE)
    topo.switch_up(Switch(LEAF, "leaf1", _ports(1, 3)), 3.0)
    assert not topo.links_back(LEAF)
    topo.switch_up(Switch(SPINE, "spine1", _ports(1)), 3.0)
    topo.lldp_seen(Link(PortRef(SPINE, 1), PortRef(LEAF, 3)), 3.1)  # one direction suffices
    assert topo.links_back(LEAF) and topo.links_back(SPINE)


async def _joined(
    table: Table, links_back: bool, now: float = 100.0, came_back: bool = True
) -> Reconciler:
    reconciler = Reconciler({LEAF: table}, lambda: now, settle=5.0,  # type: ignore[dict-item]
                            links_back=lambda _d: links_back,
                            had_links=lambda _d: came_back)  # fmt: skip
    table.dpid = LEAF
    await reconciler.join(table)  # type: ignore[arg-type]
    return reconciler


def _desired(_dpid: int, tap: bool) -> Desired:
    return Desired(BASE | ({TAP_ENTRY.key: TAP_ENTRY} if tap else {}), {})


async def test_a_restarted_switch_gets_its_tap_entries_once_its_links_are_back() -> None:
    table = Table()
    waiting = await _joined(table, links_back=False)
    assert not waiting.settled(LEAF) and not waiting.copies_ready()
    await waiting.sync(_desired, {LEAF: None})
    assert TAP_ENTRY.key not in table.flows and not waiting.copies_ready()

    table = Table()
    back = await _joined(table, links_back=True)
    assert back.settled(LEAF) and not back.copies_ready()
    await back.sync(_desired, {LEAF: None})
    assert table.flows[TAP_ENTRY.key] == TAP_ENTRY
    assert back.copies_ready(), "committed TAP entries: forwarding may go on"


async def test_a_switch_new_to_the_fabric_holds_no_forwarding_back() -> None:
    """No copy path crosses a switch whose links were never seen: new flows elsewhere must not
    wait for its settle."""
    reconciler = await _joined(Table(), links_back=False, came_back=False)
    assert not reconciler.settled(LEAF)
    assert reconciler.copies_ready()


async def test_a_switch_that_kept_its_tap_entries_copies_by_them_and_waits_the_settle() -> None:
    table = Table()
    table.flows = BASE | {TAP_ENTRY.key: TAP_ENTRY}  # a controller restart: the switch kept them
    reconciler = await _joined(table, links_back=True)
    assert reconciler.copies_ready()
    assert not reconciler.settled(LEAF), "its entries may be right: no partial view deletes them"


async def test_no_path_is_installed_while_copies_are_not_ready() -> None:
    state = ControllerState(Settings(edge_grace=0.0))
    local = Port(LOCAL_PORT, "br", "0a:00:00:00:00:00")
    state.topology.switch_up(Switch(0x42, "br", (*_ports(1, 2), local)), state.now() - 10)
    state.hosts.observe(*RECEIVER, PortRef(0x42, 2), state.now())
    session = FakeSession()
    state.sessions[0x42] = session  # type: ignore[assignment]
    fwd = Forwarding(state)
    ready = False
    fwd.copies_ready = lambda: ready
    data = udp_frame()
    frame = parse_frame(data)
    assert frame is not None
    await fwd.on_ipv4(session, 1, frame, data)  # type: ignore[arg-type]
    assert session.applied == [] and session.sent == [], "forwarded before its copy could be"
    assert fwd.held == 1
    assert state.hosts.by_mac(SENDER[0]) is not None, "the sender is still learnt"
    ready = True
    await fwd.on_ipv4(session, 1, frame, data)  # type: ignore[arg-type]
    assert len(session.applied) == 1 and len(session.sent) == 1
