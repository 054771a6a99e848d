"""The listening side of the OpenFlow channel: accept switches, hand them to the controller.

Each connection lives in its own task; a switch that stalls the handshake or dies mid-session
affects only itself.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from collections.abc import Awaitable, Callable

from vtap.errors import VtapError
from vtap.ofchannel.codec import CodecError
from vtap.ofchannel.session import HandshakeError, SwitchSession

log = logging.getLogger(__name__)

SessionHandler = Callable[[SwitchSession], Awaitable[None]]


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """A server context that admits only peers with a certificate `client_ca` signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class OpenFlowServer:
    """Accepts switch connections; `handler` runs for each handshaken session until it ends."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: SessionHandler,
        *,
        echo_interval: float = 5.0,
        echo_timeout: float = 15.0,
        request_timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        self.host = host
        self.port = port
        self._handler = handler
        self._session_args = {
            "echo_interval": echo_interval,
            "echo_timeout": echo_timeout,
            "request_timeout": request_timeout,
        }
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._accept,
                self.host,
                self.port,
                reuse_address=True,
                ssl=self.tls,
                ssl_handshake_timeout=5.0 if self.tls else None,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise VtapError(
                    f"OpenFlow port {self.host}:{self.port} is already in use "
                    "(another controller running? choose --of-port)"
                ) from exc
            raise VtapError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("OpenFlow listening on %s:%s:%s", "ssl" if self.tls else "tcp", sock[0], sock[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session = SwitchSession(reader, writer, **self._session_args)
        try:
            await session.handshake()
        except (HandshakeError, CodecError, TimeoutError, ConnectionError, OSError) as exc:
            log.warning("handshake with %s failed: %s", session.peer, exc)
            session.close("handshake failed")
            self._tasks.discard(task)
            return
        except BaseException:
            # Cancelled (shutdown) or a bug: the socket must not outlive the attempt.
            session.close("handshake aborted")
            self._tasks.discard(task)
            raise
        try:
            await self._handler(session)
        except asyncio.CancelledError:
            session.close("controller shutting down")
            raise
        except Exception:
            log.exception("session %s failed", session.name)
            session.close("internal error")
        finally:
            self._tasks.discard(task)
