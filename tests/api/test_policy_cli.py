"""`vtap policy …` as an operator runs it, against a running controller.

The controller is the real service (`vtap.service.serve`: OpenFlow listener, REST API
on a socket, SQLite store in a temporary directory) in a background thread with its own event
loop. No switch ever connects, so policies stay `pending` with a reason.

Most commands run through the real entry point (`vtap.cli.main`) in this process, which is
quick; the `…_in_a_real_process` tests start `python -m vtap` to check what only a process
shows (exit status, stderr, no traceback, `VTAP_API` from the environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import httpx
import pytest
import yaml

from tests.api.conftest import QUICK_APPLY_WAIT, observe_fabric
from tests.unit.leafspine import Fabric
from vtap import cli, service
from vtap.controller import policies as policy_service
from vtap.controller.core import Controller
from vtap.domain.tokens import Role, digest, new_secret
from vtap.settings import Settings
from vtap.store.tokens import SqliteTokenRepository


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RecordedController(Controller):
    """The service's Controller, remembered by REST port, so a test can reach its state."""

    made: ClassVar[dict[int, Controller]] = {}

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self.made[settings.api_port] = self


class ControllerThread:
    """`serve(settings)` in a thread; `stop()` ends it the way SIGTERM would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.api_port}"
        # The CLI authenticates like anyone: every controller of this module knows one token.
        SqliteTokenRepository(settings.policy_db).close()  # the table
        with sqlite3.connect(settings.policy_db) as db:
            db.execute(
                "INSERT INTO tokens (name, role, digest, created_at) VALUES (?, ?, ?, ?)",
                ("tests", Role.ADMIN.value, digest(_TOKEN[0]), datetime.now(UTC).isoformat()),
            )
        self.token = _TOKEN[0]
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="vtap-controller", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await service.serve(self.settings, self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None or not self._thread.is_alive():
                raise RuntimeError(f"controller did not start: {self.error!r}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("controller did not answer on its REST API")

    def call(self, fn: Callable[[Controller], None]) -> None:
        """Run `fn(controller)` in the controller's own event loop (its state is not shared
        with other threads) and wait for it."""
        assert self._loop is not None

        async def job() -> None:
            fn(_RecordedController.made[self.settings.api_port])

        asyncio.run_coroutine_threadsafe(job(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "controller thread did not stop"


@pytest.fixture(scope="module")
def _patched() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(policy_service, "APPLY_WAIT", QUICK_APPLY_WAIT)
        patch.setattr(service, "Controller", _RecordedController)
        yield


@contextlib.contextmanager
def _running(state_dir: Path) -> Iterator[ControllerThread]:
    for _attempt in range(3):  # a free port can be taken between probing and binding
        settings = Settings(state_dir=state_dir, of_port=_free_port(), api_port=_free_port())
        ctl = ControllerThread(settings)
        try:
            ctl.start()
        except RuntimeError:
            ctl.stop()
            continue
        break
    else:
        pytest.fail("could not start the controller on a free port")
    yield ctl
    ctl.stop()
    assert ctl.error is None, repr(ctl.error)


@pytest.fixture(scope="module")
def _server(_patched: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerThread]:
    """One controller for the module (starting one per test costs more than the tests)."""
    with _running(tmp_path_factory.mktemp("state")) as ctl:
        yield ctl


@pytest.fixture
def own_controller(_patched: None, tmp_path: Path) -> Iterator[ControllerThread]:
    """A controller of the test's own, for a test that changes what it knows."""
    with _running(tmp_path / "state") as ctl:
        yield ctl


def _clear(ctl: ControllerThread) -> None:
    for policy in policies(ctl):
        resp = httpx.delete(
            f"{ctl.url}/api/v1/policies/{policy['id']}", timeout=10, headers=_auth()
        )
        assert resp.status_code == 204, resp.text


@pytest.fixture
def controller(_server: ControllerThread) -> ControllerThread:
    """The module's controller, with no policy at the start of the test."""
    _clear(_server)
    return _server


@dataclass
class Result:
    code: int
    out: str
    err: str


