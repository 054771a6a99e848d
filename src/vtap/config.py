"""The config file: a TOML file of settings (default /etc/vtap/vtap.toml, or --config FILE, or
VTAP_CONFIG). Precedence, lowest first: defaults, the file, VTAP_* environment variables,
command-line flags. Each effective value remembers where it came from (`vtap config show`).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vtap.errors import VtapError
from vtap.settings import Settings

DEFAULT_CONFIG = Path("/etc/vtap/vtap.toml")
ENV_PREFIX = "VTAP_"


@dataclass(frozen=True)
class Effective:
    settings: Settings
    sources: dict[str, str]  # field → "default", "file PATH", "env VTAP_X" or "flag"
    config: Path | None  # the file read, if any


def config_path(given: Path | None, environ: dict[str, str]) -> tuple[Path | None, bool]:
    """The file to read, and whether it must exist (named by the operator)."""
    if given is not None:
        return given, True
    named = environ.get(f"{ENV_PREFIX}CONFIG")
    if named:
        return Path(named), True
    return DEFAULT_CONFIG, False


def read_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file; one-line errors naming the file and the key."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise VtapError(f"cannot read config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise VtapError(f"config {path}: not a text file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise VtapError(f"config {path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise VtapError(
            f"config {path}: unknown setting {unknown[0]!r} (`vtap config example` lists them)"
        )
    return data


def load(config: Path | None = None, flags: dict[str, Any] | None = None) -> Effective:
    """Settings from the file, the environment and `flags` (only flags actually given)."""
    environ = os.environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    path, required = config_path(config, dict(environ))
    from_file: dict[str, Any] = {}
    read: Path | None = None
    if path is not None and (required or path.exists()):
        from_file = read_file(path)
        read = path
    from_env = {name for name in Settings.model_fields if f"{ENV_PREFIX}{name.upper()}" in environ}
    # Init arguments outrank the environment in pydantic-settings: pass the file's values
    # only where the environment says nothing, and flags always.
    init = {k: v for k, v in from_file.items() if k not in from_env} | flags
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "settings"
        if field in flags:
            where = "flag"
        elif field in from_env:
            where = f"{ENV_PREFIX}{field.upper()}"
        elif field in from_file:
            where = f"config {read}"
        else:
            where = "settings"
        raise VtapError(f"{where}: {field}: {err['msg']}") from exc
    sources: dict[str, str] = {}
    for name in Settings.model_fields:
        if name in flags:
            sources[name] = "flag"
        elif name in from_env:
            sources[name] = f"env {ENV_PREFIX}{name.upper()}"
        elif name in from_file:
            sources[name] = f"file {read}"
        else:
            sources[name] = "default"
    return Effective(settings, sources, read)


def rows(effective: Effective) -> list[dict[str, Any]]:
    """Every setting: name, effective value (JSON-ready), where it came from."""
    dumped = json.loads(effective.settings.model_dump_json())
    return [
        {"setting": name, "value": dumped[name], "source": effective.sources[name]}
        for name in Settings.model_fields
    ]


def example() -> str:
    """A config file with every setting documented and commented out at its default."""
    defaults = json.loads(Settings.model_construct().model_dump_json())
    lines = [
        "# vtap configuration (TOML). Precedence: defaults < this file < VTAP_* environment",
        "# variables < command-line flags. `vtap config show` prints the effective values.",
        f"# Default location: {DEFAULT_CONFIG} (or vtap controller --config FILE, VTAP_CONFIG).",
        "",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(f"# {field.description}")
        value = defaults.get(name)
        if name == "state_dir":
            value = "/var/lib/vtap"
        lines.append(f"# {name} = {_toml(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if value is None:
        return '""  # unset'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(value)
