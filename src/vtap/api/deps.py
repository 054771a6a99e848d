"""FastAPI dependencies: the app factory puts the controller on app.state; routes ask here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vtap.controller.core import Controller


def get_controller(request: Request) -> Controller:
    return request.app.state.controller


ControllerDep = Annotated[Controller, Depends(get_controller)]
