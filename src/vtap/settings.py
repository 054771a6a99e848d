"""Runtime settings: defaults, then the config file (config.py), then VTAP_* environment
variables, then command-line flags. Every field is documented here (`vtap config example`).

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

    of_host: str = Field("127.0.0.1", description="Address the OpenFlow listener binds to.")
    of_port: int = Field(6653, ge=1, le=65535, description="TCP port for OpenFlow switches.")
    api_host: str = Field("127.0.0.1", description="Address the REST API and console bind to.")
    api_port: int = Field(8080, ge=1, le=65535, description="TCP port of the REST API.")
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Policy store, tokens, PKI and lab state (default /var/lib/vtap as root).",
    )
    ovs_rundir: Path | None = Field(
        None, description="Run dir of an Open vSwitch vtap should use or start (lab only)."
    )
    db_path: Path | None = Field(
        None, description="Policy database (default STATE_DIR/policies.db)."
    )

    echo_interval: float = Field(5.0, description="Seconds of silence before a switch is probed.")
    echo_timeout: float = Field(
        15.0, description="Seconds of silence after which a switch is declared gone."
    )
    request_timeout: float = Field(
        10.0, description="Seconds a switch has to answer a request, barrier or bundle commit."
    )
    lldp_interval: float = Field(2.0, description="Seconds between LLDP probes of every port.")
    link_timeout: float = Field(7.0, description="Seconds without a probe after which a link goes.")
    edge_grace: float = Field(
        2.0, description="Seconds a new port waits before hosts are learnt on it (not a link)."
    )
    flow_idle_timeout: int = Field(30, description="Idle timeout of reactive path entries (s).")
    tap_settle: float = Field(
        5.0, description="Seconds a (re)connected switch with tables waits before TAP entries sync."
    )
    audit_interval: float = Field(
        5.0,
        gt=0,
        le=10.0,
        description="Seconds between audits of every switch's tables against the intent.",
    )
    # Copies are recognised by the port they arrive on, so the label range needs no
    # reservation in the network; it only has to fit the number of monitors.
    label_first: int = Field(
        16, ge=16, le=(1 << 20) - 1, description="First MPLS label copies may carry."
    )
    label_last: int = Field(
        (1 << 20) - 1, ge=16, le=(1 << 20) - 1, description="Last MPLS label copies may carry."
    )
    stats_interval: float = Field(
        1.0, gt=0, description="Seconds between readings of the switches' counters."
    )
    stats_history: int = Field(120, ge=1, description="Rate points kept per flow hop (chart).")
    host_names: dict[str, str] = Field(
        default_factory=dict,
        description="Display names of hosts, IP or MAC -> name (the network has no names).",
    )
    datapath_allow: frozenset[int] = Field(
        frozenset(),
        description="Datapath ids (hex) allowed to connect; empty: any switch.",
    )
    tls_dir: Path | None = Field(
        None, description="OpenFlow over TLS with this `vtap pki init` directory; unset: TCP."
    )
    api_hosts: frozenset[str] = Field(
        frozenset(),
        description="Host names the REST API answers to; empty: loopback names and api_host.",
    )
    auth: bool = Field(True, description="Require API tokens (false turns that off).")
    api_max_body: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest request body (bytes); larger get 413."
    )
    access_log: bool = Field(False, description="Log every REST request (logger vtap.access).")
    duplicate_probe: float = Field(
        2.0,
        gt=0,
        description="Seconds the live holder of a datapath id has to answer an impostor's probe.",
    )

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