_TOKEN = [new_secret()]  # the admin token every controller of this module knows


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {_TOKEN[0]}"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTAP_")}
    env["VTAP_TOKEN"] = _TOKEN[0]
    env["COLUMNS"] = "200"  # rich tables: no wrapped or truncated cells
    env.update(extra)
    return env


def _argv(args: tuple[str, ...], api: str | None) -> list[str]:
    return ["policy", *args, *(["--api", api] if api is not None else [])]


def run(*args: str, api: str | None) -> Result:
    """`vtap policy ARGS` in this process, through the real entry point (`vtap.cli.main`):
    the same parsing, HTTP calls and error handling as the command, without an interpreter
    start per call. An exception that escapes `main` fails the test with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        # main() registers the sub-commands on each call (once per process in real use).
        mock.patch.object(cli.app, "registered_groups", list(cli.app.registered_groups)),
        mock.patch.object(cli.app, "registered_commands", list(cli.app.registered_commands)),
        mock.patch.object(sys, "argv", ["vtap", *_argv(args, api)]),
        mock.patch.dict(os.environ, _env(), clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code
    assert isinstance(code, int), code
    return Result(code, out.getvalue(), err.getvalue())


def run_process(*args: str, api: str | None, env: dict[str, str] | None = None) -> Result:
    """`python -m vtap policy ARGS` as its own process, as an operator runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "vtap", *_argv(args, api)],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ok(result: Result) -> str:
    assert result.code == 0, result
    assert "Traceback" not in result.err + result.out
    return result.out


def one_line_error(result: Result) -> str:
    """The operator error contract: exit 1, one stderr line `vtap: error: …`, no traceback."""
    assert result.code == 1, result
    assert "Traceback" not in result.err + result.out, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("vtap: error: "), lines[0]
    return lines[0].removeprefix("vtap: error: ")


def policies(ctl: ControllerThread) -> list[dict[str, Any]]:
    """The controller's policies, read through the REST API (not through the CLI under test)."""
    resp = httpx.get(f"{ctl.url}/api/v1/policies", timeout=10, headers=_auth())
    assert resp.status_code == 200
    return resp.json()


def table_rows(text: str) -> list[list[str]]:
    """The cells of a rich table's header (drawn with ┃) and rows (drawn with │)."""
    return [
        [cell.strip() for cell in re.split("[│┃]", line.strip())[1:-1]]
        for line in text.splitlines()
        if line.strip()[:1] in ("│", "┃")
    ]


WEB = [
    "--name", "web", "--src-ip", "10.0.0.1", "--dst-ip", "10.0.0.2",
    "--ip-proto", "6", "--dst-port", "80", "--monitor-ip", "10.0.0.3",
]  # fmt: skip


# ------------------------------------------------------------------------------ commands


