"""Prometheus metrics at `GET /metrics` (viewer token), for the dashboards operators already run.

What the controller knows anyway (policies and their copies, switches, alerts, the event loop's
lag) is read at scrape time by a collector bound to one controller; what happens once per
event (install rounds, REST requests) is observed into histograms as it happens. Each app has
its own registry: no global state, so tests can run several controllers side by side.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from vtap.controller.core import Controller
from vtap.controller.looplag import BOUNDS_MS
from vtap.domain.network import dpid_str
from vtap.domain.policy import PolicyStatus

ROUND_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ROUND_CHANGES = (0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000)
REST_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ControllerCollector(Collector):
    """Reads one controller's state when Prometheus scrapes."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def collect(self) -> Iterable[Metric]:
        yield from self._policies()
        yield from self._switches()
        yield self._loop_lag()
        alerts = CounterMetricFamily(
            "vtap_alerts", "Security and fault alerts raised since start", labels=["kind"]
        )
        for kind, n in sorted(self._controller.state.alerts.counts.items()):
            alerts.add_metric([kind.value], n)
        yield alerts

    def _policies(self) -> Iterable[Metric]:
        ctl = self._controller
        status = GaugeMetricFamily(
            "vtap_policy_status",
            "1 for the policy's current status (active, pending, error)",
            labels=["policy", "id", "status"],
        )
        packets = CounterMetricFamily(
            "vtap_policy_copied_packets",
            "Packets copied for the policy (its monitor's copy entry on the classifying switch)",
            labels=["policy", "id"],
        )
        octets = CounterMetricFamily(
            "vtap_policy_copied_bytes", "Bytes copied for the policy", labels=["policy", "id"]
        )
        totals = dict.fromkeys(PolicyStatus, 0)
        for policy in ctl.policies.list():
            labels = [policy.name, str(policy.id)]
            status.add_metric([*labels, policy.status.value], 1)
            totals[policy.status] = totals.get(policy.status, 0) + 1
            copies = ctl.flowstats.copies_of(policy.id)
            if copies is not None:
                packets.add_metric(labels, copies.packets)
                octets.add_metric(labels, copies.bytes)
        counts = GaugeMetricFamily("vtap_policies", "Policies per status", labels=["status"])
        for state, n in totals.items():
            counts.add_metric([state.value], n)
        return (status, packets, octets, counts)

    def _switches(self) -> Iterable[Metric]:
        ctl = self._controller
        labels = ["switch", "dpid"]
        connected = GaugeMetricFamily(
            "vtap_switch_connected", "1 while the switch has an OpenFlow session", labels=labels
        )
        flows = GaugeMetricFamily(
            "vtap_switch_flows", "vtap's entries the switch confirmed holding", labels=labels
        )
        groups = GaugeMetricFamily(
            "vtap_switch_groups", "vtap's groups the switch confirmed holding", labels=labels
        )
        paths: dict[int, int] = {}
        for key in ctl.state.flows:
            for dpid in ctl.state.flows.hops(key):
                paths[dpid] = paths.get(dpid, 0) + 1
        for switch in ctl.state.topology.switches():
            dpid = switch.dpid
            names = [switch.name or dpid_str(dpid), dpid_str(dpid)]
            connected.add_metric(names, 1 if dpid in ctl.state.sessions else 0)
            flows.add_metric(names, len(ctl.reconciler.holds(dpid)) + paths.get(dpid, 0))
            groups.add_metric(names, ctl.reconciler.groups_held(dpid))
        return (connected, flows, groups)

    def _loop_lag(self) -> Metric:
        lag = self._controller.loop_lag
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, n in zip(BOUNDS_MS, lag.histogram, strict=False):
            cumulative += n
            buckets.append((repr(bound / 1000.0), cumulative))
        buckets.append(("+Inf", lag.samples))
        family = HistogramMetricFamily(
            "vtap_event_loop_lag_seconds",
            "How late the controller's event loop woke, sampled every 10 ms",
        )
        family.add_metric([], buckets, lag.total_ms / 1000.0)
        return family


def install(app: FastAPI, controller: Controller, dependencies: list[object]) -> None:
    """Serve `GET /metrics` (behind `dependencies`) and observe rounds and REST requests."""
    registry = CollectorRegistry()
    registry.register(ControllerCollector(controller))
    rounds = Histogram(
        "vtap_install_round_seconds",
        "Install rounds: compile, sync, confirm",
        buckets=ROUND_SECONDS,
        registry=registry,
    )
    changes = Histogram(
        "vtap_install_round_flow_mods",
        "Changes (flow and group mods) the switches committed per install round",
        buckets=ROUND_CHANGES,
        registry=registry,
    )
    rest = Histogram(
        "vtap_http_request_duration_seconds",
        "REST requests, by route template",
        labelnames=["method", "route", "status"],
        buckets=REST_SECONDS,
        registry=registry,
    )

    def observe_round(took: float, applied: int) -> None:
        rounds.observe(took)
        changes.observe(applied)

    controller.installer.round_observers.append(observe_round)

    def template(request: Request) -> str | None:
        """The matched route's path template with its router's prefix ("/api/v1/policies/
        {policy_id}"): bounded labels, whatever ids are requested. None for the console."""
        route = request.scope.get("route")
        regex = getattr(route, "path_regex", None)
        if not isinstance(route, APIRoute) or regex is None:
            return None
        path: str = request.scope["path"]
        for cut in (i for i, char in enumerate(path) if char == "/"):
            if regex.match(path[cut:]):
                return path[:cut] + route.path
        return route.path

    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = template(request)
        if route is not None:
            rest.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=Response, summary="Prometheus metrics")
    def metrics() -> Response:
        """Policies (status, copied packets and bytes), switches (connected, flows, groups),
        install rounds, REST latency, event-loop lag and alerts, in Prometheus' text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router, dependencies=dependencies)
