"""Who is calling: every API route but /health needs `Authorization: Bearer <token>`.

No token, or an unknown one: 401. A token whose role is below the route's: 403 naming both.
The console's event stream comes from an EventSource, which cannot set headers: that one
route also takes the token as `access_token` in the query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from vtap.domain.tokens import Role, TokenInfo

_QUERY_TOKEN_PATHS = ("/api/v1/events",)


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.url.path in _QUERY_TOKEN_PATHS:
        return request.query_params.get("access_token") or None
    return None


def require(role: Role) -> Callable[[Request], TokenInfo | None]:
    def check(request: Request) -> TokenInfo | None:
        controller = request.app.state.controller
        if not controller.state.settings.auth:
            return None
        secret = _secret(request)
        token = controller.tokens.find(secret) if secret else None
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="a valid token is needed (Authorization: Bearer <token>; "
                "`vtap token create` makes one)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not token.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"token {token.name!r} has role {token.role.value}; {role.value} needed",
            )
        request.state.token = token
        return token

    return check


Viewer = Depends(require(Role.VIEWER))
Operator = Depends(require(Role.OPERATOR))
Admin = Depends(require(Role.ADMIN))
CallerDep = Annotated[TokenInfo | None, Depends(require(Role.VIEWER))]
