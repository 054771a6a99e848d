"""The console against a controller with faked switch answers: no lab, any size.

    python -m tests.browser.fakeconsole --port 8090 --policies 1000 --flows 5000

Serves the real app (REST, event stream, UI) from a controller whose topology, hosts, policies
and flow counters are made up (tests/api/livekit.py), with counters advancing every second.
For the performance check and for looking at the pages at sizes the lab cannot reach.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from tests.api.livekit import FakeFabric, ip, mac
from vtap.api.app import create_app
from vtap.controller.core import Controller
from vtap.domain.network import FlowKey
from vtap.domain.policy import PolicySpec
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

HOSTS = 16


def host_names() -> dict[str, str]:
    return {ip(i): f"h{i}" for i in range(1, HOSTS + 1)}


def seed_policies(store: MemoryPolicyRepository, n: int, rng: random.Random) -> None:
    now = datetime.now(UTC)
    for i in range(n):
        src, monitor = rng.sample(range(1, HOSTS + 1), 2)
        store.add(
            PolicySpec(
                name=f"tap-{i + 1:04d}",
                src_ip=ip(src),
                ip_proto=6,
                dst_port=1 + i,  # distinct matches: no duplicates
                monitor_mac=mac(monitor),
            ),
            now,
        )


def seed_flows(fabric: FakeFabric, n: int, rng: random.Random) -> None:
    """n distinct flows: TCP and UDP with distinct source ports, a ping per host pair."""
    pings = [(s, d) for s in range(1, HOSTS + 1) for d in range(1, HOSTS + 1) if s != d]
    rng.shuffle(pings)
    for i in range(n):
        if i % 25 == 0 and pings:
            src, dst = pings.pop()
            key = FlowKey(ip(src), ip(dst), 1)
        else:
            src, dst = rng.sample(range(1, HOSTS + 1), 2)
            port = 20000 + i
            key = FlowKey(
                ip(src), ip(dst), rng.choice((6, 6, 17)), port, rng.choice((80, 443, 5201))
            )
        fabric.flow(src, dst, key, pps=rng.randint(1, 2000))


async def serve(port: int, policies: int, flows: int, seed: int) -> None:
    rng = random.Random(seed)
    state_dir = Path(tempfile.mkdtemp(prefix="vtap-fake-"))
    store = MemoryPolicyRepository()
    controller = Controller(Settings(state_dir=state_dir, host_names=host_names()), store)
    fabric = FakeFabric(controller)
    seed_policies(store, policies, rng)
    seed_flows(fabric, flows, rng)
    rounds = asyncio.create_task(controller.installer.run())
    controller.installer.request()

    async def tick() -> None:
        while True:
            for key in list(fabric.pps):
                fabric.pps[key] = max(1, int(fabric.pps[key] * rng.uniform(0.8, 1.25)))
            fabric.tick()
            await controller.flowstats.publish()
            await asyncio.sleep(1.0)

    ticker = asyncio.create_task(tick())
    server = uvicorn.Server(
        uvicorn.Config(create_app(controller), host="127.0.0.1", port=port, log_level="warning")
    )
    try:
        await server.serve()
    finally:
        ticker.cancel()
        rounds.cancel()
        await controller.flowstats.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--flows", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.policies, args.flows, args.seed))


if __name__ == "__main__":
    main()
