"""`vtap policy …`: manage TAP policies through the controller's REST API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from vtap import cliout
from vtap.apiclient import DEFAULT_API, ApiClient, ApiOpt, PolicyRef
from vtap.cliout import OutputOpt
from vtap.domain.policy import SPEC_FIELDS, PolicyIdentity, PolicySpec
from vtap.domain.protocols import NAMES as PROTO_NAMES
from vtap.domain.protocols import parse_proto
from vtap.errors import NotActiveError, VtapError


def _match_summary(p: dict[str, Any]) -> str:
    src = p.get("src_ip") or p.get("src_mac") or "*"
    dst = p.get("dst_ip") or p.get("dst_mac") or "*"
    extra = []
    if p.get("vlan_id") is not None:
        extra.append(f"vlan {p['vlan_id']}")
    proto = PROTO_NAMES.get(p.get("ip_proto") or -1, p.get("ip_proto"))
    if proto is not None:
        extra.append(str(proto))
    if p.get("src_port"):
        extra.append(f"sport {p['src_port']}")
    if p.get("dst_port"):
        extra.append(f"dport {p['dst_port']}")
    return f"{src} → {dst}" + (f" ({', '.join(extra)})" if extra else "")


def _print_policy(p: dict[str, Any]) -> None:
    console = Console()
    table = Table(show_header=False, box=None)
    for key in ("id", *SPEC_FIELDS, "status", "status_reason", "created_at", "updated_at"):
        value = p.get(key)
        table.add_row(key, "*" if value is None else str(value))
    console.print(table)


def _spec_body(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# The match and monitor options `add` and `update` share (the same help, the same meaning).
MonitorMacOpt = Annotated[str | None, typer.Option(help="Monitor host MAC.")]
MonitorIpOpt = Annotated[str | None, typer.Option(help="Monitor host IPv4.")]
SrcIpOpt = Annotated[str | None, typer.Option(help="Source IPv4.")]
DstMacOpt = Annotated[str | None, typer.Option(help="Destination MAC.")]
DstIpOpt = Annotated[str | None, typer.Option(help="Destination IPv4.")]
VlanOpt = Annotated[int | None, typer.Option(help="VLAN id 1-4094.")]
SrcPortOpt = Annotated[int | None, typer.Option(help="TCP/UDP source port.")]
DstPortOpt = Annotated[int | None, typer.Option(help="TCP/UDP destination port.")]
IpProtoOpt = Annotated[
    str | None,
    typer.Option(help="IP protocol: tcp, udp, icmp, icmpv6 or a number 0-255."),
]
WaitOpt = Annotated[
    float | None,
    typer.Option(
        "--wait",
        help="Wait up to SECONDS for `active`; exit 3 with the reason if it is not.",
        metavar="SECONDS",
    ),
]
CLEARABLE = ("src_mac", "src_ip", "dst_mac", "dst_ip", "monitor_mac", "monitor_ip", "vlan_id",
             "ip_proto", "src_port", "dst_port")  # fmt: skip


def _proto(text: str | None) -> int | None:
    try:
        return parse_proto(text)
    except ValueError:
        raise VtapError(
            f"--ip-proto must be tcp, udp, icmp, icmpv6 or a number 0-255, not {text!r}"
        ) from None


def _wait_active(client: ApiClient, policy: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Poll until the policy is active; NotActiveError (exit 3) with its reason otherwise."""
    deadline = time.monotonic() + max(0.0, seconds)
    while policy["status"] != "active" and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        policy = client.call("GET", f"/policies/{policy['id']}")
    if policy["status"] != "active":
        raise NotActiveError(
            f"policy {policy['id']} ({policy['name']}) not active after {seconds:g} s: "
            f"{_status(policy)}"
        )
    return policy


