"""The machine-wide lab registry: a dead holder's leftovers are reaped, a living lab's never."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vtap.lab import registry
from vtap.lab.proc import ProcRef
from vtap.lab.state import LabState, StateStore
from vtap.lab.topo import LeafSpinePlan


def _state(holder: ProcRef, interfaces: list[str]) -> LabState:
    state = LabState.planned(
        LeafSpinePlan(1, 1, 1),
        holder=holder,
        of_port=16653,
        api_host="127.0.0.1",
        api_port=18080,
        external_controller=True,
    )
    return state.model_copy(update={"interfaces": interfaces, "bridges": ["br-" + interfaces[0]]})


@pytest.fixture
def cleaned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[LabState]:
    monkeypatch.setenv("VTAP_LAB_REGISTRY", str(tmp_path / "registry"))
    done: list[LabState] = []
    monkeypatch.setattr(registry, "cleanup", lambda state, ovs, log: done.append(state))
    return done


def test_a_dead_holder_is_reaped_except_for_names_a_living_lab_claims(
    cleaned: list[LabState], tmp_path: Path
) -> None:
    me = ProcRef.of(os.getpid())
    assert me is not None
    dead = ProcRef(pid=me.pid, start=me.start + 1)  # same pid, another process: dead
    live_dir, dead_dir, own_dir = tmp_path / "live", tmp_path / "dead", tmp_path / "own"
    registry.publish(live_dir, _state(me, ["a-eth1", "shared-eth1"]))
    registry.publish(dead_dir, _state(dead, ["b-eth1", "shared-eth1"]))
    registry.publish(own_dir, _state(dead, ["c-eth1"]))
    StateStore(dead_dir).save(_state(dead, ["b-eth1", "shared-eth1"]))
    messages: list[str] = []

    assert registry.reap_stale(own_dir, messages.append) == 1

    assert [s.interfaces for s in cleaned] == [["b-eth1"]]
    assert f"its state dir was {dead_dir.resolve()}" in messages[0]
    assert StateStore(dead_dir).load() is None  # its record went with it
    left = sorted(p.name for p in (tmp_path / "registry").iterdir())
    assert len(left) == 2  # the living lab and our own (left to `lab down`)
    assert registry.reap_stale(own_dir, messages.append) == 0


def test_withdraw_forgets_a_lab_and_unreadable_entries_are_skipped(
    cleaned: list[LabState], tmp_path: Path
) -> None:
    me = ProcRef.of(os.getpid())
    assert me is not None
    registry.publish(tmp_path / "x", _state(ProcRef(pid=me.pid, start=me.start + 1), ["x-eth1"]))
    registry.withdraw(tmp_path / "x")
    (tmp_path / "registry" / "junk.json").write_text("{not json")
    messages: list[str] = []
    assert registry.reap_stale(tmp_path / "own", messages.append) == 0
    assert cleaned == [] and "unreadable" in messages[0]
