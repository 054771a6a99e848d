"""The FastAPI app factory: wires a controller into the routes; no global app object."""

from __future__ import annotations

from fastapi import FastAPI

from vtap import __version__
from vtap.api.routes import health, policies, topology
from vtap.controller.core import Controller

API_PREFIX = "/api/v1"


def create_app(controller: Controller) -> FastAPI:
    app = FastAPI(
        title="vtap",
        version=__version__,
        description="Virtual TAP controller for Open vSwitch data-center networks.",
    )
    app.state.controller = controller
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(topology.router, prefix=API_PREFIX)
    app.include_router(policies.router, prefix=API_PREFIX)
    return app
