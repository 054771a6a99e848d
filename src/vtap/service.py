"""Run the controller: OpenFlow server, background discovery and the REST API in one loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable

import uvicorn

from vtap import runtime
from vtap.api.app import create_app
from vtap.controller.core import Controller
from vtap.errors import VtapError
from vtap.ofchannel.server import OpenFlowServer, tls_context
from vtap.pki import Pki
from vtap.settings import Settings
from vtap.store.auditlog import SqliteAuditLog
from vtap.store.hosts import SqliteHostRepository
from vtap.store.lock import StoreLock
from vtap.store.sqlite import SqlitePolicyRepository
from vtap.store.tokens import SqliteTokenRepository

log = logging.getLogger(__name__)


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service decides when to stop."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def bind_api_socket(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so an occupied port is a clear one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    # Without it, every request after the first on a kept-alive connection stalls ~40 ms
    # (Nagle against delayed ACK): the CLI's `apply` and the UI make many such requests.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise VtapError(f"REST API address {host}:{port} is already in use") from exc
        raise VtapError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when run as the main program)."""
    runtime.tune()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    lock = StoreLock(settings.policy_db)
    lock.acquire()
    try:
        api_sock = bind_api_socket(settings.api_host, settings.api_port)
    except BaseException:
        lock.release()
        raise
    closers: list[Callable[[], object]] = [lock.release, api_sock.close]

    def close_all() -> None:
        while closers:
            closers.pop()()

    try:
        store = SqlitePolicyRepository(settings.policy_db)
        closers.append(store.close)
        hosts_store = SqliteHostRepository(settings.policy_db)
        closers.append(hosts_store.close)
        tokens = SqliteTokenRepository(settings.policy_db)
        closers.append(tokens.close)
        audit_log = SqliteAuditLog(settings.policy_db)
        closers.append(audit_log.close)
    except Exception:
        close_all()
        raise
    controller = Controller(
        settings, store, hosts_store=hosts_store, tokens=tokens, audit_log=audit_log
    )
    if not settings.auth:
        log.warning("REST API without authentication (VTAP_AUTH=false)")
    tls = None
    if settings.tls_dir is not None:
        pki = Pki(settings.tls_dir)
        if (problem := pki.missing()) is not None:
            close_all()
            raise VtapError(problem)
        tls = tls_context(
            str(pki.cert("controller")), str(pki.key("controller")), str(pki.switch_ca)
        )
    openflow = OpenFlowServer(
        settings.of_host,
        settings.of_port,
        controller.handle_session,
        echo_interval=settings.echo_interval,
        echo_timeout=settings.echo_timeout,
        request_timeout=settings.request_timeout,
        tls=tls,
    )
    try:
        await openflow.start()
    except VtapError:
        close_all()
        raise
    api = _ApiServer(
        uvicorn.Config(
            create_app(controller), log_level="warning", lifespan="off", access_log=False
        )
    )
    api_task = asyncio.create_task(api.serve(sockets=[api_sock]), name="rest-api")
    background = asyncio.create_task(controller.run(), name="discovery")
    stopper = asyncio.create_task(stop.wait(), name="stop")
    log.info(
        "vtap controller: OpenFlow on %s:%d, REST API on http://%s:%d, policies in %s",
        settings.of_host,
        openflow.port,
        settings.api_host,
        settings.api_port,
        settings.policy_db,
    )
    try:
        done, _ = await asyncio.wait(
            {api_task, background, stopper}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        api.should_exit = True
        stopper.cancel()
        background.cancel()
        await openflow.close()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(api_task, 5)
        with contextlib.suppress(BaseException):
            await background
        close_all()
        log.info("vtap controller stopped")
