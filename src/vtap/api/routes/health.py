from __future__ import annotations

import time

from fastapi import APIRouter

from vtap import __version__
from vtap.api.deps import ControllerDep
from vtap.api.schemas import AuditOut, Health, InstallOut, LoopLagOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(controller: ControllerDep) -> Health:
    state = controller.state
    return Health(
        status="ok",
        version=__version__,
        uptime_s=round(time.time() - state.started_at, 3),
        switches=len(state.sessions),
        links=len(state.topology.undirected_links()),
        hosts=len(state.hosts.all()),
        event_loop=LoopLagOut.model_validate(controller.loop_lag.report()),
        install=InstallOut(
            rounds=controller.installer.rounds,
            full_builds=controller.installer.full_builds,
            last_full_build_s=round(controller.installer.last_build_s, 3),
            copies_ready=controller.forwarding.copies_ready(),
            held_packets=controller.forwarding.held,
            unanswered_bundles=controller.reconciler.unanswered,
        ),
        audit=AuditOut(
            interval_s=state.settings.audit_interval,
            passes=controller.audit.passes,
            repairs=controller.audit.repairs,
        ),
        alerts=sum(state.alerts.counts.values()),
    )