def build_policy_app() -> typer.Typer:
    app = typer.Typer(help="Manage TAP policies (over the REST API).", no_args_is_help=True)

    @app.command("add")
    def add(
        name: Annotated[str, typer.Option(help="Unique policy name.")],
        monitor_mac: MonitorMacOpt = None,
        monitor_ip: MonitorIpOpt = None,
        src_mac: Annotated[str | None, typer.Option(help="Source MAC (default any).")] = None,
        src_ip: SrcIpOpt = None,
        dst_mac: DstMacOpt = None,
        dst_ip: DstIpOpt = None,
        vlan_id: VlanOpt = None,
        ip_proto: IpProtoOpt = None,
        src_port: SrcPortOpt = None,
        dst_port: DstPortOpt = None,
        delivery: Annotated[str, typer.Option(help="tagged or rewrite.")] = "tagged",
        disabled: Annotated[bool, typer.Option("--disabled", help="Create disabled.")] = False,
        wait: WaitOpt = None,
        api: ApiOpt = DEFAULT_API,
    ) -> None:
        """Create a policy and show its status (with --wait: once it is active)."""
        body = _spec_body(
            {
                "name": name, "src_mac": src_mac, "src_ip": src_ip, "dst_mac": dst_mac,
                "dst_ip": dst_ip, "monitor_mac": monitor_mac, "monitor_ip": monitor_ip,
                "vlan_id": vlan_id, "ip_proto": _proto(ip_proto), "src_port": src_port,
                "dst_port": dst_port, "delivery": delivery, "enabled": not disabled,
            }
        )  # fmt: skip
        client = ApiClient(api)
        policy = client.call("POST", "/policies", body)
        typer.echo(f"policy {policy['id']} ({policy['name']}): {_status(policy)}")
        if wait is not None:
            policy = _wait_active(client, policy, wait)
            typer.echo(f"policy {policy['id']} ({policy['name']}): {_status(policy)}")

    @app.command("update")
    def update(
        ref: PolicyRef,
        name: Annotated[str | None, typer.Option(help="New name.")] = None,
        monitor_mac: MonitorMacOpt = None,
        monitor_ip: MonitorIpOpt = None,
        src_mac: Annotated[str | None, typer.Option(help="Source MAC.")] = None,
        src_ip: SrcIpOpt = None,
        dst_mac: DstMacOpt = None,
        dst_ip: DstIpOpt = None,
        vlan_id: VlanOpt = None,
        ip_proto: IpProtoOpt = None,
        src_port: SrcPortOpt = None,
        dst_port: DstPortOpt = None,
        delivery: Annotated[str | None, typer.Option(help="tagged or rewrite.")] = None,
        clear: Annotated[
            list[str] | None,
            typer.Option(
                "--clear",
                help="Make FIELD a wildcard (e.g. --clear dst_port); repeatable.",
                metavar="FIELD",
            ),
        ] = None,
        wait: WaitOpt = None,
        api: ApiOpt = DEFAULT_API,
    ) -> None:
        """Change some fields of a policy (PATCH): the others stay as they are."""
        body = _spec_body(
            {
                "name": name, "src_mac": src_mac, "src_ip": src_ip, "dst_mac": dst_mac,
                "dst_ip": dst_ip, "monitor_mac": monitor_mac, "monitor_ip": monitor_ip,
                "vlan_id": vlan_id, "ip_proto": _proto(ip_proto), "src_port": src_port,
                "dst_port": dst_port, "delivery": delivery,
            }
        )  # fmt: skip
        for field in clear or []:
            key = field.replace("-", "_")
            if key not in CLEARABLE:
                raise VtapError(f"--clear {field}: not a field that can be a wildcard; one of "
                                f"{', '.join(CLEARABLE)}")  # fmt: skip
            if key in body:
                raise VtapError(f"--clear {field} and --{key.replace('_', '-')} contradict")
            body[key] = None
        if not body:
            raise VtapError("nothing to change: give at least one field option or --clear")
        client = ApiClient(api)
        policy = client.resolve(ref)
        policy = client.call("PATCH", f"/policies/{policy['id']}", body)
        typer.echo(f"policy {policy['id']} ({policy['name']}): {_status(policy)}")
        if wait is not None:
            policy = _wait_active(client, policy, wait)
            typer.echo(f"policy {policy['id']} ({policy['name']}): {_status(policy)}")

    @app.command("list")
    def list_(
        api: ApiOpt = DEFAULT_API,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON (= -o json).")] = False,
        output: OutputOpt = "table",
    ) -> None:
        """List policies with their status."""
        fmt = "json" if as_json else cliout.check(output)
        policies = ApiClient(api).call("GET", "/policies")

        def table() -> None:
            out = Table()
            for col in ("id", "name", "match", "monitor", "delivery", "enabled", "status"):
                out.add_column(col)
            for p in policies:
                out.add_row(
                    str(p["id"]), p["name"], _match_summary(p),
                    p.get("monitor_ip") or p.get("monitor_mac") or "", p["delivery"],
                    "yes" if p["enabled"] else "no", _status(p),
                )  # fmt: skip
            Console().print(out)

        cliout.emit(policies, fmt, table)

    @app.command("show")
    def show(ref: PolicyRef, api: ApiOpt = DEFAULT_API, output: OutputOpt = "table") -> None:
        """Show one policy."""
        cliout.check(output)
        policy = ApiClient(api).resolve(ref)
        cliout.emit(policy, output, lambda: _print_policy(policy))

    @app.command("rm")
    def rm(ref: PolicyRef, api: ApiOpt = DEFAULT_API) -> None:
        """Delete a policy (its rules and groups leave every switch)."""
        client = ApiClient(api)
        policy = client.resolve(ref)
        client.call("DELETE", f"/policies/{policy['id']}")
        typer.echo(f"policy {policy['id']} ({policy['name']}) deleted")

    def _set_enabled(ref: str, api: str, enabled: bool) -> None:
        client = ApiClient(api)
        policy = client.resolve(ref)
        policy = client.call("PATCH", f"/policies/{policy['id']}", {"enabled": enabled})
        typer.echo(f"policy {policy['id']} ({policy['name']}): {_status(policy)}")

    @app.command("enable")
    def enable(ref: PolicyRef, api: ApiOpt = DEFAULT_API) -> None:
        """Enable a policy."""
        _set_enabled(ref, api, True)

    @app.command("disable")
    def disable(ref: PolicyRef, api: ApiOpt = DEFAULT_API) -> None:
        """Disable a policy (kept, but nothing is copied)."""
        _set_enabled(ref, api, False)

    @app.command("rules")
    def rules(ref: PolicyRef, api: ApiOpt = DEFAULT_API, output: OutputOpt = "table") -> None:
        """The compiled rules of a policy per switch, in ovs-ofctl syntax."""
        cliout.check(output)
        client = ApiClient(api)
        policy = client.resolve(ref)
        out = client.call("GET", f"/policies/{policy['id']}/rules")

        def table() -> None:
            if not out["switches"]:
                typer.echo(f"no rules: {out['status']} {out['status_reason']}".rstrip())
            for sw in out["switches"]:
                typer.echo(f"{sw['switch'] or sw['dpid']} ({sw['dpid']}):")
                for rule in sw["rules"]:
                    typer.echo(f"  {rule['ofctl']}")

        cliout.emit(out, output, table)

    @app.command("stats")
    def stats(ref: PolicyRef, api: ApiOpt = DEFAULT_API, output: OutputOpt = "table") -> None:
        """Packets and bytes copied for a policy."""
        cliout.check(output)
        client = ApiClient(api)
        policy = client.resolve(ref)
        out = client.call("GET", f"/policies/{policy['id']}/stats")

        def table() -> None:
            typer.echo(
                f"policy {out['policy_id']}: {out['packets']} packets, {out['bytes']} bytes copied"
            )
            for c in out["copies"]:
                typer.echo(
                    f"  {c['switch'] or c['dpid']} group 0x{c['group_id']:08x} → "
                    f"{c['monitor']}: {c['packets']} packets, {c['bytes']} bytes"
                )

        cliout.emit(out, output, table)

    @app.command("apply")
    def apply(
        file: Annotated[Path, typer.Argument(help="YAML file with a `policies:` list.")],
        api: ApiOpt = DEFAULT_API,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
        ] = False,
        prune: Annotated[
            bool,
            typer.Option("--prune", help="Let a file without policies remove every policy."),
        ] = False,
    ) -> None:
        """Make the controller's policies exactly those in FILE (matched by name): all of the
        changes or none, in one install round (PUT /api/v1/policies)."""
        wanted = load_policy_file(file)
        client = ApiClient(api)
        if not wanted and not prune:
            stored = client.call("GET", "/policies/summary")["total"]
            if stored:
                raise VtapError(
                    f"{file} lists no policies: applying it would remove all {stored}; "
                    "add --prune to mean that"
                )
        body = {"policies": [spec.model_dump(mode="json") for spec in wanted.values()]}
        params = {"dry_run": str(dry_run).lower(), "prune": str(prune).lower()}
        result = client.call("PUT", "/policies", body, params=params)
        would = "would be " if dry_run else ""
        for verb, key in (("removed", "removed"), ("changed", "changed"), ("created", "created")):
            for name in result[key]:
                typer.echo(f"{would}{verb}  {name}" if dry_run else f"{verb}  {name}")
        counts = (
            f"{len(result['created'])} created, {len(result['changed'])} changed, "
            f"{len(result['removed'])} removed, {result['unchanged']} unchanged"
        )
        typer.echo(f"dry run: {counts}; nothing was changed" if dry_run else counts)

    return app