def test_add_list_show_enable_disable_rules_stats_rm(controller: ControllerThread) -> None:
    api = controller.url
    out = ok(run("add", *WEB, api=api))
    [web] = policies(controller)
    assert out.strip() == (
        f"policy {web['id']} (web): pending (monitor host 10.0.0.3 not discovered yet)"
    )
    assert (web["src_ip"], web["dst_ip"], web["ip_proto"], web["dst_port"]) == (
        "10.0.0.1",
        "10.0.0.2",
        6,
        80,
    )
    out = ok(
        run(
            "add", "--name", "dns", "--src-mac", "00:00:00:00:00:01", "--ip-proto", "17",
            "--vlan-id", "100", "--monitor-mac", "00:00:00:00:00:04", "--disabled", api=api,
        )
    )  # fmt: skip
    dns = next(p for p in policies(controller) if p["name"] == "dns")
    assert out.strip() == f"policy {dns['id']} (dns): pending (disabled)"
    assert dns["enabled"] is False and dns["dst_ip"] is None

    header, *rows = table_rows(ok(run("list", api=api)))
    assert header == ["id", "name", "match", "monitor", "delivery", "enabled", "status"]
    assert rows == [
        [
            str(web["id"]), "web", "10.0.0.1 → 10.0.0.2 (tcp, dport 80)", "10.0.0.3", "tagged",
            "yes", "pending (monitor host 10.0.0.3 not discovered yet)",
        ],
        [
            str(dns["id"]), "dns", "00:00:00:00:00:01 → * (vlan 100, udp)",
            "00:00:00:00:00:04", "tagged", "no", "pending (disabled)",
        ],
    ]  # fmt: skip

    listed = json.loads(ok(run("list", "--json", api=api)))
    assert listed == policies(controller)

    for ref in (str(web["id"]), "web"):
        shown = ok(run("show", ref, api=api))
        fields = dict(line.strip().split(None, 1) for line in shown.splitlines() if line.strip())
        assert fields["id"] == str(web["id"])
        assert fields["name"] == "web"
        assert fields["dst_port"] == "80"
        assert fields["src_mac"] == "*"  # wildcard
        assert fields["status"] == "pending"

    out = ok(run("enable", "dns", api=api))
    assert out.startswith(f"policy {dns['id']} (dns): pending (monitor host 00:00:00:00:00:04")
    assert next(p for p in policies(controller) if p["name"] == "dns")["enabled"] is True
    out = ok(run("disable", str(web["id"]), api=api))
    assert out.strip() == f"policy {web['id']} (web): pending (disabled)"
    assert next(p for p in policies(controller) if p["name"] == "web")["enabled"] is False

    out = ok(run("rules", "web", api=api))
    assert out.strip() == "no rules: pending disabled"
    out = ok(run("stats", "web", api=api))
    assert out.strip() == f"policy {web['id']}: 0 packets, 0 bytes copied"

    out = ok(run("rm", "web", api=api))
    assert out.strip() == f"policy {web['id']} (web) deleted"
    assert [p["name"] for p in policies(controller)] == ["dns"]
    out = ok(run("rm", str(dns["id"]), api=api))
    assert policies(controller) == []


def test_rules_prints_each_switch_and_its_ofctl_rules(own_controller: ControllerThread) -> None:
    fab = Fabric(spines=2, leaves=2, hosts_per_leaf=2)
    own_controller.call(lambda controller: observe_fabric(controller, fab))
    api = own_controller.url
    out = ok(run("add", *WEB, api=api))
    # Compiled, but no switch is there to confirm it.
    assert re.fullmatch(
        r"policy \d+ \(web\): pending \(switch s\w+ is not connected\)", out.strip()
    )
    [web] = policies(own_controller)
    compiled = httpx.get(
        f"{api}/api/v1/policies/{web['id']}/rules", timeout=10, headers=_auth()
    ).json()
    assert compiled["switches"]

    expected = []
    for sw in compiled["switches"]:
        expected.append(f"{sw['switch']} ({sw['dpid']}):")
        expected += [f"  {rule['ofctl']}" for rule in sw["rules"]]
    assert ok(run("rules", "web", api=api)).splitlines() == expected
    assert any(",type=all,bucket=" in line for line in expected)

    out = ok(run("stats", str(web["id"]), api=api))
    assert out.strip() == f"policy {web['id']}: 0 packets, 0 bytes copied"


def test_add_and_list_in_a_real_process(controller: ControllerThread) -> None:
    # The API address from the environment, as an operator's shell would set it.
    out = ok(run_process("add", *WEB, api=None, env=_env(VTAP_API=controller.url)))
    [web] = policies(controller)
    assert out.strip() == (
        f"policy {web['id']} (web): pending (monitor host 10.0.0.3 not discovered yet)"
    )
    listed = json.loads(ok(run_process("list", "--json", api=controller.url)))
    assert listed == [web]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--monitor-mac", "00:00:00:00:00"], "monitor_mac"),
        (["--monitor-mac", "00:00:00:00:00:03", "--src-mac", "zz:00:00:00:00:01"], "src_mac"),
        (["--monitor-ip", "10.0.0.256", "--src-ip", "10.0.0.1"], "monitor_ip"),
        (["--monitor-ip", "10.0.0.1", "--src-ip", "10.0.0.1"], "monitor_ip"),
        (["--monitor-ip", "10.0.0.3", "--src-ip", "10.0.0.1", "--vlan-id", "4095"], "vlan_id"),
        (["--monitor-ip", "10.0.0.3", "--src-ip", "10.0.0.1", "--dst-port", "80"], "dst_port"),
        (["--monitor-ip", "10.0.0.3", "--src-ip", "10.0.0.1", "--delivery", "copy"], "delivery"),
        (["--src-ip", "10.0.0.1"], "monitor_mac"),
    ],
)
def test_invalid_add_is_one_line_naming_the_field(
    controller: ControllerThread, args: list[str], field: str
) -> None:
    message = one_line_error(run("add", "--name", "bad", *args, api=controller.url))
    assert message.startswith(f"{field}: "), message
    assert policies(controller) == []


