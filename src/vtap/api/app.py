"""The FastAPI app factory: wires a controller into the routes; no global app object."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from vtap import __version__
from vtap.api import accesslog, metrics
from vtap.api.auth import Admin, Viewer
from vtap.api.guard import RequestGuard, validation_error
from vtap.api.routes import (
    alerts,
    audit,
    events,
    flows,
    health,
    paths,
    policies,
    tokens,
    topology,
    trace,
)
from vtap.api.views import LiveViews
from vtap.controller.core import Controller

API_PREFIX = "/api/v1"


def ui_dir() -> Path:
    """The web console's files, shipped inside the package (no CDN, no build step)."""
    return Path(str(files("vtap") / "ui"))


def create_app(controller: Controller) -> FastAPI:
    app = FastAPI(
        title="vtap",
        version=__version__,
        description="Virtual TAP controller for Open vSwitch data-center networks.",
    )
    settings = controller.state.settings
    app.add_middleware(
        RequestGuard, allowed_hosts=settings.allowed_hosts, max_body=settings.api_max_body
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.controller = controller
    app.state.views = LiveViews(controller)
    app.include_router(health.router, prefix=API_PREFIX)  # open: liveness probes
    for router in (topology, policies, paths, flows, events, alerts, trace):
        app.include_router(router.router, prefix=API_PREFIX, dependencies=[Viewer])
    app.include_router(tokens.router, prefix=API_PREFIX, dependencies=[Admin])
    app.include_router(audit.router, prefix=API_PREFIX, dependencies=[Admin])
    metrics.install(app, controller, dependencies=[Viewer])  # GET /metrics
    if settings.access_log:
        accesslog.install(app)
    # Last, so that every API route and /docs match first; the console is at "/".
    app.mount("/", StaticFiles(directory=ui_dir(), html=True), name="ui")
    return app
