"""The lab's record of what it created, on disk, written before anything is created.

`lab down`, `lab exec` and `lab link` run in other processes than the lab holder, possibly long
after the holder crashed, so everything they need lives in `<state_dir>/lab/state.json`.
Liveness is a lock, not a pid: the holder keeps an exclusive flock on `holder.lock` for its whole
life, and the kernel drops it the moment the holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from vtap.errors import LabError
from vtap.lab.proc import ProcRef
from vtap.lab.topo import LeafSpinePlan

RUNNING_MSG = "a lab is already running; vtap lab down first"
LEFTOVER_MSG = "a previous lab did not shut down cleanly; vtap lab down first"


class LabState(BaseModel):
    """Everything `lab down` must undo, and what `lab exec` / `lab link` need to find hosts."""

    version: int = 1
    phase: Literal["starting", "ready", "stopping"] = "starting"
    spines: int
    leaves: int
    hosts_per_leaf: int
    of_port: int
    api_host: str
    api_port: int
    external_controller: bool
    holder: ProcRef
    bridges: list[str]
    interfaces: list[str]  # every veth end, host ends included
    nodes: dict[str, ProcRef] = Field(default_factory=dict)  # Mininet node shells by name
    controller: ProcRef | None = None
    ovs_rundir: str | None = None
    ovs_started: bool = False  # True: the lab started the OVS daemons and stops them

    @classmethod
    def planned(
        cls,
        plan: LeafSpinePlan,
        *,
        holder: ProcRef,
        of_port: int,
        api_host: str,
        api_port: int,
        external_controller: bool,
    ) -> LabState:
        return cls(
            spines=plan.spines,
            leaves=plan.leaves,
            hosts_per_leaf=plan.hosts_per_leaf,
            of_port=of_port,
            api_host=api_host,
            api_port=api_port,
            external_controller=external_controller,
            holder=holder,
            bridges=list(plan.bridges),
            interfaces=list(plan.interfaces()),
        )

    def plan(self) -> LeafSpinePlan:
        return LeafSpinePlan(self.spines, self.leaves, self.hosts_per_leaf)

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


class StateStore:
    """Files of one lab under `<state_dir>/lab/`."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "lab"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.dir / "holder.lock"

    @property
    def holder_log(self) -> Path:
        return self.dir / "holder.log"

    @property
    def controller_log(self) -> Path:
        return self.dir / "controller.log"

    def load(self) -> LabState | None:
        try:
            text = self.state_file.read_text()
        except FileNotFoundError:
            return None
        try:
            return LabState.model_validate_json(text)
        except ValueError as exc:
            raise LabError(
                f"{self.state_file} is unreadable ({exc.__class__.__name__}); "
                "remove it after checking that no lab is running"
            ) from exc

    def save(self, state: LabState) -> None:
        """Atomic replace: a reader sees the old or the new record, never half of one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(state.model_dump_json(indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def remove(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def holder_running(self) -> bool:
        """True while some process holds the holder lock."""
        if not self.lock_file.exists():
            return False
        with open(self.lock_file, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    def check_free(self) -> None:
        """LabError unless a new lab may start: nothing running, nothing left over."""
        if self.holder_running():
            raise LabError(RUNNING_MSG)
        if self.state_file.exists():
            raise LabError(LEFTOVER_MSG)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lab lock for the life of the lab; LabError if another lab holds it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC (Python's default) keeps the lock out of every child we exec, so the
        # lock dies with the holder even if a host shell or the controller outlives it.
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(RUNNING_MSG) from None
            yield
        finally:
            os.close(fd)