def load_policy_file(path: Path) -> dict[str, PolicySpec]:
    """Parse and validate the whole file before anything changes; errors name item and field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise VtapError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise VtapError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise VtapError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    # An empty file or a mistyped key must not read as "no policies": apply would remove all.
    if isinstance(data, dict) and "policies" in data:
        items = data["policies"] if data["policies"] is not None else []
    else:
        items = data
    if not isinstance(items, list):
        raise VtapError(f"{path}: expected a list of policies under 'policies:'")
    specs: dict[str, PolicySpec] = {}
    identities: dict[PolicyIdentity, int] = {}
    for index, item in enumerate(items):
        where = f"{path}: policies[{index}]"
        if not isinstance(item, dict):
            raise VtapError(f"{where}: expected a mapping of policy fields")
        try:
            spec = PolicySpec.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "policy"
            raise VtapError(f"{where}.{field}: {err['msg']}") from exc
        if spec.name in specs:
            raise VtapError(f"{where}.name: {spec.name!r} appears twice")
        twin = identities.setdefault(spec.identity(), index)
        if twin != index:
            raise VtapError(f"{where}: same match and monitor as policies[{twin}]")
        specs[spec.name] = spec
    return specs


def _status(p: dict[str, Any]) -> str:
    reason = p.get("status_reason") or ""
    return f"{p['status']} ({reason})" if reason else p["status"]


def register(app: typer.Typer) -> None:
    app.add_typer(build_policy_app(), name="policy")
