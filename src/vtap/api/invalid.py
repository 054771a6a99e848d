"""A 422 that names the one field at fault, shaped like FastAPI's own validation errors, for
checks a model cannot express (a host that must be known, a packet text, a protocol name)."""

from __future__ import annotations

from fastapi import HTTPException


def invalid(where: str, field: str, message: str) -> HTTPException:
    """`where`: body or query."""
    return HTTPException(
        422, detail=[{"loc": [where, field], "type": "value_error", "msg": message}]
    )
