"""The token a vtap command presents to the REST API: `VTAP_TOKEN`, else the one the lab wrote
into its state directory (`<state dir>/api-token`, readable by root only)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

TOKEN_FILE = "api-token"


def token_file(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def client_token(state_dir: Path | None = None) -> str | None:
    env = os.environ.get("VTAP_TOKEN", "").strip()
    if env:
        return env
    if state_dir is None:
        from vtap.settings import Settings

        state_dir = Settings().state_dir
    return read_token_file(state_dir)


def read_token_file(state_dir: Path) -> str | None:
    """The token a lab wrote into its state dir, if there is one and it is readable."""
    try:
        return token_file(state_dir).read_text().strip() or None
    except OSError:
        return None


def headers(state_dir: Path | None = None) -> dict[str, str]:
    token = client_token(state_dir)
    return {"Authorization": f"Bearer {token}"} if token else {}


def write_token_file(state_dir: Path, secret: str) -> Path:
    path = token_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return path


def get(url: str, **kw: object) -> httpx.Response:
    return httpx.get(url, headers=headers(), **kw)  # type: ignore[arg-type]


def post(url: str, **kw: object) -> httpx.Response:
    return httpx.post(url, headers=headers(), **kw)  # type: ignore[arg-type]


def client(base_url: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=timeout, headers=headers())


def delete(url: str, **kw: object) -> httpx.Response:
    return httpx.delete(url, headers=headers(), **kw)  # type: ignore[arg-type]
