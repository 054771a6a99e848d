"""API tokens (admin only): create one (its secret is shown once), list, revoke."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, field_validator

from vtap.api.auditing import record
from vtap.domain.tokens import Role, TokenInfo

router = APIRouter(prefix="/tokens", tags=["tokens"])

_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class TokenIn(BaseModel):
    role: Role
    name: str = Field("token", description="1-64 of A-Z a-z 0-9 . _ @ -")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-64 characters of A-Z a-z 0-9 . _ @ -")
        return value


class TokenOut(BaseModel):
    id: int
    name: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        return cls(id=info.id, name=info.name, role=info.role, created_at=info.created_at)


class NewToken(TokenOut):
    token: str  # the secret: shown here once, never again


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewToken)
async def create_token(body: TokenIn, request: Request) -> NewToken:
    info, secret = request.app.state.controller.tokens.create(
        body.name, body.role, datetime.now(UTC)
    )
    out = TokenOut.of(info)
    await record(request, [("token.create", f"token {info.id}", None, out.model_dump(mode="json"))])
    return NewToken(**out.model_dump(), token=secret)


@router.get("", response_model=list[TokenOut])
def list_tokens(request: Request) -> list[TokenOut]:
    return [TokenOut.of(t) for t in request.app.state.controller.tokens.list()]


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: int, request: Request) -> Response:
    tokens = request.app.state.controller.tokens
    before = next((t for t in tokens.list() if t.id == token_id), None)
    if before is None or not tokens.revoke(token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no token {token_id}")
    old = TokenOut.of(before).model_dump(mode="json")
    await record(request, [("token.revoke", f"token {token_id}", old, None)])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
