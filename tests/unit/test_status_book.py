"""The status book keeps each policy's status and refreshes exactly the policies whose status may
have changed: a policy waits for every switch its rules live on, goes back to waiting when one
leaves, and is active again once that switch committed its rules after rejoining."""

from __future__ import annotations

from tests.sim.lab import Lab, ip
from vtap.compiler.alloc import Allocations
from vtap.compiler.tap import TapCompiler
from vtap.compiler.topoview import TopologyView
from vtap.controller.status import StatusBook
from vtap.domain.policy import PolicyStatus


def test_a_policy_follows_its_switches_through_a_leave_and_a_rejoin() -> None:
    lab = Lab()
    compiler = TapCompiler(TopologyView(lab.topo), lab.hosts, Allocations(lab.config))
    p = lab.policy(src_ip=ip(1), monitor_ip=ip(16))
    other = lab.policy(src_ip=ip(5), monitor_ip=ip(6))  # another leaf, untouched throughout
    for policy in (p, other):
        compiler.set_policy(policy)
    delta = compiler.flush()
    connected = set(compiler.switches)
    book = StatusBook(lambda d: d in connected, lambda _d: 0.0, lambda d: f"s{d:x}")
    book.compiled(compiler, delta.policies)
    book.refresh(compiler, book.stale(delta.policies))
    assert book.status(p)[0] is PolicyStatus.PENDING
    assert "waiting for switch" in book.status(p)[1]
    for dpid in connected:
        book.committed(dpid, compiler.versions[dpid])
    stale = book.stale(())
    assert stale == {p.id, other.id}
    book.refresh(compiler, stale)
    assert book.status(p) == (PolicyStatus.ACTIVE, "")
    assert book.counts[PolicyStatus.ACTIVE] == 2

    leaf = lab.port(1).dpid
    connected.discard(leaf)
    book.forget_switch(leaf)
    stale = book.stale(())
    assert stale == {p.id}  # only the policies with rules there
    book.refresh(compiler, stale)
    assert book.status(p) == (PolicyStatus.PENDING, f"switch s{leaf:x} is not connected")
    assert book.status(other)[0] is PolicyStatus.ACTIVE

    connected.add(leaf)  # back; it commits what it holds again
    book.switch_changed(leaf)
    book.refresh(compiler, book.stale(()))
    assert "waiting for switch" in book.status(p)[1]
    book.committed(leaf, compiler.versions[leaf])
    book.refresh(compiler, book.stale(()))
    assert book.status(p) == (PolicyStatus.ACTIVE, "")
    assert book.counts[PolicyStatus.ACTIVE] == 2 and book.counts[PolicyStatus.PENDING] == 0


def test_errors_win_and_disabled_or_forgotten_policies_leave_the_counts() -> None:
    lab = Lab()
    compiler = TapCompiler(TopologyView(lab.topo), lab.hosts, Allocations(lab.config))
    p = lab.policy(src_ip=ip(1), monitor_ip=ip(2))
    compiler.set_policy(p)
    delta = compiler.flush()
    book = StatusBook(lambda _d: True, lambda _d: 0.0, str)
    book.compiled(compiler, delta.policies)
    book.errors[p.id] = "switch 0000000000000201: FLOW_MOD_FAILED/TABLE_FULL"
    book.refresh(compiler, book.stale(delta.policies))
    assert book.status(p) == (PolicyStatus.ERROR, book.errors[p.id])
    assert book.counts[PolicyStatus.ERROR] == 1
    book.forget(p.id)
    assert sum(book.counts.values()) == 0
    assert book.status(p.model_copy(update={"enabled": False}))[1] == "disabled"
