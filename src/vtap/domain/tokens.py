"""API access tokens: who may read, who may change policies, who may administer.

A token is a random secret shown once; only its SHA-256 is stored, so a copy of the database
does not give access. Roles are ordered: an operator can do what a viewer can, an admin what
an operator can.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

PREFIX = "vtap_"


class Role(StrEnum):
    VIEWER = "viewer"  # read everything
    OPERATOR = "operator"  # and change policies
    ADMIN = "admin"  # and manage tokens

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    role: Role
    created_at: datetime


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
