"""A host whose first packets arrive while its port is still in the edge grace is learnt once
the grace ends, even if it only ever sends one flow (a traffic generator does)."""

from __future__ import annotations

import asyncio

from vtap.controller.forwarding import Forwarding
from vtap.controller.state import ControllerState
from vtap.domain.network import LOCAL_PORT, Port, PortRef, Switch
from vtap.packets import _ethernet, mac_to_bytes, parse_frame
from vtap.settings import Settings

DPID = 0x42
SENDER = ("02:00:00:00:00:01", "10.9.0.1")
RECEIVER = ("02:00:00:00:00:02", "10.9.0.2")


class FakeSession:
    def __init__(self) -> None:
        self.dpid = DPID
        self.closed = asyncio.Event()
        self.applied: list[object] = []
        self.sent: list[object] = []

    async def apply(self, msgs: list[object]) -> None:
        self.applied.extend(msgs)

    async def send(self, msg: object) -> None:
        self.sent.append(msg)


def udp_frame() -> bytes:
    ip = bytes.fromhex("45000020000000004011") + b"\0\0"
    for addr in (SENDER[1], RECEIVER[1]):
        ip += bytes(int(x) for x in addr.split("."))
    udp = (9).to_bytes(2, "big") + (9).to_bytes(2, "big") + (12).to_bytes(2, "big") + b"\0\0"
    frame = _ethernet(RECEIVER[0], SENDER[0], 0x0800, ip + udp + b"vtap")
    assert mac_to_bytes(SENDER[0]) in frame
    return frame


async def test_packet_in_during_grace_is_handled_when_the_grace_ends() -> None:
    state = ControllerState(Settings(edge_grace=0.3))
    ports = (Port(1, "p1", "0a:00:00:00:00:01"), Port(2, "p2", "0a:00:00:00:00:02"),
             Port(LOCAL_PORT, "br", "0a:00:00:00:00:00"))  # fmt: skip
    state.topology.switch_up(Switch(DPID, "br", ports), state.now() - 10)
    # The sender's port (1) has just come up; the receiver's (2) has been up for a while.
    state.topology.port_update(DPID, Port(1, "p1", "0a:00:00:00:00:01", up=False), state.now())
    state.topology.port_update(DPID, ports[0], state.now())
    state.hosts.observe(*RECEIVER, PortRef(DPID, 2), state.now())
    session = FakeSession()
    state.sessions[DPID] = session  # type: ignore[assignment]
    fwd = Forwarding(state)
    data = udp_frame()
    frame = parse_frame(data)
    assert frame is not None

    await fwd.on_ipv4(session, 1, frame, data)  # type: ignore[arg-type]
    assert state.hosts.by_mac(SENDER[0]) is None
    assert session.applied == [], "a path was installed from a port still in its grace"

    await asyncio.sleep(0.6)
    learnt = state.hosts.by_mac(SENDER[0])
    assert learnt is not None and learnt.location == PortRef(DPID, 1)
    assert len(session.applied) == 1, "the deferred packet was not routed after the grace"
    assert len(session.sent) == 1, "the deferred packet was not sent on"
