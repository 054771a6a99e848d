"""The audit log (admin): every change to policies and tokens, oldest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

router = APIRouter(tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at: datetime
    who: str  # the caller's token: name, id and role
    action: str  # policy.create, policy.update, policy.delete, token.create, token.revoke
    subject: str
    before: Any
    after: Any


@router.get("/audit", response_model=list[AuditOut])
def audit(
    request: Request,
    after: Annotated[int, Query(ge=0, description="only entries with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[AuditOut]:
    entries = request.app.state.controller.audit_log.entries(after, limit)
    return [AuditOut(**{f: getattr(e, f) for f in AuditOut.model_fields}) for e in entries]
