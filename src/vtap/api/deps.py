"""FastAPI dependencies: the app factory puts the controller on app.state; routes ask here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vtap.api.views import LiveViews
from vtap.controller.core import Controller
from vtap.controller.policies import PolicyService


def get_controller(request: Request) -> Controller:
    return request.app.state.controller


def get_policies(request: Request) -> PolicyService:
    return request.app.state.controller.policies


def get_views(request: Request) -> LiveViews:
    return request.app.state.views


ControllerDep = Annotated[Controller, Depends(get_controller)]
PoliciesDep = Annotated[PolicyService, Depends(get_policies)]
ViewsDep = Annotated[LiveViews, Depends(get_views)]