def test_bad_mac_in_a_real_process(controller: ControllerThread) -> None:
    result = run_process(
        "add", "--name", "bad", "--src-ip", "10.0.0.1", "--monitor-mac", "00:00:00:00:00:zz",
        api=controller.url,
    )  # fmt: skip
    assert one_line_error(result) == (
        "monitor_mac: must be a MAC address: 6 colon-separated hex octets"
    )
    assert policies(controller) == []


def test_duplicate_add_is_one_line(controller: ControllerThread) -> None:
    ok(run("add", *WEB, api=controller.url))
    [web] = policies(controller)
    again = [*WEB]
    again[again.index("web")] = "web2"
    message = one_line_error(run("add", *again, api=controller.url))
    assert message == f"policy {web['id']} already has the same match and monitor"
    message = one_line_error(
        run("add", *WEB[:2], "--src-ip", "10.0.0.9", "--monitor-ip", "10.0.0.3", api=controller.url)
    )
    assert message == f"policy {web['id']} is already named 'web'"
    assert len(policies(controller)) == 1


@pytest.mark.parametrize("command", ["show", "rm", "enable", "disable", "rules", "stats"])
def test_unknown_policy_is_one_line(controller: ControllerThread, command: str) -> None:
    assert one_line_error(run(command, "nosuch", api=controller.url)) == (
        "no policy named 'nosuch'"
    )


@pytest.mark.parametrize("ref", ["42", "99999999999999999999"])
def test_unknown_id_is_one_line(controller: ControllerThread, ref: str) -> None:
    assert one_line_error(run("show", ref, api=controller.url)) == f"no policy with id {ref}"
    assert one_line_error(run("rm", ref, api=controller.url)) == f"no policy with id {ref}"


def test_unreachable_controller_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    message = one_line_error(run_process("list", api=url))
    assert message.startswith(f"cannot reach the controller at {url}"), message
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_FILE)
    for args in (["add", *WEB], ["show", "web"], ["rm", "3"], ["apply", str(path)]):
        message = one_line_error(run(*args, api=url))
        assert message.startswith(f"cannot reach the controller at {url}"), message


@pytest.mark.parametrize("url", ["http://[::1", "localhost:8080", "ftp://127.0.0.1:1"])
def test_malformed_api_url_is_one_line(url: str) -> None:
    message = one_line_error(run("list", api=url))
    assert url in message


# ------------------------------------------------------------------------------ apply

POLICY_FILE = """\
policies:
  - name: web
    src_ip: 10.0.0.1
    dst_ip: 10.0.0.2
    ip_proto: 6
    dst_port: 80
    monitor_ip: 10.0.0.3
  - name: udp-any
    src_mac: "00:00:00:00:00:01"
    ip_proto: 17
    vlan_id: 100
    monitor_mac: "00:00:00:00:00:04"
  - name: rewrite
    src_ip: 10.0.0.5
    dst_mac: "00:00:00:00:00:06"
    dst_ip: 10.0.0.6
    monitor_ip: 10.0.0.7
    delivery: rewrite
"""


# The same policies, disabled: creating them does not wait for hosts that never appear here,
# which keeps the tests that only need some policies in place quick.
DISABLED_FILE = POLICY_FILE.replace("  - name:", "  - enabled: false\n    name:")


@pytest.fixture
def seeded(_server: ControllerThread, tmp_path: Path) -> ControllerThread:
    """The module's controller holding exactly the policies of DISABLED_FILE (put there by
    `apply`, which is cheap when they are there already)."""
    path = tmp_path / "seed.yaml"
    path.write_text(DISABLED_FILE)
    ok(run("apply", str(path), api=_server.url))
    assert sorted(p["name"] for p in policies(_server)) == ["rewrite", "udp-any", "web"]
    return _server


def _summary(out: str) -> str:
    return out.strip().splitlines()[-1]


