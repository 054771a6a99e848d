"""How late the event loop runs: the controller's own stall detector.

Everything the controller does for switches and operators (echo replies, LLDP, packet-ins, the
REST API) waits whenever one piece of work holds the event loop. A task that asks to wake up
every `interval` and measures how late it actually woke sees every such stall. Kept: the worst
lag since start, a histogram, and the recent stalls with their times, so a benchmark can read
what happened during its own window (GET /api/v1/health).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

STALL_MS = 50.0  # lags above this are kept one by one
BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass(frozen=True, slots=True)
class Stall:
    at: float  # wall-clock time the loop woke (time.time())
    ms: float


class LoopLag:
    def __init__(
        self,
        interval: float = 0.01,
        keep: int = 1000,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interval = interval
        self.max_ms = 0.0
        self.samples = 0
        self.total_ms = 0.0
        self.histogram = [0] * (len(BOUNDS_MS) + 1)  # counts of lags ≤ each bound, then more
        self.stalls: deque[Stall] = deque(maxlen=keep)
        self._wall = wall

    def record(self, lag_ms: float) -> None:
        self.samples += 1
        self.total_ms += lag_ms
        self.max_ms = max(self.max_ms, lag_ms)
        for i, bound in enumerate(BOUNDS_MS):
            if lag_ms <= bound:
                self.histogram[i] += 1
                break
        else:
            self.histogram[-1] += 1
        if lag_ms > STALL_MS:
            self.stalls.append(Stall(self._wall(), round(lag_ms, 1)))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.record(max(0.0, (loop.time() - planned) * 1000.0))

    def report(self) -> dict[str, object]:
        return {
            "interval_ms": self.interval * 1000.0,
            "samples": self.samples,
            "max_ms": round(self.max_ms, 1),
            "histogram_ms": {
                **{f"<={b}": n for b, n in zip(BOUNDS_MS, self.histogram, strict=False)},
                f">{BOUNDS_MS[-1]}": self.histogram[-1],
            },
            "stalls": [{"at": s.at, "ms": s.ms} for s in self.stalls],
        }
