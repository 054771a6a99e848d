"""The REST access log (`access_log` setting): one record per request on the `vtap.access`
logger, with who made it (the token's name), so a log collector sees what the audit log sees
for changes, for reads too."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

log = logging.getLogger("vtap.access")


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def access(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        token = getattr(request.state, "token", None)
        client = request.client.host if request.client else "-"
        who = token.name if token is not None else "-"
        log.info(
            '%s %s "%s %s" %d %.2f ms',
            client,
            who,
            request.method,
            request.url.path,
            response.status_code,
            took_ms,
            extra={
                "client": client,
                "token": who,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "duration_ms": took_ms,
            },
        )
        return response