def _by_name(ctl: ControllerThread) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in policies(ctl)}


def test_apply_is_declarative_and_idempotent(controller: ControllerThread, tmp_path: Path) -> None:
    api = controller.url
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY_FILE)

    out = ok(run("apply", str(path), api=api))
    assert _summary(out) == "3 created, 0 changed, 0 removed, 0 unchanged"
    assert {line.split()[1] for line in out.splitlines()[:-1]} == {"web", "udp-any", "rewrite"}
    first = _by_name(controller)
    assert set(first) == {"web", "udp-any", "rewrite"}
    assert first["udp-any"]["vlan_id"] == 100 and first["udp-any"]["dst_ip"] is None
    assert first["rewrite"]["delivery"] == "rewrite"

    out = ok(run("apply", str(path), api=api))
    assert out.strip() == "0 created, 0 changed, 0 removed, 3 unchanged"
    assert _by_name(controller) == first  # same ids, untouched (updated_at too)

    # Edit one policy: only it changes, in place (same id).
    path.write_text(POLICY_FILE.replace("dst_port: 80", "dst_port: 8080"))
    out = ok(run("apply", str(path), api=api))
    assert _summary(out) == "0 created, 1 changed, 0 removed, 2 unchanged"
    assert "changed  web" in out
    second = _by_name(controller)
    assert second["web"]["id"] == first["web"]["id"]
    assert second["web"]["dst_port"] == 8080
    assert second["udp-any"] == first["udp-any"]

    # Drop a field from an item: the policy follows the file (the field becomes a wildcard).
    path.write_text(POLICY_FILE.replace("dst_port: 80", "dst_port: 8080").replace(
        "    vlan_id: 100\n", ""))  # fmt: skip
    out = ok(run("apply", str(path), api=api))
    assert _summary(out) == "0 created, 1 changed, 0 removed, 2 unchanged"
    assert _by_name(controller)["udp-any"]["vlan_id"] is None

    # Remove one from the file: it is removed from the controller.
    kept = POLICY_FILE.split("  - name: rewrite")[0].replace("dst_port: 80", "dst_port: 8080")
    kept = kept.replace("    vlan_id: 100\n", "")
    path.write_text(kept)
    out = ok(run("apply", str(path), api=api))
    assert _summary(out) == "0 created, 0 changed, 1 removed, 2 unchanged"
    assert "removed  rewrite" in out
    assert set(_by_name(controller)) == {"web", "udp-any"}

    # A policy that is not in the file at all is removed too; an empty list removes all, but
    # only with --prune (an emptied file is more often a mistake than an intent).
    ok(run("add", "--name", "manual", "--src-ip", "10.0.0.8", "--monitor-ip", "10.0.0.3", api=api))
    out = ok(run("apply", str(path), api=api))
    assert _summary(out) == "0 created, 0 changed, 1 removed, 2 unchanged"
    path.write_text("policies: []\n")
    refused = run("apply", str(path), api=api)
    assert refused.code != 0 and "add --prune" in refused.err and "remove all 2" in refused.err
    assert set(_by_name(controller)) == {"web", "udp-any"}
    out = ok(run("apply", "--prune", str(path), api=api))
    assert _summary(out) == "0 created, 0 changed, 2 removed, 0 unchanged"
    assert policies(controller) == []


