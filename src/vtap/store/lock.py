"""One controller per policy store: an exclusive lock next to the database file.

Two controllers on one store would each believe their in-memory copy of the policies and
overwrite each other's switches. The kernel drops a flock the moment its holder dies, however
it dies, so a crashed controller never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from vtap.errors import VtapError


class StoreLock:
    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """VtapError naming the holder when another process has the store."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise VtapError(
                f"another vtap controller (pid {holder}) uses the policy store "
                f"{self.path.with_name(self.path.name.removesuffix('.lock'))}; stop it or "
                "choose another VTAP_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
