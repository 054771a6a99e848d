"""The lab record and its lock, process identities, and small CLI parsing: no root needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtap.errors import LabError, MissingToolError
from vtap.lab.cli import parse_hostport
from vtap.lab.proc import ProcRef, find_tool, first_line
from vtap.lab.state import LEFTOVER_MSG, RUNNING_MSG, LabState, StateStore
from vtap.lab.topo import LeafSpinePlan


def _state() -> LabState:
    me = ProcRef.of(os.getpid())
    assert me is not None
    return LabState.planned(
        LeafSpinePlan(2, 2, 1),
        holder=me,
        of_port=16653,
        api_host="127.0.0.1",
        api_port=18080,
        external_controller=True,
    )


def test_state_round_trips_and_records_the_whole_plan(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    state = _state()
    store.save(state)
    loaded = store.load()
    assert loaded == state
    assert loaded is not None
    assert loaded.bridges == ["spine1", "spine2", "leaf1", "leaf2"]
    assert "leaf1-eth2" in loaded.interfaces and "h2-eth0" in loaded.interfaces
    assert loaded.plan() == LeafSpinePlan(2, 2, 1)
    assert loaded.api_url == "http://127.0.0.1:18080"
    store.remove()
    assert store.load() is None


def test_unreadable_state_is_an_operator_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.dir.mkdir(parents=True)
    store.state_file.write_text("{not json")
    with pytest.raises(LabError, match="unreadable"):
        store.load()


def test_lock_marks_a_running_lab_and_dies_with_its_holder(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert not store.holder_running()
    store.check_free()
    with store.hold():
        assert store.holder_running()
        with pytest.raises(LabError, match=RUNNING_MSG), store.hold():
            pass
        with pytest.raises(LabError, match=RUNNING_MSG):
            store.check_free()
    assert not store.holder_running()
    store.save(_state())
    with pytest.raises(LabError, match=LEFTOVER_MSG):
        store.check_free()


def test_lock_is_released_when_the_holding_process_is_killed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    code = (
        "import sys, time; from pathlib import Path; from vtap.lab.state import StateStore\n"
        "with StateStore(Path(sys.argv[1])).hold():\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert store.holder_running()
    finally:
        child.kill()
        child.wait()
    assert not store.holder_running()


def test_proc_ref_tells_a_live_process_from_a_reused_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ref = ProcRef.of(child.pid)
    assert ref is not None and ref.alive()
    assert not ProcRef(pid=child.pid, start=ref.start + 1).alive()
    assert ref.stop(timeout=5.0)
    child.wait()
    assert not ref.alive()
    assert not ref.stop()


def test_missing_tool_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match="ovs-vsctl not found; install the Debian package"):
        find_tool("ovs-vsctl", "openvswitch-switch")


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:8080") == ("127.0.0.1", 8080)
    for bad in ("8080", "host:", ":80", "h:0", "h:99999", "h:x"):
        with pytest.raises(LabError, match="HOST:PORT"):
            parse_hostport(bad)


def test_first_line_skips_blank_lines() -> None:
    assert (
        first_line("\n\n  ovs-vsctl: no bridge named x\nmore\n") == "ovs-vsctl: no bridge named x"
    )
    assert first_line("") == ""
