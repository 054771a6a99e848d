"""Security and fault alerts, newest last: duplicate or unknown datapath ids, protocol
violations, refused host claims, forged LLDP, tables changed behind vtap, switches lost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from vtap.api.deps import ControllerDep
from vtap.api.schemas import AlertOut, AlertsOut
from vtap.controller.alerts import KEEP

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=AlertsOut)
def alerts(
    controller: ControllerDep,
    after: Annotated[int, Query(ge=0, description="only alerts with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=KEEP)] = 100,
) -> AlertsOut:
    log = controller.state.alerts
    return AlertsOut(
        alerts=[
            AlertOut(
                id=a.id,
                at=datetime.fromtimestamp(a.at, UTC),
                kind=a.kind.value,
                message=a.message,
                subject=a.subject,
                repeats=a.repeats,
                last_at=datetime.fromtimestamp(a.last_at, UTC),
            )
            for a in log.since(after, limit)
        ],
        last_id=log.last_id,
        counts={kind.value: n for kind, n in log.counts.items()},
    )
