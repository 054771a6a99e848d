"""The REST API's listening socket: connections to it send small answers without delay."""

from __future__ import annotations

import asyncio
import socket

from vtap.service import bind_api_socket


async def test_api_connections_have_nodelay() -> None:
    # Without TCP_NODELAY every request after the first on a kept-alive connection waits
    # ~40 ms (Nagle against the client's delayed ACK). asyncio sets it on accepted sockets
    # only when the listening socket was made as IPPROTO_TCP.
    sock = bind_api_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        nodelay.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(nodelay, 5) != 0
        writer.close()
