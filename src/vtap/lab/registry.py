"""Machine-wide index of labs, so that a lab whose holder died does not block the next one.

A lab's record lives in its own state dir, which may be gone by the time anyone looks (a
deleted temporary dir), and a holder killed together with its process group never runs its
teardown: its veths stay in the root namespace and every later `lab up` refuses their names.
The holder therefore keeps a copy of its record here, in /run: a tmpfs that empties at reboot,
exactly when the veths it names vanish too. `lab up` reaps the records whose holder is dead.
Reaping only deletes what a dead holder recorded and no living lab claims.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from vtap.errors import LabError
from vtap.lab.ovs import OvsService
from vtap.lab.state import LabState, StateStore
from vtap.lab.teardown import cleanup

Log = Callable[[str], None]


def registry_dir() -> Path:
    return Path(os.environ.get("VTAP_LAB_REGISTRY", "/run/vtap/labs"))


class Entry(BaseModel):
    """One lab's record and the state dir it belongs to."""

    state_dir: str
    state: LabState


def _entry_file(state_dir: Path) -> Path:
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:20]
    return registry_dir() / f"{key}.json"


def publish(state_dir: Path, state: LabState) -> None:
    """Keep the copy current (atomic replace, like the record itself)."""
    path = _entry_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(Entry(state_dir=str(state_dir.resolve()), state=state).model_dump_json())
    os.replace(tmp, path)


def withdraw(state_dir: Path) -> None:
    _entry_file(state_dir).unlink(missing_ok=True)


def _entries(log: Log) -> list[tuple[Path, Entry]]:
    base = registry_dir()
    if not base.is_dir():
        return []
    found: list[tuple[Path, Entry]] = []
    for path in sorted(base.glob("*.json")):
        try:
            found.append((path, Entry.model_validate_json(path.read_text())))
        except (OSError, ValueError) as exc:
            log(f"ignoring unreadable lab registry entry {path} ({exc.__class__.__name__})")
    return found


def _alive(entry: Entry) -> bool:
    return entry.state.holder.alive() or StateStore(Path(entry.state_dir)).holder_running()


def reap_stale(own_state_dir: Path, log: Log) -> int:
    """Clean up after every registered lab whose holder is dead; returns how many.

    The lab of `own_state_dir` is left to the caller (its leftover record asks the operator
    for `lab down`), and names that a living lab recorded are never touched.
    """
    entries = _entries(log)
    claimed: set[str] = set()
    for _, entry in entries:
        if _alive(entry):
            claimed.update(entry.state.bridges, entry.state.interfaces)
    own = str(own_state_dir.resolve())
    reaped = 0
    for path, entry in entries:
        if entry.state_dir == own or _alive(entry):
            continue
        dead = entry.state
        log(
            f"cleaning up after a lab whose holder (pid {dead.holder.pid}) died without "
            f"tearing down; its state dir was {entry.state_dir}"
        )
        state = dead.model_copy(
            update={
                "bridges": [b for b in dead.bridges if b not in claimed],
                "interfaces": [i for i in dead.interfaces if i not in claimed],
            }
        )
        rundir = Path(state.ovs_rundir) if state.ovs_rundir else Path(entry.state_dir) / "ovs"
        cleanup(state, OvsService(rundir), log)
        store = StateStore(Path(entry.state_dir))
        try:
            if (record := store.load()) is not None and record.holder == dead.holder:
                store.remove()
        except LabError:
            pass  # an unreadable record stays for the operator to look at
        path.unlink(missing_ok=True)
        reaped += 1
    return reaped
