"""Live updates for the console: one Server-Sent Events stream of snapshots, then changes.

SSE rather than a WebSocket: the updates flow one way, the browser reconnects by itself
(`retry:`), and it is plain HTTP that needs nothing beyond Starlette.

The stream wakes on every statistics round (or every `MAX_GAP` seconds if the poller is not
running) and sends only what changed since the last event *on this connection*. It ends when
the client goes away (Starlette cancels it on disconnect; the loop also checks) and when the
controller stops (the poller closes, which wakes every stream for good), so uvicorn's shutdown
never waits on an open browser tab.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from vtap.api.deps import ControllerDep, ViewsDep
from vtap.api.routes.topology import topology as topology_view
from vtap.api.views import LiveViews
from vtap.controller.core import Controller

router = APIRouter(tags=["events"])

MAX_GAP = 2.0  # seconds: an update is sent at least this often when something changed
KEEPALIVE = 15.0  # seconds of silence before a comment line (finds dead connections)
TOPICS = ("topology", "policies", "flows")

_DESCRIPTION = """\
`text/event-stream`. Each event is one JSON object (`data:`) named by `event:`:

* `topology`: the whole topology (schema `TopologyOut`), first and whenever it changed;
* `policies`: `PoliciesEvent` — all policies with copy counters first (`full: true`), then the
  ones that changed and the ids removed;
* `flows`: `FlowsEvent` — all in-flight flows first, then the changed ones and removed ids.

Updates come after every statistics round (`stats_interval`, 1 s by default) and at least every
2 s. `topics` (comma-separated) limits the stream to some of them.
"""


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Connection:
    """What this client was last sent, so that later events carry only changes."""

    def __init__(self, controller: Controller, views: LiveViews, topics: set[str]) -> None:
        self.controller = controller
        self.views = views
        self.topics = topics
        self.topology: Any = None
        self.policies: dict[int, Any] | None = None
        self.flows: dict[str, int] | None = None

    def updates(self) -> list[str]:
        out: list[str] = []
        if "topology" in self.topics:
            topo = topology_view(self.controller).model_dump(mode="json")
            if topo != self.topology:
                self.topology = topo
                out.append(_event("topology", topo))
        if "policies" in self.topics:
            rows = self.views.policy_rows()
            full = self.policies is None
            before = self.policies or {}
            upsert = [row for pid, row in rows.items() if before.get(pid) != row]
            removed = [pid for pid in before if pid not in rows]
            self.policies = rows
            if full or upsert or removed:
                out.append(_event("policies", {"full": full, "upsert": upsert, "removed": removed}))
        if "flows" in self.topics:
            current = self.views.flow_versions()
            full = self.flows is None
            before = self.flows or {}
            upsert = [
                self.views.flow_row(record)
                for fid, (version, record) in current.items()
                if before.get(fid) != version
            ]
            removed = [fid for fid in before if fid not in current]
            self.flows = {fid: version for fid, (version, _) in current.items()}
            if full or upsert or removed:
                out.append(
                    _event(
                        "flows",
                        {"full": full, "upsert": upsert, "removed": removed, "total": len(current)},
                    )
                )
        return out


async def event_stream(
    controller: Controller,
    views: LiveViews,
    topics: set[str],
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    stats = controller.flowstats
    connection = _Connection(controller, views, topics)
    yield "retry: 2000\n\n"
    seen = stats.round
    quiet = 0.0
    while not stats.closed and not await disconnected():
        events = connection.updates()
        if events:
            quiet = 0.0
            yield "".join(events)
        elif quiet >= KEEPALIVE:
            quiet = 0.0
            yield ": keepalive\n\n"
        latest = await stats.wait_round(seen, MAX_GAP)
        quiet += stats.interval if latest > seen else MAX_GAP
        seen = latest


@router.get(
    "/events",
    response_class=StreamingResponse,
    description=_DESCRIPTION,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(
    request: Request, controller: ControllerDep, views: ViewsDep, topics: str = ",".join(TOPICS)
) -> StreamingResponse:
    wanted = {t.strip() for t in topics.split(",")} & set(TOPICS)
    return StreamingResponse(
        event_stream(controller, views, wanted, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
