"""TAP policies: what an operator asks to be copied, and to which monitor.

Three shapes of one policy, because three audiences see it:

* `PolicySpec` is what an operator writes (REST create body, one YAML item). It is validated as
  a whole, and every error names the field an operator has to fix: the API answers 422 with the
  pydantic `loc`, so cross-field checks raise errors located at a field rather than at the model.
* `PolicyPatch` is a partial update. A field that is absent stays as it is; a field given as
  null becomes a wildcard. `apply` re-validates the merged result as a full spec, so a patch can
  never produce a policy that a create would have refused.
* `Policy` is what the store keeps and returns: the spec plus the server-assigned id and
  timestamps, and the run-time status the controller fills in.

Null means wildcard (the seed's `*`). Addresses are normalised (lowercase MAC, canonical IPv4)
so that two spellings of one policy compare equal, which the duplicate check (`identity`) needs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# Matched with fullmatch: `$` would also accept a trailing newline ("h1\n" and "h1" would be two
# names, and two spellings of one MAC would defeat the duplicate check).
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_IPV4_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

IP_PROTO_TCP = 6
IP_PROTO_UDP = 17


def _mac(value: str) -> str:
    if not _MAC_RE.fullmatch(value):
        raise PydanticCustomError(
            "mac_address", "must be a MAC address: 6 colon-separated hex octets"
        )
    return value.lower()


def _ipv4(value: str) -> str:
    if not _IPV4_RE.fullmatch(value):
        raise PydanticCustomError("ipv4_address", "must be an IPv4 address in dotted-quad form")
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise PydanticCustomError(
            "ipv4_address", "must be an IPv4 address in dotted-quad form"
        ) from None


def _name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise PydanticCustomError("policy_name", "must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return value


Mac = Annotated[str, AfterValidator(_mac)]
Ipv4 = Annotated[str, AfterValidator(_ipv4)]
Name = Annotated[str, AfterValidator(_name)]
VlanId = Annotated[int, Field(ge=1, le=4094)]
IpProto = Annotated[int, Field(ge=0, le=255)]
L4Port = Annotated[int, Field(ge=1, le=65535)]
Delivery = Literal["tagged", "rewrite"]


class PolicyStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ERROR = "error"


class PolicyIdentity(NamedTuple):
    """What makes two policies the same TAP: the match and the monitor.

    Name, `enabled` and `delivery` are left out on purpose: two policies that copy the same
    packets to the same monitor are duplicates however they are named or delivered.
    """

    src_mac: str | None
    src_ip: str | None
    dst_mac: str | None
    dst_ip: str | None
    vlan_id: int | None
    ip_proto: int | None
    src_port: int | None
    dst_port: int | None
    monitor_mac: str | None
    monitor_ip: str | None


MATCH_FIELDS = (
    "src_mac",
    "src_ip",
    "dst_mac",
    "dst_ip",
    "vlan_id",
    "ip_proto",
    "src_port",
    "dst_port",
)
MONITOR_FIELDS = ("monitor_mac", "monitor_ip")
SPEC_FIELDS = ("name", *MATCH_FIELDS, *MONITOR_FIELDS, "delivery", "enabled")


def _error(field: str, kind: str, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)


def _cross_field_errors(spec: _SpecFields) -> list[InitErrorDetails]:
    """Checks that need several fields; each error is located at the field to fix."""
    errors: list[InitErrorDetails] = []
    if spec.ip_proto not in (IP_PROTO_TCP, IP_PROTO_UDP):
        for field in ("src_port", "dst_port"):
            value = getattr(spec, field)
            if value is not None:
                errors.append(
                    _error(
                        field,
                        "port_needs_tcp_udp",
                        "ports need ip_proto 6 (TCP) or 17 (UDP)",
                        value,
                    )
                )
    if spec.monitor_mac is None and spec.monitor_ip is None:
        errors.append(
            _error(
                "monitor_mac", "monitor_required", "a monitor_mac or monitor_ip is required", None
            )
        )
    if all(getattr(spec, f) is None for f in ("src_mac", "src_ip", "dst_mac", "dst_ip")):
        errors.append(
            _error(
                "src_mac",
                "endpoint_required",
                "at least one of src_mac, src_ip, dst_mac, dst_ip is required",
                None,
            )
        )
    for monitor_field, endpoints in (
        ("monitor_mac", (("src_mac", "source"), ("dst_mac", "destination"))),
        ("monitor_ip", (("src_ip", "source"), ("dst_ip", "destination"))),
    ):
        value = getattr(spec, monitor_field)
        for endpoint, role in endpoints:
            if value is not None and value == getattr(spec, endpoint):
                errors.append(
                    _error(
                        monitor_field,
                        "monitor_is_endpoint",
                        f"the monitor must differ from the {role}",
                        value,
                    )
                )
    if spec.delivery == "rewrite" and (spec.dst_mac is None or spec.dst_ip is None):
        errors.append(
            _error(
                "delivery",
                "rewrite_needs_destination",
                "delivery 'rewrite' needs dst_mac and dst_ip (the monitor's edge restores them)",
                spec.delivery,
            )
        )
    return errors


class _SpecFields(BaseModel):
    """The operator-written fields, validated field by field and then as a whole."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "web-h1-h2",
                    "src_ip": "10.0.0.1",
                    "dst_ip": "10.0.0.2",
                    "ip_proto": 6,
                    "dst_port": 80,
                    "monitor_ip": "10.0.0.3",
                }
            ]
        },
    )

    name: Name = Field(description="Unique name (letters, digits, . _ -).", examples=["web-h1"])
    src_mac: Mac | None = Field(None, description="Source MAC; null: any.")
    src_ip: Ipv4 | None = Field(None, description="Source IPv4; null: any.", examples=["10.0.0.1"])
    dst_mac: Mac | None = Field(None, description="Destination MAC; null: any.")
    dst_ip: Ipv4 | None = Field(None, description="Destination IPv4; null: any.")
    monitor_mac: Mac | None = Field(
        None, description="The monitor host by MAC (this or monitor_ip is needed)."
    )
    monitor_ip: Ipv4 | None = Field(
        None,
        description="The monitor host by IPv4 (found by ARP if not seen yet).",
        examples=["10.0.0.3"],
    )
    vlan_id: VlanId | None = Field(None, description="Only frames of this VLAN (1-4094).")
    ip_proto: IpProto | None = Field(
        None,
        description="IP protocol number (6 TCP, 17 UDP, 1 ICMP); null: any IP (or not IP).",
        examples=[6],
    )
    src_port: L4Port | None = Field(None, description="TCP/UDP source port (needs ip_proto).")
    dst_port: L4Port | None = Field(
        None, description="TCP/UDP destination port (needs ip_proto).", examples=[80]
    )
    delivery: Delivery = Field(
        "tagged",
        description="tagged: copies cross the fabric under an MPLS label, delivered with their "
        "original headers; rewrite: destination rewritten to the monitor.",
    )
    enabled: bool = Field(True, description="False: kept, but nothing is copied.")

    @model_validator(mode="after")
    def _check_whole(self) -> _SpecFields:
        errors = _cross_field_errors(self)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def identity(self) -> PolicyIdentity:
        return PolicyIdentity(*(getattr(self, f) for f in (*MATCH_FIELDS, *MONITOR_FIELDS)))

    def spec(self) -> PolicySpec:
        """Just the operator-written part (drops id, status and timestamps of a `Policy`)."""
        return PolicySpec.model_validate({f: getattr(self, f) for f in SPEC_FIELDS})

    @property
    def has_source(self) -> bool:
        return self.src_mac is not None or self.src_ip is not None

    @property
    def has_destination(self) -> bool:
        return self.dst_mac is not None or self.dst_ip is not None


