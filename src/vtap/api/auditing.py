"""Writing the audit log from the routes: who (the caller's token), what, before and after."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from vtap.domain.policy import Policy
from vtap.store.auditlog import Change


def who(request: Request) -> str:
    token = getattr(request.state, "token", None)
    if token is None:
        return "anonymous (authentication off)"
    return f"{token.name} (token {token.id}, {token.role.value})"


def policy_record(policy: Policy) -> dict[str, Any]:
    """A policy as the audit log keeps it: its id and what the operator wrote (no status)."""
    return {"id": policy.id, **policy.spec().model_dump(mode="json")}


async def record(request: Request, changes: Sequence[Change]) -> None:
    if not changes:
        return
    log = request.app.state.controller.audit_log
    caller, now = who(request), datetime.now(UTC)
    if len(changes) > 100:  # a bulk change: thousands of rows, off the event loop
        await asyncio.to_thread(log.record, caller, now, changes)
    else:
        log.record(caller, now, changes)
