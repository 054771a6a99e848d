"""The flow table: per 5-tuple, per switch; complete answers; disappearing entries."""

from __future__ import annotations

from vtap.domain.network import FlowKey
from vtap.stats.flowtable import EntryCounters, FlowTable

A = FlowKey("10.0.0.1", "10.0.0.2", 6, 40000, 80)
B = FlowKey("10.0.0.3", "10.0.0.4", 17, 5000, 53)
LEAF1, SPINE, LEAF2 = 0x201, 0x101, 0x202


def entry(key: FlowKey, packets: int, age: float, size: int = 100) -> EntryCounters:
    return EntryCounters(key, packets, packets * size, age)


def test_a_flow_has_counters_and_rates_at_every_switch_of_its_path() -> None:
    table = FlowTable()
    for dpid in (LEAF1, SPINE, LEAF2):
        table.observe(dpid, [entry(A, 10, 1.0)], at=100.0)
    for dpid in (LEAF1, SPINE, LEAF2):
        table.observe(dpid, [entry(A, 60, 2.0)], at=101.0)
    record = table.get(A)
    assert record is not None
    assert set(record.hops) == {LEAF1, SPINE, LEAF2}
    hop = record.hops[SPINE]
    assert (hop.reading.packets, hop.rate.pps, hop.rate.bps) == (60, 50.0, 40_000.0)
    assert record.first_seen == 99.0  # installed one second before the first reading
    assert record.last_seen == 101.0
    assert [p.pps for p in hop.history] == [10.0, 50.0]
    assert (record.packets, record.bytes) == (60, 6000)


def test_last_seen_stays_when_counters_stop_growing() -> None:
    table = FlowTable()
    table.observe(LEAF1, [entry(A, 5, 1.0)], at=10.0)
    table.observe(LEAF1, [entry(A, 9, 2.0)], at=11.0)
    table.observe(LEAF1, [entry(A, 9, 3.0)], at=12.0)
    record = table.get(A)
    assert record is not None
    assert record.last_seen == 11.0
    assert record.hops[LEAF1].rate.pps == 0.0


def test_an_entry_missing_from_a_switch_answer_is_gone_from_that_switch() -> None:
    table = FlowTable()
    table.observe(LEAF1, [entry(A, 1, 1.0), entry(B, 1, 1.0)], at=1.0)
    table.observe(SPINE, [entry(A, 1, 1.0)], at=1.0)
    table.observe(LEAF1, [entry(B, 2, 2.0)], at=2.0)
    record = table.get(A)
    assert record is not None and set(record.hops) == {SPINE}
    table.observe(SPINE, [], at=2.0)
    assert table.get(A) is None
    assert [r.key for r in table] == [B]
    assert table.switches() == {LEAF1}


def test_a_disconnected_switch_is_forgotten() -> None:
    table = FlowTable()
    table.observe(LEAF1, [entry(A, 1, 1.0)], at=1.0)
    table.observe(LEAF2, [entry(A, 1, 1.0)], at=1.0)
    table.forget_switch(LEAF1)
    record = table.get(A)
    assert record is not None and set(record.hops) == {LEAF2}
    assert len(table) == 1


def test_versions_change_with_every_reading() -> None:
    table = FlowTable()
    table.observe(LEAF1, [entry(A, 1, 1.0)], at=1.0)
    record = table.get(A)
    assert record is not None
    v = record.version
    table.observe(LEAF1, [entry(A, 1, 2.0)], at=2.0)
    assert record.version > v


def test_history_is_bounded() -> None:
    table = FlowTable(history=5)
    for t in range(20):
        table.observe(LEAF1, [entry(A, t * 10, t + 1.0)], at=float(t))
    record = table.get(A)
    assert record is not None
    assert len(record.hops[LEAF1].history) == 5
