"""Link expiry: silent links go, but not because the controller itself was too busy to listen.

A large install round holds the event loop for seconds; the LLDP replies that arrived meanwhile
are still queued. Expiring then dropped every fabric link of the lab (seen with 1,000 policies
created in one request) and recompiled all policies against an empty fabric.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.leafspine import leaf_dpid, spine_dpid
from vtap.controller.discovery import Discovery
from vtap.controller.state import ControllerState
from vtap.domain.network import Link, PortRef
from vtap.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def setup(tmp_path: Path) -> tuple[Discovery, ControllerState, Clock, list[list[Link]]]:
    clock = Clock()
    state = ControllerState(Settings(state_dir=tmp_path), clock=clock)
    gone: list[list[Link]] = []

    async def links_gone(links: list[Link]) -> None:
        gone.append(links)

    link = Link(PortRef(spine_dpid(1), 1), PortRef(leaf_dpid(1), 1))
    state.topology.lldp_seen(link, 0.0)
    return Discovery(state, links_gone), state, clock, gone


async def test_a_silent_link_expires(tmp_path: Path) -> None:
    discovery, state, clock, gone = setup(tmp_path)
    timeout = state.settings.link_timeout
    clock.t = timeout + 1
    await discovery.tick(clock.t, busy=0.0)
    assert len(gone) == 1 and not state.topology.links()


async def test_after_a_busy_controller_links_get_a_fresh_probe_first(tmp_path: Path) -> None:
    discovery, state, clock, gone = setup(tmp_path)
    interval, timeout = state.settings.lldp_interval, state.settings.link_timeout
    clock.t = timeout + 1  # the loop was blocked: this tick comes timeout + 1 - interval late
    await discovery.tick(clock.t, busy=timeout + 1 - interval)
    assert gone == [] and state.topology.links()
    # The probe's reply arrives: the link stays.
    link = state.topology.links()[0]
    state.topology.lldp_seen(link, clock.t + 0.01)
    clock.t += interval
    await discovery.tick(clock.t, busy=0.0)
    assert gone == []
    # No reply to later probes either: it expires like any silent link.
    clock.t += timeout
    await discovery.tick(clock.t, busy=0.0)
    assert len(gone) == 1 and not state.topology.links()
