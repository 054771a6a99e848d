"""Host tracking: learning, moves, IP changes, forgetting."""

from __future__ import annotations

from vtap.domain.network import Host, PortRef
from vtap.topology import HostEvent, HostEventKind, HostTracker

A = PortRef(0x201, 5)
B = PortRef(0x208, 6)
MAC1, MAC2 = "00:00:00:00:00:01", "00:00:00:00:00:02"


def test_learn_new_host_and_refresh() -> None:
    hosts = HostTracker()
    event = hosts.observe(MAC1.upper(), "10.0.0.1", A, 1.0)
    assert event is not None and event.kind is HostEventKind.NEW and event.old is None
    assert event.host.mac == MAC1 and event.host.ip == "10.0.0.1" and event.host.location == A
    assert hosts.observe(MAC1, "10.0.0.1", A, 2.0) is None
    host = hosts.by_mac(MAC1)
    assert host is not None and host.last_seen == 2.0
    assert hosts.by_ip("10.0.0.1") == host
    assert hosts.all() == [host]


def test_missing_or_unspecified_ip_keeps_the_known_one() -> None:
    hosts = HostTracker()
    assert hosts.observe(MAC1, None, A, 1.0) is not None
    assert hosts.by_mac(MAC1).ip is None  # type: ignore[union-attr]
    event = hosts.observe(MAC1, "10.0.0.1", A, 2.0)
    assert event is not None and event.kind is HostEventKind.IP_CHANGED
    assert event.old is not None and event.old.ip is None
    assert hosts.observe(MAC1, None, A, 3.0) is None
    assert hosts.observe(MAC1, "0.0.0.0", A, 3.0) is None
    assert hosts.by_mac(MAC1).ip == "10.0.0.1"  # type: ignore[union-attr]


def test_host_move() -> None:
    """A host moves once its old port is no longer live (down, or its switch gone)."""
    hosts = HostTracker(live=lambda ref: ref != A)
    hosts.observe(MAC1, "10.0.0.1", A, 1.0)
    event = hosts.observe(MAC1, "10.0.0.1", B, 2.0)
    assert event == HostEvent(
        HostEventKind.MOVED, Host(MAC1, "10.0.0.1", B), Host(MAC1, "10.0.0.1", A)
    )
    assert event is not None and event.old is not None
    assert event.old.location == A and event.host.location == B
    assert hosts.by_ip("10.0.0.1").location == B  # type: ignore[union-attr]
    assert hosts.at(A) == []


def test_ip_change() -> None:
    hosts = HostTracker()
    hosts.observe(MAC1, "10.0.0.1", A, 1.0)
    event = hosts.observe(MAC1, "10.0.0.99", A, 2.0)
    assert event is not None and event.kind is HostEventKind.IP_CHANGED
    assert event.old is not None and event.old.ip == "10.0.0.1"
    assert hosts.by_ip("10.0.0.1") is None
    assert hosts.by_ip("10.0.0.99") == hosts.by_mac(MAC1)


def test_ip_taken_over_by_another_mac() -> None:
    hosts = HostTracker(live=lambda ref: ref != A)
    hosts.observe(MAC1, "10.0.0.1", A, 1.0)
    event = hosts.observe(MAC2, "10.0.0.1", B, 2.0)
    assert event is not None and event.kind is HostEventKind.NEW
    assert hosts.by_ip("10.0.0.1").mac == MAC2  # type: ignore[union-attr]
    assert hosts.by_mac(MAC1).ip is None  # type: ignore[union-attr]
    # Forgetting the old owner does not drop the new owner's IP.
    hosts.forget(MAC1)
    assert hosts.by_ip("10.0.0.1").mac == MAC2  # type: ignore[union-attr]


def test_non_unicast_sources_are_ignored() -> None:
    hosts = HostTracker()
    for mac in (
        "ff:ff:ff:ff:ff:ff",
        "01:00:5e:00:00:fb",
        "33:33:00:00:00:01",
        "00:00:00:00:00:00",
        "not-a-mac",
    ):
        assert hosts.observe(mac, "10.0.0.1", A, 1.0) is None
    assert hosts.all() == []
    assert hosts.by_ip("10.0.0.1") is None


def test_forget_port_and_switch() -> None:
    hosts = HostTracker()
    hosts.observe(MAC1, "10.0.0.1", A, 1.0)
    hosts.observe(MAC2, "10.0.0.2", B, 1.0)
    hosts.observe("00:00:00:00:00:03", "10.0.0.3", PortRef(A.dpid, 6), 1.0)
    gone = hosts.forget_port(A)
    assert [h.mac for h in gone] == [MAC1]
    assert hosts.by_ip("10.0.0.1") is None and hosts.by_mac(MAC1) is None
    assert hosts.forget_port(A) == []
    gone = hosts.forget_switch(A.dpid)
    assert [h.mac for h in gone] == ["00:00:00:00:00:03"]
    assert [h.mac for h in hosts.all()] == [MAC2]
    assert hosts.forget("00:00:00:00:00:99") is None
    # A forgotten host is learnt again as new.
    event = hosts.observe(MAC1, "10.0.0.1", A, 5.0)
    assert event is not None and event.kind is HostEventKind.NEW


def test_a_live_binding_cannot_be_claimed_from_another_port() -> None:
    """Gratuitous ARP from h16 claiming the monitor's IP, or its MAC: refused, table kept."""
    hosts = HostTracker()  # every port live
    hosts.observe(MAC1, "10.0.0.1", A, 1.0)
    for claim_mac in (MAC2, MAC1):  # the IP under another MAC; the MAC itself
        event = hosts.observe(claim_mac, "10.0.0.1", B, 2.0)
        assert event is not None and event.kind is HostEventKind.REFUSED
        assert event.host.location == B and event.old == Host(MAC1, "10.0.0.1", A)
    assert hosts.by_ip("10.0.0.1") == Host(MAC1, "10.0.0.1", A)
    assert hosts.by_mac(MAC2) is None
    # On its own port a host may still change its IP, and a new MAC may take an IP there.
    event = hosts.observe(MAC1, "10.0.0.7", A, 3.0)
    assert event is not None and event.kind is HostEventKind.IP_CHANGED
    event = hosts.observe(MAC2, "10.0.0.7", A, 4.0)
    assert event is not None and event.kind is HostEventKind.NEW
