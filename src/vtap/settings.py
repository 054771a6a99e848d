"""Runtime settings, read from VTAP_* environment variables.

One object, built once by the entry point and passed down: no module reads the environment
on its own, so tests can run several controllers side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/vtap")
    return Path.home() / ".local" / "state" / "vtap"


def parse_dpid(value: object) -> int:
    """A datapath id from 16 hex digits (colons allowed, 0x optional) or an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower().replace(":", "").removeprefix("0x")
        if not text or len(text) > 16 or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"datapath id {value!r} is not up to 16 hex digits")
        number = int(text, 16)
    else:
        raise ValueError(f"datapath id {value!r} is not hex text or a number")
    if not 0 <= number < 1 << 64:
        raise ValueError(f"datapath id {value!r} does not fit 64 bits")
    return number


class Settings(BaseSettings):
    """Where vtap listens, keeps its state and how eagerly it watches the switches."""

    model_config = SettingsConfigDict(env_prefix="VTAP_", extra="ignore")

    of_host: str = "127.0.0.1"
    of_port: int = Field(6653, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    state_dir: Path = Field(default_factory=_default_state_dir)
    ovs_rundir: Path | None = None
    db_path: Path | None = None  # default: <state_dir>/policies.db

    echo_interval: float = 5.0
    echo_timeout: float = 15.0
    request_timeout: float = 10.0
    lldp_interval: float = 2.0
    link_timeout: float = 7.0
    edge_grace: float = 2.0
    flow_idle_timeout: int = 30
    tap_settle: float = 5.0
    # Every switch's tables are compared with the intent this often (s); whatever was
    # removed, changed or added out of band is repaired by the next round.
    audit_interval: float = Field(5.0, gt=0, le=10.0)
    # The MPLS labels copies may carry across the fabric (one per monitor, or per policy for
    # rewrite delivery). Copies are recognised by the port they arrive on, so the range needs
    # no reservation in the network; it only has to fit the number of monitors.
    label_first: int = Field(16, ge=16, le=(1 << 20) - 1)
    label_last: int = Field((1 << 20) - 1, ge=16, le=(1 << 20) - 1)
    # Flow statistics: how often every switch's forwarding counters are read, how many rate
    # points per flow hop are kept for the chart, and display names for hosts (IP or MAC →
    # name, e.g. VTAP_HOST_NAMES='{"10.0.0.1": "h1"}'): the network itself has no host names.
    stats_interval: float = Field(1.0, gt=0)
    stats_history: int = Field(120, ge=1)
    host_names: dict[str, str] = Field(default_factory=dict)

    # Switches allowed to connect, by datapath id (hex, as in `ovs-vsctl get bridge BR
    # datapath_id`); empty: any switch that completes the handshake. From the environment as
    # JSON: VTAP_DATAPATH_ALLOW='["0000000000000101", "0x102"]'.
    datapath_allow: frozenset[int] = frozenset()
    # OpenFlow over TLS: a directory made by `vtap pki init`; switches then need a certificate
    # of its switch CA. Unset: plain TCP (keep it on loopback).
    tls_dir: Path | None = None
    # Host names the REST API answers to (DNS-rebinding guard); empty: loopback names and
    # api_host. JSON from the environment: VTAP_API_HOSTS='["vtap.example.net"]'.
    api_hosts: frozenset[str] = frozenset()
    auth: bool = True  # tokens required on the REST API (VTAP_AUTH=false turns that off)
    api_max_body: int = Field(32 * 1024 * 1024, ge=1024)  # bytes; larger bodies get 413
    duplicate_probe: float = Field(2.0, gt=0)  # s the live holder of a datapath id has to answer

    @field_validator("datapath_allow", mode="before")
    @classmethod
    def _dpids(cls, value: object) -> object:
        if isinstance(value, str | int):
            value = [value]
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(parse_dpid(v) for v in value)
        return value

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return self.api_hosts or frozenset({"127.0.0.1", "localhost", "::1", self.api_host})

    @property
    def policy_db(self) -> Path:
        return self.db_path or self.state_dir / "policies.db"
