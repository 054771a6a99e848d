"""The config file: defaults < file < VTAP_* environment < flags, each value's source shown;
errors name the file, variable or flag and the setting; the shipped example documents all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vtap.config import example, load, rows
from vtap.errors import VtapError
from vtap.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"VTAP_{name.upper()}", raising=False)
    monkeypatch.delenv("VTAP_CONFIG", raising=False)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vtap.toml"
    path.write_text(text)
    return path


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(
        tmp_path,
        "of_port = 7001\napi_port = 9001\naudit_interval = 8.0\n"
        'datapath_allow = ["0000000000000101"]\n'
        '[host_names]\n"10.0.0.1" = "web1"\n',
    )
    monkeypatch.setenv("VTAP_API_PORT", "9002")
    effective = load(path, {"audit_interval": 3.0, "of_host": None})
    s = effective.settings
    assert (s.of_port, s.api_port, s.audit_interval) == (7001, 9002, 3.0)
    assert s.datapath_allow == frozenset({0x101}) and s.host_names == {"10.0.0.1": "web1"}
    assert effective.sources["of_port"] == f"file {path}"
    assert effective.sources["api_port"] == "env VTAP_API_PORT"
    assert effective.sources["audit_interval"] == "flag"
    assert effective.sources["of_host"] == "default"  # a flag not given is no flag
    shown = {r["setting"]: r for r in rows(effective)}
    assert shown["datapath_allow"]["value"] == [0x101] and len(shown) == len(Settings.model_fields)


def test_errors_name_the_source_and_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(VtapError, match=r"unknown setting 'of_prot'"):
        load(_file(tmp_path, "of_prot = 1\n"))
    with pytest.raises(
        VtapError, match=r"config .*vtap.toml: audit_interval: .*less than or equal"
    ):
        load(_file(tmp_path, "audit_interval = 60\n"))
    with pytest.raises(VtapError, match="not valid TOML"):
        load(_file(tmp_path, "of_port = \n"))
    with pytest.raises(VtapError, match="cannot read config"):
        load(tmp_path / "missing.toml")
    monkeypatch.setenv("VTAP_OF_PORT", "70000")
    with pytest.raises(VtapError, match="VTAP_OF_PORT: of_port"):
        load(_file(tmp_path, ""))


def test_the_default_file_is_optional_and_vtap_config_names_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load().settings.of_port == 6653  # no /etc/vtap/vtap.toml here: defaults
    monkeypatch.setenv("VTAP_CONFIG", str(_file(tmp_path, "of_port = 7100\n")))
    assert load().settings.of_port == 7100


def test_the_shipped_example_documents_every_setting_and_parses(tmp_path: Path) -> None:
    text = example()
    assert (ROOT / "docs" / "vtap.toml.example").read_text().rstrip() == text.rstrip()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"# {name} = " in text, name
    # Uncommented (those that are not unset), the example is a valid config of the defaults.
    settings = [
        line.removeprefix("# ")
        for line in text.splitlines()
        if line.startswith("# ") and " = " in line and "# unset" not in line
    ]
    path = tmp_path / "example.toml"
    path.write_text("\n".join(settings) + "\n")
    effective = load(path)
    assert effective.settings.of_port == 6653
    assert effective.sources["audit_interval"] == f"file {path}"


def test_config_show_prints_json_with_sources(tmp_path: Path) -> None:
    path = _file(tmp_path, "stats_interval = 2.5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "vtap", "config", "show", "--config", str(path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    shown = {r["setting"]: r for r in json.loads(proc.stdout)}
    assert shown["stats_interval"] == {
        "setting": "stats_interval",
        "value": 2.5,
        "source": f"file {path}",
    }
