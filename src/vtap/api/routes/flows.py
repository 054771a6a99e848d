"""In-flight flows with their counters at every switch of their path (read by the poller)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from vtap.api.deps import ControllerDep, ViewsDep
from vtap.api.invalid import invalid
from vtap.api.schemas import FlowDetail, FlowList, FlowOut
from vtap.api.views import FlowFilter, parse_flow_id
from vtap.domain.protocols import parse_proto

router = APIRouter(prefix="/flows", tags=["flows"])


@router.get("", response_model=FlowList)
def list_flows(
    views: ViewsDep,
    controller: ControllerDep,
    host: Annotated[
        str | None, Query(description="source or destination: IP (or MAC, or display name)")
    ] = None,
    proto: Annotated[str | None, Query(description="tcp, udp, icmp or a number")] = None,
    port: Annotated[int | None, Query(ge=0, le=65535, description="source or dest port")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> FlowList:
    """Flows whose entries the switches hold now, newest first. Rates are per second over the
    last two readings (`interval` apart); `packets`…`bps` at the top are the first switch's."""
    try:
        protocol = parse_proto(proto)
    except ValueError:
        raise invalid(
            "query", "proto", "must be tcp, udp, icmp, icmpv6 or a protocol number 0-255"
        ) from None
    rows = views.flow_rows(FlowFilter(host or None, protocol, port))
    return FlowList(
        total=len(rows),
        offset=offset,
        interval=controller.flowstats.interval,
        flows=[FlowOut.model_validate(r) for r in rows[offset : offset + limit]],
    )


@router.get(
    "/{flow_id}",
    response_model=FlowDetail,
    responses={404: {"description": "No such flow in flight"}},
)
def get_flow(flow_id: str, views: ViewsDep) -> FlowDetail:
    """One flow with the rate history at each switch (for a throughput chart)."""
    key = parse_flow_id(flow_id)
    row = views.flow_detail(key) if key is not None else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no flow {flow_id} in flight")
    return FlowDetail.model_validate(row)
