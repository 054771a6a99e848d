"""A fake switch that lies: it completes the OpenFlow handshake like Open vSwitch, then sends
whatever it is given, and reports whether the controller kept or closed the session."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp

HEADER = struct.Struct("!BBHI")
PROBE_XID = 0x0EC40EC4


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the controller")
        data += chunk
    return data


def read_message(sock: socket.socket) -> tuple[int, int, bytes]:
    """(type, xid, whole message)."""
    head = _recv_exact(sock, 8)
    _, mtype, length, xid = HEADER.unpack(head)
    return mtype, xid, head + _recv_exact(sock, max(length - 8, 0))


@dataclass
class FuzzSwitch:
    port: int
    dpid: int
    timeout: float = 10.0
    sessions: int = 0
    kept: int = 0  # sessions that still answered our echo after the messages
    closed: int = 0  # sessions the controller closed
    sent: int = 0
    handshake_refused: int = 0
    stuck: int = 0  # neither answered nor closed within the timeout: the controller hangs
    notes: list[str] = field(default_factory=list)

    def connect(self, hello: bytes | None = None) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        sock.sendall(hello or HEADER.pack(4, ofp.OFPT_HELLO, 8, 1))
        while True:
            mtype, xid, _ = read_message(sock)
            if mtype == ofp.OFPT_FEATURES_REQUEST:
                body = struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0, 0)
                sock.sendall(HEADER.pack(4, ofp.OFPT_FEATURES_REPLY, 32, xid) + body)
                return sock

    def deliver(self, messages: list[bytes], hello: bytes | None = None) -> bool:
        """Connect, send `messages`, then an echo request. True when the echo came back (the
        session survived them all), False when the controller closed the session."""
        try:
            sock = self.connect(hello)
        except TimeoutError:
            self.stuck += 1
            return False
        except (ConnectionError, OSError):
            self.handshake_refused += 1
            return False
        self.sessions += 1
        try:
            sock.sendall(b"".join(messages) + HEADER.pack(4, ofp.OFPT_ECHO_REQUEST, 8, PROBE_XID))
            self.sent += len(messages)
            while True:
                mtype, xid, _ = read_message(sock)
                if mtype == ofp.OFPT_ECHO_REPLY and xid == PROBE_XID:
                    self.kept += 1
                    return True
        except TimeoutError:
            self.stuck += 1
            return False
        except (ConnectionError, OSError):
            self.closed += 1
            return False
        finally:
            sock.close()