def test_apply_renaming_a_policy_replaces_it(controller: ControllerThread, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_FILE)
    ok(run("apply", str(path), api=controller.url))
    path.write_text(POLICY_FILE.replace("name: web", "name: http"))
    out = ok(run("apply", str(path), api=controller.url))
    assert _summary(out) == "1 created, 0 changed, 1 removed, 2 unchanged"
    assert set(_by_name(controller)) == {"http", "udp-any", "rewrite"}


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (("monitor_ip: 10.0.0.3", "monitor_ip: 10.0.0.300"), "policies[0].monitor_ip"),
        (('monitor_mac: "00:00:00:00:00:04"', "monitor_mac: nope"), "policies[1].monitor_mac"),
        (("vlan_id: 100", "vlan_id: 4095"), "policies[1].vlan_id"),
        (("    delivery: rewrite\n", "    delivery: rewrite\n    colour: red\n"),
         "policies[2].colour"),
        (("    dst_ip: 10.0.0.6\n", ""), "policies[2].delivery"),
        (("name: udp-any", "name: web"), "policies[1].name"),
        (("name: udp-any", "name: udp any"), "policies[1].name"),
        (("    monitor_ip: 10.0.0.7\n", ""), "policies[2].monitor_mac"),
    ],
)  # fmt: skip
def test_apply_rejects_an_invalid_file_as_a_whole(
    seeded: ControllerThread, tmp_path: Path, edit: tuple[str, str], where: str
) -> None:
    api = seeded.url
    path = tmp_path / "p.yaml"
    before = policies(seeded)
    old, new = edit
    assert old in DISABLED_FILE
    # Another, valid change in the same file must not be applied either.
    text = DISABLED_FILE.replace(old, new).replace("dst_port: 80", "dst_port: 81")
    path.write_text(text)
    message = one_line_error(run("apply", str(path), api=api))
    assert message.startswith(f"{path}: {where}: "), message
    assert policies(seeded) == before


def test_apply_errors_in_a_real_process(seeded: ControllerThread, tmp_path: Path) -> None:
    controller = seeded
    path = tmp_path / "p.yaml"
    before = policies(controller)

    path.write_text(DISABLED_FILE.replace('"00:00:00:00:00:04"', "00:00:00:00:00:4g"))
    message = one_line_error(run_process("apply", str(path), api=controller.url))
    assert message == (
        f"{path}: policies[1].monitor_mac: must be a MAC address: 6 colon-separated hex octets"
    )
    path.write_bytes(b"\xff\xfe\x00policies")
    message = one_line_error(run_process("apply", str(path), api=controller.url))
    assert message.startswith(f"{path}: not a text file"), message
    assert policies(controller) == before


def test_apply_rejects_two_items_with_the_same_match_and_monitor(
    seeded: ControllerThread, tmp_path: Path
) -> None:
    controller = seeded
    path = tmp_path / "p.yaml"
    before = policies(controller)
    web = POLICY_FILE.split("  - name: web\n")[1].split("  - name")[0]
    twin = "  - name: web-again\n" + web  # same match and monitor, another name
    path.write_text((DISABLED_FILE + twin).replace("dst_port: 80", "dst_port: 81"))
    message = one_line_error(run("apply", str(path), api=controller.url))
    assert message.startswith(f"{path}: policies[3]: "), message
    assert "policies[0]" in message
    assert policies(controller) == before


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"policies: [unclosed\n", "not valid YAML"),
        (b"\xff\xfe\x00\x01binary", "not a text file"),
        (b"just a sentence\n", "expected a list of policies"),
        (b"policies:\n  name: web\n", "expected a list of policies"),
        (b"policies:\n  - web\n", "policies[0]: expected a mapping"),
        (b"policy:\n  - name: web\n", "expected a list of policies"),  # typo: not "none"
        (b"", "expected a list of policies"),  # empty file: not "remove everything"
    ],
    ids=["yaml-syntax", "binary", "scalar", "mapping", "item-scalar", "typo", "empty"],
)
def test_apply_rejects_a_file_that_is_not_a_policy_list(
    seeded: ControllerThread, tmp_path: Path, content: bytes, expect: str
) -> None:
    controller = seeded
    before = policies(controller)
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    message = one_line_error(run("apply", str(path), api=controller.url))
    assert message.startswith(f"{path}"), message
    assert expect in message, message
    assert policies(controller) == before


