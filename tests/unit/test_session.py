"""The session against a scripted switch that speaks real OpenFlow 1.3 bytes."""

from __future__ import annotations

import asyncio
import struct

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import ENCODE_CHUNK, BatchError, SessionClosed, SwitchSession
from vtap.openflow.rules import FlowRule, Match, Output

P = codec.codec_parser()


class FakeSwitch:
    """Answers the handshake, barriers and echo; rejects flow-mods on table 7."""

    def __init__(self, dpid: int = 0x101, silent: bool = False) -> None:
        self.dpid = dpid
        self.silent = silent
        self.flow_mods: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(msg: object, xid: int) -> None:
            writer.write(codec.encode(msg, xid))

        send(P.OFPHello(codec._DP), 1)
        try:
            while True:
                head = await reader.readexactly(8)
                _, mtype, length, xid = struct.unpack("!BBHI", head)
                body = await reader.readexactly(length - 8)
                if self.silent and mtype not in (ofp.OFPT_HELLO, ofp.OFPT_FEATURES_REQUEST):
                    continue
                if mtype == ofp.OFPT_FEATURES_REQUEST:
                    body = struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0, 0)
                    writer.write(struct.pack("!BBHI", 4, ofp.OFPT_FEATURES_REPLY, 32, xid) + body)
                elif mtype == ofp.OFPT_BARRIER_REQUEST:
                    send(P.OFPBarrierReply(codec._DP), xid)
                elif mtype == ofp.OFPT_ECHO_REQUEST:
                    send(P.OFPEchoReply(codec._DP, body), xid)
                elif mtype == ofp.OFPT_FLOW_MOD:
                    self.flow_mods.append(head + body)
                    table_id = body[16]  # after cookie and cookie_mask
                    if table_id == 7:
                        err = P.OFPErrorMsg(
                            codec._DP,
                            type_=ofp.OFPET_FLOW_MOD_FAILED,
                            code=ofp.OFPFMFC_BAD_TABLE_ID,
                            data=(head + body)[:64],
                        )
                        send(err, xid)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _connect(switch: FakeSwitch, **kwargs: float) -> tuple[SwitchSession, asyncio.Task]:
    server = await asyncio.start_server(switch.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    session = SwitchSession(reader, writer, **kwargs)
    await session.handshake()
    task = asyncio.create_task(session.run())
    return session, task


def _rule(table: int) -> FlowRule:
    return FlowRule(table, 10, Match(in_port=1), (Output(2),))


async def test_handshake_learns_dpid_and_batch_confirms() -> None:
    switch = FakeSwitch(dpid=0x2A)
    session, task = await _connect(switch)
    assert session.dpid == 0x2A
    await session.apply([codec.flow_add(_rule(0)), codec.flow_add(_rule(1))])
    assert len(switch.flow_mods) == 2
    session.close()
    await task


async def test_batch_error_names_the_failed_message() -> None:
    switch = FakeSwitch()
    session, task = await _connect(switch)
    with pytest.raises(BatchError) as info:
        await session.apply([codec.flow_add(_rule(0)), codec.flow_add(_rule(7))])
    assert list(info.value.failures) == [1]
    assert "FLOW_MOD_FAILED/BAD_TABLE_ID" in str(info.value)
    session.close()
    await task


async def test_silent_switch_is_declared_dead_and_waiters_fail() -> None:
    switch = FakeSwitch(silent=True)
    session, task = await _connect(switch, echo_interval=0.1, echo_timeout=0.4, request_timeout=5)
    with pytest.raises(SessionClosed):
        await session.barrier()
    await asyncio.wait_for(task, 2)
    assert "dead peer" in session.close_reason
    assert await session.events.get() is None


async def test_packet_in_becomes_an_event() -> None:
    switch = FakeSwitch()
    server = await asyncio.start_server(switch.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    session = SwitchSession(reader, writer)
    await session.handshake()
    task = asyncio.create_task(session.run())
    match = bytearray()
    P.OFPMatch(in_port=3).serialize(match, 0)
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, 4, 0, 1, 5) + bytes(match) + b"\0\0abcd"
    # Inject as if the switch had sent it: feed the bytes straight into the session's reader.
    reader.feed_data(struct.pack("!BBHI", 4, ofp.OFPT_PACKET_IN, 8 + len(body), 0) + body)
    event = await asyncio.wait_for(session.events.get(), 2)
    assert event == m.PacketIn(in_port=3, reason=0, table_id=1, cookie=5, data=b"abcd")
    session.close()
    await task


async def test_a_stalled_switch_does_not_block_another() -> None:
    from vtap.ofchannel.server import OpenFlowServer

    joined: list[int] = []

    async def handler(session: SwitchSession) -> None:
        reader = asyncio.create_task(session.run())
        await session.barrier()
        joined.append(session.dpid or 0)
        session.close()
        await reader

    server = OpenFlowServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        # A peer that connects and never says HELLO...
        _, stalled = await asyncio.open_connection("127.0.0.1", server.port)
        # ...while a healthy switch joins and is served at once.
        good = FakeSwitch(dpid=0x77)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        task = asyncio.create_task(good.serve(reader, writer))
        async with asyncio.timeout(2):
            while not joined:
                await asyncio.sleep(0.01)
        assert joined == [0x77]
        stalled.close()
        await task
    finally:
        await server.close()


async def test_a_large_batch_lets_the_loop_run_and_still_names_the_failed_message() -> None:
    """Encoding thousands of messages takes seconds: other work must get turns meanwhile, and
    the message numbers in a BatchError still count from the start of the whole batch."""
    switch = FakeSwitch()
    session, task = await _connect(switch)
    n = 3 * ENCODE_CHUNK + 7
    batch = [codec.flow_add(_rule(0)) for _ in range(n - 1)] + [codec.flow_add(_rule(7))]
    turns = 0  # turns the loop gave other work before the switch saw the first message

    async def other_work() -> None:
        nonlocal turns
        while not switch.flow_mods:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_work())
    with pytest.raises(BatchError) as info:
        await session.apply(batch)
    ticker.cancel()
    assert list(info.value.failures) == [n - 1]
    assert len(switch.flow_mods) == n
    assert turns >= 3  # one between each two chunks
    session.close()
    await task