class PolicySpec(_SpecFields):
    """A policy as an operator writes it: the create body and one item of a policy file."""


class PolicyPatch(BaseModel):
    """A partial update: absent fields stay, fields given as null become wildcards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name | None = None
    src_mac: Mac | None = None
    src_ip: Ipv4 | None = None
    dst_mac: Mac | None = None
    dst_ip: Ipv4 | None = None
    monitor_mac: Mac | None = None
    monitor_ip: Ipv4 | None = None
    vlan_id: VlanId | None = None
    ip_proto: IpProto | None = None
    src_port: L4Port | None = None
    dst_port: L4Port | None = None
    delivery: Delivery | None = None
    enabled: bool | None = None

    def apply(self, spec: _SpecFields) -> PolicySpec:
        """The spec with this patch applied, validated as a whole (ValidationError if not)."""
        merged = {f: getattr(spec, f) for f in SPEC_FIELDS}
        merged.update(self.model_dump(exclude_unset=True))
        return PolicySpec.model_validate(merged)


class Policy(_SpecFields):
    """A stored policy: the spec plus what the server assigns."""

    id: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    status: PolicyStatus = PolicyStatus.PENDING
    status_reason: str = ""

    @classmethod
    def stored(
        cls, policy_id: int, spec: _SpecFields, created_at: datetime, updated_at: datetime
    ) -> Policy:
        """The stored form of a spec that was validated already (no second validation: a bulk
        create of 10,000 policies spent 60 % of its store time validating them again)."""
        if policy_id < 1:
            raise ValueError(f"policy id {policy_id} must be positive")
        return cls.model_construct(
            **{f: getattr(spec, f) for f in SPEC_FIELDS},
            id=policy_id,
            created_at=created_at,
            updated_at=updated_at,
            status=PolicyStatus.PENDING,  # given, so no default is deep-copied
            status_reason="",
        )

    def with_status(self, status: PolicyStatus, reason: str = "") -> Policy:
        return self.model_copy(update={"status": status, "status_reason": reason})

    @property
    def etag(self) -> str:
        """Names this version of the stored policy (not its status): an HTTP ETag, so two
        operators editing one policy cannot overwrite each other unknowingly (If-Match)."""
        fields = {f: getattr(self, f) for f in SPEC_FIELDS}
        text = json.dumps([self.id, self.updated_at.isoformat(), fields], default=str)
        return '"' + hashlib.sha256(text.encode()).hexdigest()[:20] + '"'
