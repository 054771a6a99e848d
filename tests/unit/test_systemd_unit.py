"""packaging/vtap-controller.service: valid for systemd (systemd-analyze verify), runs the
controller from its config file with structured logs, unprivileged and sandboxed."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "vtap-controller.service"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package (bootstrap installs it)"
    vtap = Path(sys.executable).with_name("vtap")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/vtap/bin/vtap", str(vtap)))
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_the_unit_runs_the_controller_unprivileged_and_sandboxed() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["ExecStart"].split()[1:] == [
        "controller",
        "--config",
        "/etc/vtap/vtap.toml",
        "--log-format",
        "json",
    ]
    assert service["User"] == "vtap" and service["CapabilityBoundingSet"] == ""
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "vtap",
    }.items():
        assert service[key] == value, key