def test_apply_unreadable_file_is_one_line(controller: ControllerThread, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert one_line_error(run("apply", str(missing), api=controller.url)) == (
        f"cannot read {missing}: No such file or directory"
    )
    assert "cannot read" in one_line_error(run("apply", str(tmp_path), api=controller.url))


def test_apply_dry_run_prints_the_diff_and_changes_nothing(
    controller: ControllerThread, tmp_path: Path
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_FILE)
    ok(run("apply", str(path), api=controller.url))
    before = _by_name(controller)
    path.write_text(POLICY_FILE.replace("name: web", "name: http"))
    out = ok(run("apply", "--dry-run", str(path), api=controller.url))
    assert "would be removed  web" in out and "would be created  http" in out
    assert out.strip().splitlines()[-1] == (
        "dry run: 1 created, 0 changed, 1 removed, 2 unchanged; nothing was changed"
    )
    assert _by_name(controller) == before


# ------------------------------------------------------------------------------ scripting


def run_top(*args: str, api: str | None) -> Result:
    """`vtap ARGS` (not under `policy`) through the real entry point."""
    with mock.patch(f"{__name__}._argv", lambda a, u: [*a, *(["--api", u] if u else [])]):
        return run(*args, api=api)


def test_read_commands_print_json_and_yaml_for_scripts(controller: ControllerThread) -> None:
    api = controller.url
    ok(run("add", *WEB, api=api))
    [web] = policies(controller)
    assert json.loads(ok(run("list", "-o", "json", api=api))) == [web]
    assert json.loads(ok(run("show", "web", "-o", "json", api=api))) == web
    shown = yaml.safe_load(ok(run("show", str(web["id"]), "-o", "yaml", api=api)))
    assert shown == web
    rules = json.loads(ok(run("rules", "web", "--output", "json", api=api)))
    assert rules["status"] == "pending" and rules["switches"] == []
    stats = yaml.safe_load(ok(run("stats", "web", "-o", "yaml", api=api)))
    assert stats["packets"] == 0
    topo = json.loads(ok(run_top("topology", "-o", "json", api=api)))
    assert set(topo) == {"switches", "links", "hosts"}
    health = yaml.safe_load(ok(run_top("health", "-o", "yaml", api=api)))
    assert health["status"] == "ok" and "install" in health
    flows = json.loads(ok(run_top("flows", "--proto", "udp", "-o", "json", api=api)))
    assert flows["total"] == 0 and flows["flows"] == []
    assert "-o must be table, json or yaml, not 'xml'" in one_line_error(
        run("list", "-o", "xml", api=api)
    )


def test_ip_proto_by_name_update_clear_and_names_made_of_digits(
    controller: ControllerThread,
) -> None:
    api = controller.url
    ok(run("add", "--name", "123", "--src-ip", "10.0.0.1", "--ip-proto", "udp",
           "--dst-port", "53", "--monitor-ip", "10.0.0.3", api=api))  # fmt: skip
    [p] = policies(controller)
    assert p["ip_proto"] == 17
    # "123" alone is an id; name:123 is the policy named "123".
    assert json.loads(ok(run("show", "name:123", "-o", "json", api=api)))["id"] == p["id"]
    out = ok(run("update", "name:123", "--ip-proto", "tcp", "--dst-port", "443",
                 "--clear", "src_ip", "--dst-ip", "10.0.0.2", api=api))  # fmt: skip
    assert out.startswith(f"policy {p['id']} (123): ")
    [q] = policies(controller)
    assert (q["ip_proto"], q["dst_port"], q["src_ip"], q["dst_ip"]) == (6, 443, None, "10.0.0.2")
    assert "icmpv6" in one_line_error(run("update", "name:123", "--ip-proto", "tls", api=api))
    assert "--clear color: not a field" in one_line_error(
        run("update", "name:123", "--clear", "color", api=api)
    )
    assert "nothing to change" in one_line_error(run("update", "name:123", api=api))
    # A patch the server refuses names the field, and changes nothing.
    err = one_line_error(run("update", "name:123", "--clear", "monitor_ip", api=api))
    assert "monitor" in err
    assert policies(controller) == [q]


def test_add_wait_exits_3_with_the_reason_when_the_policy_is_not_active(
    controller: ControllerThread,
) -> None:
    result = run("add", *WEB, "--wait", "0.5", api=controller.url)
    assert result.code == 3, result
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vtap: error: policy ")
    assert "not active after 0.5 s: pending (monitor host 10.0.0.3 not discovered yet)" in lines[0]


def test_version_and_completion() -> None:
    proc = subprocess.run([sys.executable, "-m", "vtap", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0 and re.fullmatch(r"vtap \d+\.\d+\.\d+\n", proc.stdout)
    helped = subprocess.run([sys.executable, "-m", "vtap", "--help"], capture_output=True,
                            text=True, timeout=60, check=False, env=_env())  # fmt: skip
    assert "--install-completion" in helped.stdout
