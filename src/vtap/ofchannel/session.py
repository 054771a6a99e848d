"""One OpenFlow 1.3 session with one switch.

Owns the socket: handshake, echo keepalive with dead-peer detection, xid-tracked requests,
multipart reassembly, barrier-confirmed batches and ONF bundles. Asynchronous switch events
(packet-in, port status, flow removed, unsolicited errors) go to a queue that the controller
drains in its own task, so a slow handler never stalls the reads that would answer its own
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vtap.ofchannel import codec
from vtap.ofchannel import messages as m

MALFORMED = "malformed message"  # how a close for a protocol violation starts
MAX_MULTIPART_ITEMS = 2_000_000  # a reply that never ends must not eat all memory
ENCODE_CHUNK = 500  # messages encoded between two yields to the event loop (a few ms of CPU)

log = logging.getLogger(__name__)

Event = m.PacketIn | m.PortStatus | m.FlowRemoved | m.Error


class SessionClosed(ConnectionError):
    """The switch went away (or was declared dead) while we waited for it."""


class HandshakeError(ConnectionError):
    pass


class OpenFlowError(Exception):
    """The switch rejected a request."""

    def __init__(self, error: m.Error, what: str = "request") -> None:
        super().__init__(f"{what} rejected: {error.text()}")
        self.error = error


class BatchError(Exception):
    """Some messages of a batch were rejected. `failures` maps batch index → error; for a
    bundle that failed as a whole with no message named (open or commit refused), the index is
    len(batch). `message` overrides the default text (which names the first failure)."""

    def __init__(
        self, dpid: int | None, failures: dict[int, m.Error], message: str | None = None
    ) -> None:
        if message is None:
            first = min(failures)
            message = f"message {first} of batch rejected: {failures[first].text()}"
        super().__init__(f"switch {dpid or 0:016x}: {message}")
        self.dpid = dpid
        self.failures = failures


@dataclass
class _Pending:
    future: asyncio.Future[object]
    multipart: list[m.MultipartItem] | None = None


@dataclass
class _Batch:
    xids: dict[int, int] = field(default_factory=dict)  # xid → index in the batch
    failures: dict[int, m.Error] = field(default_factory=dict)


class SwitchSession:
    """A connected, handshaken switch. Create with `SwitchSession.open()`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        echo_interval: float = 5.0,
        echo_timeout: float = 15.0,
        request_timeout: float = 10.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._echo_interval = echo_interval
        self._echo_timeout = echo_timeout
        self._request_timeout = request_timeout
        self._xids = itertools.count(1)
        self._bundle_ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._batch_of: dict[int, _Batch] = {}
        self._write_lock = asyncio.Lock()
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.dpid: int | None = None
        self.n_tables = 0
        self.peer = writer.get_extra_info("peername")
        self.closed = asyncio.Event()
        self._last_rx = time.monotonic()
        self._close_reason = ""

    # ------------------------------------------------------------ lifecycle

    async def handshake(self, timeout: float = 5.0) -> None:
        """HELLO exchange and FEATURES: afterwards `dpid` is known."""
        await self._write(codec.hello(), next(self._xids))
        async with asyncio.timeout(timeout):
            _, msg = codec.decode(await self._read_raw())
            if not isinstance(msg, m.Hello):
                raise HandshakeError(f"expected HELLO, got {type(msg).__name__}")
            if codec.OFP_VERSION not in msg.versions:
                await self._write(codec.hello_failed("vtap speaks OpenFlow 1.3 only"), 0)
                raise HandshakeError(
                    f"switch offers no OpenFlow 1.3 (versions {sorted(msg.versions)})"
                )
            xid = next(self._xids)
            await self._write(codec.features_request(), xid)
            while True:
                rxid, msg = codec.decode(await self._read_raw())
                if isinstance(msg, m.FeaturesReply) and rxid == xid:
                    break
                if isinstance(msg, m.EchoRequest):
                    await self._write(codec.echo_reply(msg.data), rxid)
        self.dpid = msg.dpid
        self.n_tables = msg.n_tables
        await self._write(codec.set_config(), next(self._xids))

    async def run(self) -> None:
        """Read until the switch goes away; then fail every waiter and end the event stream."""
        keepalive = asyncio.create_task(self._keepalive(), name=f"echo-{self.dpid}")
        try:
            while True:
                buf = await self._read_raw()
                self._last_rx = time.monotonic()
                try:
                    xid, msg = codec.decode(buf)
                except codec.CodecError as exc:
                    # A peer that breaks the protocol cannot be trusted with the rest of the
                    # stream either: drop this session only; the switch may reconnect.
                    self._close_reason = f"{MALFORMED}: {exc}"
                    log.warning("switch %s: closing: %s", self.name, self._close_reason)
                    return
                await self._dispatch(xid, msg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._close_reason = self._close_reason or f"connection lost ({exc.__class__.__name__})"
        finally:
            keepalive.cancel()
            with contextlib.suppress(BaseException):
                await keepalive
            self._fail_all()
            self.events.put_nowait(None)
            self._writer.close()
            self.closed.set()

    def close(self, reason: str = "closed by controller") -> None:
        self._close_reason = self._close_reason or reason
        self._writer.close()
        # Readers wake with EOF only once the transport is gone; abort makes that immediate.
        transport = self._writer.transport
        if transport is not None:
            transport.abort()

    @property
    def close_reason(self) -> str:
        return self._close_reason

    @property
    def name(self) -> str:
        return f"{self.dpid:016x}" if self.dpid is not None else str(self.peer)

    # ------------------------------------------------------------ requests

    async def send(self, msg: object) -> None:
        """Fire and forget (packet-out). Errors for it arrive as events."""
        await self._write(msg, next(self._xids))

    async def request(self, msg: object) -> object:
        """Send and wait for the reply with the same xid (echo, single replies)."""
        return await self._await_reply(msg, multipart=False)

    async def multipart(self, msg: object) -> list[m.MultipartItem]:
        """Send a multipart request and return the reassembled body of all reply parts."""
        result = await self._await_reply(msg, multipart=True)
        assert isinstance(result, list)
        return result

    async def apply(self, msgs: Sequence[object]) -> None:
        """Send a batch, then a barrier; return only when the barrier reply came back with no
        error for any message of the batch. Raises BatchError naming the failed messages.
        Not atomic: the messages that were accepted stay applied (see `apply_bundle`)."""
        batch, xids = self._batch(len(msgs))
        try:
            parts = await self._encode(lambda i: msgs[i], xids)
            async with self._write_lock:
                self._writer.write(b"".join(parts))
                await self._writer.drain()
            await self._await_reply(codec.barrier_request(), multipart=False)
        finally:
            self._end_batch(xids)
        if batch.failures:
            raise BatchError(self.dpid, batch.failures)

    async def apply_bundle(self, msgs: Sequence[object]) -> None:
        """Apply a batch all or nothing, as one ONF bundle (atomic, ordered).

        Open, every add and a barrier go out in one write. Open vSwitch rejects an invalid
        add at once and leaves it out of the bundle, whose commit would then succeed without
        it: so after the barrier, any error discards the bundle. Otherwise commit; a commit
        that fails (a message failed to apply) applies nothing. Raises BatchError: `failures`
        maps batch index → error, or len(msgs) → the bundle's own error when the switch named
        no message (open or commit refused). Raises SessionClosed as `apply` does.
        """
        if not msgs:
            return
        bundle_id = next(self._bundle_ids) & 0xFFFFFFFF
        open_xid = next(self._xids)
        opened = self._expect(open_xid)  # raises SessionClosed, before anything is registered
        batch, xids = self._batch(len(msgs))
        barrier_xid = next(self._xids)
        barrier = self._expect(barrier_xid)
        try:
            parts = await self._encode(lambda i: codec.bundle_add(bundle_id, msgs[i]), xids)
            parts.insert(0, codec.encode(codec.bundle_open(bundle_id), open_xid))
            parts.append(codec.encode(codec.barrier_request(), barrier_xid))
            async with self._write_lock:
                self._writer.write(b"".join(parts))
                await self._writer.drain()
            await self._wait(barrier)
            try:
                await self._wait(opened)  # answered before the barrier
            except OpenFlowError as exc:
                await self._discard(bundle_id)
                text = f"bundle open rejected: {exc.error.text()}"
                raise BatchError(self.dpid, {len(msgs): exc.error}, text) from None
            if batch.failures:
                await self._discard(bundle_id)
                first = min(batch.failures)
                text = f"message {first} of bundle rejected: {batch.failures[first].text()}"
                raise BatchError(self.dpid, dict(batch.failures), text + "; bundle discarded")
            try:
                await self._await_reply(codec.bundle_commit(bundle_id), multipart=False)
            except OpenFlowError as exc:
                # Open vSwitch sends the failed message's error (under its add's xid) first.
                commit = f"bundle commit rejected ({exc.error.text()})"
                if not batch.failures:
                    raise BatchError(self.dpid, {len(msgs): exc.error}, commit) from None
                first = min(batch.failures)
                text = f"{commit}: message {first}: {batch.failures[first].text()}"
                raise BatchError(self.dpid, dict(batch.failures), text) from None
        finally:
            self._end_batch(xids)
            for xid, future in ((open_xid, opened), (barrier_xid, barrier)):
                self._pending.pop(xid, None)
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: an unanswered failure is no news

    async def barrier(self) -> None:
        await self._await_reply(codec.barrier_request(), multipart=False)

    # ------------------------------------------------------------ internals

    async def _await_reply(self, msg: object, *, multipart: bool) -> object:
        xid = next(self._xids)
        future = self._expect(xid, multipart=multipart)
        try:
            await self._write(msg, xid)
            return await self._wait(future)
        finally:
            self._pending.pop(xid, None)

    def _expect(self, xid: int, *, multipart: bool = False) -> asyncio.Future[object]:
        """A future for the reply to `xid` (the caller pops it from `_pending` when done)."""
        if self.closed.is_set():
            raise SessionClosed(f"switch {self.name} is disconnected")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending[xid] = _Pending(future, [] if multipart else None)
        return future

    async def _wait(self, future: asyncio.Future[object]) -> object:
        try:
            async with asyncio.timeout(self._request_timeout):
                return await future
        except TimeoutError as exc:
            raise SessionClosed(f"switch {self.name} did not answer in time") from exc

    def _batch(self, n: int) -> tuple[_Batch, list[int]]:
        """A batch of `n` messages with an xid each, whose errors are collected by index."""
        batch = _Batch()
        xids = [next(self._xids) for _ in range(n)]
        for index, xid in enumerate(xids):
            batch.xids[xid] = index
            self._batch_of[xid] = batch
        return batch, xids

    def _end_batch(self, xids: list[int]) -> None:
        for xid in xids:
            self._batch_of.pop(xid, None)

    async def _encode(self, build: Callable[[int], object], xids: list[int]) -> list[bytes]:
        """Encode message i (as `build(i)`) with xids[i], ENCODE_CHUNK at a time with a yield
        in between: a batch of thousands takes a while, and meanwhile other switches, echo
        requests, LLDP and the API must still be served. Messages are built as they are read
        (see codec.ChangeMessages). One part per chunk, for the caller to send in one write
        (a write per message costs a send() each while the socket has room)."""
        parts: list[bytes] = []
        encode = codec.encode
        for start in range(0, len(xids), ENCODE_CHUNK):
            if start:
                await asyncio.sleep(0)
            chunk = range(start, min(start + ENCODE_CHUNK, len(xids)))
            parts.append(b"".join([encode(build(i), xids[i]) for i in chunk]))
        return parts

    async def _discard(self, bundle_id: int) -> None:
        """Drop a failed bundle; the switch's answer (an error when the open had failed) is
        no news."""
        with contextlib.suppress(OpenFlowError):
            await self._await_reply(codec.bundle_discard(bundle_id), multipart=False)

    async def _dispatch(self, xid: int, msg: m.Inbound) -> None:
        match msg:
            case m.EchoRequest(data=data):
                await self._write(codec.echo_reply(data), xid)
                return
            case m.Error():
                if xid in self._batch_of:
                    batch = self._batch_of[xid]
                    batch.failures[batch.xids[xid]] = msg
                    return
                pending = self._pending.get(xid)
                if pending and not pending.future.done():
                    pending.future.set_exception(OpenFlowError(msg))
                    return
                self.events.put_nowait(msg)
                return
            case m.PacketIn() | m.PortStatus() | m.FlowRemoved():
                self.events.put_nowait(msg)
                return
        pending = self._pending.get(xid)
        if pending is None or pending.future.done():
            return
        if isinstance(msg, m.MultipartReply) and pending.multipart is not None:
            pending.multipart.extend(msg.body)
            if len(pending.multipart) > MAX_MULTIPART_ITEMS:
                self.close(f"multipart reply of more than {MAX_MULTIPART_ITEMS:,} entries")
                return
            if not msg.more:
                pending.future.set_result(pending.multipart)
            return
        pending.future.set_result(msg)

    async def _keepalive(self) -> None:
        """Probe a quiet switch; declare it dead when it stays silent past echo_timeout."""
        while True:
            await asyncio.sleep(self._echo_interval)
            quiet = time.monotonic() - self._last_rx
            if quiet >= self._echo_timeout:
                log.warning("switch %s: no message for %.1fs, closing", self.name, quiet)
                self.close(f"dead peer: silent for {quiet:.0f}s")
                return
            if quiet >= self._echo_interval:
                with contextlib.suppress(ConnectionError, OSError):
                    await self._write(codec.echo_request(b"vtap"), next(self._xids))

    def _fail_all(self) -> None:
        error = SessionClosed(f"switch {self.name} disconnected: {self._close_reason}")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)

    async def _write(self, msg: object, xid: int) -> None:
        data = codec.encode(msg, xid)
        async with self._write_lock:
            self._writer.write(data)
            await self._writer.drain()

    async def _read_raw(self) -> bytes:
        head = await self._reader.readexactly(codec.HEADER_LEN)
        _, _, length, _ = codec.header(head)
        if length < codec.HEADER_LEN:
            raise ConnectionError(f"bad OpenFlow length {length}")
        return head + await self._reader.readexactly(length - codec.HEADER_LEN)
