"""What the REST API refuses before any route runs: foreign Host headers and oversized bodies.

* Host allow-list: a web page on another site can make the operator's browser send requests
  to 127.0.0.1 under a name the attacker controls (DNS rebinding). Only requests whose Host is
  one the controller is meant to be reached by get through (400 otherwise).
* Body limit: a body over the limit is refused with 413 before it is parsed (a 37 MB bulk body
  once held the event loop for 3 s), whether it announces its length or is chunked.
* Error bodies stay small: a 422 names each bad field but echoes at most a short excerpt of
  the input, and at most MAX_ERRORS errors (it once echoed 34 MB back).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_ERRORS = 50
MAX_INPUT = 120  # characters of an offending value echoed back


def host_name(header: str) -> str:
    """The host part of a Host header: 'a:8080' → 'a', '[::1]:80' → '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class RequestGuard:
    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str], max_body: int) -> None:
        self.app = app
        self.allowed_hosts = frozenset(h.lower().strip("[]") for h in allowed_hosts)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = host_name(headers.get("host", ""))
        if host not in self.allowed_hosts:
            await _answer(send, 400, f"Host {host!r} is not allowed (VTAP_API_HOSTS lists the "
                                     "names this controller answers to)")  # fmt: skip
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, 413, self._too_large())
            return
        if length is None and headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > self.max_body:
                    await _answer(send, 413, self._too_large())
                    return
                if not message.get("more_body", False) or message["type"] != "http.request":
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    def _too_large(self) -> str:
        return f"request body over {self.max_body:,} bytes (VTAP_API_MAX_BODY)"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _short(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return (
            value
            if not isinstance(value, str) or len(value) <= MAX_INPUT
            else (value[:MAX_INPUT] + "…")
        )
    text = repr(value)
    return text if len(text) <= MAX_INPUT else text[:MAX_INPUT] + "…"


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming every bad field (up to MAX_ERRORS), with short excerpts of the input."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [
        {**jsonable_encoder({k: v for k, v in e.items() if k != "input"}),
         "input": _short(e.get("input"))}
        for e in errors[:MAX_ERRORS]
    ]  # fmt: skip
    body: dict[str, Any] = {"detail": detail}
    if len(errors) > MAX_ERRORS:
        body["more_errors"] = len(errors) - MAX_ERRORS
    return JSONResponse(body, status_code=422)
