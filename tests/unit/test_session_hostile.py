"""A lying switch costs only its own session: closed with a reason, its socket released,
while other switches carry on; a second connection cannot take a live switch's identity."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.unit.test_session import FakeSwitch, _connect
from vtap.controller.alerts import AlertKind
from vtap.controller.core import Controller
from vtap.ofchannel import codec
from vtap.ofchannel.server import OpenFlowServer
from vtap.ofchannel.session import SwitchSession
from vtap.settings import Settings, parse_dpid
from vtap.store.memory import MemoryPolicyRepository


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_malformed_reply_closes_only_its_session_with_the_reason() -> None:
    liar, honest = FakeSwitch(dpid=0x1), FakeSwitch(dpid=0x2)
    bad_session, bad_task = await _connect(liar)
    good_session, good_task = await _connect(honest)
    waiting = asyncio.create_task(bad_session.multipart(codec.group_desc_request()))
    await asyncio.sleep(0.05)
    # the 24-byte GROUP_DESC reply with an entry of length 0 (once an endless loop)
    reply = struct.pack("!BBHIHH4x", 4, ofp.OFPT_MULTIPART_REPLY, 24, 0, 7, 0) + bytes(8)
    bad_session._reader.feed_data(reply)
    async with asyncio.timeout(5):
        await bad_task
    assert bad_session.close_reason.startswith("malformed message: group description")
    assert "length 0" in bad_session.close_reason
    assert waiting.done()  # its waiter failed instead of hanging
    await good_session.barrier()  # the other switch is served as before
    assert not good_session.closed.is_set()
    good_session.close()
    await good_task


async def test_fifty_bad_hellos_are_all_closed_and_release_their_sockets() -> None:
    served: list[int] = []

    async def handler(session: SwitchSession) -> None:
        served.append(session.dpid or 0)

    server = OpenFlowServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        baseline = _open_fds()
        bad_hellos = [
            struct.pack("!BBHIHH", 4, 0, 12, 1, 1, 0),  # bitmap element of length 0
            struct.pack("!BBHIHHI", 1, 0, 16, 1, 1, 8, 2),  # offers OpenFlow 1.0 only
            struct.pack("!BBHI", 4, 0, 4, 1),  # header length below 8
        ]
        peers = []
        for i in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(bad_hellos[i % len(bad_hellos)])
            await writer.drain()
            peers.append((reader, writer))
        for reader, _ in peers:  # the server says HELLO, then hangs up
            async with asyncio.timeout(5):
                while await reader.read(4096):
                    pass
        for _, writer in peers:
            writer.close()
        await asyncio.sleep(0.05)
        assert served == []
        assert not server._tasks
        assert _open_fds() <= baseline
    finally:
        await server.close()


async def _admitted(ctl: Controller, session: object) -> bool:
    return await ctl._admit(session)  # type: ignore[arg-type]


class _Peer:
    """The part of a session the admission looks at."""

    def __init__(self, dpid: int, peer: str, answers: bool = True) -> None:
        self.dpid = dpid
        self.peer = peer
        self.answers = answers
        self.closed = asyncio.Event()
        self.reason = ""

    async def request(self, _msg: object) -> object:
        if not self.answers:
            await asyncio.sleep(60)
        return object()

    def close(self, reason: str = "") -> None:
        self.reason = reason
        self.closed.set()


async def test_a_duplicate_datapath_id_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    ctl = Controller(Settings(state_dir=tmp_path, duplicate_probe=0.2), MemoryPolicyRepository())
    real = _Peer(0x101, "127.0.0.1:40000")
    ctl.state.sessions[0x101] = real  # type: ignore[assignment]
    impostor = _Peer(0x101, "127.0.0.1:40001")
    assert not await _admitted(ctl, impostor)
    assert impostor.reason == "duplicate datapath id" and not real.closed.is_set()
    assert ctl.state.sessions[0x101] is real
    (alert,) = ctl.state.alerts.since()
    assert alert.kind is AlertKind.DUPLICATE_DATAPATH
    assert "0000000000000101" in alert.message and "127.0.0.1:40001" in alert.message

    # The real switch reconnecting after its old connection died unseen is let in.
    real.answers = False
    back = _Peer(0x101, "127.0.0.1:40002")
    assert await _admitted(ctl, back)
    assert real.closed.is_set() and "silent" in real.reason


async def test_the_allow_list_refuses_other_datapaths(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, datapath_allow=["00:00:00:00:00:00:01:01", "0x102"])
    assert settings.datapath_allow == {0x101, 0x102}
    ctl = Controller(settings, MemoryPolicyRepository())
    assert await _admitted(ctl, _Peer(0x102, "a"))
    stranger = _Peer(0x666, "127.0.0.1:5")
    assert not await _admitted(ctl, stranger)
    assert stranger.reason == "datapath id not in the allow-list"
    assert [a.kind for a in ctl.state.alerts.since()] == [AlertKind.DATAPATH_NOT_ALLOWED]


def test_datapath_ids_are_parsed_strictly() -> None:
    assert parse_dpid("0000000000000101") == 0x101 == parse_dpid(257)
    for bad in ("", "xyz", "1" * 17, "-1", True):
        try:
            parse_dpid(bad)
        except ValueError as exc:
            assert "datapath id" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
