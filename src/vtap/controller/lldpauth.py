"""Signed LLDP probes: a link is learnt only from a probe this controller sent, recently.

A host can send anything, including a frame that looks like vtap's LLDP. Without a check, one
forged frame from the tapped source's port made that port look like a fabric port: the
controller forgot the source, and the policy went pending. Each probe therefore carries an
HMAC-SHA256 (truncated to 16 bytes) over switch, port and a millisecond stamp, keyed by a
secret that never leaves the controller process; a probe is good for `max_age` seconds.

What the signature cannot stop is a relay: two hosts forwarding a genuine probe between their
ports in real time. The caller refuses LLDP that arrives on a port with a live host bound to it,
which closes that for every port that carries a known host.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import time
from collections.abc import Callable

from vtap.packets import Lldp

_MESSAGE = struct.Struct("!QIQ")


class LldpSigner:
    def __init__(
        self,
        max_age: float,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self.max_age = max_age
        self._clock = clock

    def sign(self, dpid: int, port_no: int) -> tuple[int, bytes]:
        stamp = int(self._clock() * 1000)
        return stamp, self._mac(dpid, port_no, stamp)

    def check(self, lldp: Lldp) -> str | None:
        """None for a probe of ours that is fresh; otherwise why it is refused."""
        if not lldp.signature:
            return "unsigned"
        if not hmac.compare_digest(lldp.signature, self._mac(lldp.dpid, lldp.port_no, lldp.stamp)):
            return "bad signature"
        age = self._clock() - lldp.stamp / 1000
        if not -1.0 <= age <= self.max_age:
            return f"stale ({age:.1f} s old)"
        return None

    def _mac(self, dpid: int, port_no: int, stamp: int) -> bytes:
        message = _MESSAGE.pack(dpid, port_no, stamp)
        return hmac.new(self._key, message, hashlib.sha256).digest()[:16]
