"""`vtap token`: API tokens. As root on the controller's machine `create` writes the store
directly (no token needed to make the first one); otherwise it asks the API with VTAP_TOKEN."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from vtap.domain.tokens import Role
from vtap.errors import VtapError
from vtap.settings import Settings

DEFAULT_API = "http://127.0.0.1:8080"


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="Tokens for the REST API and the console.", no_args_is_help=True)

    @tokens.command("create")
    def create(
        role: Annotated[Role, typer.Option(help="viewer, operator or admin")],
        name: Annotated[str, typer.Option(help="who or what it is for")] = "token",
        api: Annotated[str, typer.Option(help="controller URL (with VTAP_TOKEN)")] = DEFAULT_API,
    ) -> None:
        """Make a token; it is printed once, alone on the last line."""
        if os.environ.get("VTAP_TOKEN"):
            from vtap.apiclient import ApiClient

            made = ApiClient(api).call("POST", "/tokens", {"role": role.value, "name": name})
            secret, token_id = made["token"], made["id"]
        elif os.geteuid() == 0:
            from vtap.api.routes.tokens import TokenIn
            from vtap.store.tokens import SqliteTokenRepository

            try:
                TokenIn(role=role, name=name)
            except ValueError as exc:
                raise VtapError(f"--name: {str(exc).splitlines()[-1].strip()}") from None
            store = SqliteTokenRepository(Settings().policy_db)
            try:
                info, secret = store.create(name, role, datetime.now(UTC))
            finally:
                store.close()
            token_id = info.id
        else:
            raise VtapError("run as root on the controller's machine, or set VTAP_TOKEN to an "
                            "admin token")  # fmt: skip
        typer.echo(f"token {token_id} ({name}, {role.value}); use it as VTAP_TOKEN or "
                   "`Authorization: Bearer …`:")  # fmt: skip
        typer.echo(secret)

    @tokens.command("list")
    def list_(api: Annotated[str, typer.Option(help="controller URL")] = DEFAULT_API) -> None:
        """Tokens (never their secrets)."""
        from vtap.apiclient import ApiClient

        for t in ApiClient(api).call("GET", "/tokens"):
            typer.echo(f"{t['id']:>4}  {t['role']:<8}  {t['name']}  {t['created_at']}")

    @tokens.command("revoke")
    def revoke(
        token_id: Annotated[int, typer.Argument(help="the token's id")],
        api: Annotated[str, typer.Option(help="controller URL")] = DEFAULT_API,
    ) -> None:
        """Revoke a token: it stops working at once."""
        from vtap.apiclient import ApiClient

        ApiClient(api).call("DELETE", f"/tokens/{token_id}")
        typer.echo(f"token {token_id} revoked")

    app.add_typer(tokens, name="token")
