"""The CLI's REST client: one call per request, HTTP failures as one-line operator errors,
authenticated like any client (VTAP_TOKEN, or the state dir's token file as root)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from vtap import apiauth
from vtap.errors import VtapError

DEFAULT_API = "http://127.0.0.1:8080"

ApiOpt = Annotated[
    str, typer.Option("--api", envvar="VTAP_API", help="Base URL of the controller's REST API.")
]
PolicyRef = Annotated[
    str, typer.Argument(help="Policy id or name (name:123 for a policy named only by digits).")
]


class ApiClient:
    """Thin REST client that turns HTTP failures into one-line operator errors."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        try:
            url = httpx.URL(self.base)
        except httpx.InvalidURL as exc:
            raise VtapError(f"--api {base!r} is not a valid URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise VtapError(f"--api must be an http:// URL (e.g. {DEFAULT_API}), not {base!r}")
        self._http = httpx.Client(
            base_url=f"{self.base}/api/v1", timeout=30, headers=apiauth.headers()
        )

    def call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            resp = self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise VtapError(
                f"cannot reach the controller at {self.base} ({exc.__class__.__name__}); "
                "is it running? (vtap lab up / vtap controller)"
            ) from exc
        if resp.status_code >= 400:
            raise VtapError(_error_text(resp))
        return resp.json() if resp.content else None

    def resolve(self, ref: str) -> dict[str, Any]:
        """A policy by id, by name, or by `name:NAME` (a name made only of digits)."""
        if ref.isdigit():
            return self.call("GET", f"/policies/{ref}")
        name = ref.removeprefix("name:")
        for policy in self.call("GET", "/policies"):
            if policy["name"] == name:
                return policy
        raise VtapError(f"no policy named {name!r}")


def _error_text(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"
    if isinstance(detail, list):  # 422: name the fields
        parts = []
        for err in detail:
            loc = [str(p) for p in err.get("loc", []) if p != "body"]
            parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        return "; ".join(parts)
    return str(detail)
